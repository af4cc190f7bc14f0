/*
 * ops.h - the protocol's operations: one table {name, flags, handler}.
 *
 * A handler reads its fields from the decoded request map (argument checks
 * live here, in one place), calls the engine, and packs the reply fields.
 * It packs nothing before it knows it succeeds, so a failure becomes a clean
 * error reply.  The loop (loop.c) owns everything around a handler: request
 * IDs, parking long polls, group commit.
 */
#ifndef CUEQ_OPS_H
#define CUEQ_OPS_H

#include "engine.h"

struct principal;

#define OP_WRITE 1	/* changes state: answered once per request ID */
#define OP_PRODUCE 2	/* adds work (push): bounded per turn, so that claims and
			 * acks are never starved by a flood of pushes */
#define OP_REPLAYS 4	/* a repeat is answered from the engine's own state, the
			 * same bytes without a write: once sent, the loop
			 * forgets the reply.  Ack: the outcome stays in the
			 * finished execution's record.  (Not nack: the record
			 * of an execution nacked to run again is rewritten by
			 * its next claim, which forgets the outcome.) */
#define OP_PARKED (-1) /* a claim found nothing, or a wait no outcome: it waits, no reply yet */

/* A claim, as parked by the loop until something is ready or the wait ends;
 * or a wait, parked until its execution has an outcome (outcome_of). */
struct claim_args {
	char queue[PROTO_MAX_QUEUE + 1];
	size_t qlen;
	uint32_t max;
	uint32_t lease_ms; /* 0: each job's own */
	int64_t wait_ms;
	char worker[PROTO_MAX_WORKER + 1];
	size_t wlen;
	bool detach; /* the leases outlive the connection (no release) */
	uint64_t outcome_of; /* not 0: a wait for this execution's outcome, not a claim */
};

struct opctx {
	const struct engine_ops *eo;
	struct engine *e;
	const msgpack_object *req; /* the request map */
	msgpack_packer *pk;	   /* the reply, positioned at its start */
	const void *rid;
	size_t rid_len;
	bool rid_bin;
	bool synced;	      /* writes are synced before replies (fsync always) */
	uint64_t body_hash;   /* of the whole request (OP_WRITE ops) */
	const uint8_t *scoped_rid; /* the request ID in its client's scope */
	size_t scoped_len;
	bool by_client;	      /* scoped by a client ID (not only the connection) */
	int64_t remember_ms;  /* set by push with retry_ttl_ms: the loop has the
			       * engine remember the answer this long */
	bool replayable;      /* the engine answers a repeat of this request (the
			       * push was remembered or recalled): as OP_REPLAYS */
	bool early;	      /* the answer depends on no write still waiting for
			       * its sync (a claim of durable jobs): it may leave
			       * before the turn's sync (fsync always) */
	void *memo;	      /* a claim's answer in brief (malloc'd, memo_len
			       * bytes; the loop keeps it for a repeat instead
			       * of the reply: ops_claim_again) */
	size_t memo_len;
	const struct principal *who; /* the authenticated client; NULL without --auth */
	bool recalled;	      /* the reply is the remembered first answer (push) */
	bool rid_reused;      /* refused: the request ID was used for other bytes */
	proto_error err;      /* set when a handler fails */
	struct claim_args park; /* filled when a claim parks */
};

struct op {
	const char *name;
	int flags;
	int (*fn)(struct opctx *c); /* CUEQ_OK (reply packed), OP_PARKED or an error */
	unsigned roles;		    /* ROLE_* of auth.h that may run it (with --auth) */
};

/* Limits an operator may lower (cueqd --max-payload): set once at start. */
void ops_set_max_payload(size_t bytes);

/* The op of that name, or NULL. */
const struct op *ops_find(const char *name, size_t len);
/* Comma-separated names of every op, for error messages. */
const char *ops_names(void);
/* The op at place i of the table (0 the first), NULL past the last; and
 * the place of op (metrics count requests by it). */
const struct op *ops_at(size_t i);
size_t ops_place(const struct op *op);
/* Runs a (parked) claim again.  With final set it always replies, with an
 * empty list when nothing is ready; otherwise it returns OP_PARKED then. */
int ops_claim(struct opctx *c, const struct claim_args *a, bool final);
/* Runs a (parked) wait again: replies with the execution once it has an
 * outcome, or as it is now when final; otherwise returns OP_PARKED. */
int ops_wait(struct opctx *c, const struct claim_args *a, bool final);
/* Answers the repeat of a claim from its memo (c->memo of the first): the
 * leases it gave that are still live, packed as the first answer was. */
int ops_claim_again(struct opctx *c, const void *memo, size_t len);
/* The leases (at most CUEQ_MAX_CLAIM) a claim's memo gave, to end when
 * its connection closes: how many; 0 for a detached claim or a damaged
 * memo. */
size_t ops_memo_leases(const void *memo, size_t len, uint64_t *ids, uint64_t *tokens);

#endif /* CUEQ_OPS_H */
