/*
 * chaos.h - what the chaos test's three programs share: the event logs
 * that producers and workers write and the checker reads, the names of
 * jobs and steps, and the checker's entry point.
 *
 * The programs: test_chaos (the conductor: one real cueqd, kill -9 and
 * restarts of it, of workers and producers, SIGSTOP/SIGCONT of workers,
 * then the checks), chaos-producer and chaos-worker (separate processes
 * on libcueq).  Every event is one line appended to a per-process log
 * with a single write() on an O_APPEND descriptor, so a kill -9 leaves
 * whole lines only, and a line is in the kernel before the next call
 * to the broker.  Lines are words separated by spaces; times are
 * CLOCK_MONOTONIC and CLOCK_REALTIME milliseconds (the broker stamps its
 * history with the same realtime clock, so the two can be compared):
 *
 *   push KEY ID DUP MONO RT PID            a push the broker answered ok
 *   start ID TOKEN ATTEMPT KEY DEADLINE MONO RT PID
 *                                          a handler started (DEADLINE: the
 *                                          lease's, broker ms, as the SDK knew it)
 *   effect ID TOKEN ATTEMPT STEP VALUE MONO RT PID
 *                                          a step's side effect, done just
 *                                          before its record is sent
 *   step ID TOKEN ATTEMPT STEP OUTCOME VALUE SMONO SRT AMONO ART PID
 *                                          a step record sent at S, answered
 *                                          at A: ok, skipped (the ledger had
 *                                          it), stale (STALE_LEASE), err-N
 *   ack ID TOKEN ATTEMPT OUTCOME SMONO SRT AMONO ART PID
 *                                          an ack: ok, stale, conflict,
 *                                          notfound, err-N
 *   giveup ID TOKEN ATTEMPT STEP MONO RT PID
 *                                          a step failed for another reason:
 *                                          the handler nacks instead
 */
#ifndef CUEQ_TEST_CHAOS_H
#define CUEQ_TEST_CHAOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAOS_QUEUE "chaos"
#define CHAOS_KEY_SIZE 32
#define CHAOS_WORD 48 /* the longest word of a line, NUL included */
#define CHAOS_N_STEPS 2
/* The handler's two steps: "reserve" through cueq_job_step_once, "charge"
 * through the ledger calls themselves. */
extern const char *const chaos_steps[CHAOS_N_STEPS];
/* The result every ack carries. */
#define CHAOS_RESULT "charged"

/* ---- writing ---- */

/* Opens path for appending lines (created if need be); -1 with a line on
 * stderr when it cannot. */
int chaos_log_open(const char *path);
/* Appends one line (fmt without its newline) with one write(); returns 0,
 * or -1 when the line was not written whole. */
int chaos_log(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t chaos_mono_ms(void);
int64_t chaos_real_ms(void);

/* ---- reading ---- */

typedef enum chaos_kind {
	CR_PUSH,
	CR_START,
	CR_EFFECT,
	CR_STEP,
	CR_ACK,
	CR_GIVEUP,
} chaos_kind;

/* One line of a log.  Words a kind does not have are "" or 0. */
typedef struct chaos_rec {
	chaos_kind kind;
	uint64_t id, token;
	uint32_t attempt;
	bool dup;
	char key[CHAOS_KEY_SIZE];
	char step[16];
	char outcome[16];
	char value[CHAOS_WORD];
	int64_t deadline;
	int64_t s_mono, s_rt; /* the event, or the sending of a request */
	int64_t a_mono, a_rt; /* the answer of a request */
	int pid;
	uint32_t file, line; /* where it was read: chaos_logs.paths[file], line */
} chaos_rec;

typedef struct chaos_logs {
	chaos_rec *recs;
	size_t n, cap;
	char **paths;
	size_t n_paths;
} chaos_logs;

/* Reads every line of path into logs.  A line that does not parse, or
 * lacks its newline, is an error (why says which): lines are written
 * whole, even by a process killed with SIGKILL. */
int chaos_logs_read(chaos_logs *logs, const char *path, char *why, size_t why_size);
void chaos_logs_free(chaos_logs *logs);
/* "file:line" of r, for messages. */
const char *chaos_where(const chaos_logs *logs, const chaos_rec *r, char *buf, size_t size);
/* "p3-17": producer 3's 17th job; false when key is not one. */
bool chaos_parse_key(const char *key, unsigned *producer, uint64_t *index);

/* ---- checking (chaos_check.c) ---- */

/* What a run did and what the checks found. */
typedef struct chaos_figures {
	uint64_t broker_kills, worker_kills, worker_stops, producer_kills, url_changes, wedged;
	uint64_t jobs, pushes_answered, duplicates_answered;
	uint64_t deliveries, redeliveries, expiries, releases, nacks;
	uint64_t handler_starts, late_starts, starts_unknown_lease;
	uint64_t steps_accepted, steps_skipped, steps_refused, acks_accepted, acks_refused;
	uint64_t step_errors, ack_errors;
	uint64_t violations;
} chaos_figures;

struct cueq_client;
/* Checks the logs against the broker's executions of CHAOS_QUEUE (see
 * chaos_check.c), adding to f; prints each violation (the first ones in
 * full).  breaks names an input to spoil on purpose ("" none), to see a
 * check fail.  Returns 0 when it could read everything, else -1 with why. */
int chaos_check(struct cueq_client *c, chaos_logs *logs, const char *breaks, chaos_figures *f,
		char *why, size_t why_size);
void chaos_print_figures(const chaos_figures *f, unsigned seed, int64_t ms);

#endif /* CUEQ_TEST_CHAOS_H */
