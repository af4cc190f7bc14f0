/*
 * harness_broker.c - the test suite's settings for a real cueqd: the
 * binary under test, a ping over the raw protocol, SIGKILL for brokers
 * whose test dies, temp dirs kept on request; and the cmocka fixtures.
 *
 * Starting, waiting and stopping are cueqd_proc.c's, shared with
 * cueq-bench; this file only fills in what is particular to tests.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#ifndef CUEQD_PATH
#error "CUEQD_PATH must name the cueqd binary (set by tests/CMakeLists.txt)"
#endif

const char th_cueqd_path[] = CUEQD_PATH;

/* 1 when a broker at url answers a ping within 250 ms. */
static int raw_ping(const char *url, void *arg)
{
	th_raw r;
	th_req q;
	th_reply rep;
	int ok = 0;

	(void)arg;
	if (th_raw_open(&r, url, 250) != 0)
		return 0;
	if (th_req_begin(&q, "ping", 0) == 0) {
		ok = th_req_call(&r, &q, &rep) == 0 && rep.ok;
		th_reply_free(&rep);
	}
	th_raw_close(&r);
	return ok;
}

/* What every test broker shares; flags, env and nofile are the test's. */
static void settings(th_broker *b)
{
	signal(SIGPIPE, SIG_IGN);
	b->path = th_cueqd_path;
	b->tag = "cueq-test";
	b->death_signal = SIGKILL;
	b->ping = raw_ping;
	b->ping_arg = NULL;
	b->keep_dir = getenv("CUEQ_TEST_KEEP") != NULL;
}

int th_broker_start(th_broker *b, const char *const *extra)
{
	settings(b);
	b->n_extra = 0;
	for (; extra != NULL && extra[b->n_extra] != NULL; b->n_extra++) {
		if (b->n_extra == TH_MAX_EXTRA) {
			fprintf(stderr, "harness: too many extra broker flags\n");
			return -1;
		}
		b->extra[b->n_extra] = extra[b->n_extra];
	}
	return cueqd_start(b);
}

int th_broker_launch(th_broker *b, int *status)
{
	settings(b);
	return cueqd_launch(b, status);
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
	char how[96];

	/* Every test ends with a graceful stop that must exit 0: a broker
	 * that crashed, hangs, or (under the sanitizers) leaked or misbehaved
	 * fails the test here. */
	if (b != NULL) {
		if (b->pid != 0 && (th_broker_stop(b, 15000, &status) != 0 ||
				    !WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
			proc_describe(status, how, sizeof(how));
			fprintf(stderr, "harness: cueqd did not stop cleanly (%s)\n", how);
			th_broker_dump_log(b);
			rc = -1;
		}
		th_broker_cleanup(b);
		free(b);
	}
	*state = NULL;
	return rc;
}
