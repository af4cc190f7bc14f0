/*
 * cueqd_proc.c - the life cycle of a real cueqd child (see cueqd_proc.h).
 *
 * A start is spawn, then a loop that alternates between looking whether
 * the child died (a bad flag, a port someone else took, an injected
 * fault) and asking the caller's ping whether it answers, until a
 * deadline.  Port clashes are why cueqd_start and cueqd_restart try again
 * on a new port; cueqd_launch does not, so that a test sees exactly how
 * one start ended.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "cueqd_proc.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READY_MS 20000
#define START_TRIES 3
#define LOG_TAIL 4096

static const char *tag(const cueqd_proc *c)
{
	return c->tag != NULL ? c->tag : "cueqd";
}

static int pick_port(cueqd_proc *c)
{
	c->port = proc_free_port();
	if (c->port <= 0) {
		fprintf(stderr, "%s: no free loopback port: %s\n", tag(c), strerror(errno));
		return -1;
	}
	snprintf(c->url, sizeof(c->url), "tcp://127.0.0.1:%d", c->port);
	c->http_port = 0;
	if (c->http) {
		do
			c->http_port = proc_free_port();
		while (c->http_port == c->port);
		if (c->http_port <= 0) {
			fprintf(stderr, "%s: no free loopback port: %s\n", tag(c), strerror(errno));
			return -1;
		}
	}
	snprintf(c->http_addr, sizeof(c->http_addr), "127.0.0.1:%d", c->http_port);
	snprintf(c->http_url, sizeof(c->http_url), "http://127.0.0.1:%d", c->http_port);
	return 0;
}

/* A fresh temp dir with the paths below it, and a port. */
static int prepare(cueqd_proc *c)
{
	const char *tmp = getenv("TMPDIR");

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	c->pid = 0;
	snprintf(c->dir, sizeof(c->dir), "%s/%s-XXXXXX", tmp, tag(c));
	if (mkdtemp(c->dir) == NULL) {
		fprintf(stderr, "%s: mkdtemp under %s failed: %s\n", tag(c), tmp, strerror(errno));
		c->dir[0] = '\0';
		return -1;
	}
	snprintf(c->data, sizeof(c->data), "%s/data", c->dir);
	snprintf(c->log, sizeof(c->log), "%s/broker.log", c->dir);
	return pick_port(c);
}

/* Forks and execs the broker on c's dir and url. */
static int spawn(cueqd_proc *c)
{
	const char *argv[8 + CUEQD_MAX_ARGS], *env[CUEQD_MAX_ARGS + 1];
	size_t n = 0;
	proc_opts o = { .env = (char *const *)env, .log = c->log, .nofile = c->nofile,
			.death_signal = c->death_signal };

	if (c->path == NULL || c->ping == NULL || c->n_extra > CUEQD_MAX_ARGS ||
	    c->n_env > CUEQD_MAX_ARGS) {
		fprintf(stderr, "%s: no binary, no ping, or too many flags\n", tag(c));
		return -1;
	}
	if (access(c->path, X_OK) != 0) {
		fprintf(stderr, "%s: cannot run %s: %s\n", tag(c), c->path, strerror(errno));
		return -1;
	}
	argv[n++] = c->path;
	argv[n++] = "--data";
	argv[n++] = c->data;
	argv[n++] = "--listen";
	argv[n++] = c->url;
	argv[n++] = "--http";
	argv[n++] = c->http ? c->http_addr : "off";
	for (size_t i = 0; i < c->n_extra; i++)
		argv[n++] = c->extra[i];
	argv[n] = NULL;
	for (n = 0; n < c->n_env; n++)
		env[n] = c->env[n];
	env[n] = NULL;
	c->pid = proc_spawn((char *const *)argv, &o);
	if (c->pid < 0) {
		c->pid = 0;
		return -1;
	}
	return 0;
}

/* 0: a ping answered; 1: the broker exited (*status); -1: out of time. */
static int wait_ready(cueqd_proc *c, int *status)
{
	int64_t deadline = proc_now_ms() + (c->ready_ms > 0 ? c->ready_ms : READY_MS);

	while (proc_now_ms() < deadline) {
		if (cueqd_wait(c, 0, status) == 0)
			return 1;
		if (c->ping(c->url, c->ping_arg))
			return 0;
		proc_sleep_ms(20);
	}
	return -1;
}

int cueqd_launch(cueqd_proc *c, int *status)
{
	int rc;

	*status = 0;
	if (c->pid != 0) {
		fprintf(stderr, "%s: start of a broker that still runs\n", tag(c));
		return -1;
	}
	if (c->dir[0] == '\0' && prepare(c) != 0)
		return -1;
	if (spawn(c) != 0)
		return -1;
	rc = wait_ready(c, status);
	if (rc < 0)
		fprintf(stderr, "%s: %s did not answer a ping on %s within %d ms\n", tag(c),
			c->path, c->url, c->ready_ms > 0 ? c->ready_ms : READY_MS);
	return rc;
}

static int start_with_tries(cueqd_proc *c)
{
	char how[96];
	int status;

	for (int i = 0; i < START_TRIES; i++) {
		int rc = cueqd_launch(c, &status);

		if (rc == 0)
			return 0;
		if (rc < 0) {
			cueqd_dump_log(c);
			cueqd_kill9(c);
			return -1;
		}
		/* Exited: maybe the port was taken meanwhile; try another. */
		proc_describe(status, how, sizeof(how));
		fprintf(stderr, "%s: %s on %s ended at start (%s)\n", tag(c), c->path, c->url, how);
		if (pick_port(c) != 0)
			return -1;
	}
	fprintf(stderr, "%s: %s exited at start %d times\n", tag(c), c->path, START_TRIES);
	cueqd_dump_log(c);
	return -1;
}

int cueqd_start(cueqd_proc *c)
{
	if (c->pid != 0) {
		fprintf(stderr, "%s: start of a broker that still runs\n", tag(c));
		return -1;
	}
	if (prepare(c) != 0)
		return -1;
	return start_with_tries(c);
}

int cueqd_restart(cueqd_proc *c)
{
	if (c->dir[0] == '\0') {
		fprintf(stderr, "%s: restart of a broker never started\n", tag(c));
		return -1;
	}
	return start_with_tries(c);
}

int cueqd_wait(cueqd_proc *c, int timeout_ms, int *status)
{
	*status = 0;
	if (c->pid == 0 || proc_wait(c->pid, timeout_ms, status) != 0)
		return -1;
	c->pid = 0;
	return 0;
}

int cueqd_kill9(cueqd_proc *c)
{
	if (proc_kill9(c->pid) != 0)
		return -1;
	c->pid = 0;
	return 0;
}

int cueqd_stop(cueqd_proc *c, int timeout_ms, int *status)
{
	int rc;

	*status = 0;
	if (c->pid == 0)
		return 0;
	rc = proc_stop(c->pid, timeout_ms, status);
	if (rc != 0) {
		fprintf(stderr, "%s: cueqd ignored SIGTERM for %d ms; killed it\n", tag(c),
			timeout_ms);
		cueqd_dump_log(c);
	}
	c->pid = 0;
	return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

void cueqd_cleanup(cueqd_proc *c)
{
	cueqd_kill9(c);
	if (c->dir[0] != '\0' && !c->keep_dir)
		nftw(c->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	c->dir[0] = '\0';
}

void cueqd_dump_log(const cueqd_proc *c)
{
	if (c->log[0] != '\0')
		proc_dump_tail(c->log, LOG_TAIL);
}
