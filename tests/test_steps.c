/*
 * test_steps.c - the step ledger (PROTOCOL.md: step_set, step_get, steps,
 * get's steps; cueq.h: cueq_step_*, cueq_job_step_key, cueq_job_step_once).
 *
 * A worker records steps under its live lease token; anyone reads them.
 * A stale token (the lease expired, another worker claimed) is refused with
 * STALE_LEASE and writes nothing.  Steps outlive their lease: the next
 * claim sees them, and so does a broker restarted after kill -9.  Values
 * over 4096 bytes and bad names are refused.  cueq_job_step_once runs its
 * function once across two deliveries (claimed jobs whose lease expires,
 * and a worker handler that fails after the step), and cueq_job_step_key
 * is the same on every delivery.  Last, the CLI: step set/get, steps, and
 * exit status 5 for a missing step.
 *
 * Leases of 300 ms make expiries quick; every wait is a bounded long poll.
 */
#include <pthread.h>
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


/* ---- helpers ---------------------------------------------------------- */

static void push(cueq_client *c, const char *queue, int64_t lease_ms, char id[CUEQ_ID_SIZE])
{
	cueq_push_opts o = { .lease_ms = lease_ms, .max_attempts = 10 };
	cueq_push_result r;
	int rc = cueq_push(c, queue, "work", 4, &o, &r);
	if (rc != CUEQ_OK)
		fail_msg("cueq_push: %s (%s)", cueq_strerror(rc), cueq_last_error());
	strcpy(id, r.execution_id);
}

static cueq_job *claim(cueq_client *c, const char *queue, const char *want_id, uint32_t attempt)
{
	cueq_job *j = NULL;
	size_t n = 0;
	int rc = cueq_claim(c, queue, 1, 0, 5000, &j, &n);
	if (rc != CUEQ_OK || n != 1)
		fail_msg("claim on %s: %s (%s)", queue, cueq_strerror(rc), cueq_last_error());
	if (strcmp(cueq_job_id(j), want_id) != 0 || cueq_job_attempt(j) != attempt)
		fail_msg("claim on %s returned %s attempt %u, expected %s attempt %u", queue,
			 cueq_job_id(j), cueq_job_attempt(j), want_id, attempt);
	return j;
}

static void set_ok(cueq_client *c, const char *id, const char *token, const char *name,
		   const void *value, size_t len)
{
	int rc = cueq_step_set(c, id, token, name, value, len);
	if (rc != CUEQ_OK)
		fail_msg("step_set %s of %s: %s (%s)", name, id, cueq_strerror(rc), cueq_last_error());
}

/* Reads step name and checks its value. */
static void expect_step(cueq_client *c, const char *id, const char *name, const void *want,
			size_t want_len)
{
	void *v = NULL;
	size_t len = 0;
	int rc = cueq_step_get(c, id, name, &v, &len);
	if (rc != CUEQ_OK)
		fail_msg("step_get %s of %s: %s (%s)", name, id, cueq_strerror(rc), cueq_last_error());
	if (len != want_len || memcmp(v, want, len) != 0)
		fail_msg("step %s of %s is '%.*s' (%zu bytes), expected '%.*s' (%zu bytes)", name, id,
			 (int)(len > 80 ? 80 : len), (char *)v, len, (int)(want_len > 80 ? 80 : want_len),
			 (const char *)want, want_len);
	assert_int_equal(((char *)v)[len], '\0');
	cueq_value_free(v);
}

static void expect_no_step(cueq_client *c, const char *id, const char *name)
{
	void *v = NULL;
	size_t len = 0;
	int rc = cueq_step_get(c, id, name, &v, &len);
	if (rc != CUEQ_ERR_NO_STEP) /* the execution is there; the step is not */
		fail_msg("step_get %s of %s: %s%s%.*s, expected NO_STEP", name, id, cueq_strerror(rc),
			 rc == CUEQ_OK ? ", value " : "", rc == CUEQ_OK ? (int)len : 0,
			 rc == CUEQ_OK ? (char *)v : "");
	if (rc == CUEQ_OK)
		cueq_value_free(v);
}

static size_t count_steps(cueq_client *c, const char *id)
{
	cueq_step *s = NULL;
	size_t n = 0;
	int rc = cueq_steps(c, id, &s, &n);
	if (rc != CUEQ_OK)
		fail_msg("steps of %s: %s (%s)", id, cueq_strerror(rc), cueq_last_error());
	cueq_steps_free(s, n);
	return n;
}

static cueq_execution *get(cueq_client *c, const char *id)
{
	cueq_execution *e = NULL;
	int rc = cueq_get(c, id, &e);
	if (rc != CUEQ_OK)
		fail_msg("cueq_get %s: %s (%s)", id, cueq_strerror(rc), cueq_last_error());
	return e;
}

/* Waits (bounded) until id is ready again after its lease expired. */
static void wait_ready(cueq_client *c, const char *id)
{
	int64_t deadline = th_now_ms() + 5000;
	for (;;) {
		cueq_execution *e = get(c, id);
		int st = e->state;
		cueq_execution_free(e);
		if (st == CUEQ_READY)
			return;
		if (th_now_ms() > deadline)
			fail_msg("%s stayed %s for 5 s after its lease of 300 ms", id, cueq_state_name(st));
		th_sleep_ms(25);
	}
}

/* ---- set, get, steps, get ---------------------------------------------- */

static void test_step_set_get(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE], big[CUEQ_MAX_STEP_VALUE];
	cueq_step *s = NULL;
	size_t n = 0;
	int64_t now = proto_now_ms();

	push(c, "sq", 30000, id);
	/* A fresh execution has an empty ledger. */
	assert_int_equal(count_steps(c, id), 0);
	cueq_job *j = claim(c, "sq", id, 1);
	const char *tok = cueq_job_token(j);

	set_ok(c, id, tok, "ensure_customer", "cus_123", 7);
	expect_step(c, id, "ensure_customer", "cus_123", 7);
	set_ok(c, id, tok, "zeta", "z", 1);
	set_ok(c, id, tok, "alpha", "a\0b", 3); /* bytes, not text */
	set_ok(c, id, tok, "ensure_customer", "cus_456", 7); /* replaces */
	set_ok(c, id, tok, "empty", "", 0);
	memset(big, 'v', sizeof(big));
	set_ok(c, id, tok, "big.value:4096-bytes_", big, sizeof(big));

	expect_step(c, id, "ensure_customer", "cus_456", 7);
	expect_step(c, id, "alpha", "a\0b", 3);
	expect_step(c, id, "empty", "", 0);
	expect_step(c, id, "big.value:4096-bytes_", big, sizeof(big));
	expect_no_step(c, id, "never_written");

	/* All of them, in name order. */
	static const char *const names[] = { "alpha", "big.value:4096-bytes_", "empty",
					     "ensure_customer", "zeta" };
	assert_int_equal(cueq_steps(c, id, &s, &n), CUEQ_OK);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(s[i].name, names[i]);
		if (s[i].at_ms < now - 60000 || s[i].at_ms > now + 60000)
			fail_msg("step %s written at %lld, now is %lld", s[i].name,
				 (long long)s[i].at_ms, (long long)now);
	}
	assert_int_equal(s[0].value_len, 3);
	assert_memory_equal(s[0].value, "a\0b", 3);
	assert_int_equal(s[1].value_len, sizeof(big));
	assert_int_equal(s[2].value_len, 0);
	assert_int_equal(s[3].value_len, 7);
	assert_string_equal(s[3].value, "cus_456");
	assert_string_equal(s[4].value, "z");
	cueq_steps_free(s, n);

	/* get carries the ledger, and the history one step event per write. */
	cueq_execution *e = get(c, id);
	assert_int_equal(e->steps_len, 5);
	for (size_t i = 0; i < e->steps_len; i++)
		assert_string_equal(e->steps[i].name, names[i]);
	assert_string_equal(e->steps[3].value, "cus_456");
	if (th_count_events(e, "step") != 6)
		fail_msg("history of %s has %zu step events, expected 6 (one per write)", id,
			 th_count_events(e, "step"));
	for (size_t i = 0; i < e->history_len; i++)
		if (strcmp(e->history[i].event, "step") == 0) {
			assert_non_null(e->history[i].detail);
			assert_string_equal(e->history[i].detail, "ensure_customer");
			break;
		}
	cueq_execution_free(e);

	/* After the ack the ledger stays readable and closed to writes. */
	assert_int_equal(cueq_ack(c, id, tok, "done"), CUEQ_OK);
	assert_int_equal(cueq_step_set(c, id, tok, "late", "x", 1), CUEQ_ERR_STALE_LEASE);
	expect_no_step(c, id, "late");
	expect_step(c, id, "zeta", "z", 1);
	assert_int_equal(count_steps(c, id), 5);

	/* Unknown executions. */
	void *v = NULL;
	size_t len = 0;
	assert_int_equal(cueq_step_get(c, "00000000deadbeef", "alpha", &v, &len), CUEQ_ERR_NOT_FOUND);
	assert_int_equal(cueq_steps(c, "00000000deadbeef", &s, &n), CUEQ_ERR_NOT_FOUND);
	assert_int_equal(cueq_step_set(c, "00000000deadbeef", tok, "alpha", "x", 1),
			 CUEQ_ERR_NOT_FOUND);
	cueq_job_free(j);
	cueq_close(c);
}

/* step_set over the raw protocol, for bytes the SDK would not send. */
static void raw_step_set(th_raw *r, const char *id, const char *token, const char *name,
			 size_t name_len, const void *value, size_t len, th_reply *rep)
{
	th_req q;
	assert_int_equal(th_req_begin(&q, "step_set", 4), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "lease_token", token);
	proto_kv_str(th_pk(&q), "name", name, name_len);
	proto_kv_bin(th_pk(&q), "value", value, len);
	if (th_req_call(r, &q, rep) != 0)
		fail_msg("step_set: no reply");
}

static void test_value_too_large(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE], big[CUEQ_MAX_STEP_VALUE + 1];
	th_raw r;
	th_reply rep;

	memset(big, 'v', sizeof(big));
	push(c, "lq", 30000, id);
	cueq_job *j = claim(c, "lq", id, 1);
	int rc = cueq_step_set(c, id, cueq_job_token(j), "huge", big, sizeof(big));
	assert_int_equal(rc, CUEQ_ERR_TOO_LARGE);
	if (strstr(cueq_last_error(), "4096") == NULL)
		fail_msg("the refusal of a 4097-byte value does not give the limit: %s",
			 cueq_last_error());

	/* The broker refuses it too, saying the limit. */
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	raw_step_set(&r, id, cueq_job_token(j), "huge", 4, big, sizeof(big), &rep);
	if (rep.ok || strcmp(rep.err, "TOO_LARGE") != 0)
		fail_msg("raw step_set of 4097 bytes: %s %s, expected TOO_LARGE", rep.ok ? "ok" : rep.err,
			 rep.msg);
	if (strstr(rep.msg, "4096") == NULL)
		fail_msg("the broker's TOO_LARGE does not give the limit: %s", rep.msg);
	th_reply_free(&rep);
	th_raw_close(&r);
	expect_no_step(c, id, "huge");
	assert_int_equal(count_steps(c, id), 0);
	cueq_job_free(j);
	cueq_close(c);
}

static void test_bad_step_names(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE], longest[CUEQ_MAX_STEP_NAME + 2];
	static const char *const bad[] = { "", "has space", "a/b", "\xc3\xa9t\xc3\xa9", "tab\there",
					   "new\nline", "semi;colon" };
	th_raw r;
	th_reply rep;

	push(c, "nq", 30000, id);
	cueq_job *j = claim(c, "nq", id, 1);
	const char *tok = cueq_job_token(j);
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = cueq_step_set(c, id, tok, bad[i], "x", 1);
		if (rc != CUEQ_ERR_INVALID && rc != CUEQ_ERR_BAD_REQUEST)
			fail_msg("step name '%s' accepted by the SDK: %s", bad[i], cueq_strerror(rc));
		raw_step_set(&r, id, tok, bad[i], strlen(bad[i]), "x", 1, &rep);
		if (rep.ok || strcmp(rep.err, "BAD_REQUEST") != 0)
			fail_msg("raw step_set with name '%s': %s %s, expected BAD_REQUEST", bad[i],
				 rep.ok ? "ok" : rep.err, rep.msg);
		th_reply_free(&rep);
	}
	/* A NUL inside the name on the wire. */
	raw_step_set(&r, id, tok, "nul\0name", 8, "x", 1, &rep);
	if (rep.ok || strcmp(rep.err, "BAD_REQUEST") != 0)
		fail_msg("raw step_set with a NUL in the name: %s %s", rep.ok ? "ok" : rep.err, rep.msg);
	th_reply_free(&rep);

	/* 129 bytes is too long; 128 is fine. */
	memset(longest, 'n', sizeof(longest) - 1);
	longest[CUEQ_MAX_STEP_NAME + 1] = '\0';
	int rc = cueq_step_set(c, id, tok, longest, "x", 1);
	if (rc != CUEQ_ERR_INVALID && rc != CUEQ_ERR_BAD_REQUEST && rc != CUEQ_ERR_TOO_LARGE)
		fail_msg("a 129-byte step name accepted by the SDK: %s", cueq_strerror(rc));
	raw_step_set(&r, id, tok, longest, CUEQ_MAX_STEP_NAME + 1, "x", 1, &rep);
	if (rep.ok || (strcmp(rep.err, "BAD_REQUEST") != 0 && strcmp(rep.err, "TOO_LARGE") != 0))
		fail_msg("raw step_set with a 129-byte name: %s %s", rep.ok ? "ok" : rep.err, rep.msg);
	th_reply_free(&rep);
	assert_int_equal(count_steps(c, id), 0);
	longest[CUEQ_MAX_STEP_NAME] = '\0';
	set_ok(c, id, tok, longest, "x", 1);

	/* Missing fields and wrong types. */
	th_req q;
	assert_int_equal(th_req_begin(&q, "step_set", 3), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "lease_token", tok);
	proto_kv_cstr(th_pk(&q), "value", "x");
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	if (rep.ok || strcmp(rep.err, "BAD_REQUEST") != 0)
		fail_msg("step_set without a name: %s %s", rep.ok ? "ok" : rep.err, rep.msg);
	th_reply_free(&rep);
	assert_int_equal(th_req_begin(&q, "step_set", 3), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "name", "no_token");
	proto_kv_cstr(th_pk(&q), "value", "x");
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	if (rep.ok || strcmp(rep.err, "BAD_REQUEST") != 0)
		fail_msg("step_set without a token: %s %s", rep.ok ? "ok" : rep.err, rep.msg);
	th_reply_free(&rep);
	assert_int_equal(th_req_begin(&q, "step_set", 4), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "lease_token", tok);
	proto_kv_uint(th_pk(&q), "name", 7);
	proto_kv_cstr(th_pk(&q), "value", "x");
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	if (rep.ok || strcmp(rep.err, "BAD_REQUEST") != 0)
		fail_msg("step_set with a name that is an int: %s %s", rep.ok ? "ok" : rep.err, rep.msg);
	th_reply_free(&rep);
	/* step_get with a bad name. */
	assert_int_equal(th_req_begin(&q, "step_get", 2), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "name", "has space");
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	if (rep.ok || strcmp(rep.err, "BAD_REQUEST") != 0)
		fail_msg("step_get with a bad name: %s %s", rep.ok ? "ok" : rep.err, rep.msg);
	th_reply_free(&rep);

	assert_int_equal(count_steps(c, id), 1);
	th_raw_close(&r);
	cueq_job_free(j);
	cueq_close(c);
}

/* The largest ledger: 1000 steps of 4096 bytes beside a 1 MiB payload is
 * written, refused beyond, and still readable with steps and get. */
static void test_step_limits(void **state)
{
	th_broker *b = *state;
	/* The SDK's default time per request, fewer retries: a slow answer
	 * fails in 12 s, not 30. */
	cueq_client_opts co = { .request_timeout_ms = 10000, .retry_deadline_ms = 12000 };
	cueq_client *c = NULL;
	if (cueq_connect(b->url, &co, &c) != CUEQ_OK)
		fail_msg("cueq_connect %s: %s", b->url, cueq_last_error());
	char *payload = malloc(CUEQ_MAX_PAYLOAD), value[CUEQ_MAX_STEP_VALUE], name[16];
	cueq_push_result r;
	cueq_step *s = NULL;
	size_t n = 0;

	assert_non_null(payload);
	memset(payload, 'p', CUEQ_MAX_PAYLOAD);
	assert_int_equal(cueq_push(c, "big", payload, CUEQ_MAX_PAYLOAD, NULL, &r), CUEQ_OK);
	free(payload);
	cueq_job *j = claim(c, "big", r.execution_id, 1);
	const char *id = r.execution_id, *tok = cueq_job_token(j);
	for (unsigned i = 0; i < CUEQ_MAX_STEPS; i++) {
		snprintf(name, sizeof(name), "s%04u", i);
		memset(value, 'a' + (int)(i % 26), sizeof(value));
		set_ok(c, id, tok, name, value, sizeof(value));
	}
	int rc = cueq_step_set(c, id, tok, "one_too_many", "x", 1);
	if (rc != CUEQ_ERR_TOO_LARGE || strstr(cueq_last_error(), "1000") == NULL)
		fail_msg("step 1001: %s (%s), expected TOO_LARGE naming the limit of 1000",
			 cueq_strerror(rc), cueq_last_error());
	expect_no_step(c, id, "one_too_many");
	/* Replacing a step is no new step. */
	set_ok(c, id, tok, "s0000", "replaced", 8);
	expect_step(c, id, "s0000", "replaced", 8);

	rc = cueq_steps(c, id, &s, &n);
	if (rc != CUEQ_OK)
		fail_msg("steps of a full ledger: %s (%s)", cueq_strerror(rc), cueq_last_error());
	assert_int_equal(n, CUEQ_MAX_STEPS);
	assert_string_equal(s[0].name, "s0000");
	assert_int_equal(s[999].value_len, CUEQ_MAX_STEP_VALUE);
	assert_int_equal(((char *)s[999].value)[0], 'a' + 999 % 26);
	cueq_steps_free(s, n);
	cueq_execution *e = get(c, id);
	assert_int_equal(e->steps_len, CUEQ_MAX_STEPS);
	assert_int_equal(e->payload_len, CUEQ_MAX_PAYLOAD);
	cueq_execution_free(e);
	assert_int_equal(cueq_ack(c, id, tok, NULL), CUEQ_OK);
	cueq_job_free(j);
	cueq_close(c);
}

/* ---- fencing and redelivery --------------------------------------------- */

static void test_stale_token(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE], other[CUEQ_ID_SIZE];

	push(c, "fq", 300, id);
	cueq_job *j1 = claim(c, "fq", id, 1);
	set_ok(c, id, cueq_job_token(j1), "charge", "ch_1", 4);

	/* Expired, not yet claimed again: the old token is no longer live. */
	wait_ready(c, id);
	assert_int_equal(cueq_step_set(c, id, cueq_job_token(j1), "refund", "re_1", 4),
			 CUEQ_ERR_STALE_LEASE);

	/* Claimed again: the new claim sees what the old lease wrote. */
	cueq_job *j2 = claim(c, "fq", id, 2);
	assert_string_not_equal(cueq_job_token(j1), cueq_job_token(j2));
	expect_step(c, id, "charge", "ch_1", 4);
	assert_int_equal(cueq_step_set(c, id, cueq_job_token(j1), "charge", "ch_LATE", 7),
			 CUEQ_ERR_STALE_LEASE);
	assert_int_equal(cueq_step_set(c, id, cueq_job_token(j1), "refund", "re_1", 4),
			 CUEQ_ERR_STALE_LEASE);
	assert_int_equal(cueq_step_set(c, id, "00000000deadbeef", "refund", "re_1", 4),
			 CUEQ_ERR_STALE_LEASE);
	/* The live token of another execution is no key to this one. */
	push(c, "fq-other", 30000, other);
	cueq_job *jo = claim(c, "fq-other", other, 1);
	assert_int_equal(cueq_step_set(c, id, cueq_job_token(jo), "refund", "re_1", 4),
			 CUEQ_ERR_STALE_LEASE);
	expect_step(c, id, "charge", "ch_1", 4);
	expect_no_step(c, id, "refund");
	assert_int_equal(count_steps(c, id), 1);

	set_ok(c, id, cueq_job_token(j2), "refund", "re_2", 4);
	assert_int_equal(count_steps(c, id), 2);
	cueq_execution *e = get(c, id);
	assert_int_equal(th_count_events(e, "step"), 2);
	cueq_execution_free(e);
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j2), NULL), CUEQ_OK);
	cueq_job_free(j1);
	cueq_job_free(j2);
	cueq_job_free(jo);
	cueq_close(c);
}

static void test_steps_survive_kill9(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE];

	push(c, "kq", 1000, id);
	cueq_job *j1 = claim(c, "kq", id, 1);
	set_ok(c, id, cueq_job_token(j1), "ensure_customer", "cus_9", 5);
	set_ok(c, id, cueq_job_token(j1), "create_invoice", "in_9", 4);
	set_ok(c, id, cueq_job_token(j1), "create_invoice", "in_9b", 5);
	cueq_close(c);
	assert_int_equal(th_broker_kill9(b), 0);
	assert_int_equal(th_broker_restart(b), 0);
	c = th_sdk_connect(b);

	expect_step(c, id, "ensure_customer", "cus_9", 5);
	expect_step(c, id, "create_invoice", "in_9b", 5);
	assert_int_equal(count_steps(c, id), 2);
	/* The crash ended the lease one way or another; the next claim sees
	 * the ledger and writes to it. */
	cueq_job *j2 = claim(c, "kq", id, 2);
	assert_int_equal(cueq_step_set(c, id, cueq_job_token(j1), "send_email", "x", 1),
			 CUEQ_ERR_STALE_LEASE);
	set_ok(c, id, cueq_job_token(j2), "send_email", "em_9", 4);
	cueq_execution *e = get(c, id);
	assert_int_equal(e->steps_len, 3);
	cueq_execution_free(e);
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j2), NULL), CUEQ_OK);
	cueq_job_free(j1);
	cueq_job_free(j2);
	cueq_close(c);
}

/* ---- step_once and step keys --------------------------------------------- */

struct effect {
	int calls;
	int fail; /* return this instead of doing the work */
};

static int do_effect(cueq_job *j, void *arg, char *value, size_t size, size_t *len)
{
	struct effect *x = arg;
	x->calls++;
	if (x->fail != 0)
		return x->fail;
	*len = (size_t)snprintf(value, size, "effect-of-attempt-%u", cueq_job_attempt(j));
	return CUEQ_OK;
}

static void test_step_once_claimed(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE], value[CUEQ_MAX_STEP_VALUE], key1[CUEQ_MAX_STEP_NAME + 24],
		key2[CUEQ_MAX_STEP_NAME + 24], want[64];
	struct effect x = { 0 };
	size_t len = 0;
	bool skipped = true;

	push(c, "oq", 300, id);
	cueq_job *j1 = claim(c, "oq", id, 1);
	assert_int_equal(cueq_job_step_once(j1, "charge", do_effect, &x, value, sizeof(value), &len,
					    &skipped),
			 CUEQ_OK);
	assert_false(skipped);
	assert_int_equal(x.calls, 1);
	assert_int_equal(len, strlen("effect-of-attempt-1"));
	assert_memory_equal(value, "effect-of-attempt-1", len);
	expect_step(c, id, "charge", "effect-of-attempt-1", len);
	assert_int_equal(cueq_job_step_key(j1, "create_invoice", key1, sizeof(key1)), CUEQ_OK);

	/* The worker vanishes; the lease expires; the next delivery skips. */
	cueq_job *j2 = claim(c, "oq", id, 2);
	memset(value, 0, sizeof(value));
	skipped = false;
	assert_int_equal(cueq_job_step_once(j2, "charge", do_effect, &x, value, sizeof(value), &len,
					    &skipped),
			 CUEQ_OK);
	assert_true(skipped);
	assert_int_equal(x.calls, 1);
	assert_int_equal(len, strlen("effect-of-attempt-1"));
	assert_memory_equal(value, "effect-of-attempt-1", len);
	/* skipped may be NULL. */
	assert_int_equal(cueq_job_step_once(j2, "charge", do_effect, &x, value, sizeof(value), &len,
					    NULL),
			 CUEQ_OK);
	assert_int_equal(x.calls, 1);

	/* The step key is the same on every delivery. */
	assert_int_equal(cueq_job_step_key(j2, "create_invoice", key2, sizeof(key2)), CUEQ_OK);
	assert_string_equal(key1, key2);
	snprintf(want, sizeof(want), "cueq-%s-create_invoice", id);
	assert_string_equal(key1, want);
	assert_int_equal(cueq_job_step_key(j2, "create_invoice", key2, strlen(want)),
			 CUEQ_ERR_INVALID);
	char longest[CUEQ_MAX_STEP_NAME + 1];
	memset(longest, 's', CUEQ_MAX_STEP_NAME);
	longest[CUEQ_MAX_STEP_NAME] = '\0';
	assert_int_equal(cueq_job_step_key(j2, longest, key2, sizeof(key2)), CUEQ_OK);

	/* A new step in the second delivery runs. */
	assert_int_equal(cueq_job_step_once(j2, "refund", do_effect, &x, value, sizeof(value), &len,
					    &skipped),
			 CUEQ_OK);
	assert_false(skipped);
	assert_int_equal(x.calls, 2);
	expect_step(c, id, "refund", "effect-of-attempt-2", strlen("effect-of-attempt-2"));
	/* A failing step function records nothing and its error comes back. */
	struct effect bad = { .fail = CUEQ_ERR_UNAVAILABLE };
	assert_int_equal(cueq_job_step_once(j2, "flaky", do_effect, &bad, value, sizeof(value), &len,
					    &skipped),
			 CUEQ_ERR_UNAVAILABLE);
	assert_int_equal(bad.calls, 1);
	/* the error says which step failed, not the ledger's "no such step" */
	assert_non_null(strstr(cueq_last_error(), "step 'flaky'"));
	assert_non_null(strstr(cueq_last_error(), "failed"));
	assert_null(strstr(cueq_last_error(), "has no step"));
	struct effect own = { .fail = 42 }; /* a code of the application's own */
	assert_int_equal(cueq_job_step_once(j2, "own", do_effect, &own, value, sizeof(value), &len,
					    &skipped),
			 42);
	assert_non_null(strstr(cueq_last_error(), "returned 42"));
	expect_no_step(c, id, "flaky");
	/* The first delivery's job is fenced: nothing it does is recorded. */
	struct effect late = { 0 };
	int rc = cueq_job_step_once(j1, "late", do_effect, &late, value, sizeof(value), &len,
				    &skipped);
	if (rc != CUEQ_ERR_STALE_LEASE && rc != CUEQ_ERR_LEASE_LOST)
		fail_msg("step_once with the stale lease of attempt 1: %s, expected STALE_LEASE or "
			 "LEASE_LOST",
			 cueq_strerror(rc));
	expect_no_step(c, id, "late");
	/* A recorded value that does not fit the caller's buffer is an error. */
	char tiny[4];
	rc = cueq_job_step_once(j2, "charge", do_effect, &x, tiny, sizeof(tiny), &len, &skipped);
	assert_int_not_equal(rc, CUEQ_OK);
	assert_int_equal(x.calls, 2);

	assert_int_equal(cueq_ack(c, id, cueq_job_token(j2), NULL), CUEQ_OK);
	cueq_job_free(j1);
	cueq_job_free(j2);
	cueq_close(c);
}

/* In a worker: attempt 1 does the step then fails; attempt 2 skips it. */
struct once_run {
	pthread_mutex_t mu;
	int calls, handled;
	uint32_t attempts[4];
	bool skipped[4];
	char values[4][64], keys[4][CUEQ_MAX_STEP_NAME + 24];
	int rcs[4];
};

static int count_call(cueq_job *j, void *arg, char *value, size_t size, size_t *len)
{
	struct once_run *o = arg;
	pthread_mutex_lock(&o->mu);
	o->calls++;
	pthread_mutex_unlock(&o->mu);
	*len = (size_t)snprintf(value, size, "sent-in-attempt-%u", cueq_job_attempt(j));
	return CUEQ_OK;
}

static int once_handler(cueq_job *j, void *arg)
{
	struct once_run *o = arg;
	char value[CUEQ_MAX_STEP_VALUE];
	size_t len = 0;
	bool skipped = false;
	int k, rc = cueq_job_step_once(j, "send_email", count_call, o, value, sizeof(value) - 1,
				       &len, &skipped);

	pthread_mutex_lock(&o->mu);
	k = o->handled < 4 ? o->handled++ : 3;
	o->attempts[k] = cueq_job_attempt(j);
	o->skipped[k] = skipped;
	o->rcs[k] = rc;
	value[rc == CUEQ_OK ? len : 0] = '\0';
	snprintf(o->values[k], sizeof(o->values[k]), "%.63s", value);
	cueq_job_step_key(j, "send_email", o->keys[k], sizeof(o->keys[k]));
	pthread_mutex_unlock(&o->mu);
	if (cueq_job_attempt(j) == 1) {
		cueq_job_fail(j, "crashed after the step", 0, false);
		return CUEQ_ERR_UNAVAILABLE;
	}
	return rc;
}

struct stopper {
	cueq_worker *w;
	pthread_mutex_t mu;
	bool done, fired;
};

static void *stop_later(void *arg)
{
	struct stopper *s = arg;
	int64_t deadline = th_now_ms() + 20000;
	pthread_mutex_lock(&s->mu);
	while (!s->done && th_now_ms() < deadline) {
		pthread_mutex_unlock(&s->mu);
		th_sleep_ms(20);
		pthread_mutex_lock(&s->mu);
	}
	if (!s->done) {
		s->fired = true;
		cueq_worker_stop(s->w);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void test_step_once_in_worker(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	struct once_run o = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct stopper s = { .mu = PTHREAD_MUTEX_INITIALIZER };
	cueq_worker_opts wo = { .concurrency = 1, .wait_ms = 200, .max_jobs = 2 };
	cueq_worker *w = NULL;
	pthread_t t;
	char id[CUEQ_ID_SIZE], want[64];

	push(c, "wq", 30000, id);
	assert_int_equal(cueq_worker_new(c, "wq", once_handler, &o, &wo, &w), CUEQ_OK);
	s.w = w;
	assert_int_equal(pthread_create(&t, NULL, stop_later, &s), 0);
	int rc = cueq_worker_run(w);
	pthread_mutex_lock(&s.mu);
	s.done = true;
	pthread_mutex_unlock(&s.mu);
	pthread_join(t, NULL);
	if (s.fired)
		fail_msg("the worker did not handle 2 deliveries within 20 s (handled %d)", o.handled);
	assert_int_equal(rc, CUEQ_OK);
	cueq_worker_free(w);

	assert_int_equal(o.handled, 2);
	assert_int_equal(o.attempts[0], 1);
	assert_int_equal(o.attempts[1], 2);
	assert_int_equal(o.rcs[0], CUEQ_OK);
	assert_int_equal(o.rcs[1], CUEQ_OK);
	assert_false(o.skipped[0]);
	assert_true(o.skipped[1]);
	assert_int_equal(o.calls, 1);
	assert_string_equal(o.values[0], "sent-in-attempt-1");
	assert_string_equal(o.values[1], "sent-in-attempt-1");
	snprintf(want, sizeof(want), "cueq-%s-send_email", id);
	assert_string_equal(o.keys[0], want);
	assert_string_equal(o.keys[1], want);
	cueq_execution *e = get(c, id);
	assert_int_equal(e->state, CUEQ_SUCCEEDED);
	assert_int_equal(e->steps_len, 1);
	assert_string_equal(e->steps[0].value, "sent-in-attempt-1");
	cueq_execution_free(e);
	cueq_close(c);
}

/* ---- the command line ------------------------------------------------------ */

#define CLI(p, code, ...) TH_CLI((p), NULL, (code), __VA_ARGS__)

static void test_cli_steps(void **state)
{
	th_broker *b = *state;
	th_proc p;
	char id[64], tok[64], wrong[64], text[128];
	th_raw r;
	th_reply rep;
	const msgpack_object *exe, *st;

	CLI(&p, 0, "push", "clq", "order-1", "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "execution_id", id, sizeof(id)));
	th_proc_free(&p);
	CLI(&p, 0, "claim", "clq", "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "lease_token", tok, sizeof(tok)));
	th_proc_free(&p);

	CLI(&p, 0, "step", "set", id, "ensure_customer", "cus_42", "--token", tok, "--url", b->url);
	th_proc_free(&p);
	CLI(&p, 0, "step", "set", id, "create_invoice", "in_7", "--token", tok, "--url", b->url);
	th_proc_free(&p);
	CLI(&p, 0, "step", "get", id, "ensure_customer", "--url", b->url);
	if (strcmp(p.out, "cus_42\n") != 0 && strcmp(p.out, "cus_42") != 0)
		fail_msg("step get printed '%s', expected the value cus_42", p.out);
	th_proc_free(&p);
	CLI(&p, 5, "step", "get", id, "send_email", "--url", b->url);
	assert_true(p.err_len > 0);
	assert_int_equal(p.out_len, 0);
	th_proc_free(&p);
	CLI(&p, 5, "step", "get", "00000000deadbeef", "send_email", "--url", b->url);
	th_proc_free(&p);

	CLI(&p, 0, "steps", id, "--url", b->url);
	if (strstr(p.out, "ensure_customer") == NULL || strstr(p.out, "cus_42") == NULL ||
	    strstr(p.out, "create_invoice") == NULL || strstr(p.out, "in_7") == NULL)
		fail_msg("steps printed '%s'", p.out);
	if (strstr(p.out, "create_invoice") > strstr(p.out, "ensure_customer"))
		fail_msg("steps are not in name order: '%s'", p.out);
	th_proc_free(&p);
	CLI(&p, 0, "steps", id, "--json", "--url", b->url);
	if (!th_json_str(p.out, "name", text, sizeof(text)) || strcmp(text, "create_invoice") != 0 ||
	    !th_json_str(p.out, "value", text, sizeof(text)) || strcmp(text, "in_7") != 0)
		fail_msg("steps --json printed '%s'", p.out);
	th_proc_free(&p);

	/* A stale token: exit 4; a bad name: exit 1; nothing written. */
	strcpy(wrong, tok);
	wrong[15] = wrong[15] == '0' ? '1' : '0';
	CLI(&p, 4, "step", "set", id, "send_email", "em_1", "--token", wrong, "--url", b->url);
	assert_true(p.err_len > 0);
	th_proc_free(&p);
	CLI(&p, 1, "step", "set", id, "bad name", "x", "--token", tok, "--url", b->url);
	th_proc_free(&p);
	CLI(&p, 1, "step", "set", id, "send_email", "em_1", "--url", b->url); /* no --token */
	th_proc_free(&p);
	CLI(&p, 5, "step", "get", id, "send_email", "--url", b->url);
	th_proc_free(&p);

	/* get over the wire carries the steps. */
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	assert_int_equal(th_raw_get(&r, id, &rep, &exe), 0);
	if (th_count(exe, "steps") != 2)
		fail_msg("get of %s has %zu steps, expected 2", id, th_count(exe, "steps"));
	st = th_item(exe, "steps", 1);
	assert_non_null(st);
	assert_true(th_str(st, "name", text, sizeof(text)));
	assert_string_equal(text, "ensure_customer");
	assert_true(th_str(st, "value", text, sizeof(text)));
	assert_string_equal(text, "cus_42");
	th_reply_free(&rep);
	th_raw_close(&r);
}

/* cueq_step_begin and cueq_step_done: the same ledger as step_once, in two
 * calls around inline work; a redelivery finds the step done, and the
 * fenced first delivery cannot record. */
static void test_step_begin_done(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE];
	bool done = true;
	void *v = NULL;
	size_t len = 7;

	push(c, "bq", 300, id);
	cueq_job *j1 = claim(c, "bq", id, 1);
	assert_int_equal(cueq_step_begin(j1, "create_invoice", &done, &v, &len), CUEQ_OK);
	assert_false(done);
	assert_null(v);
	assert_int_equal(len, 0);
	assert_int_equal(cueq_step_done(j1, "create_invoice", "inv_1", 5), CUEQ_OK);
	expect_step(c, id, "create_invoice", "inv_1", 5);

	cueq_job *j2 = claim(c, "bq", id, 2); /* j1's lease ran out */
	assert_int_equal(cueq_step_begin(j2, "create_invoice", &done, &v, &len), CUEQ_OK);
	assert_true(done);
	assert_int_equal(len, 5);
	assert_memory_equal(v, "inv_1", 5);
	assert_int_equal(((char *)v)[5], '\0');
	cueq_value_free(v);
	assert_int_equal(cueq_step_begin(j2, "send_email", &done, &v, &len), CUEQ_OK);
	assert_false(done);
	assert_int_equal(cueq_step_done(j1, "send_email", "late", 4), CUEQ_ERR_LEASE_LOST);
	assert_true(cueq_job_lease_lost(j1));
	expect_no_step(c, id, "send_email");
	/* with the lease known lost, a step not done must not be started */
	assert_int_equal(cueq_step_begin(j1, "send_email", &done, &v, &len), CUEQ_ERR_LEASE_LOST);
	assert_int_equal(cueq_step_begin(j2, "bad name!", &done, &v, &len), CUEQ_ERR_INVALID);
	cueq_job_free(j1);
	cueq_job_free(j2);
	cueq_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_step_set_get, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_value_too_large, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_bad_step_names, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_step_limits, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_stale_token, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_steps_survive_kill9, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_step_once_claimed, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_step_once_in_worker, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_step_begin_done, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_steps, th_fixture_start, th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
