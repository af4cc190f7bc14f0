/*
 * syncer.h - replies that wait for durability, and the thread that makes
 * writes durable (as Redis's bio.c does its background fsyncs).
 *
 * The core hands over each turn's replies after writing the turn.  Under
 * --fsync always a turn that wrote something durable waits for one WAL sync
 * that covers every turn waiting with it (group commit); replies leave in
 * turn order, so a reply that needs no sync still waits for the turns
 * before it, except one added as early (a claim of jobs whose creation is
 * durable), which leaves as soon as its turn is written.  Under --fsync interval the thread syncs every interval.
 *
 * The failure rule: once a write or sync failed (syncer_fail, or a failed
 * sync here), no reply leaves any more: every batch still waiting, and
 * every batch handed over later, is dropped without an answer, and the
 * broker is told to stop.  Clients retry with the same request ID once the
 * broker is back; what it answered before the failure is on disk.  (An
 * early claim answer of a turn written before the failure was seen may
 * still leave: it depends on nothing the failure can take back.)
 */
#ifndef CUEQ_SYNCER_H
#define CUEQ_SYNCER_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"
#include "server.h"

enum fsync_policy { FSYNC_ALWAYS, FSYNC_INTERVAL, FSYNC_NEVER };

/* One turn's replies, in order. */
struct replies {
	struct reply_out *v;
	size_t n, cap;
	size_t n_early; /* of them added with replies_add_early, not yet sent */
	bool sync; /* must wait for a sync */
	struct replies *next;
};

/* Appends reply m for r (aborts when out of memory, as the core does). */
void replies_add(struct replies *b, struct request *r, nng_msg *m);
/* The same for a reply that depends on no write waiting for its sync (a
 * claim of durable jobs: ops.h, early): it leaves when its turn is handed
 * over, before the sync that the turn's other replies wait for. */
void replies_add_early(struct replies *b, struct request *r, nng_msg *m);
/* Sends every reply of b (or drops them unanswered) and empties b. */
void replies_send(struct server *srv, struct replies *b, bool drop);
/* Frees b and what it still holds (replies unsent are freed, their
 * requests dropped). */
void replies_free(struct server *srv, struct replies *b);

struct syncer;

/* Starts the thread.  on_fail(arg) is called (from this thread) when a
 * sync fails, on_synced(arg) after every sync that succeeded (the core may
 * be waiting to write).  -1 when the thread cannot start. */
int syncer_start(const struct engine_ops *eo, struct engine *e, struct server *srv, int fsync,
		 int64_t interval_ms, void (*on_fail)(void *), void (*on_synced)(void *), void *arg,
		 struct syncer **out);
/* Hands over a written turn's replies (durable: the turn wrote something
 * that must be synced before answering).  Returns the batch the core fills
 * next: b itself when it was sent (or dropped) at once, else a new one.
 * idle: nothing else waits for the core, so when no sync is under way or
 * queued the caller syncs and answers b itself: a lone request then costs
 * no hand-off to this thread and back (the group commit is unchanged:
 * what arrives meanwhile waits for the next turn's one sync). */
struct replies *syncer_hand(struct syncer *s, struct replies *b, bool durable, bool idle);
/* Storage failed (the core's write): nothing answers any more. */
void syncer_fail(struct syncer *s);
bool syncer_failed(struct syncer *s);
/* Sends or drops what waits, joins the thread and frees it. */
void syncer_stop(struct syncer *s);

#endif /* CUEQ_SYNCER_H */
