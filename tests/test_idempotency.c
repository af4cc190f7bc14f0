/*
 * test_idempotency.c - producer-side idempotency (PROTOCOL.md, push:
 * "Idempotency keys" and "Unique keys"; DESIGN.md promise 5).
 *
 * Idempotency keys: the same key and request answer the first push with
 * duplicate true and create nothing; the same key with another request is
 * IDEMPOTENCY_MISMATCH for that job only; keys survive a graceful restart
 * and kill -9, are forgotten after key_ttl_ms, are per queue, and hold
 * when several producers race with one key.  The SDK's own keys (pushes
 * without one) make a retried request safe but keep two pushes two pushes;
 * the retry is shown over the raw protocol (same body, new request ID).
 * Unique keys: CONFLICT with the holder's ID while the holder is unfinished,
 * free again once it succeeded or died.  Last, the CLI's --key, --unique,
 * --json duplicate and exit status 4.
 *
 * Counts are read over the raw protocol, independently of the SDK.  The
 * only wait is for the key lifetime (1 s), a bounded poll.
 */
#include <pthread.h>
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


/* ---- helpers ---------------------------------------------------------- */

static int push(cueq_client *c, const char *queue, const char *payload, const cueq_push_opts *o,
		cueq_push_result *r)
{
	memset(r, 0, sizeof(*r));
	return cueq_push(c, queue, payload, strlen(payload), o, r);
}

/* Pushes and fails the test unless accepted with duplicate == want_dup. */
static void push_ok(cueq_client *c, const char *queue, const char *payload,
		    const cueq_push_opts *o, bool want_dup, cueq_push_result *r)
{
	int rc = push(c, queue, payload, o, r);
	if (rc != CUEQ_OK)
		fail_msg("push of '%s' to %s (key %s, unique %s): %s (%s)", payload, queue,
			 o && o->key ? o->key : "-", o && o->unique ? o->unique : "-",
			 cueq_strerror(rc), cueq_last_error());
	assert_int_equal(r->err, CUEQ_OK);
	assert_int_equal(strlen(r->execution_id), PROTO_ID_LEN);
	if (r->duplicate != want_dup)
		fail_msg("push of '%s' to %s (key %s): duplicate is %s, expected %s", payload, queue,
			 o && o->key ? o->key : "-", r->duplicate ? "true" : "false",
			 want_dup ? "true" : "false");
}

/* Pushes and expects the job refused with want (rc and result both). */
static void push_refused(cueq_client *c, const char *queue, const char *payload,
			 const cueq_push_opts *o, int want, cueq_push_result *r)
{
	int rc = push(c, queue, payload, o, r);
	if (rc != want)
		fail_msg("push of '%s' to %s (key %s, unique %s): %s (%s), expected %s", payload,
			 queue, o && o->key ? o->key : "-", o && o->unique ? o->unique : "-",
			 cueq_strerror(rc), rc == CUEQ_OK ? r->execution_id : cueq_last_error(),
			 cueq_strerror(want));
	if (strlen(cueq_last_error()) == 0)
		fail_msg("a refused push left no error sentence");
}

/* The last error holds want (a mismatch names what differs). */
static void expect_says(const char *want)
{
	if (strstr(cueq_last_error(), want) == NULL)
		fail_msg("the refusal '%s' does not say '%s'", cueq_last_error(), want);
}

/* A CONFLICT result must name the execution that holds the unique key. */
static void expect_holder(const cueq_push_result *r, const char *want)
{
	if (strcmp(r->holder, want) != 0)
		fail_msg("CONFLICT names holder '%s', expected %s (cueq_push_result.holder)",
			 r->holder, want);
}

/* Every execution of queue, whatever its state (over the raw protocol). */
static uint64_t total(th_broker *b, const char *queue, th_counts *out)
{
	th_raw r;
	th_counts c;

	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	if (th_raw_counts(&r, queue, &c) != 0)
		fail_msg("stats of %s failed", queue);
	th_raw_close(&r);
	if (out != NULL)
		*out = c;
	return c.scheduled + c.ready + c.leased + c.succeeded + c.dead + c.cancelled;
}

static void expect_total(th_broker *b, const char *queue, uint64_t want)
{
	th_counts c;
	uint64_t n = total(b, queue, &c);
	if (n != want)
		fail_msg("queue %s holds %llu executions (scheduled %llu ready %llu leased %llu "
			 "succeeded %llu dead %llu), expected %llu",
			 queue, (unsigned long long)n, (unsigned long long)c.scheduled,
			 (unsigned long long)c.ready, (unsigned long long)c.leased,
			 (unsigned long long)c.succeeded, (unsigned long long)c.dead,
			 (unsigned long long)want);
}

static cueq_job *claim(cueq_client *c, const char *queue, const char *want_id)
{
	cueq_job *j = NULL;
	size_t n = 0;
	int rc = cueq_claim(c, queue, 1, 0, 5000, &j, &n);
	if (rc != CUEQ_OK || n != 1)
		fail_msg("claim on %s: %s (%s)", queue, cueq_strerror(rc), cueq_last_error());
	if (want_id != NULL && strcmp(cueq_job_id(j), want_id) != 0)
		fail_msg("claim on %s returned %s, expected %s", queue, cueq_job_id(j), want_id);
	return j;
}

static void reconnect_after(th_broker *b, cueq_client **c)
{
	*c = th_sdk_connect(b);
}

/* ---- the raw protocol -------------------------------------------------- */

typedef struct raw_job {
	const char *queue, *payload, *key, *unique;
	uint64_t key_ttl_ms;
	int64_t priority;
} raw_job;

/* A push request of n jobs, with a fresh request ID. */
static void raw_push_req(th_req *q, const raw_job *jobs, size_t n)
{
	assert_int_equal(th_req_begin(q, "push", 1), 0);
	proto_key(th_pk(q), "jobs");
	msgpack_pack_array(th_pk(q), n);
	for (size_t i = 0; i < n; i++) {
		const raw_job *j = &jobs[i];
		msgpack_pack_map(th_pk(q), 2 + (j->key != NULL) + (j->unique != NULL) +
						  (j->key_ttl_ms != 0) + (j->priority != 0));
		proto_kv_cstr(th_pk(q), "queue", j->queue);
		proto_kv_bin(th_pk(q), "payload", j->payload, strlen(j->payload));
		if (j->key != NULL)
			proto_kv_cstr(th_pk(q), "key", j->key);
		if (j->unique != NULL)
			proto_kv_cstr(th_pk(q), "unique", j->unique);
		if (j->key_ttl_ms != 0)
			proto_kv_uint(th_pk(q), "key_ttl_ms", j->key_ttl_ms);
		if (j->priority != 0)
			proto_kv_int(th_pk(q), "priority", j->priority);
	}
	assert_int_equal(q->w.failed, 0);
}

/* results[i] of an accepted push reply: its ID and duplicate flag. */
static void raw_result(const th_reply *rep, size_t i, char id[PROTO_ID_LEN + 1], bool *dup)
{
	const msgpack_object *m = th_item(rep->root, "results", i);
	bool ok = false;

	if (m == NULL || !th_bool(m, "ok", &ok))
		fail_msg("push reply without results[%zu].ok", i);
	if (!ok) {
		char err[32] = "", msg[256] = "";
		th_str(m, "err", err, sizeof(err));
		th_str(m, "msg", msg, sizeof(msg));
		fail_msg("results[%zu] refused: %s %s", i, err, msg);
	}
	if (!th_str(m, "execution_id", id, PROTO_ID_LEN + 1))
		fail_msg("results[%zu] has no execution_id", i);
	if (!th_bool(m, "duplicate", dup))
		fail_msg("results[%zu] has no boolean 'duplicate' (PROTOCOL.md, push reply)", i);
}

/* A whole request refused with one of the codes (alt may be NULL). */
static void raw_refused(th_raw *r, th_req *q, const char *what, const char *want, const char *alt)
{
	th_reply rep;
	int rv = th_req_call(r, q, &rep);
	if (rv != 0)
		fail_msg("%s: no reply (%d)", what, rv);
	if (rep.ok || (strcmp(rep.err, want) != 0 && (alt == NULL || strcmp(rep.err, alt) != 0)))
		fail_msg("%s: answered %s %s %s, expected %s%s%s", what, rep.ok ? "ok" : "error",
			 rep.err, rep.msg, want, alt ? " or " : "", alt ? alt : "");
	th_reply_free(&rep);
}

/* ---- idempotency keys ---------------------------------------------------- */

static void test_same_key_same_request(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result r1, r2, r3;
	cueq_push_opts o = { .key = "order-1001" };

	push_ok(c, "iq", "sync order 1001", &o, false, &r1);
	push_ok(c, "iq", "sync order 1001", &o, true, &r2);
	assert_string_equal(r2.execution_id, r1.execution_id);
	assert_string_equal(r2.cue_id, r1.cue_id);
	assert_int_equal(r2.state, r1.state);
	assert_int_equal(r2.run_at_ms, r1.run_at_ms);
	expect_total(b, "iq", 1);

	/* Every option set, the same twice: still one. */
	cueq_push_opts full = { .key = "order-1002", .priority = 7, .max_attempts = 3,
				.lease_ms = 5000, .delay_ms = 60000 };
	push_ok(c, "iq", "sync order 1002", &full, false, &r1);
	assert_int_equal(r1.state, CUEQ_SCHEDULED);
	push_ok(c, "iq", "sync order 1002", &full, true, &r3);
	assert_string_equal(r3.execution_id, r1.execution_id);
	assert_int_equal(r3.state, CUEQ_SCHEDULED);
	expect_total(b, "iq", 2);

	/* The key remembers the original answer after the execution finished. */
	o.key = "order-1001";
	cueq_job *j = claim(c, "iq", r2.execution_id);
	assert_int_equal(cueq_ack(c, cueq_job_id(j), cueq_job_token(j), "done"), CUEQ_OK);
	cueq_job_free(j);
	push_ok(c, "iq", "sync order 1001", &o, true, &r3);
	assert_string_equal(r3.execution_id, r2.execution_id);
	expect_total(b, "iq", 2);
	th_counts cnt;
	total(b, "iq", &cnt);
	assert_int_equal(cnt.succeeded, 1);
	assert_int_equal(cnt.ready, 0);
	cueq_close(c);
}

static void test_key_mismatch(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result r1, r;
	cueq_push_opts o = { .key = "k-mismatch" };

	push_ok(c, "mq", "payload A", &o, false, &r1);
	push_refused(c, "mq", "payload B", &o, CUEQ_ERR_IDEMPOTENCY_MISMATCH, &r);
	expect_says("(payload differs)");
	expect_total(b, "mq", 1);

	cueq_push_opts pri = o;
	pri.priority = 5;
	push_refused(c, "mq", "payload A", &pri, CUEQ_ERR_IDEMPOTENCY_MISMATCH, &r);
	expect_says("(priority differs)");
	push_refused(c, "mq", "payload B", &pri, CUEQ_ERR_IDEMPOTENCY_MISMATCH, &r);
	expect_says("(payload and priority differ)");
	cueq_push_opts att = o;
	att.max_attempts = 2;
	push_refused(c, "mq", "payload A", &att, CUEQ_ERR_IDEMPOTENCY_MISMATCH, &r);
	expect_says("(max_attempts differs)");
	expect_says("all its options");
	cueq_push_opts lease = o;
	lease.lease_ms = 4000;
	push_refused(c, "mq", "payload A", &lease, CUEQ_ERR_IDEMPOTENCY_MISMATCH, &r);
	cueq_push_opts uniq = o;
	uniq.unique = "u-other";
	push_refused(c, "mq", "payload A", &uniq, CUEQ_ERR_IDEMPOTENCY_MISMATCH, &r);
	expect_total(b, "mq", 1);

	/* A refused push did not take or change the key. */
	push_ok(c, "mq", "payload A", &o, true, &r);
	assert_string_equal(r.execution_id, r1.execution_id);
	expect_total(b, "mq", 1);
	/* And the unique key of the refused push was not taken either. */
	cueq_push_opts u = { .unique = "u-other" };
	push_ok(c, "mq", "free unique", &u, false, &r);
	expect_total(b, "mq", 2);
	cueq_close(c);
}

static void test_keys_survive_restarts(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result ra, rb, ru, r;
	cueq_push_opts a = { .key = "survive-graceful" }, k = { .key = "survive-kill9" };
	cueq_push_opts u = { .unique = "survive-unique" };
	int status = 0;

	push_ok(c, "sq", "graceful", &a, false, &ra);
	cueq_close(c);
	assert_int_equal(th_broker_stop(b, 15000, &status), 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("cueqd did not exit 0 on SIGTERM (status 0x%x)", status);
	assert_int_equal(th_broker_restart(b), 0);
	reconnect_after(b, &c);
	push_ok(c, "sq", "graceful", &a, true, &r);
	assert_string_equal(r.execution_id, ra.execution_id);
	push_refused(c, "sq", "graceful but changed", &a, CUEQ_ERR_IDEMPOTENCY_MISMATCH, &r);
	expect_total(b, "sq", 1);

	push_ok(c, "sq", "killed", &k, false, &rb);
	push_ok(c, "sq", "unique holder", &u, false, &ru);
	cueq_close(c);
	assert_int_equal(th_broker_kill9(b), 0);
	assert_int_equal(th_broker_restart(b), 0);
	reconnect_after(b, &c);
	push_ok(c, "sq", "killed", &k, true, &r);
	assert_string_equal(r.execution_id, rb.execution_id);
	push_ok(c, "sq", "graceful", &a, true, &r);
	assert_string_equal(r.execution_id, ra.execution_id);
	push_refused(c, "sq", "killed but changed", &k, CUEQ_ERR_IDEMPOTENCY_MISMATCH, &r);
	/* The unique key's holder is still known after the crash. */
	push_refused(c, "sq", "second holder", &u, CUEQ_ERR_CONFLICT, &r);
	expect_holder(&r, ru.execution_id);
	expect_total(b, "sq", 3);
	cueq_close(c);
}

static void test_key_ttl_expiry(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result r1, r2, r;
	cueq_push_opts o = { .key = "short-lived", .key_ttl_ms = 1000 };
	cueq_push_opts o2 = { .key = "short-lived-2", .key_ttl_ms = 1000 };
	int64_t t0 = th_now_ms(), deadline = t0 + 15000, gone_at = 0;

	push_ok(c, "tq", "first", &o, false, &r1);
	push_ok(c, "tq", "second key", &o2, false, &r2);
	/* Poll with the same request: duplicate until the key is forgotten,
	 * then a new execution.  Within 1000 ms of the first push's start it
	 * cannot have expired. */
	for (;;) {
		int rc = push(c, "tq", "first", &o, &r);
		int64_t t = th_now_ms();
		if (rc != CUEQ_OK)
			fail_msg("push with a key of 1 s: %s (%s)", cueq_strerror(rc), cueq_last_error());
		if (!r.duplicate) {
			if (t - t0 < 1000)
				fail_msg("a key with key_ttl_ms 1000 was forgotten after %lld ms",
					 (long long)(t - t0));
			assert_string_not_equal(r.execution_id, r1.execution_id);
			gone_at = t;
			break;
		}
		assert_string_equal(r.execution_id, r1.execution_id);
		if (t > deadline)
			fail_msg("a key with key_ttl_ms 1000 still answered duplicate after %lld ms",
				 (long long)(t - t0));
		th_sleep_ms(100);
	}
	fprintf(stderr, "key with key_ttl_ms 1000 forgotten within %lld ms\n",
		(long long)(gone_at - t0));
	expect_total(b, "tq", 3);
	/* The key now stands for the new execution, with a fresh lifetime. */
	cueq_push_result r3;
	push_ok(c, "tq", "first", &o, true, &r3);
	assert_string_equal(r3.execution_id, r.execution_id);

	/* An expired key may be used for another request. */
	for (;;) {
		int rc = push(c, "tq", "another request", &o2, &r);
		int64_t t = th_now_ms();
		if (rc == CUEQ_OK) {
			assert_false(r.duplicate);
			assert_string_not_equal(r.execution_id, r2.execution_id);
			break;
		}
		if (rc != CUEQ_ERR_IDEMPOTENCY_MISMATCH)
			fail_msg("push with an old key: %s (%s)", cueq_strerror(rc), cueq_last_error());
		if (t > deadline)
			fail_msg("key_ttl_ms 1000: still a mismatch after %lld ms", (long long)(t - t0));
		th_sleep_ms(100);
	}
	expect_total(b, "tq", 4);
	cueq_close(c);
}

static void test_key_bounds(void **state)
{
	th_broker *b = *state;
	th_raw r;
	th_req q;
	char long_key[CUEQ_MAX_KEY + 2];
	char max_key[CUEQ_MAX_KEY + 1];
	th_reply rep;
	char id[PROTO_ID_LEN + 1];
	bool dup = true;

	memset(long_key, 'k', CUEQ_MAX_KEY + 1);
	long_key[CUEQ_MAX_KEY + 1] = '\0';
	memset(max_key, 'k', CUEQ_MAX_KEY);
	max_key[CUEQ_MAX_KEY] = '\0';
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);

	raw_push_req(&q, &(raw_job){ .queue = "bq", .payload = "x", .key = "k", .key_ttl_ms = 999 }, 1);
	raw_refused(&r, &q, "push with key_ttl_ms 999", "BAD_REQUEST", NULL);
	raw_push_req(&q, &(raw_job){ .queue = "bq", .payload = "x", .key = "k", .key_ttl_ms = 2592000001ull }, 1);
	raw_refused(&r, &q, "push with key_ttl_ms over 30 days", "BAD_REQUEST", NULL);
	raw_push_req(&q, &(raw_job){ .queue = "bq", .payload = "x", .key = "" }, 1);
	raw_refused(&r, &q, "push with an empty key", "BAD_REQUEST", NULL);
	raw_push_req(&q, &(raw_job){ .queue = "bq", .payload = "x", .key = long_key }, 1);
	raw_refused(&r, &q, "push with a 257-byte key", "BAD_REQUEST", "TOO_LARGE");
	raw_push_req(&q, &(raw_job){ .queue = "bq", .payload = "x", .unique = "" }, 1);
	raw_refused(&r, &q, "push with an empty unique key", "BAD_REQUEST", NULL);
	raw_push_req(&q, &(raw_job){ .queue = "bq", .payload = "x", .unique = long_key }, 1);
	raw_refused(&r, &q, "push with a 257-byte unique key", "BAD_REQUEST", "TOO_LARGE");

	/* A key of the wrong type. */
	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2);
	proto_kv_cstr(th_pk(&q), "queue", "bq");
	proto_kv_uint(th_pk(&q), "key", 42);
	raw_refused(&r, &q, "push with a key that is an int", "BAD_REQUEST", NULL);

	/* A malformed job refuses the whole request: the good one is not created. */
	raw_job two[] = { { .queue = "bq", .payload = "good", .key = "fine" },
			  { .queue = "bq", .payload = "bad", .key = "" } };
	raw_push_req(&q, two, 2);
	raw_refused(&r, &q, "push of a good job and one with an empty key", "BAD_REQUEST", NULL);
	expect_total(b, "bq", 0);

	/* 256 th_bytes and the bounds of key_ttl_ms are fine. */
	raw_job ok[] = { { .queue = "bq", .payload = "x", .key = max_key, .unique = max_key },
			 { .queue = "bq", .payload = "y", .key = "ttl-min", .key_ttl_ms = 1000 },
			 { .queue = "bq", .payload = "z", .key = "ttl-max", .key_ttl_ms = 2592000000ull } };
	raw_push_req(&q, ok, 3);
	if (th_req_call(&r, &q, &rep) != 0 || !rep.ok)
		fail_msg("push of keys at their limits refused: %s %s", rep.err, rep.msg);
	for (size_t i = 0; i < 3; i++) {
		raw_result(&rep, i, id, &dup);
		assert_false(dup);
	}
	th_reply_free(&rep);
	expect_total(b, "bq", 3);
	th_raw_close(&r);
}

static void test_keys_per_queue(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result r1, r2, r3, r;
	cueq_push_opts o = { .key = "shared-key" };

	push_ok(c, "pq1", "x", &o, false, &r1);
	push_ok(c, "pq2", "x", &o, false, &r2);
	assert_string_not_equal(r1.execution_id, r2.execution_id);
	/* Another request under the key in a third queue is no mismatch. */
	push_ok(c, "pq3", "something else", &o, false, &r3);
	push_ok(c, "pq1", "x", &o, true, &r);
	assert_string_equal(r.execution_id, r1.execution_id);
	push_ok(c, "pq2", "x", &o, true, &r);
	assert_string_equal(r.execution_id, r2.execution_id);
	push_refused(c, "pq3", "x", &o, CUEQ_ERR_IDEMPOTENCY_MISMATCH, &r);
	expect_total(b, "pq1", 1);
	expect_total(b, "pq2", 1);
	expect_total(b, "pq3", 1);
	cueq_close(c);
}

static void test_batch_partial(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result r1, res[4];
	cueq_push_opts k1 = { .key = "b-k1" };
	char first[3][CUEQ_ID_SIZE];

	push_ok(c, "bpq", "a", &k1, false, &r1);
	cueq_job_spec jobs[4] = {
		{ .queue = "bpq", .payload = "b", .payload_len = 1, .opts = { .key = "b-k2" } },
		{ .queue = "bpq", .payload = "DIFFERENT", .payload_len = 9, .opts = { .key = "b-k1" } },
		{ .queue = "bpq", .payload = "c", .payload_len = 1, .opts = { .key = "b-k3" } },
		{ .queue = "bpq", .payload = "a", .payload_len = 1, .opts = { .key = "b-k1" } },
	};
	memset(res, 0, sizeof(res));
	int rc = cueq_push_many(c, jobs, 4, res);
	if (rc != CUEQ_OK)
		fail_msg("push_many with one mismatching job failed as a whole: %s (%s)",
			 cueq_strerror(rc), cueq_last_error());
	assert_int_equal(res[0].err, CUEQ_OK);
	assert_false(res[0].duplicate);
	assert_int_equal(res[1].err, CUEQ_ERR_IDEMPOTENCY_MISMATCH);
	assert_int_equal(res[2].err, CUEQ_OK);
	assert_false(res[2].duplicate);
	assert_int_equal(res[3].err, CUEQ_OK);
	assert_true(res[3].duplicate);
	assert_string_equal(res[3].execution_id, r1.execution_id);
	assert_string_not_equal(res[0].execution_id, res[2].execution_id);
	strcpy(first[0], res[0].execution_id);
	strcpy(first[2], res[2].execution_id);
	expect_total(b, "bpq", 3);

	/* The whole batch again (a new request): duplicates and the same mismatch. */
	memset(res, 0, sizeof(res));
	assert_int_equal(cueq_push_many(c, jobs, 3, res), CUEQ_OK);
	assert_int_equal(res[0].err, CUEQ_OK);
	assert_true(res[0].duplicate);
	assert_string_equal(res[0].execution_id, first[0]);
	assert_int_equal(res[1].err, CUEQ_ERR_IDEMPOTENCY_MISMATCH);
	assert_int_equal(res[2].err, CUEQ_OK);
	assert_true(res[2].duplicate);
	assert_string_equal(res[2].execution_id, first[2]);
	expect_total(b, "bpq", 3);

	/* One key twice in one batch: the second is the first's duplicate... */
	cueq_job_spec twice[2] = {
		{ .queue = "bpq", .payload = "x", .payload_len = 1, .opts = { .key = "b-k4" } },
		{ .queue = "bpq", .payload = "x", .payload_len = 1, .opts = { .key = "b-k4" } },
	};
	memset(res, 0, sizeof(res));
	assert_int_equal(cueq_push_many(c, twice, 2, res), CUEQ_OK);
	assert_int_equal(res[0].err, CUEQ_OK);
	assert_int_equal(res[1].err, CUEQ_OK);
	assert_false(res[0].duplicate);
	if (!res[1].duplicate || strcmp(res[0].execution_id, res[1].execution_id) != 0)
		fail_msg("one key twice in one batch made %s and %s (duplicate %d)",
			 res[0].execution_id, res[1].execution_id, res[1].duplicate);
	expect_total(b, "bpq", 4);
	/* ...or, with another body, a mismatch. */
	cueq_job_spec clash[2] = {
		{ .queue = "bpq", .payload = "x", .payload_len = 1, .opts = { .key = "b-k5" } },
		{ .queue = "bpq", .payload = "y", .payload_len = 1, .opts = { .key = "b-k5" } },
	};
	memset(res, 0, sizeof(res));
	assert_int_equal(cueq_push_many(c, clash, 2, res), CUEQ_OK);
	assert_int_equal(res[0].err, CUEQ_OK);
	assert_int_equal(res[1].err, CUEQ_ERR_IDEMPOTENCY_MISMATCH);
	expect_total(b, "bpq", 5);
	cueq_close(c);
}

/* ---- concurrent producers with one key ----------------------------------- */

#define N_THREADS 8
#define N_ROUNDS 5

struct racer {
	th_broker *b;
	pthread_barrier_t *bar;
	int idx;
	int rc[N_ROUNDS];
	bool dup[N_ROUNDS];
	char id[N_ROUNDS][CUEQ_ID_SIZE];
	char why[256];
};

static void *race(void *arg)
{
	struct racer *x = arg;
	cueq_client *c = NULL;
	int rc = cueq_connect(x->b->url, NULL, &c);

	if (rc != CUEQ_OK)
		snprintf(x->why, sizeof(x->why), "connect: %s", cueq_last_error());
	for (int i = 0; i < N_ROUNDS; i++) {
		char key[32];
		cueq_push_opts o = { .key = key };
		cueq_push_result r;

		snprintf(key, sizeof(key), "race-%d", i);
		pthread_barrier_wait(x->bar);
		if (c == NULL) {
			x->rc[i] = CUEQ_ERR_UNREACHABLE;
			continue;
		}
		memset(&r, 0, sizeof(r));
		x->rc[i] = cueq_push(c, "raceq", "the same job", 12, &o, &r);
		x->dup[i] = r.duplicate;
		strcpy(x->id[i], r.execution_id);
		if (x->rc[i] != CUEQ_OK && x->why[0] == '\0')
			snprintf(x->why, sizeof(x->why), "%s", cueq_last_error());
	}
	if (c != NULL)
		cueq_close(c);
	return NULL;
}

static void test_concurrent_same_key(void **state)
{
	th_broker *b = *state;
	pthread_barrier_t bar;
	struct racer x[N_THREADS];
	pthread_t t[N_THREADS];

	pthread_barrier_init(&bar, NULL, N_THREADS);
	memset(x, 0, sizeof(x));
	for (int i = 0; i < N_THREADS; i++) {
		x[i].b = b, x[i].bar = &bar, x[i].idx = i;
		assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
	}
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);

	for (int round = 0; round < N_ROUNDS; round++) {
		int fresh = 0;
		for (int i = 0; i < N_THREADS; i++) {
			if (x[i].rc[round] != CUEQ_OK)
				fail_msg("round %d thread %d: %s (%s)", round, i,
					 cueq_strerror(x[i].rc[round]), x[i].why);
			if (!x[i].dup[round])
				fresh++;
			if (strcmp(x[i].id[round], x[0].id[round]) != 0)
				fail_msg("round %d: %d producers with one key got different executions "
					 "%s and %s",
					 round, N_THREADS, x[0].id[round], x[i].id[round]);
		}
		if (fresh != 1)
			fail_msg("round %d: %d of %d pushes with one key said duplicate false; "
				 "expected exactly 1",
				 round, fresh, N_THREADS);
	}
	expect_total(b, "raceq", N_ROUNDS);
}

/* ---- the SDK's own keys, and retries ------------------------------------ */

static void test_sdk_keys_and_retry(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result r1, r2;
	th_raw r;
	th_reply rep;
	char id1[PROTO_ID_LEN + 1], id2[PROTO_ID_LEN + 1], id3[PROTO_ID_LEN + 1];
	bool dup = true;

	/* Without a key, two pushes of the same job are two jobs. */
	push_ok(c, "gq", "same job", NULL, false, &r1);
	push_ok(c, "gq", "same job", NULL, false, &r2);
	assert_string_not_equal(r1.execution_id, r2.execution_id);
	cueq_push_opts none = { .priority = 1 };
	push_ok(c, "gq", "same job", &none, false, &r1);
	push_ok(c, "gq", "same job", &none, false, &r2);
	assert_string_not_equal(r1.execution_id, r2.execution_id);
	expect_total(b, "gq", 4);
	cueq_close(c);

	/* A retried request carries the same key with a new request ID (as
	 * after a broker restart that forgot request IDs): one execution. */
	raw_job j = { .queue = "rq", .payload = "retried", .key = "sdk-0123456789abcdef" };
	th_req q;
	raw_push_req(&q, &j, 1);
	th_bytes first = th_req_keep(&q);
	raw_push_req(&q, &j, 1);
	th_bytes retry = th_req_keep(&q);
	assert_true(first.n != retry.n || memcmp(first.p, retry.p, first.n) != 0);

	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	assert_int_equal(th_raw_call(&r, first.p, first.n, &rep), 0);
	if (!rep.ok)
		fail_msg("push refused: %s %s", rep.err, rep.msg);
	raw_result(&rep, 0, id1, &dup);
	assert_false(dup);
	th_reply_free(&rep);
	assert_int_equal(th_raw_call(&r, retry.p, retry.n, &rep), 0);
	if (!rep.ok)
		fail_msg("retried push refused: %s %s", rep.err, rep.msg);
	raw_result(&rep, 0, id2, &dup);
	assert_true(dup);
	assert_string_equal(id1, id2);
	th_reply_free(&rep);
	/* The very same th_bytes again: the remembered first answer. */
	assert_int_equal(th_raw_call(&r, first.p, first.n, &rep), 0);
	assert_true(rep.ok);
	raw_result(&rep, 0, id3, &dup);
	assert_string_equal(id1, id3);
	assert_false(dup);
	th_reply_free(&rep);
	expect_total(b, "rq", 1);
	free(first.p);
	free(retry.p);
	th_raw_close(&r);
}

/* ---- unique keys ---------------------------------------------------------- */

static void test_unique_conflict(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result r1, r2, r3, r;
	cueq_push_opts u = { .unique = "nightly-report" };
	cueq_job *j;
	int st = -1;

	push_ok(c, "uq", "run 1", &u, false, &r1);
	/* Ready: refused with the holder. */
	push_refused(c, "uq", "run 2", &u, CUEQ_ERR_CONFLICT, &r);
	assert_int_equal(r.err, CUEQ_ERR_CONFLICT);
	expect_holder(&r, r1.execution_id);
	/* The same payload is no excuse. */
	push_refused(c, "uq", "run 1", &u, CUEQ_ERR_CONFLICT, &r);
	expect_holder(&r, r1.execution_id);
	expect_total(b, "uq", 1);

	/* Leased. */
	j = claim(c, "uq", r1.execution_id);
	push_refused(c, "uq", "run 2", &u, CUEQ_ERR_CONFLICT, &r);
	expect_holder(&r, r1.execution_id);
	/* Failed but to be retried: still unfinished. */
	assert_int_equal(cueq_nack(c, cueq_job_id(j), cueq_job_token(j), "flaky", 0, false, &st),
			 CUEQ_OK);
	assert_true(st == CUEQ_READY || st == CUEQ_SCHEDULED);
	cueq_job_free(j);
	push_refused(c, "uq", "run 2", &u, CUEQ_ERR_CONFLICT, &r);
	expect_holder(&r, r1.execution_id);
	/* Another queue has its own unique keys. */
	push_ok(c, "uq-other", "run 2", &u, false, &r);
	expect_total(b, "uq", 1);

	/* Succeeded: free. */
	j = claim(c, "uq", r1.execution_id);
	assert_int_equal(cueq_ack(c, cueq_job_id(j), cueq_job_token(j), NULL), CUEQ_OK);
	cueq_job_free(j);
	push_ok(c, "uq", "run 2", &u, false, &r2);
	assert_string_not_equal(r2.execution_id, r1.execution_id);
	push_refused(c, "uq", "run 3", &u, CUEQ_ERR_CONFLICT, &r);
	expect_holder(&r, r2.execution_id);

	/* Dead (terminal nack): free. */
	j = claim(c, "uq", r2.execution_id);
	assert_int_equal(cueq_nack(c, cueq_job_id(j), cueq_job_token(j), "fatal", -1, true, &st),
			 CUEQ_OK);
	assert_int_equal(st, CUEQ_DEAD);
	cueq_job_free(j);
	push_ok(c, "uq", "run 3", &u, false, &r3);
	assert_string_not_equal(r3.execution_id, r2.execution_id);
	expect_total(b, "uq", 3);

	/* Dead because its only lease expired: free. */
	cueq_push_opts once = { .unique = "expires", .max_expiries = 1, .lease_ms = 200 };
	push_ok(c, "uq-exp", "will expire", &once, false, &r1);
	j = claim(c, "uq-exp", r1.execution_id);
	cueq_job_free(j);
	bool took = false;
	for (int64_t deadline = th_now_ms() + 5000;; th_sleep_ms(25)) {
		cueq_execution *e = NULL;
		assert_int_equal(cueq_get(c, r1.execution_id, &e), CUEQ_OK);
		int es = e->state;
		cueq_execution_free(e);
		if (es == CUEQ_DEAD)
			break;
		if (th_now_ms() > deadline)
			fail_msg("%s is %s 5 s after its one lease of 200 ms", r1.execution_id,
				 cueq_state_name(es));
		if (es != CUEQ_LEASED)
			fail_msg("%s became %s, expected dead", r1.execution_id, cueq_state_name(es));
		int prc = push(c, "uq-exp", "too soon", &(cueq_push_opts){ .unique = "expires" }, &r);
		if (prc == CUEQ_OK) {
			/* the lease ran out between the get and this push (a slow
			 * machine): then the holder is dead, and this push took the key */
			assert_int_equal(cueq_get(c, r1.execution_id, &e), CUEQ_OK);
			es = e->state;
			cueq_execution_free(e);
			if (es != CUEQ_DEAD)
				fail_msg("a push took unique key 'expires' while %s is %s", r1.execution_id,
					 cueq_state_name(es));
			took = true;
			break;
		}
		if (prc != CUEQ_ERR_CONFLICT)
			fail_msg("push of 'too soon' while the holder is leased: %s (%s), expected CONFLICT",
				 cueq_strerror(prc), cueq_last_error());
	}
	if (!took)
		push_ok(c, "uq-exp", "after the expiry", &(cueq_push_opts){ .unique = "expires" }, false,
			&r);
	expect_total(b, "uq-exp", 2);

	/* Scheduled holds the key too. */
	cueq_push_opts later = { .unique = "tomorrow", .delay_ms = 3600000 };
	push_ok(c, "uq", "later", &later, false, &r1);
	assert_int_equal(r1.state, CUEQ_SCHEDULED);
	push_refused(c, "uq", "now", &(cueq_push_opts){ .unique = "tomorrow" }, CUEQ_ERR_CONFLICT, &r);
	expect_holder(&r, r1.execution_id);
	expect_total(b, "uq", 4);
	cueq_close(c);
}

static void test_unique_with_keys_and_batches(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_result r1, r, res[2];
	cueq_push_opts ku = { .key = "ku-1", .unique = "job-u" };
	cueq_push_opts k2u = { .key = "ku-2", .unique = "job-u" };

	/* The producer's retry of a push with a unique key is a duplicate,
	 * not a conflict with itself. */
	push_ok(c, "kuq", "once", &ku, false, &r1);
	push_ok(c, "kuq", "once", &ku, true, &r);
	assert_string_equal(r.execution_id, r1.execution_id);
	/* Another key with the unique: conflict, and the key is not taken... */
	push_refused(c, "kuq", "twice", &k2u, CUEQ_ERR_CONFLICT, &r);
	expect_holder(&r, r1.execution_id);
	push_refused(c, "kuq", "twice", &k2u, CUEQ_ERR_CONFLICT, &r);
	expect_holder(&r, r1.execution_id);
	expect_total(b, "kuq", 1);
	/* ...so once the holder is done, the same push goes through. */
	cueq_job *j = claim(c, "kuq", r1.execution_id);
	assert_int_equal(cueq_ack(c, cueq_job_id(j), cueq_job_token(j), NULL), CUEQ_OK);
	cueq_job_free(j);
	push_ok(c, "kuq", "twice", &k2u, false, &r);
	assert_string_not_equal(r.execution_id, r1.execution_id);
	/* The first push replayed now is still its own duplicate, not a
	 * conflict with the new holder. */
	cueq_push_result again;
	push_ok(c, "kuq", "once", &ku, true, &again);
	assert_string_equal(again.execution_id, r1.execution_id);
	expect_total(b, "kuq", 2);

	/* One unique twice in one batch: the second conflicts with the first. */
	cueq_job_spec jobs[2] = {
		{ .queue = "kuq", .payload = "a", .payload_len = 1, .opts = { .unique = "batch-u" } },
		{ .queue = "kuq", .payload = "b", .payload_len = 1, .opts = { .unique = "batch-u" } },
	};
	memset(res, 0, sizeof(res));
	assert_int_equal(cueq_push_many(c, jobs, 2, res), CUEQ_OK);
	assert_int_equal(res[0].err, CUEQ_OK);
	assert_int_equal(res[1].err, CUEQ_ERR_CONFLICT);
	expect_holder(&res[1], res[0].execution_id);
	expect_total(b, "kuq", 3);

	/* Over the raw protocol the conflict names its holder. */
	th_raw rr;
	th_req q;
	th_reply rep;
	char holder[PROTO_ID_LEN + 1], err[32];
	bool ok = true;
	assert_int_equal(th_raw_open(&rr, b->url, 10000), 0);
	raw_push_req(&q, &(raw_job){ .queue = "kuq", .payload = "c", .unique = "batch-u" }, 1);
	assert_int_equal(th_req_call(&rr, &q, &rep), 0);
	if (!rep.ok)
		fail_msg("a push with one conflicting job was refused as a whole: %s %s", rep.err,
			 rep.msg);
	const msgpack_object *m = th_item(rep.root, "results", 0);
	assert_non_null(m);
	assert_true(th_bool(m, "ok", &ok));
	assert_false(ok);
	assert_true(th_str(m, "err", err, sizeof(err)));
	assert_string_equal(err, "CONFLICT");
	if (!th_str(m, "holder", holder, sizeof(holder)))
		fail_msg("CONFLICT result without 'holder'");
	assert_string_equal(holder, res[0].execution_id);
	th_reply_free(&rep);
	th_raw_close(&rr);
	expect_total(b, "kuq", 3);
	cueq_close(c);
}

/* ---- the command line ------------------------------------------------------ */

#define CLI(p, code, ...) TH_CLI((p), NULL, (code), __VA_ARGS__)

/* A JSON boolean field: "key": true|false. */
static bool json_bool(const char *json, const char *key, bool *out)
{
	char pat[64];
	const char *v;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	if ((v = strstr(json, pat)) == NULL)
		return false;
	v += strlen(pat);
	while (*v == ' ' || *v == ':')
		v++;
	if (strncmp(v, "true", 4) == 0)
		return *out = true, true;
	if (strncmp(v, "false", 5) == 0)
		return *out = false, true;
	return false;
}

static void test_cli_keys(void **state)
{
	th_broker *b = *state;
	th_proc p;
	char id1[64], id2[64], line[64];
	bool dup = true;

	CLI(&p, 0, "push", "cq", "hello", "--key", "cli-k", "--json", "--url", b->url);
	if (!th_json_str(p.out, "execution_id", id1, sizeof(id1)) || !json_bool(p.out, "duplicate", &dup))
		fail_msg("push --key --json lacks execution_id or a boolean duplicate: %s", p.out);
	assert_false(dup);
	th_proc_free(&p);
	CLI(&p, 0, "push", "cq", "hello", "--key", "cli-k", "--json", "--url", b->url);
	if (!th_json_str(p.out, "execution_id", id2, sizeof(id2)) || !json_bool(p.out, "duplicate", &dup))
		fail_msg("push --key --json lacks execution_id or a boolean duplicate: %s", p.out);
	assert_true(dup);
	assert_string_equal(id2, id1);
	th_proc_free(&p);
	/* Plain output: the original ID. */
	CLI(&p, 0, "push", "cq", "hello", "--key", "cli-k", "--url", b->url);
	th_first_line(&p, line, sizeof(line));
	assert_string_equal(line, id1);
	th_proc_free(&p);
	/* Another request under the key: exit 4 with a sentence. */
	CLI(&p, 4, "push", "cq", "goodbye", "--key", "cli-k", "--url", b->url);
	assert_true(p.err_len > 0);
	th_proc_free(&p);
	CLI(&p, 4, "push", "cq", "hello", "--key", "cli-k", "--priority", "3", "--url", b->url);
	th_proc_free(&p);
	expect_total(b, "cq", 1);

	/* Unique: the conflict names the holder. */
	CLI(&p, 0, "push", "cq", "report", "--unique", "cli-u", "--url", b->url);
	th_first_line(&p, id1, sizeof(id1));
	assert_int_equal(strlen(id1), PROTO_ID_LEN);
	th_proc_free(&p);
	CLI(&p, 4, "push", "cq", "report again", "--unique", "cli-u", "--url", b->url);
	if (strstr(p.err, id1) == NULL)
		fail_msg("the unique-key conflict does not name the holder %s: %s", id1, p.err);
	if (strchr(p.err, '\n') != strrchr(p.err, '\n'))
		fail_msg("the error is more than one line: %s", p.err);
	th_proc_free(&p);
	expect_total(b, "cq", 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_same_key_same_request, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_key_mismatch, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_keys_survive_restarts, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_key_ttl_expiry, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_key_bounds, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_keys_per_queue, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_batch_partial, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_concurrent_same_key, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_sdk_keys_and_retry, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_unique_conflict, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_unique_with_keys_and_batches, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_keys, th_fixture_start, th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
