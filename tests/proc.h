/*
 * proc.h - child processes for tests and benchmarks: start one with a log
 * file, extra environment and a descriptor limit, wait for it with a
 * bound, stop it with SIGTERM, kill it with SIGKILL.
 *
 * The test suite and cueq-bench both run real programs (cueqd, workers,
 * the CLI) as children, and both need the same guarantees: a child never
 * outlives the thread that started it (PR_SET_PDEATHSIG), nothing waits
 * without a time limit, and what a child printed can be shown when it
 * fails.  cueqd_proc.h builds the broker's life cycle on these.
 *
 * None of these functions call cmocka's asserts: failures come back as -1
 * with one line on stderr saying what failed, so they are safe anywhere.
 */
#ifndef CUEQ_TEST_PROC_H
#define CUEQ_TEST_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How proc_spawn starts a child.  All zero: our environment, stdin from
 * /dev/null, our stdout and stderr, our limits, SIGKILL when the starting
 * thread ends. */
typedef struct proc_opts {
	char *const *env; /* "NAME=VALUE" entries replacing or adding to ours, NULL-ended */
	const char *log;  /* stdout and stderr appended to this file; NULL: ours */
	const int *stdio; /* three descriptors to be the child's 0, 1, 2 (log unused) */
	int nofile;	  /* RLIMIT_NOFILE soft and hard limit of the child; 0: inherit */
	int death_signal; /* sent to the child when the thread that started it ends */
} proc_opts;

/* Starts argv[0] (a path, not searched in PATH) with argv, as o says (o
 * may be NULL).  The caller keeps its descriptors (close-on-exec ones do
 * not reach the child).  With o->nofile set, descriptors
 * above 2 are closed in the child too, so that it starts with exactly
 * three of its limit in use.  Returns the pid (the caller reaps it, with
 * proc_wait, proc_stop or proc_kill9), or -1 when it could not fork.  A
 * child that cannot exec prints why to its stderr and exits 127. */
pid_t proc_spawn(char *const argv[], const proc_opts *o);

/* Waits up to timeout_ms (0: only looks) for pid to exit and reaps it.
 * Returns 0 with its wait status in *status, or -1 when it still runs
 * (or is no child of ours: a line says so). */
int proc_wait(pid_t pid, int timeout_ms, int *status);

/* SIGTERM, then waits up to timeout_ms; *status gets the wait status.
 * Returns 0 when it exited by itself (any status), -1 when it had to be
 * killed with SIGKILL (or would not even die of that). */
int proc_stop(pid_t pid, int timeout_ms, int *status);

/* SIGKILL and reap, waiting up to 10 s.  Returns 0, or -1 (with a line)
 * when it did not end in time.  pid <= 0 is a no-op. */
int proc_kill9(pid_t pid);

/* A copy of environ less the names that extra (NAME=VALUE, NULL-ended,
 * may be NULL) sets, then extra.  The strings are borrowed: free() the
 * array only.  NULL when out of memory. */
char **proc_make_env(char *const extra[]);

/* Describes a wait status in buf: "exit status 2", "signal 9 (Killed)". */
void proc_describe(int status, char *buf, size_t size);

/* Prints the last `bytes` of a file (a child's log) to stderr. */
void proc_dump_tail(const char *path, size_t bytes);

/* A loopback TCP port free a moment ago (bind port 0, read it, close), or
 * -1.  Another process may take it meanwhile: callers retry on a clash. */
int proc_free_port(void);

/* Monotonic milliseconds, and a sleep that resumes after signals. */
int64_t proc_now_ms(void);
void proc_sleep_ms(int64_t ms);

#endif /* CUEQ_TEST_PROC_H */
