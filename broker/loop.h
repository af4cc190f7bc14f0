/*
 * loop.h - the core thread, which owns all state, and the syncer thread.
 *
 * One turn of the core: take every request that arrived, let time pass in
 * the engine (due jobs, expired leases), run each request through the op
 * table (claims and acks first, then at most PRODUCE_PER_TURN pushed jobs),
 * serve parked long polls whose queue has work (park.c), write everything
 * as one batch (no sync), and hand the turn's replies to the syncer
 * (syncer.c).  Under --fsync always the syncer makes the writes durable
 * with one fsync for however many turns are waiting, then sends their
 * replies in order; the core meanwhile goes on with the next turn (group
 * commit), and a turn that ends while a sync is under way joins the next.
 * A turn that ends with nothing else waiting for the core and no sync
 * under way is synced and answered by the core itself, sparing a lone
 * request two thread hand-offs.
 * Turns that wrote nothing needing durability are answered at once when
 * nothing is queued before them.
 */
#ifndef CUEQ_LOOP_H
#define CUEQ_LOOP_H

#include "engine.h"
#include "server.h"
#include "syncer.h"

struct loop;

/* release_on_disconnect: when a connection closes, the leases its claims
 * were given end at once (holders.h); max_parked, max_parked_per_conn:
 * the bounds of park.h (0: none). */
int loop_new(const struct engine_ops *eo, struct engine *e, int fsync, int64_t fsync_interval_ms,
	     bool release_on_disconnect, size_t max_parked, size_t max_parked_per_conn,
	     struct loop **out);
struct auth;
/* The --auth principals (ownership passes; NULL: none), taken at the start
 * of the next turn: at start, or a reload (any thread). */
void loop_set_auth(struct loop *l, struct auth *a);
/* Requests bigger than this are answered TOO_LARGE (cueqd --max-frame,
 * at most PROTO_MAX_FRAME); set before loop_run. */
void loop_set_max_frame(struct loop *l, size_t bytes);
/* The server to answer through; set before loop_run. */
void loop_set_server(struct loop *l, struct server *s);
/* server callbacks (any thread) */
void loop_deliver(void *arg, struct request *r);
void loop_pipe_gone(void *arg, uint32_t pipe);
/* Runs the core on the calling thread until loop_stop; then answers parked
 * claims, writes and syncs what is left.  0, or -1 if storage failed: then
 * the requests of the failed write were not answered, and the caller must
 * stop without writing anything more (restart recovers from disk). */
int loop_run(struct loop *l);
/* Asks the loop to stop (any thread). */
void loop_stop(struct loop *l);
/* Requests still unanswered are dropped (their context freed by the server). */
void loop_free(struct loop *l);

#endif /* CUEQ_LOOP_H */
