/*
 * test_schedule.c - time and the operator against a real cueqd: a
 * recurring cue across kill -9 (no slot fired twice, none lost beyond its
 * catch-up policy), a bad cron expression refused with the field named,
 * pause across kill -9, and the release of a killed worker's lease
 * (redelivery latency measured).  Real time, with margins of seconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "proc.h"

extern const char th_cli_path[];

static uint64_t push_every(th_raw *r, const char *queue, uint64_t every_ms, const char *catch_up,
			   char cue_id[PROTO_ID_LEN + 1])
{
	th_req q;
	th_reply rep;
	uint64_t first = 0;
	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 4);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_cstr(th_pk(&q), "payload", "tick");
	proto_kv_uint(th_pk(&q), "every_ms", every_ms);
	proto_kv_cstr(th_pk(&q), "catch_up", catch_up);
	assert_int_equal(th_req_call(r, &q, &rep), 0);
	const msgpack_object *res = rep.ok ? th_item(rep.root, "results", 0) : NULL;
	bool recurring = false;
	if (res == NULL || !th_bool(res, "recurring", &recurring) || !recurring ||
	    !th_str(res, "cue_id", cue_id, PROTO_ID_LEN + 1) || !th_uint(res, "run_at", &first))
		fail_msg("recurring push refused or odd: %s %s", rep.err, rep.msg);
	th_reply_free(&rep);
	return first;
}

/* The run_at (= fire time) of every execution of queue, sorted; n. */
static size_t fire_times(th_raw *r, const char *queue, uint64_t *at, size_t max)
{
	th_req q;
	th_reply rep;
	size_t n = 0;
	assert_int_equal(th_req_begin(&q, "list", 2), 0);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_uint(th_pk(&q), "limit", 1000);
	assert_int_equal(th_req_call(r, &q, &rep), 0);
	assert_true(rep.ok);
	for (size_t i = 0; i < th_count(rep.root, "executions") && n < max; i++) {
		const msgpack_object *x = th_item(rep.root, "executions", i);
		assert_true(th_uint(x, "run_at", &at[n]));
		n++;
	}
	th_reply_free(&rep);
	for (size_t i = 1; i < n; i++) /* insertion sort: a few dozen */
		for (size_t j = i; j > 0 && at[j - 1] > at[j]; j--) {
			uint64_t t = at[j];
			at[j] = at[j - 1];
			at[j - 1] = t;
		}
	return n;
}

/* A cue every second with catch_up all, the broker killed twice while it
 * fires: every slot from the first to the last made exactly once. */
static void test_fires_across_kill9(void **state)
{
	th_broker *b = *state;
	th_raw r;
	char cue[PROTO_ID_LEN + 1];
	uint64_t at[1000];

	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	uint64_t first = push_every(&r, "sched.all", 1000, "all", cue);
	th_raw_close(&r);
	for (int round = 0; round < 2; round++) {
		th_sleep_ms(2300);
		assert_int_equal(th_broker_kill9(b), 0);
		th_sleep_ms(2200); /* slots pass while it is down */
		assert_int_equal(th_broker_restart(b), 0);
	}
	th_sleep_ms(1500);
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	size_t n = fire_times(&r, "sched.all", at, 1000);
	th_raw_close(&r);
	if (n < 6)
		fail_msg("only %zu fires in about 10 s of a 1 s cue", n);
	assert_true(at[0] == first);
	for (size_t i = 1; i < n; i++)
		if (at[i] != at[i - 1] + 1000)
			fail_msg("fire %zu at %llu after one at %llu: a slot %s", i,
				 (unsigned long long)at[i], (unsigned long long)at[i - 1],
				 at[i] == at[i - 1] ? "fired twice" : "was lost");
	fprintf(stderr, "schedule: %zu fires of a 1 s cue across two kill -9, none twice, none lost\n", n);
}

/* catch_up one across a kill -9 of a few slots: those missed make one. */
static void test_catch_up_one_across_kill9(void **state)
{
	th_broker *b = *state;
	th_raw r;
	char cue[PROTO_ID_LEN + 1];
	uint64_t at[1000];

	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	push_every(&r, "sched.one", 1000, "one", cue);
	th_raw_close(&r);
	th_sleep_ms(2200);
	assert_int_equal(th_broker_kill9(b), 0);
	th_sleep_ms(4500); /* about four slots */
	int64_t back = proto_now_ms(); /* wall time, as fire times are */
	assert_int_equal(th_broker_restart(b), 0);
	th_sleep_ms(200);
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	size_t n = fire_times(&r, "sched.one", at, 1000);
	size_t after = 0, distinct = 1;
	for (size_t i = 0; i < n; i++) {
		after += at[i] + 4500 >= (uint64_t)back; /* made since the kill */
		distinct += i > 0 && at[i] != at[i - 1];
	}
	assert_int_equal(distinct, n); /* never the same slot twice */
	/* the missed slots made one fire, maybe one more on time since */
	if (after < 1 || after > 3)
		fail_msg("%zu fires for the slots of the 4.5 s down (one, plus those on time after)", after);
	th_req q;
	th_reply rep;
	assert_int_equal(th_req_begin(&q, "get", 1), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", cue);
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	const msgpack_object *c = rep.ok ? th_get(rep.root, "cue") : NULL;
	uint64_t skipped = 0;
	assert_non_null(c);
	assert_true(th_uint(c, "skipped", &skipped));
	if (skipped < 2)
		fail_msg("%llu slots skipped over 4.5 s down of a 1 s cue", (unsigned long long)skipped);
	th_reply_free(&rep);
	th_raw_close(&r);
}

/* A bad cron expression is refused naming the field; nothing is made. */
static void test_bad_cron_refused(void **state)
{
	th_broker *b = *state;
	th_raw r;
	th_req q;
	th_reply rep;
	th_counts c;

	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2);
	proto_kv_cstr(th_pk(&q), "queue", "sched.bad");
	proto_kv_cstr(th_pk(&q), "cron", "0 25 * * *");
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	assert_false(rep.ok);
	assert_string_equal(rep.err, "BAD_REQUEST");
	if (strstr(rep.msg, "hour") == NULL || strstr(rep.msg, "25") == NULL)
		fail_msg("the refusal does not point at the hour field: %s", rep.msg);
	th_reply_free(&rep);
	assert_int_equal(th_raw_counts(&r, "sched.bad", &c), 0);
	assert_int_equal(c.ready + c.scheduled, 0);
	th_raw_close(&r);
}

static bool paused(th_raw *r, const char *queue)
{
	th_req q;
	th_reply rep;
	bool p = false;
	assert_int_equal(th_req_begin(&q, "stats", 1), 0);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	assert_int_equal(th_req_call(r, &q, &rep), 0);
	assert_true(rep.ok && th_count(rep.root, "queues") == 1);
	assert_true(th_bool(th_item(rep.root, "queues", 0), "paused", &p));
	th_reply_free(&rep);
	return p;
}

static void op_queue(th_raw *r, const char *op, const char *queue)
{
	th_req q;
	th_reply rep;
	assert_int_equal(th_req_begin(&q, op, 1), 0);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	assert_int_equal(th_req_call(r, &q, &rep), 0);
	if (!rep.ok)
		fail_msg("%s %s: %s %s", op, queue, rep.err, rep.msg);
	th_reply_free(&rep);
}

/* An answered pause survives kill -9: no claims until resume. */
static void test_pause_across_kill9(void **state)
{
	th_broker *b = *state;
	th_raw r;
	char id[PROTO_ID_LEN + 1], tok[PROTO_ID_LEN + 1];
	uint64_t attempt;

	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	assert_int_equal(th_raw_push(&r, "sched.pause", "p", 0, 0, id), 0);
	op_queue(&r, "pause", "sched.pause");
	th_raw_close(&r);
	assert_int_equal(th_broker_kill9(b), 0);
	assert_int_equal(th_broker_restart(b), 0);
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	assert_true(paused(&r, "sched.pause"));
	assert_int_equal(th_raw_claim(&r, "sched.pause", 0, 300, id, tok, &attempt), 1);
	op_queue(&r, "resume", "sched.pause");
	assert_false(paused(&r, "sched.pause"));
	assert_int_equal(th_raw_claim(&r, "sched.pause", 0, 2000, id, tok, &attempt), 0);
	th_raw_close(&r);
}

/* A worker killed with -9 while it runs a job: its connection closes and
 * the broker ends its lease at once; another claim gets the job well
 * before the 60 s lease would have run out. */
static void test_release_on_worker_kill9(void **state)
{
	th_broker *b = *state;
	th_raw r;
	char id[PROTO_ID_LEN + 1], got[PROTO_ID_LEN + 1], tok[PROTO_ID_LEN + 1];
	uint64_t attempt = 0;

	assert_int_equal(th_raw_open(&r, b->url, 15000), 0);
	assert_int_equal(th_raw_push(&r, "sched.rel", "job", 60000, 0, id), 0);
	char *const argv[] = {(char *)th_cli_path, "work", "sched.rel", "--url", b->url, "--",
			      "sleep", "20", NULL};
	pid_t w = proc_spawn(argv, NULL);
	assert_true(w > 0);
	for (int64_t deadline = th_now_ms() + 10000;; th_sleep_ms(20)) {
		th_reply rep;
		const msgpack_object *x;
		char st[16] = "";
		assert_int_equal(th_raw_get(&r, id, &rep, &x), 0);
		th_str(x, "state", st, sizeof(st));
		th_reply_free(&rep);
		if (strcmp(st, "leased") == 0)
			break;
		if (th_now_ms() > deadline)
			fail_msg("the worker did not claim %s within 10 s (state %s)", id, st);
	}
	int64_t killed = th_now_ms();
	assert_int_equal(proc_kill9(w), 0);
	int rc = th_raw_claim(&r, "sched.rel", 0, 10000, got, tok, &attempt);
	int64_t latency = th_now_ms() - killed;
	if (rc != 0)
		fail_msg("the killed worker's job was not delivered again within 10 s (lease 60 s)");
	assert_string_equal(got, id);
	assert_int_equal(attempt, 2);
	fprintf(stderr, "schedule: redelivered %lld ms after the worker's kill -9 (lease 60 s)\n",
		(long long)latency);
	th_reply rep;
	const msgpack_object *x;
	uint64_t expiries = 0;
	assert_int_equal(th_raw_get(&r, id, &rep, &x), 0);
	assert_true(th_uint(x, "expiries", &expiries));
	assert_int_equal(expiries, 1);
	th_reply_free(&rep);
	th_raw_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fires_across_kill9, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_catch_up_one_across_kill9, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_bad_cron_refused, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_pause_across_kill9, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_release_on_worker_kill9, th_fixture_start,
						th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
