/*
 * brokerproc.h - the private cueqd of one benchmark run, and readers of
 * its peak memory and CPU time.
 *
 * The benchmark measures a broker it owns: a fresh temp directory (data dir
 * and log), a free loopback TCP port, the fsync policy under test.  Each
 * run gets its own broker so that peak RSS and CPU time belong to that run
 * alone.  The child gets SIGTERM if the benchmark dies, and stopping it
 * removes the temp directory.  Starting and stopping are the shared
 * cueqd_proc.h's (tests/), also used by the test suite; readiness is a
 * ping through the public SDK, the path the benchmark then uses.
 */
#ifndef CUEQ_BENCH_BROKERPROC_H
#define CUEQ_BENCH_BROKERPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cueqd_proc.h"

/* Writes into buf the path of "cueqd" in the directory of this executable.
 * Returns 0, or -1 if /proc/self/exe cannot be read. */
int brokerproc_default_path(char *buf, size_t len);

/* Starts cueqd at path with --fsync policy on a fresh dir and port, and
 * waits (up to 15 s) until it answers a ping.  On failure prints why (with
 * the tail of the broker's log) to stderr, cleans up and returns -1.
 * b must be zero-filled; path and policy must outlive it. */
int brokerproc_start(cueqd_proc *b, const char *path, const char *policy);

/* SIGTERM, waits up to 10 s (then SIGKILL), removes the temp dir.  Copes
 * with a half-started or already stopped b.  Returns 0 when the broker was
 * still running and exited cleanly on SIGTERM; otherwise says on stderr how
 * it ended (with the tail of its log) and returns -1. */
int brokerproc_stop(cueqd_proc *b);

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
