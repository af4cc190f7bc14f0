/*
 * chaos_fleet.h - the chaos test's processes: the broker (harness.h) and
 * the producers and workers around it, with the blows the conductor deals
 * them: kill -9 and restart of the broker, kill -9 of a worker (started
 * again a moment later), SIGSTOP of a worker past its lease (SIGCONT
 * later), kill -9 of a producer (started again at once).
 *
 * Nothing here blocks for long: a blow that waits for something later
 * (a restart, a SIGCONT) leaves it due, and chaos_fleet_tick does it when
 * its time comes.  Like the harness, these functions return errors with a
 * line on stderr and never call cmocka's asserts.
 */
#ifndef CUEQ_TEST_CHAOS_FLEET_H
#define CUEQ_TEST_CHAOS_FLEET_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "chaos.h"
#include "harness.h"

#define CHAOS_MAX_CHILDREN 16

/* One producer or worker slot; its process is restarted as it is killed. */
struct chaos_child {
	pid_t pid;	    /* 0: not running */
	unsigned gen;	    /* starts so far */
	bool stopped;	    /* SIGSTOPped, SIGCONT due at cont_at */
	int64_t cont_at;    /* mono ms */
	int64_t restart_at; /* mono ms a killed one starts again; 0: none due */
	char log[PATH_MAX + 64]; /* its event log */
	char out[PATH_MAX + 64]; /* its stdout and stderr */
};

typedef struct chaos_fleet {
	th_broker *b;
	char dir[PATH_MAX - 16]; /* the logs */
	unsigned n_prod, n_work, concurrency;
	double rate;
	int64_t lease_ms, work_ms;
	struct chaos_child prod[CHAOS_MAX_CHILDREN], work[CHAOS_MAX_CHILDREN];
	chaos_figures *f;
	int notes; /* conductor.log: each blow and start, with its times */
} chaos_fleet;

/* Makes the log dir under the broker's temp dir; the caller has set the
 * sizes and rates.  Then starts every producer and worker.  What the
 * conductor does is noted in the dir's conductor.log, one line each
 * ("WHAT SLOT PID MONO RT"), to read a violation's story from. */
int chaos_fleet_start(chaos_fleet *fl);
/* Does what fell due by now: SIGCONTs and restarts. */
int chaos_fleet_tick(chaos_fleet *fl);
/* -1 (after its output's tail) when a child ended without being told. */
int chaos_fleet_supervise(chaos_fleet *fl);

/* The blows; seed draws the target and the delays.  A blow with no
 * target now (every worker stopped or down) returns 1 and does nothing. */
int chaos_kill_broker(chaos_fleet *fl, unsigned *seed);
int chaos_kill_worker(chaos_fleet *fl, unsigned *seed);
/* busy_only: only a worker whose log shows jobs in hand, so that the
 * stop lands in the middle of handlers. */
int chaos_stop_worker(chaos_fleet *fl, unsigned *seed, bool busy_only);
int chaos_kill_producer(chaos_fleet *fl, unsigned *seed);

/* The end of the run: every worker running again, the producers stopped
 * (SIGTERM, exit 0 expected; one that does not stop is wedged, killed
 * and counted); *jobs gets how many keys they pushed. */
int chaos_fleet_end_pushes(chaos_fleet *fl, uint64_t *jobs);
/* Waits up to limit_ms until the broker has finished jobs executions
 * and holds no unfinished one; -1 (with the counts) if not. */
int chaos_fleet_drain(chaos_fleet *fl, uint64_t jobs, int64_t limit_ms);
/* SIGTERM to every worker; each must exit 0, or is wedged as above. */
int chaos_fleet_stop_workers(chaos_fleet *fl);
/* Reads every event log the run wrote. */
int chaos_fleet_read_logs(const chaos_fleet *fl, chaos_logs *logs, char *why, size_t why_size);
/* Kills whatever still runs (after a failure) and closes conductor.log. */
void chaos_fleet_kill_all(chaos_fleet *fl);
/* The tails of the children's output and the broker's log. */
void chaos_fleet_dump(const chaos_fleet *fl);

#endif /* CUEQ_TEST_CHAOS_FLEET_H */
