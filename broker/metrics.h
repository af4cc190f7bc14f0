/*
 * metrics.h - what the broker measures of itself, answered by the metrics
 * op (PROTOCOL.md, "metrics") and, through it, by GET /metrics (prom.h).
 *
 * One set per process, as there is one broker per process: the hooks sit
 * on the paths of several threads (nng's receive callbacks, the core, the
 * syncer, the HTTP face's), and a set of the process's own keeps each a
 * plain call instead of a pointer passed through every seam.  What more
 * than one thread writes is a relaxed atomic: a request costs three atomic
 * adds when its reply leaves, and two clock reads.  What only the core
 * writes (the push counters) is plain and read by the core alone, where the
 * metrics op runs.  Counts start at zero with the process; the engine's own
 * (claimed, expired, ...) with its open, which is the same moment.
 */
#ifndef CUEQ_METRICS_H
#define CUEQ_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine.h"
#include "server.h"

struct opctx;

/* The clock of request.arrived_ns: monotonic nanoseconds. */
static inline int64_t metrics_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- any thread ---- */

/* r's reply is about to be handed to its transport (server_reply): counts
 * it by op and answer code, and its time since arrival.  Call it before:
 * r is the server's again once replied. */
void metrics_sent(const struct request *r);
/* n requests were dropped without an answer (a failed write or sync). */
void metrics_dropped(size_t n);
/* An HTTP connection opened (+1) or closed (-1). */
void metrics_http_connection(int delta);
/* A sync took took_ns and let replies replies leave (0: it answered
 * nothing, e.g. an interval sync): the group commit's batch. */
void metrics_synced(int64_t took_ns, size_t replies);

/* ---- the core thread ---- */

/* What the loop knows and the op table does not. */
struct metrics_now {
	uint64_t parked;      /* claims and waits parked now */
	uint64_t connections; /* connections open now */
};
/* The broker starts serving: its uptime counts from now, and the metrics
 * op asks fn(arg) for the figures of now.  Before loop_run's first turn. */
void metrics_start(void (*fn)(void *arg, struct metrics_now *now), void *arg);
/* A push's answer to n jobs (out of the engine's push): creations,
 * duplicates by idempotency key, refusals. */
void metrics_pushed(const struct eng_pushed *out, size_t n);
/* The handler of the metrics op (ops.h). */
int metrics_op(struct opctx *c);

#endif /* CUEQ_METRICS_H */
