/*
 * brokerproc.h - a private cueqd for one benchmark run.
 *
 * The benchmark measures a broker it owns: a fresh temp directory (data dir
 * and log), a free loopback TCP port, the fsync policy under test.  Each
 * run gets its own broker so that peak RSS and CPU time belong to that run
 * alone.  The child gets SIGTERM if the benchmark dies, and stopping it
 * removes the temp directory.
 */
#ifndef CUEQ_BENCH_BROKERPROC_H
#define CUEQ_BENCH_BROKERPROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct brokerproc {
	pid_t pid;	      /* 0: not running */
	char dir[PATH_MAX];   /* temp dir holding data/ and cueqd.log; "" if none */
	char log[PATH_MAX + 16]; /* cueqd's stdout and stderr */
	char url[64];	      /* tcp://127.0.0.1:PORT */
};

/* Writes into buf the path of "cueqd" in the directory of this executable.
 * Returns 0, or -1 if /proc/self/exe cannot be read. */
int brokerproc_default_path(char *buf, size_t len);

/* Starts cueqd at path with --fsync policy on a fresh dir and port, and
 * waits (up to 15 s) until it answers a ping.  On failure prints why (with
 * the tail of the broker's log) to stderr, cleans up and returns -1.
 * b must be zero-filled. */
int brokerproc_start(struct brokerproc *b, const char *path, const char *policy);

/* SIGTERM, waits up to 10 s (then SIGKILL), removes the temp dir.  Copes
 * with a half-started or already stopped b.  Returns 0 when the broker was
 * still running and exited cleanly on SIGTERM; otherwise says on stderr how
 * it ended (with the tail of its log) and returns -1. */
int brokerproc_stop(struct brokerproc *b);

/* False once pid has exited (a zombie counts as exited); does not reap. */
bool proc_alive(pid_t pid);

/* A "Field:  N kB" line of /proc/PID/status (e.g. "VmHWM", "VmRSS") in
 * kB, or -1 if it cannot be read. */
long proc_status_kb(pid_t pid, const char *field);

/* User plus system CPU seconds used so far by pid, or -1. */
double proc_cpu_s(pid_t pid);

/* User plus system CPU seconds used so far by this process (all threads). */
double self_cpu_s(void);

#endif
