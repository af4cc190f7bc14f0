/*
 * harness_broker.c - starts, kills, restarts and stops a real cueqd for
 * one test, in its own temp dir and on its own loopback port.
 *
 * The broker is a child process with PR_SET_PDEATHSIG, so a test that
 * crashes or is killed by ctest's timeout does not leave brokers behind.
 * Readiness is a ping answered over the wire, polled with a bound, while
 * watching for the child dying early (a bad flag, a port someone else
 * took: then another port is tried).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CUEQD_PATH
#error "CUEQD_PATH must name the cueqd binary (set by tests/CMakeLists.txt)"
#endif

const char th_cueqd_path[] = CUEQD_PATH;

#define READY_TIMEOUT_MS 20000
#define START_TRIES 3

int64_t th_now_ms(void)
{
	return proto_mono_ms();
}

void th_sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int th_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Forks and execs cueqd; only async-signal-safe calls in the child. */
static int spawn(th_broker *b)
{
	const char *argv[8 + TH_MAX_EXTRA];
	size_t n = 0;
	int logfd;
	pid_t pid;

	argv[n++] = th_cueqd_path;
	argv[n++] = "--data";
	argv[n++] = b->data;
	argv[n++] = "--listen";
	argv[n++] = b->url;
	for (size_t i = 0; i < b->n_extra; i++)
		argv[n++] = b->extra[i];
	argv[n] = NULL;

	logfd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0) {
		fprintf(stderr, "harness: cannot open %s: %s\n", b->log, strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "harness: fork failed: %s\n", strerror(errno));
		close(logfd);
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execv(th_cueqd_path, (char *const *)argv);
		_exit(127);
	}
	close(logfd);
	b->pid = pid;
	return 0;
}

/* Waits until a ping answers; -1 when the broker died or the time ran out.
 * *died tells which. */
static int wait_ready(th_broker *b, bool *died)
{
	int64_t deadline = th_now_ms() + READY_TIMEOUT_MS;
	th_raw r;
	int rc = -1;

	*died = false;
	if (th_raw_open(&r, b->url, 250) != 0)
		return -1;
	while (th_now_ms() < deadline) {
		int status;
		th_reply rep;

		if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
			b->pid = 0;
			*died = true;
			break;
		}
		th_req q;
		if (th_req_begin(&q, "ping", 0) != 0)
			break;
		int e = th_req_call(&r, &q, &rep);
		bool ok = e == 0 && rep.ok;
		th_reply_free(&rep);
		if (ok) {
			rc = 0;
			break;
		}
		if (e != NNG_ETIMEDOUT)
			th_sleep_ms(20);
	}
	th_raw_close(&r);
	return rc;
}

static int start_with_tries(th_broker *b)
{
	for (int i = 0; i < START_TRIES; i++) {
		bool died;
		if (spawn(b) != 0)
			return -1;
		if (wait_ready(b, &died) == 0)
			return 0;
		if (!died) {
			fprintf(stderr, "harness: cueqd did not answer a ping within %d ms\n",
				READY_TIMEOUT_MS);
			th_broker_dump_log(b);
			th_broker_kill9(b);
			return -1;
		}
		/* Maybe the port was taken meanwhile: try another. */
		b->port = th_free_port();
		snprintf(b->url, sizeof(b->url), "tcp://127.0.0.1:%d", b->port);
	}
	fprintf(stderr, "harness: cueqd exited at start %d times\n", START_TRIES);
	th_broker_dump_log(b);
	return -1;
}

int th_broker_start(th_broker *b, const char *const *extra)
{
	const char *tmp = getenv("TMPDIR");

	memset(b, 0, sizeof(*b));
	signal(SIGPIPE, SIG_IGN);
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(b->dir, sizeof(b->dir), "%s/cueq-test-XXXXXX", tmp);
	if (mkdtemp(b->dir) == NULL) {
		fprintf(stderr, "harness: mkdtemp under %s failed: %s\n", tmp, strerror(errno));
		b->dir[0] = '\0';
		return -1;
	}
	snprintf(b->data, sizeof(b->data), "%s/data", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/broker.log", b->dir);
	for (; extra != NULL && extra[b->n_extra] != NULL; b->n_extra++) {
		if (b->n_extra == TH_MAX_EXTRA) {
			fprintf(stderr, "harness: too many extra broker flags\n");
			return -1;
		}
		b->extra[b->n_extra] = extra[b->n_extra];
	}
	b->port = th_free_port();
	if (b->port <= 0) {
		fprintf(stderr, "harness: no free loopback port\n");
		return -1;
	}
	snprintf(b->url, sizeof(b->url), "tcp://127.0.0.1:%d", b->port);
	return start_with_tries(b);
}

int th_broker_restart(th_broker *b)
{
	if (b->pid != 0) {
		fprintf(stderr, "harness: restart of a broker that still runs\n");
		return -1;
	}
	return start_with_tries(b);
}

int th_broker_kill9(th_broker *b)
{
	int status;

	if (b->pid == 0)
		return 0;
	kill(b->pid, SIGKILL);
	while (waitpid(b->pid, &status, 0) < 0 && errno == EINTR)
		;
	b->pid = 0;
	return 0;
}

int th_broker_stop(th_broker *b, int timeout_ms, int *status)
{
	int64_t deadline = th_now_ms() + timeout_ms;

	*status = 0;
	if (b->pid == 0)
		return 0;
	kill(b->pid, SIGTERM);
	while (th_now_ms() < deadline) {
		pid_t r = waitpid(b->pid, status, WNOHANG);
		if (r == b->pid) {
			b->pid = 0;
			return 0;
		}
		th_sleep_ms(10);
	}
	fprintf(stderr, "harness: cueqd ignored SIGTERM for %d ms; killing it\n", timeout_ms);
	th_broker_dump_log(b);
	th_broker_kill9(b);
	return -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

void th_broker_cleanup(th_broker *b)
{
	th_broker_kill9(b);
	if (b->dir[0] != '\0' && getenv("CUEQ_TEST_KEEP") == NULL)
		nftw(b->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	b->dir[0] = '\0';
}

void th_broker_dump_log(const th_broker *b)
{
	char buf[4096];
	FILE *f = fopen(b->log, "r");
	long size;

	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "---- end of %s ----\n%s\n----\n", b->log, buf);
}

int th_fixture_start(void **state)
{
	th_broker *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return -1;
	if (th_broker_start(b, NULL) != 0) {
		th_broker_cleanup(b);
		free(b);
		return -1;
	}
	*state = b;
	return 0;
}

int th_fixture_stop(void **state)
{
	th_broker *b = *state;
	int status = 0, rc = 0;

	/* Every test ends with a graceful stop that must exit 0: a broker
	 * that crashed, hangs, or (under the sanitizers) leaked or misbehaved
	 * fails the test here. */
	if (b != NULL) {
		if (b->pid != 0 && (th_broker_stop(b, 15000, &status) != 0 ||
				    !WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
			fprintf(stderr, "harness: cueqd did not stop cleanly (status 0x%x)\n", status);
			th_broker_dump_log(b);
			rc = -1;
		}
		th_broker_cleanup(b);
		free(b);
	}
	*state = NULL;
	return rc;
}
