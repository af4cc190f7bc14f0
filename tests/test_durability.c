/*
 * test_durability.c - what survives the broker dying (promises 1, 3, 4).
 *
 * Every push acknowledged before kill -9 must be there after a restart on
 * the same data dir, with the counts right, and be claimable and ackable
 * exactly once.  A job leased before the crash comes back with the same
 * execution ID and a token never issued before.  SIGTERM is a clean exit
 * (status 0) and the broker restarts on its data.  The SDK client is
 * closed before each crash and a new one opened after, so the test does
 * not depend on reconnect behaviour.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "cueq/cueq.h"
#include "harness.h"

#define N_BATCHED 1500
#define N_SINGLE 500
#define N_TOTAL (N_BATCHED + N_SINGLE)

static void restart(th_broker *b)
{
	if (th_broker_restart(b) != 0)
		fail_msg("cueqd did not restart on %s", b->data);
}

static void counts(cueq_client *c, const char *queue, cueq_queue_stats *out)
{
	cueq_queue_stats *st = NULL;
	size_t n = 0;
	int rc = cueq_stats(c, queue, &st, &n);
	if (rc != CUEQ_OK)
		fail_msg("cueq_stats: %s (%s)", cueq_strerror(rc), cueq_last_error());
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		if (strcmp(st[i].queue, queue) == 0)
			*out = st[i];
	cueq_stats_free(st, n);
}

static int find(char (*ids)[CUEQ_ID_SIZE], size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return (int)i;
	return -1;
}

/* Pushes n_batched jobs in batches of 100 and n_single one by one into
 * queue, all acknowledged; ids gets their IDs.  Payloads are "p-<i>". */
static void push_all(cueq_client *c, const char *queue, size_t n_batched, size_t n_single,
		     char (*ids)[CUEQ_ID_SIZE], bool want_synced)
{
	static char payloads[100][24];
	cueq_job_spec specs[100];
	cueq_push_result res[100];
	size_t k = 0;

	while (k < n_batched) {
		size_t n = n_batched - k < 100 ? n_batched - k : 100;
		for (size_t i = 0; i < n; i++) {
			snprintf(payloads[i], sizeof(payloads[i]), "p-%zu", k + i);
			memset(&specs[i], 0, sizeof(specs[i]));
			specs[i].queue = queue;
			specs[i].payload = payloads[i];
			specs[i].payload_len = strlen(payloads[i]);
		}
		int rc = cueq_push_many(c, specs, n, res);
		if (rc != CUEQ_OK)
			fail_msg("cueq_push_many: %s (%s)", cueq_strerror(rc), cueq_last_error());
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(res[i].err, CUEQ_OK);
			assert_int_equal(res[i].synced, want_synced);
			strcpy(ids[k + i], res[i].execution_id);
		}
		k += n;
	}
	for (size_t i = 0; i < n_single; i++, k++) {
		char p[24];
		cueq_push_result r;
		snprintf(p, sizeof(p), "p-%zu", k);
		int rc = cueq_push(c, queue, p, strlen(p), NULL, &r);
		if (rc != CUEQ_OK)
			fail_msg("cueq_push #%zu: %s (%s)", k, cueq_strerror(rc), cueq_last_error());
		assert_int_equal(r.synced, want_synced);
		strcpy(ids[k], r.execution_id);
	}
}

/* Claims and acks everything in queue; every one of ids exactly once. */
static void drain_exactly_once(cueq_client *c, const char *queue, char (*ids)[CUEQ_ID_SIZE],
			       size_t n_ids)
{
	bool *seen = calloc(n_ids, sizeof(*seen));
	size_t got = 0;
	int64_t deadline = th_now_ms() + 60000;

	assert_non_null(seen);
	while (got < n_ids && th_now_ms() < deadline) {
		cueq_job *jobs[CUEQ_MAX_CLAIM];
		cueq_ack_item items[CUEQ_MAX_CLAIM];
		size_t n = 0;
		int rc = cueq_claim(c, queue, CUEQ_MAX_CLAIM, 60000, 500, jobs, &n);
		if (rc == CUEQ_ERR_EMPTY)
			fail_msg("nothing more to claim after %zu of %zu jobs", got, n_ids);
		if (rc != CUEQ_OK)
			fail_msg("cueq_claim: %s (%s)", cueq_strerror(rc), cueq_last_error());
		for (size_t i = 0; i < n; i++) {
			int at = find(ids, n_ids, cueq_job_id(jobs[i]));
			if (at < 0)
				fail_msg("claimed %s, which was never pushed", cueq_job_id(jobs[i]));
			if (seen[at])
				fail_msg("claimed %s twice", cueq_job_id(jobs[i]));
			seen[at] = true;
			size_t len = 0;
			const char *p = cueq_job_payload(jobs[i], &len);
			char want[24];
			snprintf(want, sizeof(want), "p-%d", at);
			if (len != strlen(want) || memcmp(p, want, len) != 0)
				fail_msg("payload of %s is '%.*s', pushed '%s'", cueq_job_id(jobs[i]),
					 (int)len, p, want);
			memset(&items[i], 0, sizeof(items[i]));
			items[i].execution_id = cueq_job_id(jobs[i]);
			items[i].lease_token = cueq_job_token(jobs[i]);
		}
		got += n;
		rc = cueq_ack_many(c, items, n);
		if (rc != CUEQ_OK)
			fail_msg("cueq_ack_many: %s (%s)", cueq_strerror(rc), cueq_last_error());
		for (size_t i = 0; i < n; i++) {
			if (items[i].err != CUEQ_OK)
				fail_msg("ack of %s: %s", items[i].execution_id, cueq_strerror(items[i].err));
			cueq_job_free(jobs[i]);
		}
	}
	assert_int_equal(got, n_ids);
	cueq_job *extra = NULL;
	size_t n = 0;
	assert_int_equal(cueq_claim(c, queue, 1, 0, 200, &extra, &n), CUEQ_ERR_EMPTY);
	free(seen);
}

static void test_kill9_keeps_acknowledged_pushes(void **state)
{
	th_broker *b = *state;
	char (*ids)[CUEQ_ID_SIZE] = calloc(N_TOTAL, CUEQ_ID_SIZE);
	cueq_queue_stats st;
	cueq_client *c;

	assert_non_null(ids);
	c = th_sdk_connect(b);
	push_all(c, "dur", N_BATCHED, N_SINGLE, ids, true);
	cueq_close(c);
	th_broker_kill9(b);
	restart(b);

	c = th_sdk_connect(b);
	for (size_t i = 0; i < N_TOTAL; i++) {
		cueq_execution *e = NULL;
		int rc = cueq_get(c, ids[i], &e);
		if (rc != CUEQ_OK)
			fail_msg("acknowledged push #%zu (%s) lost after kill -9: %s (%s)", i, ids[i],
				 cueq_strerror(rc), cueq_last_error());
		assert_int_equal(e->state, CUEQ_READY);
		assert_string_equal(e->queue, "dur");
		assert_int_equal(e->attempt, 0);
		cueq_execution_free(e);
	}
	counts(c, "dur", &st);
	assert_int_equal(st.ready, N_TOTAL);
	assert_int_equal(st.leased + st.scheduled + st.succeeded + st.dead + st.cancelled, 0);
	drain_exactly_once(c, "dur", ids, N_TOTAL);
	counts(c, "dur", &st);
	assert_int_equal(st.succeeded, N_TOTAL);
	assert_int_equal(st.ready + st.leased, 0);

	/* The acks were acknowledged too: they survive another kill -9. */
	cueq_close(c);
	th_broker_kill9(b);
	restart(b);
	c = th_sdk_connect(b);
	counts(c, "dur", &st);
	assert_int_equal(st.succeeded, N_TOTAL);
	assert_int_equal(st.ready + st.leased, 0);
	cueq_close(c);
	free(ids);
}

#define N_LEASED 20

static void test_kill9_leased_jobs_come_back(void **state)
{
	th_broker *b = *state;
	char ids[N_LEASED][CUEQ_ID_SIZE], old_tokens[N_LEASED][CUEQ_ID_SIZE];
	bool back[N_LEASED] = { false };
	cueq_push_opts o = { .lease_ms = 1000 };
	cueq_client *c = th_sdk_connect(b);
	size_t n_back = 0;

	for (int i = 0; i < N_LEASED; i++) {
		cueq_push_result r;
		assert_int_equal(cueq_push(c, "crash", "x", 1, &o, &r), CUEQ_OK);
		strcpy(ids[i], r.execution_id);
	}
	for (int i = 0; i < N_LEASED; i++) {
		cueq_job *j = NULL;
		size_t n = 0;
		assert_int_equal(cueq_claim(c, "crash", 1, 0, 1000, &j, &n), CUEQ_OK);
		int at = find(ids, N_LEASED, cueq_job_id(j));
		assert_true(at >= 0);
		strcpy(old_tokens[at], cueq_job_token(j));
		cueq_job_free(j);
	}
	cueq_close(c);
	th_broker_kill9(b);
	restart(b);
	c = th_sdk_connect(b);

	int64_t deadline = th_now_ms() + 15000;
	while (n_back < N_LEASED && th_now_ms() < deadline) {
		cueq_job *j = NULL;
		size_t n = 0;
		int rc = cueq_claim(c, "crash", 1, 30000, 1000, &j, &n);
		if (rc == CUEQ_ERR_EMPTY)
			continue;
		if (rc != CUEQ_OK)
			fail_msg("cueq_claim after restart: %s (%s)", cueq_strerror(rc), cueq_last_error());
		int at = find(ids, N_LEASED, cueq_job_id(j));
		if (at < 0)
			fail_msg("after restart claimed %s, which was never pushed", cueq_job_id(j));
		if (back[at])
			fail_msg("after restart %s was claimed twice", cueq_job_id(j));
		back[at] = true;
		n_back++;
		/* A token never issued before, and the old one is fenced. */
		for (int k = 0; k < N_LEASED; k++)
			if (strcmp(old_tokens[k], cueq_job_token(j)) == 0)
				fail_msg("token %s issued again after the crash", cueq_job_token(j));
		if (cueq_job_attempt(j) != 2)
			fail_msg("%s came back with attempt %u; the claim before kill -9 was attempt 1",
				 cueq_job_id(j), cueq_job_attempt(j));
		assert_int_equal(cueq_ack(c, ids[at], old_tokens[at], NULL), CUEQ_ERR_STALE_LEASE);
		assert_int_equal(cueq_ack(c, ids[at], cueq_job_token(j), "after crash"), CUEQ_OK);
		cueq_job_free(j);
	}
	if (n_back != N_LEASED)
		fail_msg("only %zu of %d leased jobs came back after kill -9", n_back, N_LEASED);
	cueq_close(c);
}

static void test_fsync_never_survives_kill9(void **state)
{
	th_broker *b = *state;
	char (*ids)[CUEQ_ID_SIZE] = calloc(300, CUEQ_ID_SIZE);
	static const char *const flags[] = { "--fsync", "never", NULL };
	cueq_queue_stats st;
	cueq_client *c;

	/* Restart the fixture's broker with --fsync never on a fresh dir. */
	assert_non_null(ids);
	th_broker_cleanup(b);
	assert_int_equal(th_broker_start(b, flags), 0);
	c = th_sdk_connect(b);
	push_all(c, "nofsync", 200, 100, ids, false);
	cueq_close(c);
	th_broker_kill9(b);
	restart(b);
	c = th_sdk_connect(b);
	counts(c, "nofsync", &st);
	assert_int_equal(st.ready, 300);
	drain_exactly_once(c, "nofsync", ids, 300);
	cueq_close(c);
	free(ids);
}

static void test_sigterm_exits_cleanly(void **state)
{
	th_broker *b = *state;
	char id_ready[CUEQ_ID_SIZE], id_leased[CUEQ_ID_SIZE], id_done[CUEQ_ID_SIZE];
	cueq_queue_stats before, after;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result r;
	cueq_job *j = NULL;
	size_t n = 0;
	int status = -1;

	assert_int_equal(cueq_push(c, "term", "a", 1, NULL, &r), CUEQ_OK);
	strcpy(id_done, r.execution_id);
	assert_int_equal(cueq_push(c, "term", "b", 1, NULL, &r), CUEQ_OK);
	strcpy(id_leased, r.execution_id);
	assert_int_equal(cueq_push(c, "term", "c", 1, NULL, &r), CUEQ_OK);
	strcpy(id_ready, r.execution_id);
	assert_int_equal(cueq_claim(c, "term", 1, 0, 1000, &j, &n), CUEQ_OK);
	assert_string_equal(cueq_job_id(j), id_done);
	assert_int_equal(cueq_ack(c, id_done, cueq_job_token(j), "r"), CUEQ_OK);
	cueq_job_free(j);
	assert_int_equal(cueq_claim(c, "term", 1, 60000, 1000, &j, &n), CUEQ_OK);
	assert_string_equal(cueq_job_id(j), id_leased);
	counts(c, "term", &before);
	cueq_close(c);

	for (int round = 0; round < 2; round++) {
		if (th_broker_stop(b, 15000, &status) != 0)
			fail_msg("cueqd did not exit within 15 s of SIGTERM");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			th_broker_dump_log(b);
			fail_msg("cueqd exit status after SIGTERM: %s %d", WIFEXITED(status) ? "exit" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		}
		restart(b);
	}
	c = th_sdk_connect(b);
	counts(c, "term", &after);
	assert_int_equal(after.succeeded, before.succeeded);
	assert_int_equal(after.succeeded, 1);
	assert_int_equal(after.ready + after.leased, 2);
	cueq_execution *e = NULL;
	assert_int_equal(cueq_get(c, id_done, &e), CUEQ_OK);
	assert_int_equal(e->state, CUEQ_SUCCEEDED);
	assert_string_equal(e->result, "r");
	cueq_execution_free(e);
	/* The job leased before the stop kept its lease (same token) or was
	 * released to ready; it is not lost and not finished. */
	e = NULL;
	assert_int_equal(cueq_get(c, id_leased, &e), CUEQ_OK);
	if (e->state == CUEQ_LEASED) {
		assert_true(th_token_shown(e->lease_token, cueq_job_token(j)));
		assert_int_equal(cueq_ack(c, id_leased, cueq_job_token(j), NULL), CUEQ_OK);
	} else if (e->state != CUEQ_READY) {
		fail_msg("%s was leased before SIGTERM and is %s after the restart", id_leased,
			 cueq_state_name(e->state));
	}
	cueq_execution_free(e);
	assert_int_equal(cueq_get(c, id_ready, &e), CUEQ_OK);
	assert_int_equal(e->state, CUEQ_READY);
	cueq_execution_free(e);
	cueq_job_free(j);
	cueq_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill9_keeps_acknowledged_pushes, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill9_leased_jobs_come_back, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_fsync_never_survives_kill9, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_sigterm_exits_cleanly, th_fixture_start, th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
