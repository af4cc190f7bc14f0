/*
 * park.h - requests parked until they can be answered (long polls), as
 * Redis's blocked.c holds clients blocked on a key: claims until a job is
 * ready or their wait ends, and waits until their execution has an
 * outcome (succeeded, dead, cancelled) or their wait ends.
 *
 * A parked request holds its server context and what it needs (its
 * arguments and request ID), not its frame, and no thread.  Each turn the
 * core serves those whose queue has work (or whose execution finished),
 * whose wait ended, or whose connection closed (those get an empty
 * answer and lease nothing: nobody would receive the jobs).  Parked
 * requests are bounded, per connection and in all
 * (--max-parked-per-connection, --max-parked), so one client cannot take
 * every server context: a request past a bound is answered at once.  A
 * wait's answer leaves after the turn's sync, like every answer that
 * reports a write: nobody learns an outcome that a crash could undo.
 * Core thread only.
 */
#ifndef CUEQ_PARK_H
#define CUEQ_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "ridcache.h"

#define PARK_RECENT_GONE 1024

struct park {
	struct request *r;
	struct claim_args a;
	int64_t deadline; /* monotonic ms */
	struct rid_entry *rid_entry;
	bool gone; /* its connection closed */
	uint8_t rid[PROTO_MAX_RID];
	size_t rid_len;
	bool rid_bin;
	struct park *next;
};

/* Parked claims of one connection (open addressing on the pipe ID). */
struct park_count {
	uint32_t pipe, n;
};

struct parks {
	struct park *head, *tail;
	size_t n, max, max_per_conn; /* parked now; the bounds (0: none) */
	struct park_count *counts;   /* per connection, cap_counts slots */
	size_t cap_counts, used_counts;
	uint32_t recent_gone[PARK_RECENT_GONE]; /* closed connections, newest last */
	size_t n_recent_gone;
};

/* Sets the bounds (0: none). */
void park_limits(struct parks *ps, size_t max, size_t max_per_conn);
/* Parks r's claim a (waiting a->wait_ms from now) and frees its frame:
 * 0; or -1 when a bound is reached (nothing parked; err says which, for
 * the answer). */
int park_add(struct parks *ps, struct request *r, const struct claim_args *a,
	     struct rid_entry *e, const void *rid, size_t rid_len, bool rid_bin, proto_error *err);
/* Connections that closed: their parked claims end now, and claims from
 * them still on their way to the core are recognised when they park. */
void park_gone(struct parks *ps, const uint32_t *gone, size_t n);
/* The earliest wait end (monotonic ms), INT64_MAX for none. */
int64_t park_next_deadline(const struct parks *ps);

/* How a served claim is answered (the loop's reply path); memo (NULL or
 * malloc'd: ownership passes) and early are the claim's (ops.h). */
typedef void (*park_answer_fn)(void *arg, struct request *r, nng_msg *m, int code,
			       struct rid_entry *e, void *memo, size_t memo_len, bool early);
/* Serves every parked claim that can be answered now (all of them when
 * all_final is set, at shutdown): runs the claim through the ops table
 * and hands the reply to answer. */
void park_serve(struct parks *ps, const struct engine_ops *eo, struct engine *e, bool synced,
		bool all_final, park_answer_fn answer, void *arg);
/* Frees every parked claim without answering (the server frees contexts). */
void park_free_all(struct parks *ps);

#endif /* CUEQ_PARK_H */
