/*
 * cueqd_proc.h - a real cueqd as a child process, for the test suite and
 * for cueq-bench: a fresh temp dir (data dir and log), a free loopback
 * port, start until a ping answers, kill -9 and restart on the same data,
 * stop with SIGTERM, or wait for a broker that exits by itself.
 *
 * The caller says what to run (binary, flags, environment entries, a
 * descriptor limit) and how to ping, since the tests speak the raw
 * protocol and the benchmark only the public SDK; this file owns the
 * rest, so both start brokers the same way.  Every wait is bounded; a
 * broker dies with the thread that started it (PR_SET_PDEATHSIG).
 *
 * Storage-fault tests set env (e.g. "CUEQ_FAULT=write:3:exit") or nofile
 * before a (re)start, then use cueqd_wait or cueqd_launch to see the
 * broker stop with the exit status they expect.
 */
#ifndef CUEQ_TEST_CUEQD_PROC_H
#define CUEQ_TEST_CUEQD_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "proc.h"

#define CUEQD_MAX_ARGS 16

typedef struct cueqd_proc {
	/* What to run: set by the caller, read at every (re)start.  The
	 * strings are borrowed and must live as long as the cueqd_proc. */
	const char *path;		   /* the cueqd binary */
	const char *tag;		   /* temp dir prefix and message prefix; NULL: "cueqd" */
	const char *extra[CUEQD_MAX_ARGS]; /* flags after --data and --listen */
	size_t n_extra;
	const char *env[CUEQD_MAX_ARGS]; /* "NAME=VALUE" added to the broker's environment */
	size_t n_env;
	int nofile;	  /* RLIMIT_NOFILE soft and hard of the broker; 0: inherit */
	int death_signal; /* sent to the broker when the starting thread ends; 0: SIGKILL */
	int ready_ms;	  /* how long a start waits for a ping; 0: 20000 */
	/* 1 when a broker at url answered a ping, else 0; called every few
	 * ms while starting, so it should give up within about a second. */
	int (*ping)(const char *url, void *arg);
	void *ping_arg;
	bool keep_dir; /* cueqd_cleanup leaves the temp dir (for a post-mortem) */
	bool http;     /* serve HTTP on a free loopback port (http_url); else --http off */

	/* Where it runs: set by cueqd_start (or a first cueqd_launch). */
	char dir[PATH_MAX - 64]; /* the temp dir; "" when none */
	char data[PATH_MAX];	 /* dir/data: the broker's --data */
	char log[PATH_MAX];	 /* dir/broker.log: its stdout and stderr */
	char url[64];		 /* tcp://127.0.0.1:PORT */
	int port;
	char http_addr[64]; /* 127.0.0.1:PORT of the HTTP face, when http */
	char http_url[80];  /* http://127.0.0.1:PORT */
	int http_port;
	pid_t pid; /* 0 when not running */
} cueqd_proc;

/* Makes a fresh temp dir under $TMPDIR (or /tmp), picks a free port and
 * starts the broker, then waits until a ping answers.  A broker that
 * exits before answering (another process took the port) is started
 * again on a new port, three times at most.  c must not be running; its
 * "where" fields are overwritten.  Returns 0 when a ping answered; -1
 * after a line and the log's tail on stderr, the broker killed, the temp
 * dir left for cueqd_cleanup. */
int cueqd_start(cueqd_proc *c);

/* Starts the broker again on the same dir (first on the same port, then,
 * if it exits at once, on new ones) and waits for a ping; c must have
 * been started and must not be running.  Returns like cueqd_start. */
int cueqd_restart(cueqd_proc *c);

/* One start, no retries: on c's dir and port if it has them, else on a
 * fresh dir and port.  Returns 0 when a ping answered; 1 when the broker
 * exited first (its wait status in *status, c->pid 0); -1 when it could
 * not be started (c->pid 0) or did not answer within ready_ms (then it is
 * left running: c->pid is set). */
int cueqd_launch(cueqd_proc *c, int *status);

/* Waits up to timeout_ms (0: only looks) for a broker that exits by
 * itself.  Returns 0 when it exited, with its wait status in *status and
 * c->pid 0; -1 when it still runs (left running) or was not running. */
int cueqd_wait(cueqd_proc *c, int timeout_ms, int *status);

/* SIGKILL and reap (bounded).  Returns 0 (also when not running), -1 when
 * it did not end in time (c->pid stays set). */
int cueqd_kill9(cueqd_proc *c);

/* SIGTERM, waits up to timeout_ms; *status gets the wait status (0 when
 * it was not running).  Returns 0 when it exited (any status), -1 when it
 * had to be killed (after a line and the log's tail on stderr). */
int cueqd_stop(cueqd_proc *c, int timeout_ms, int *status);

/* Kills the broker if it runs and removes the temp dir (unless keep_dir).
 * Copes with a half-started or cleaned c; c may be started again. */
void cueqd_cleanup(cueqd_proc *c);

/* Prints the last 4 KiB of the broker's log to stderr (for failures). */
void cueqd_dump_log(const cueqd_proc *c);

#endif /* CUEQ_TEST_CUEQD_PROC_H */
