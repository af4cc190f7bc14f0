/*
 * ridcache.h - remembered answers by request ID, so that a request sent
 * again (a REQ resend, an SDK retry after a lost reply) is answered and never
 * applied twice.
 *
 * An entry is pending while its request is being worked on (a parked claim,
 * a write waiting for its sync); repeats that arrive meanwhile wait on it.
 * Done entries hold a copy of the reply, LZ4-compressed: a batch reply is
 * mostly repeated keys and neighbouring IDs and shrinks several times over.
 * A claim's entry holds its memo instead (the leases it gave, 20 bytes
 * each), from which a repeat is answered without keeping the payloads.
 * The cache keeps every reply for RID_KEEP_MS unless it holds more than
 * RID_MAX_ENTRIES or RID_MAX_BYTES (entries and what they keep);
 * then it forgets the oldest done ones first.  An entry also remembers a
 * hash of its request, so an ID reused for another request is refused
 * rather than answered with someone else's reply.  Core thread only.
 */
#ifndef CUEQ_RIDCACHE_H
#define CUEQ_RIDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

#define RID_KEEP_MS (10 * 60 * 1000)
#define RID_MAX_ENTRIES 1000000
#define RID_MAX_BYTES (256u << 20)

struct rid_entry {
	uint8_t len;
	bool done;
	uint8_t code; /* done: the answer's code (request.code of its repeats) */
	uint64_t body_hash; /* of the whole request: a reused ID is refused */
	int64_t at; /* monotonic ms */
	bool memo;   /* done: reply holds the op's memo of its answer (a claim's
		      * leases), not the reply: the loop answers from it */
	void *reply; /* done: the reply, LZ4-compressed when stored_len < reply_len */
	size_t reply_len, stored_len;
	struct request *waiters; /* pending: repeats to answer with it */
	uint32_t n_waiters;
	struct rid_entry *hnext, *older, *newer;
	uint8_t rid[]; /* len bytes: the scoped ID (at most PROTO_MAX_SCOPED_RID) */
};

struct ridcache;

struct ridcache *ridcache_new(void);
void ridcache_free(struct ridcache *rc);
struct rid_entry *ridcache_find(struct ridcache *rc, const void *rid, size_t len);
/* A new pending entry; NULL when out of memory. */
struct rid_entry *ridcache_add(struct ridcache *rc, const void *rid, size_t len,
			       uint64_t body_hash, int64_t now);
/* Stores the reply (copied) and makes the entry done; false on no memory
 * (the entry is then removed). */
bool ridcache_done(struct ridcache *rc, struct rid_entry *e, const void *reply, size_t len);
/* Makes the entry done with memo (malloc'd; ownership passes, freed with
 * the entry) in place of the reply. */
void ridcache_done_memo(struct ridcache *rc, struct rid_entry *e, void *memo, size_t len);
/* Writes the remembered reply of a done entry (not a memo) into a new
 * message; NULL when out of memory. */
nng_msg *ridcache_reply(const struct rid_entry *e);
/* Removes a pending entry (its request gave no answer worth keeping). */
void ridcache_remove(struct ridcache *rc, struct rid_entry *e);
/* Forgets what is too old or over the limits. */
void ridcache_trim(struct ridcache *rc, int64_t now);

#endif /* CUEQ_RIDCACHE_H */
