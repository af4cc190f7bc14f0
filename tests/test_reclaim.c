/*
 * test_reclaim.c - what happens after a lease ends: reclaim after expiry
 * with the same execution ID and a new token, fencing of the old token on
 * ack/extend/nack (and nothing changes), idempotent outcomes, CONFLICT for
 * a different outcome, dead letters when attempts run out (by expiry and
 * by nack), terminal nack, and the history that records it all.
 *
 * Short leases (200-300 ms) keep the test fast; every wait for the broker
 * to notice an expiry is a bounded poll or a long-poll claim.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cueq/cueq.h"
#include "harness.h"

static void push_limits(cueq_client *c, const char *queue, int64_t lease_ms,
			uint32_t max_attempts, uint32_t max_expiries, char id[CUEQ_ID_SIZE])
{
	cueq_push_opts o = { 0 };
	cueq_push_result r;
	o.lease_ms = lease_ms;
	o.max_attempts = max_attempts;
	o.max_expiries = max_expiries;
	int rc = cueq_push(c, queue, "work", 4, &o, &r);
	if (rc != CUEQ_OK)
		fail_msg("cueq_push: %s (%s)", cueq_strerror(rc), cueq_last_error());
	assert_int_equal(r.err, CUEQ_OK);
	assert_int_equal(strlen(r.execution_id), PROTO_ID_LEN);
	strcpy(id, r.execution_id);
}

static void push(cueq_client *c, const char *queue, int64_t lease_ms, uint32_t max_attempts,
		 char id[CUEQ_ID_SIZE])
{
	push_limits(c, queue, lease_ms, max_attempts, 0, id);
}

/* Claims one job of queue; fails the test when none comes within wait_ms. */
static cueq_job *claim(cueq_client *c, const char *queue, int64_t lease_ms, int64_t wait_ms)
{
	cueq_job *j = NULL;
	size_t n = 0;
	int rc = cueq_claim(c, queue, 1, lease_ms, wait_ms, &j, &n);
	if (rc != CUEQ_OK || n != 1)
		fail_msg("cueq_claim %s (wait %lld ms): %s (%s)", queue, (long long)wait_ms,
			 cueq_strerror(rc), cueq_last_error());
	return j;
}

static void expect_empty(cueq_client *c, const char *queue, int64_t wait_ms)
{
	cueq_job *j = NULL;
	size_t n = 0;
	int rc = cueq_claim(c, queue, 1, 0, wait_ms, &j, &n);
	if (rc != CUEQ_ERR_EMPTY) {
		if (rc == CUEQ_OK && n == 1)
			fail_msg("claim on %s returned %s (attempt %u) but nothing should be claimable",
				 queue, cueq_job_id(j), cueq_job_attempt(j));
		fail_msg("claim on %s: %s (%s), expected EMPTY", queue, cueq_strerror(rc),
			 cueq_last_error());
	}
}

static cueq_execution *get(cueq_client *c, const char *id)
{
	cueq_execution *e = NULL;
	int rc = cueq_get(c, id, &e);
	if (rc != CUEQ_OK)
		fail_msg("cueq_get %s: %s (%s)", id, cueq_strerror(rc), cueq_last_error());
	return e;
}

/* Polls get until the state is want (bounded); returns the execution. */
static cueq_execution *wait_state(cueq_client *c, const char *id, int want, int64_t timeout_ms)
{
	int64_t deadline = th_now_ms() + timeout_ms;
	for (;;) {
		cueq_execution *e = get(c, id);
		if (e->state == want)
			return e;
		if (th_now_ms() > deadline)
			fail_msg("%s stayed %s for %lld ms; expected %s", id, cueq_state_name(e->state),
				 (long long)timeout_ms, cueq_state_name(want));
		cueq_execution_free(e);
		th_sleep_ms(25);
	}
}

/* True when the history holds the events in this order (others between). */
static bool history_has(const cueq_execution *e, const char *const *events, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < e->history_len && k < n; i++)
		if (e->history[i].event != NULL && strcmp(e->history[i].event, events[k]) == 0)
			k++;
	return k == n;
}

static void print_history(const cueq_execution *e)
{
	fprintf(stderr, "history of %s:", e->execution_id);
	for (size_t i = 0; i < e->history_len; i++)
		fprintf(stderr, " %s(a%u)", e->history[i].event ? e->history[i].event : "?",
			e->history[i].attempt);
	fprintf(stderr, "\n");
}

#define EXPECT_HISTORY(e, ...) \
	do { \
		static const char *const ev_[] = { __VA_ARGS__ }; \
		if (!history_has((e), ev_, sizeof(ev_) / sizeof(ev_[0]))) { \
			print_history(e); \
			fail_msg("history of %s lacks the sequence %s", (e)->execution_id, #__VA_ARGS__); \
		} \
	} while (0)

/* ---- tests ----------------------------------------------------------- */

static void test_reclaim_after_expiry(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE], tok1[CUEQ_ID_SIZE], tok2[CUEQ_ID_SIZE];
	cueq_execution *e;
	int st = -1;
	int64_t deadline = 0;

	push(c, "rq", 300, 0, id);
	cueq_job *j1 = claim(c, "rq", 0, 1000);
	assert_string_equal(cueq_job_id(j1), id);
	assert_int_equal(cueq_job_attempt(j1), 1);
	strcpy(tok1, cueq_job_token(j1));
	/* While the lease is live, nothing to claim. */
	expect_empty(c, "rq", 0);

	/* Past the deadline the same execution comes back (long poll). */
	cueq_job *j2 = claim(c, "rq", 10000, 5000);
	assert_string_equal(cueq_job_id(j2), id);
	assert_int_equal(cueq_job_attempt(j2), 2);
	strcpy(tok2, cueq_job_token(j2));
	assert_string_not_equal(tok1, tok2);

	/* The old token is fenced on every write, and nothing changes. */
	assert_int_equal(cueq_ack(c, id, tok1, "late"), CUEQ_ERR_STALE_LEASE);
	assert_int_equal(cueq_extend(c, id, tok1, 60000, &deadline), CUEQ_ERR_STALE_LEASE);
	assert_int_equal(cueq_nack(c, id, tok1, "late", 0, false, &st), CUEQ_ERR_STALE_LEASE);
	assert_int_equal(cueq_nack(c, id, tok1, "late", 0, true, &st), CUEQ_ERR_STALE_LEASE);
	e = get(c, id);
	assert_int_equal(e->state, CUEQ_LEASED);
	assert_int_equal(e->attempt, 2);
	assert_true(th_token_shown(e->lease_token, tok2));
	assert_int_equal(e->failures, 0);
	assert_int_equal(e->expiries, 1);
	assert_null(e->result);
	cueq_execution_free(e);

	/* The live token works; the same ack again gets the same answer. */
	assert_int_equal(cueq_ack(c, id, tok2, "done"), CUEQ_OK);
	assert_int_equal(cueq_ack(c, id, tok2, "done"), CUEQ_OK);
	/* A different outcome for a finished execution is a conflict. */
	assert_int_equal(cueq_ack(c, id, tok2, "something else"), CUEQ_ERR_CONFLICT);
	assert_int_equal(cueq_nack(c, id, tok2, "oops", 0, false, &st), CUEQ_ERR_CONFLICT);
	assert_int_not_equal(cueq_ack(c, id, tok1, "done"), CUEQ_OK);

	e = get(c, id);
	assert_int_equal(e->state, CUEQ_SUCCEEDED);
	assert_non_null(e->result);
	assert_string_equal(e->result, "done");
	assert_int_equal(e->attempt, 2);
	assert_true(e->finished_at_ms > 0);
	EXPECT_HISTORY(e, "claimed", "expired", "claimed", "succeeded");
	assert_int_equal(th_count_events(e, "succeeded"), 1);
	cueq_execution_free(e);

	cueq_job_free(j1);
	cueq_job_free(j2);
	cueq_close(c);
}

static void test_stale_after_expiry_before_reclaim(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE];
	cueq_execution *e;

	push(c, "late", 200, 0, id);
	cueq_job *j = claim(c, "late", 0, 1000);
	e = wait_state(c, id, CUEQ_READY, 5000);
	cueq_execution_free(e);
	/* The late worker's ack is refused and the execution stays ready. */
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j), "late"), CUEQ_ERR_STALE_LEASE);
	e = get(c, id);
	assert_int_equal(e->state, CUEQ_READY);
	assert_null(e->result);
	assert_int_equal(e->expiries, 1);
	EXPECT_HISTORY(e, "claimed", "expired");
	cueq_execution_free(e);
	cueq_job_free(j);
	cueq_close(c);
}

static void test_extend_keeps_lease(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE];
	int64_t deadline = 0;
	cueq_execution *e;

	push(c, "ext", 300, 0, id);
	cueq_job *j = claim(c, "ext", 0, 1000);
	int64_t first = cueq_job_lease_deadline(j);
	assert_int_equal(cueq_extend(c, id, cueq_job_token(j), 5000, &deadline), CUEQ_OK);
	assert_true(deadline > first);
	th_sleep_ms(600);
	expect_empty(c, "ext", 0);
	e = get(c, id);
	assert_int_equal(e->state, CUEQ_LEASED);
	assert_true(th_token_shown(e->lease_token, cueq_job_token(j)));
	EXPECT_HISTORY(e, "claimed", "extended");
	cueq_execution_free(e);
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j), NULL), CUEQ_OK);
	cueq_job_free(j);
	cueq_close(c);
}

/* Leases that run out are not handler failures: a job allowed one failure
 * (max_attempts 1) comes back after its first expiry, and is dead when
 * its expiries reach max_expiries, with a reason that says so. */
static void test_expiries_used_up(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE];
	cueq_execution *e;

	push_limits(c, "exp2", 200, 1, 2, id);
	cueq_job *j1 = claim(c, "exp2", 0, 1000);
	assert_int_equal(cueq_job_attempt(j1), 1);
	cueq_job *j2 = claim(c, "exp2", 0, 5000);
	assert_string_equal(cueq_job_id(j2), id);
	assert_int_equal(cueq_job_attempt(j2), 2);
	/* The second expiry uses up the expiries: dead, not ready. */
	e = wait_state(c, id, CUEQ_DEAD, 5000);
	if (e->error == NULL || strstr(e->error, "lease expired 2 times") == NULL)
		fail_msg("the dead job's error does not say why: '%s'", e->error ? e->error : "");
	assert_int_equal(e->attempt, 2);
	assert_int_equal(e->expiries, 2);
	assert_int_equal(e->failures, 0);
	assert_string_equal(e->lease_token, "");
	EXPECT_HISTORY(e, "claimed", "expired", "claimed", "expired", "dead");
	cueq_execution_free(e);
	expect_empty(c, "exp2", 400);
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j2), NULL), CUEQ_ERR_STALE_LEASE);

	cueq_queue_stats *st = NULL;
	size_t n = 0;
	assert_int_equal(cueq_stats(c, "exp2", &st, &n), CUEQ_OK);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].dead, 1);
	assert_int_equal(st[0].ready + st[0].leased + st[0].scheduled, 0);
	cueq_stats_free(st, n);
	cueq_job_free(j1);
	cueq_job_free(j2);
	cueq_close(c);
}

static void test_attempts_exhausted_by_nack(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE];
	cueq_execution *e;
	int st = -1;

	push(c, "nk2", 0, 2, id);
	cueq_job *j1 = claim(c, "nk2", 0, 1000);
	assert_int_equal(cueq_nack(c, id, cueq_job_token(j1), "boom 1", 0, false, &st), CUEQ_OK);
	assert_true(st == CUEQ_READY || st == CUEQ_SCHEDULED);
	e = get(c, id);
	assert_int_equal(e->failures, 1);
	assert_true(e->state == CUEQ_READY || e->state == CUEQ_SCHEDULED);
	assert_non_null(e->error);
	assert_string_equal(e->error, "boom 1");
	cueq_execution_free(e);
	/* The same nack again: the same answer, still one failure. */
	assert_int_equal(cueq_nack(c, id, cueq_job_token(j1), "boom 1", 0, false, &st), CUEQ_OK);
	e = get(c, id);
	assert_int_equal(e->failures, 1);
	cueq_execution_free(e);

	cueq_job *j2 = claim(c, "nk2", 0, 5000);
	assert_string_equal(cueq_job_id(j2), id);
	assert_int_equal(cueq_job_attempt(j2), 2);
	assert_int_equal(cueq_nack(c, id, cueq_job_token(j2), "boom 2", 0, false, &st), CUEQ_OK);
	assert_int_equal(st, CUEQ_DEAD);
	e = get(c, id);
	assert_int_equal(e->state, CUEQ_DEAD);
	assert_int_equal(e->failures, 2);
	assert_string_equal(e->error, "boom 2");
	EXPECT_HISTORY(e, "claimed", "nacked", "claimed", "nacked", "dead");
	cueq_execution_free(e);
	expect_empty(c, "nk2", 300);
	cueq_job_free(j1);
	cueq_job_free(j2);
	cueq_close(c);
}

static void test_terminal_nack(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE];
	cueq_execution *e;
	int st = -1;

	push(c, "term", 0, 5, id);
	cueq_job *j = claim(c, "term", 0, 1000);
	assert_int_equal(cueq_nack(c, id, cueq_job_token(j), "fatal", -1, true, &st), CUEQ_OK);
	assert_int_equal(st, CUEQ_DEAD);
	e = get(c, id);
	assert_int_equal(e->state, CUEQ_DEAD);
	assert_int_equal(e->attempt, 1);
	assert_int_equal(e->failures, 1);
	assert_string_equal(e->error, "fatal");
	EXPECT_HISTORY(e, "claimed", "nacked");
	assert_true(th_count_events(e, "dead") + th_count_events(e, "nacked") >= 1);
	cueq_execution_free(e);
	/* An ack after the terminal nack is another outcome: conflict. */
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j), NULL), CUEQ_ERR_CONFLICT);
	expect_empty(c, "term", 300);
	cueq_job_free(j);
	cueq_close(c);
}

static void test_unknown_execution(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_execution *e = NULL;

	assert_int_equal(cueq_get(c, "00000000deadbeef", &e), CUEQ_ERR_NOT_FOUND);
	assert_int_equal(cueq_ack(c, "00000000deadbeef", "00000000deadbeef", NULL), CUEQ_ERR_NOT_FOUND);
	cueq_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reclaim_after_expiry, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_stale_after_expiry_before_reclaim, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_extend_keeps_lease, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_expiries_used_up, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_attempts_exhausted_by_nack, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_terminal_nack, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_unknown_execution, th_fixture_start, th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
