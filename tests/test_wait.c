/*
 * test_wait.c - waiting for an outcome, against a real cueqd: cueq_wait
 * parked before the outcome returns on ack (with the result), on a
 * terminal nack (dead, with the error), on cancel, and on a lease that
 * ran out its last expiry; it times out with the state as it is; waits
 * count against the parked-request bounds; a push repeated with its key
 * answers the execution's state now and its result; an outcome a wait
 * reported survives kill -9; and the CLI's `cueq wait` and `push --wait`
 * print the outcome with its exit status (0, 7, 8, 9, 5).
 *
 * Waiters run in threads of their own, each with its own client; a wait
 * is known to be parked when the broker's answer has not come after a
 * pause, which the test checks rather than assumes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void push(cueq_client *c, const char *queue, const cueq_push_opts *o, char id[CUEQ_ID_SIZE])
{
	cueq_push_result r;
	int rc = cueq_push(c, queue, "job", 3, o, &r);
	if (rc != CUEQ_OK)
		fail_msg("push to %s: %s (%s)", queue, cueq_strerror(rc), cueq_last_error());
	memcpy(id, r.execution_id, CUEQ_ID_SIZE);
}

static cueq_job *claim(cueq_client *c, const char *queue, const char *want)
{
	cueq_job *j = NULL;
	size_t n = 0;
	int rc = cueq_claim(c, queue, 1, 0, 5000, &j, &n);
	if (rc != CUEQ_OK || n != 1)
		fail_msg("claim on %s: %s (%s)", queue, cueq_strerror(rc), cueq_last_error());
	assert_string_equal(cueq_job_id(j), want);
	return j;
}

/* A wait in a thread of its own, on its own client. */
struct waiter {
	th_broker *b;
	char id[CUEQ_ID_SIZE];
	int64_t timeout_ms;
	pthread_t th;
	atomic_bool done;
	int rc;
	int state;
	char result[64], error[64];
	int64_t took_ms;
};

static void *wait_main(void *arg)
{
	struct waiter *w = arg;
	cueq_client *c = NULL;
	cueq_execution *e = NULL;
	int64_t t0 = mono_ms();

	if ((w->rc = cueq_connect(w->b->url, NULL, &c)) == CUEQ_OK) {
		w->rc = cueq_wait(c, w->id, w->timeout_ms, &e);
		if (e != NULL) {
			w->state = e->state;
			snprintf(w->result, sizeof(w->result), "%s", e->result ? e->result : "");
			snprintf(w->error, sizeof(w->error), "%s", e->error ? e->error : "");
		}
		cueq_execution_free(e);
		cueq_close(c);
	}
	w->took_ms = mono_ms() - t0;
	atomic_store(&w->done, true);
	return NULL;
}

static void waiter_start(struct waiter *w, th_broker *b, const char *id, int64_t timeout_ms)
{
	memset(w, 0, sizeof(*w));
	w->b = b;
	memcpy(w->id, id, CUEQ_ID_SIZE);
	w->timeout_ms = timeout_ms;
	atomic_init(&w->done, false);
	assert_int_equal(pthread_create(&w->th, NULL, wait_main, w), 0);
	usleep(300 * 1000);
	/* parked: no outcome yet, so no answer yet */
	if (atomic_load(&w->done))
		fail_msg("the wait for %s returned before any outcome: %s", id, cueq_strerror(w->rc));
}

static void waiter_join(struct waiter *w)
{
	assert_int_equal(pthread_join(w->th, NULL), 0);
}

static void test_wait_returns_each_outcome(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char a[CUEQ_ID_SIZE], d[CUEQ_ID_SIZE], x[CUEQ_ID_SIZE];
	struct waiter wa, wd, wx;

	push(c, "w", NULL, a);
	push(c, "w", NULL, d);
	push(c, "w", NULL, x);
	waiter_start(&wa, b, a, -1);
	waiter_start(&wd, b, d, 20000);
	waiter_start(&wx, b, x, 20000);

	cueq_job *j = claim(c, "w", a);
	assert_int_equal(cueq_ack(c, a, cueq_job_token(j), "sent-7"), CUEQ_OK);
	cueq_job_free(j);
	waiter_join(&wa);
	assert_int_equal(wa.rc, CUEQ_OK);
	assert_int_equal(wa.state, CUEQ_SUCCEEDED);
	assert_string_equal(wa.result, "sent-7");

	j = claim(c, "w", d);
	int st = -1;
	assert_int_equal(cueq_nack(c, d, cueq_job_token(j), "card declined", -1, true, &st), CUEQ_OK);
	cueq_job_free(j);
	waiter_join(&wd);
	assert_int_equal(wd.rc, CUEQ_OK);
	assert_int_equal(wd.state, CUEQ_DEAD);
	assert_string_equal(wd.error, "card declined");

	int kind = 0, xs = 0;
	assert_int_equal(cueq_cancel(c, x, &kind, &xs), CUEQ_OK);
	waiter_join(&wx);
	assert_int_equal(wx.rc, CUEQ_OK);
	assert_int_equal(wx.state, CUEQ_CANCELLED);

	/* an execution with its outcome already: answered at once */
	cueq_execution *e = NULL;
	int64_t t0 = mono_ms();
	assert_int_equal(cueq_wait(c, a, 10000, &e), CUEQ_OK);
	assert_true(mono_ms() - t0 < 5000);
	assert_int_equal(e->state, CUEQ_SUCCEEDED);
	assert_null(e->payload);
	cueq_execution_free(e);
	cueq_close(c);
}

static void test_wait_on_expiry_to_dead(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_opts o = { .lease_ms = 300, .max_expiries = 1 };
	char id[CUEQ_ID_SIZE];
	struct waiter w;

	push(c, "expiring", &o, id);
	waiter_start(&w, b, id, 20000);
	cueq_job *j = claim(c, "expiring", id);
	cueq_job_free(j); /* the lease runs out: its one expiry makes it dead */
	waiter_join(&w);
	assert_int_equal(w.rc, CUEQ_OK);
	assert_int_equal(w.state, CUEQ_DEAD);
	cueq_close(c);
}

static void test_wait_times_out(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE];
	cueq_execution *e = NULL;

	push(c, "slow", NULL, id);
	int64_t t0 = mono_ms();
	assert_int_equal(cueq_wait(c, id, 700, &e), CUEQ_ERR_TIMEOUT);
	int64_t took = mono_ms() - t0;
	assert_true(took >= 650);
	assert_non_null(e);
	assert_int_equal(e->state, CUEQ_READY);
	assert_non_null(strstr(cueq_last_error(), "no outcome within"));
	cueq_execution_free(e);
	/* 0: the state now, at once */
	assert_int_equal(cueq_wait(c, id, 0, &e), CUEQ_ERR_TIMEOUT);
	assert_int_equal(e->state, CUEQ_READY);
	cueq_execution_free(e);
	assert_int_equal(cueq_wait(c, "0123456789abcdef", 100, &e), CUEQ_ERR_NOT_FOUND);
	assert_null(e);
	assert_int_equal(cueq_wait(c, "not-an-id", 100, &e), CUEQ_ERR_INVALID);
	assert_int_equal(cueq_wait(c, id, -2, &e), CUEQ_ERR_INVALID);
	cueq_close(c);
}

static void test_wait_for_a_cue_is_refused(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_opts o = { .every_ms = 3600000 };
	cueq_push_result r;
	cueq_execution *e = NULL;

	assert_int_equal(cueq_push(c, "hourly", "x", 1, &o, &r), CUEQ_OK);
	assert_true(r.recurring);
	assert_int_equal(cueq_wait(c, r.cue_id, 100, &e), CUEQ_ERR_BAD_REQUEST);
	assert_non_null(strstr(cueq_last_error(), "recurring cue"));
	cueq_close(c);
}

static void test_duplicate_push_tells_the_outcome(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_push_opts o = { .key = "invoice-1001" };
	cueq_push_result r;
	char id[CUEQ_ID_SIZE];

	push(c, "invoices", &o, id);
	assert_int_equal(cueq_push(c, "invoices", "job", 3, &o, &r), CUEQ_OK);
	assert_true(r.duplicate);
	assert_int_equal(r.state, CUEQ_READY);
	cueq_job *j = claim(c, "invoices", id);
	assert_int_equal(cueq_push(c, "invoices", "job", 3, &o, &r), CUEQ_OK);
	assert_int_equal(r.state, CUEQ_LEASED); /* now, not as it was */
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j), "paid"), CUEQ_OK);
	cueq_job_free(j);
	assert_int_equal(cueq_push(c, "invoices", "job", 3, &o, &r), CUEQ_OK);
	assert_true(r.duplicate);
	assert_string_equal(r.execution_id, id);
	assert_int_equal(r.state, CUEQ_SUCCEEDED);

	/* the reply carries the result (the SDK's result struct has no room
	 * for it: read the raw reply) */
	th_raw raw;
	th_req q;
	th_reply rep;
	assert_int_equal(th_raw_open(&raw, b->url, 5000), 0);
	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 3);
	proto_kv_cstr(th_pk(&q), "queue", "invoices");
	proto_kv_bin(th_pk(&q), "payload", "job", 3);
	proto_kv_cstr(th_pk(&q), "key", "invoice-1001");
	assert_int_equal(th_req_call(&raw, &q, &rep), 0);
	const msgpack_object *res = proto_get(rep.root, "results");
	assert_non_null(res);
	assert_int_equal(res->type, MSGPACK_OBJECT_ARRAY);
	const msgpack_object *one = &res->via.array.ptr[0];
	char res_s[16];
	assert_true(th_str(one, "result", res_s, sizeof(res_s)));
	assert_string_equal(res_s, "paid");
	th_reply_free(&rep);
	th_raw_close(&raw);
	cueq_close(c);
}

static void flag_cb(void *arg)
{
	atomic_store((atomic_bool *)arg, true);
}

static void test_waits_are_bounded(void **state)
{
	(void)state;
	th_broker b = { 0 };
	const char *const flags[] = { "--max-parked-per-connection", "2", NULL };
	th_raw raw;
	th_req q;
	th_reply rep;

	assert_int_equal(th_broker_start(&b, flags), 0);
	cueq_client *c = th_sdk_connect(&b);
	char id[CUEQ_ID_SIZE];
	push(c, "bounded", NULL, id);
	/* two waits park on one connection (REQ contexts of one socket); the
	 * third is answered at once */
	assert_int_equal(th_raw_open(&raw, b.url, 5000), 0);
	nng_ctx ctx[2];
	nng_aio *aio[2];
	atomic_bool fired[2];
	for (int i = 0; i < 2; i++) {
		char rid[16];
		nng_msg *m;
		snprintf(rid, sizeof(rid), "w%d", i);
		assert_int_equal(th_req_begin_rid(&q, "wait", 2, rid), 0);
		proto_kv_cstr(th_pk(&q), "execution_id", id);
		proto_kv_uint(th_pk(&q), "wait_ms", 20000);
		assert_false(q.w.failed);
		assert_int_equal(nng_ctx_open(&ctx[i], raw.s), 0);
		nng_ctx_set_ms(ctx[i], NNG_OPT_RECVTIMEO, 20000);
		atomic_init(&fired[i], false);
		assert_int_equal(nng_aio_alloc(&aio[i], flag_cb, &fired[i]), 0);
		assert_int_equal(nng_msg_dup(&m, q.msg), 0);
		th_req_free(&q);
		nng_aio_set_msg(aio[i], m);
		nng_ctx_send(ctx[i], aio[i]);
		nng_aio_wait(aio[i]);
		assert_int_equal(nng_aio_result(aio[i]), 0);
		atomic_store(&fired[i], false);
		nng_ctx_recv(ctx[i], aio[i]);
	}
	usleep(500 * 1000);
	for (int i = 0; i < 2; i++)
		assert_false(atomic_load(&fired[i])); /* parked: no answer yet */
	assert_int_equal(th_req_begin_rid(&q, "wait", 2, "w2"), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_uint(th_pk(&q), "wait_ms", 20000);
	int64_t t0 = mono_ms();
	assert_int_equal(th_req_call(&raw, &q, &rep), 0);
	assert_true(mono_ms() - t0 < 5000);
	assert_false(rep.ok);
	assert_string_equal(rep.err, "UNAVAILABLE");
	th_reply_free(&rep);
	/* the outcome answers the two parked ones */
	cueq_job *j = claim(c, "bounded", id);
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j), NULL), CUEQ_OK);
	cueq_job_free(j);
	for (int i = 0; i < 2; i++) {
		nng_aio_wait(aio[i]);
		assert_int_equal(nng_aio_result(aio[i]), 0);
		memset(&rep, 0, sizeof(rep));
		msgpack_unpacked_init(&rep.up);
		assert_int_equal(th_reply_decode(nng_aio_get_msg(aio[i]), &rep), 0);
		assert_true(rep.ok);
		bool finished = false;
		assert_true(th_bool(rep.root, "finished", &finished));
		assert_true(finished);
		th_reply_free(&rep);
		nng_aio_free(aio[i]);
		nng_ctx_close(ctx[i]);
	}
	th_raw_close(&raw);
	cueq_close(c);
	th_broker_cleanup(&b);
}

static void test_reported_outcome_survives_kill9(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE];
	struct waiter w;

	push(c, "durable", NULL, id);
	waiter_start(&w, b, id, 20000);
	cueq_job *j = claim(c, "durable", id);
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j), "kept"), CUEQ_OK);
	cueq_job_free(j);
	waiter_join(&w);
	assert_int_equal(w.state, CUEQ_SUCCEEDED);
	cueq_close(c);
	assert_int_equal(th_broker_kill9(b), 0);
	assert_int_equal(th_broker_restart(b), 0);
	c = th_sdk_connect(b);
	cueq_execution *e = NULL;
	assert_int_equal(cueq_wait(c, id, 0, &e), CUEQ_OK);
	assert_int_equal(e->state, CUEQ_SUCCEEDED);
	assert_string_equal(e->result, "kept");
	cueq_execution_free(e);
	cueq_close(c);
}

#define CLI(p, in, code, ...) TH_CLI((p), (in), (code), __VA_ARGS__)

static void test_cli_wait_and_push_wait(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char id[CUEQ_ID_SIZE], line[128];
	th_proc p;

	/* no outcome in time: 9, with the state */
	push(c, "cli", NULL, id);
	CLI(&p, NULL, 9, "wait", id, "--timeout", "300ms", "--url", b->url);
	snprintf(line, sizeof(line), "%s ready", id);
	th_first_line(&p, line + 64, 64);
	assert_string_equal(line + 64, line);
	th_proc_free(&p);
	/* succeeded: 0, with the result; --json says finished */
	cueq_job *j = claim(c, "cli", id);
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j), "r-1"), CUEQ_OK);
	cueq_job_free(j);
	CLI(&p, NULL, 0, "wait", id, "--json", "--url", b->url);
	char v[64];
	assert_true(th_json_str(p.out, "state", v, sizeof(v)));
	assert_string_equal(v, "succeeded");
	assert_true(th_json_str(p.out, "result", v, sizeof(v)));
	assert_string_equal(v, "r-1");
	assert_non_null(strstr(p.out, "\"finished\":true"));
	th_proc_free(&p);
	/* cancelled: 8; no such execution: 5 */
	push(c, "cli", NULL, id);
	int kind, st;
	assert_int_equal(cueq_cancel(c, id, &kind, &st), CUEQ_OK);
	CLI(&p, NULL, 8, "wait", id, "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 5, "wait", "0123456789abcdef", "--url", b->url);
	th_proc_free(&p);
	/* push --wait: 9 while nobody works; the same key again attaches to
	 * the same execution, and once it is dead says 7 with the error */
	CLI(&p, NULL, 9, "push", "cli-k", "x", "--key", "order-9", "--wait", "200ms", "--url",
	    b->url);
	th_first_line(&p, id, sizeof(id));
	th_proc_free(&p);
	assert_int_equal(strlen(id), PROTO_ID_LEN + 6); /* "ID ready" */
	id[PROTO_ID_LEN] = '\0';
	j = claim(c, "cli-k", id);
	assert_int_equal(cueq_nack(c, id, cueq_job_token(j), "no stock", -1, true, &st), CUEQ_OK);
	cueq_job_free(j);
	CLI(&p, NULL, 7, "push", "cli-k", "x", "--key", "order-9", "--wait", "5s", "--url", b->url);
	assert_non_null(strstr(p.out, id));
	assert_non_null(strstr(p.out, "error: no stock"));
	assert_non_null(strstr(p.err, "duplicate"));
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "cli-k", "x", "--every", "1h", "--wait", "5s", "--url", b->url);
	assert_non_null(strstr(p.err, "recurring"));
	th_proc_free(&p);
	cueq_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wait_returns_each_outcome, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_wait_on_expiry_to_dead, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_wait_times_out, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_wait_for_a_cue_is_refused, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_duplicate_push_tells_the_outcome, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test(test_waits_are_bounded),
		cmocka_unit_test_setup_teardown(test_reported_outcome_survives_kill9, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_wait_and_push_wait, th_fixture_start,
						th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
