/*
 * test_flow.c - flow control against a real cueqd: concurrency limits of
 * groups held under 8 concurrent workers (counted from the broker's
 * histories), a queue's own concurrency limit, claims taking groups in
 * turn (a group with 2,000 ready does not starve nine with 10) with
 * priority kept within a group, rate limits (a token bucket, checked
 * within bounds that hold on a loaded machine), a parked claim served when
 * a lease ends or a token comes, limits and groups across kill -9, and the
 * CLI's `cueq limit` and `cueq stats QUEUE` with their refusals.
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

#define CLI(p, in, code, ...) TH_CLI((p), (in), (code), __VA_ARGS__)

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void push_in(cueq_client *c, const char *queue, const char *group, const char *payload,
		    int priority, char id[CUEQ_ID_SIZE])
{
	cueq_push_opts o = { .group = group, .priority = priority };
	cueq_push_result r;
	int rc = cueq_push(c, queue, payload, strlen(payload), &o, &r);
	if (rc != CUEQ_OK)
		fail_msg("push to %s/%s: %s (%s)", queue, group ? group : "-", cueq_strerror(rc),
			 cueq_last_error());
	if (id != NULL)
		memcpy(id, r.execution_id, CUEQ_ID_SIZE);
}

static void set_limit(cueq_client *c, const char *queue, const char *group, bool each,
		      int64_t conc, int64_t rate, int64_t per_ms)
{
	cueq_limit_spec s = { .group = group, .each_group = each, .concurrency = conc,
			      .rate = rate, .per_ms = per_ms };
	int rc = cueq_set_limit(c, queue, &s, NULL);
	if (rc != CUEQ_OK)
		fail_msg("limit %s: %s (%s)", queue, cueq_strerror(rc), cueq_last_error());
}

/* Claims up to max at once, waiting up to wait_ms: how many came (out[]). */
static size_t claim_n(cueq_client *c, const char *queue, size_t max, int64_t wait_ms,
		      cueq_job **out)
{
	size_t n = 0;
	int rc = cueq_claim(c, queue, max, 0, wait_ms, out, &n);
	if (rc == CUEQ_ERR_EMPTY)
		return 0;
	if (rc != CUEQ_OK)
		fail_msg("claim %s: %s (%s)", queue, cueq_strerror(rc), cueq_last_error());
	return n;
}

/* ---- concurrency under 8 workers ---- */

#define GROUPS 4
#define PER_GROUP 30
#define LIMIT 2

struct flow {
	th_broker *b;
	const char *queue;
	atomic_int acked;
	int total;
	atomic_int failed;
};

static void *worker_main(void *arg)
{
	struct flow *f = arg;
	cueq_client *c = NULL;
	if (cueq_connect(f->b->url, NULL, &c) != CUEQ_OK) {
		atomic_store(&f->failed, 1);
		return NULL;
	}
	int64_t end = mono_ms() + 60000;
	while (atomic_load(&f->acked) < f->total && mono_ms() < end) {
		cueq_job *j = NULL;
		size_t n = 0;
		int rc = cueq_claim(c, f->queue, 1, 0, 500, &j, &n);
		if (rc == CUEQ_ERR_EMPTY || n == 0)
			continue;
		if (rc != CUEQ_OK) {
			atomic_store(&f->failed, 1);
			break;
		}
		usleep(15 * 1000); /* the handler's work */
		if (cueq_ack(c, cueq_job_id(j), cueq_job_token(j), NULL) != CUEQ_OK)
			atomic_store(&f->failed, 1);
		else
			atomic_fetch_add(&f->acked, 1);
		cueq_job_free(j);
	}
	cueq_close(c);
	return NULL;
}

struct span {
	int64_t at;
	int delta; /* +1 claimed, -1 its lease ended */
};

static int by_time(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->delta - y->delta; /* an end before a start at the same ms */
}

static void test_group_limit_under_8_workers(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	char ids[GROUPS][PER_GROUP][CUEQ_ID_SIZE], g[16];
	struct flow f = { .b = b, .queue = "tenants", .total = GROUPS * PER_GROUP };
	pthread_t th[8];

	set_limit(c, "tenants", NULL, true, LIMIT, CUEQ_LIMIT_KEEP, 0);
	for (int i = 0; i < PER_GROUP; i++)
		for (int k = 0; k < GROUPS; k++) {
			snprintf(g, sizeof(g), "t%d", k);
			push_in(c, "tenants", g, "x", 0, ids[k][i]);
		}
	atomic_init(&f.acked, 0);
	atomic_init(&f.failed, 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &f), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&f.failed), 0);
	assert_int_equal(atomic_load(&f.acked), GROUPS * PER_GROUP);

	/* from the broker's histories: leases of one group at once */
	int top_seen = 0;
	for (int k = 0; k < GROUPS; k++) {
		struct span sp[2 * PER_GROUP];
		size_t ns = 0;
		for (int i = 0; i < PER_GROUP; i++) {
			cueq_execution *e = NULL;
			assert_int_equal(cueq_get(c, ids[k][i], &e), CUEQ_OK);
			assert_int_equal(e->state, CUEQ_SUCCEEDED);
			snprintf(g, sizeof(g), "t%d", k);
			assert_non_null(e->group);
			assert_string_equal(e->group, g); /* get shows the group */
			for (size_t h = 0; h < e->history_len; h++) {
				if (strcmp(e->history[h].event, "claimed") == 0)
					sp[ns++] = (struct span){ e->history[h].at_ms, +1 };
				else if (strcmp(e->history[h].event, "succeeded") == 0)
					sp[ns++] = (struct span){ e->history[h].at_ms, -1 };
			}
			cueq_execution_free(e);
		}
		assert_int_equal(ns, 2 * PER_GROUP);
		qsort(sp, ns, sizeof(sp[0]), by_time);
		int now = 0, top = 0;
		for (size_t i = 0; i < ns; i++) {
			now += sp[i].delta;
			if (now > top)
				top = now;
		}
		if (top > LIMIT)
			fail_msg("group t%d had %d leases at once; its limit is %d", k, top, LIMIT);
		if (top > top_seen)
			top_seen = top;
	}
	assert_int_equal(top_seen, LIMIT); /* 8 workers did fill the limit */
	cueq_close(c);
}

/* ---- a queue's own limit, and a lease's end serving a parked claim ---- */

struct parked {
	th_broker *b;
	const char *queue;
	atomic_bool done;
	char got[CUEQ_ID_SIZE];
	int64_t took_ms;
};

static void *parked_main(void *arg)
{
	struct parked *p = arg;
	cueq_client *c = NULL;
	int64_t t0 = mono_ms();
	if (cueq_connect(p->b->url, NULL, &c) == CUEQ_OK) {
		cueq_job *j = NULL;
		size_t n = 0;
		if (cueq_claim(c, p->queue, 1, 0, 8000, &j, &n) == CUEQ_OK && n == 1) {
			snprintf(p->got, sizeof(p->got), "%s", cueq_job_id(j));
			cueq_job_free(j);
		}
		cueq_close(c);
	}
	p->took_ms = mono_ms() - t0;
	atomic_store(&p->done, true);
	return NULL;
}

static void test_queue_concurrency_and_parked_claim(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_job *got[16];
	char first[CUEQ_ID_SIZE];

	set_limit(c, "serial", NULL, false, 3, CUEQ_LIMIT_KEEP, 0);
	for (int i = 0; i < 6; i++)
		push_in(c, "serial", i % 2 ? "a" : NULL, "x", 0, i == 0 ? first : NULL);
	assert_int_equal(claim_n(c, "serial", 10, 0, got), 3);
	assert_int_equal(claim_n(c, "serial", 10, 0, got + 3), 0);
	/* one lease ends: one more claim gets through, then none again */
	assert_int_equal(cueq_ack(c, cueq_job_id(got[0]), cueq_job_token(got[0]), NULL), CUEQ_OK);
	assert_int_equal(claim_n(c, "serial", 10, 0, got + 3), 1);
	assert_int_equal(claim_n(c, "serial", 10, 0, got + 4), 0);

	/* a claim parked at the limit is served when a lease ends */
	struct parked p = { .b = b, .queue = "serial" };
	pthread_t t;
	atomic_init(&p.done, false);
	assert_int_equal(pthread_create(&t, NULL, parked_main, &p), 0);
	usleep(400 * 1000);
	assert_false(atomic_load(&p.done));
	int64_t t0 = mono_ms();
	assert_int_equal(cueq_ack(c, cueq_job_id(got[1]), cueq_job_token(got[1]), NULL), CUEQ_OK);
	pthread_join(t, NULL);
	assert_true(p.got[0] != '\0');
	assert_true(mono_ms() - t0 < 4000);
	for (int i = 0; i < 4; i++)
		cueq_job_free(got[i]);
	/* 0 removes the limit: the rest come at once (the last one, and the
	 * parked claimer's, whose lease ends when the broker sees its
	 * connection close: that may come a moment after, so a long poll
	 * waits for it) */
	set_limit(c, "serial", NULL, false, 0, CUEQ_LIMIT_KEEP, 0);
	size_t n = claim_n(c, "serial", 10, 0, got);
	if (n < 2)
		n += claim_n(c, "serial", 10, 5000, got + n);
	assert_int_equal(n, 2);
	cueq_job_free(got[0]);
	cueq_job_free(got[1]);
	cueq_close(c);
}

/* ---- fairness ---- */

static void test_groups_take_turns(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_job_spec specs[1000];
	cueq_push_result res[1000];
	char g[16], payload[32];

	/* one tenant's burst of 2,000, pushed first */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 1000; i++)
			specs[i] = (cueq_job_spec){ .queue = "fair", .payload = "big", .payload_len = 3,
						    .opts = { .group = "big" } };
		assert_int_equal(cueq_push_many(c, specs, 1000, res), CUEQ_OK);
	}
	/* then nine tenants with 10 each, and one urgent job of the big one */
	for (int k = 0; k < 9; k++)
		for (int i = 0; i < 10; i++) {
			snprintf(g, sizeof(g), "small%d", k);
			snprintf(payload, sizeof(payload), "%s", g);
			push_in(c, "fair", g, payload, 0, NULL);
		}
	push_in(c, "fair", "big", "big-urgent", 100, NULL);

	bool seen[9] = { false };
	int n_seen = 0, big = 0;
	for (int i = 0; i < 10; i++) {
		cueq_job *j;
		assert_int_equal(claim_n(c, "fair", 1, 0, &j), 1);
		size_t len;
		const char *p = cueq_job_payload(j, &len);
		if (len > 5 && memcmp(p, "small", 5) == 0) {
			int k = p[5] - '0';
			if (!seen[k])
				seen[k] = true, n_seen++;
		} else {
			/* priority still orders within the group */
			if (big == 0)
				assert_true(len == 10 && memcmp(p, "big-urgent", 10) == 0);
			big++;
		}
		cueq_job_free(j);
	}
	if (n_seen != 9)
		fail_msg("only %d of the nine small groups were claimed in the first 10 claims", n_seen);
	assert_int_equal(big, 1);
	cueq_close(c);
}

/* ---- rate limits ---- */

static void test_rate_limit(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_job_spec specs[200];
	cueq_push_result res[200];

	for (int i = 0; i < 200; i++)
		specs[i] = (cueq_job_spec){ .queue = "api", .payload = "x", .payload_len = 1 };
	assert_int_equal(cueq_push_many(c, specs, 200, res), CUEQ_OK);
	set_limit(c, "api", NULL, false, CUEQ_LIMIT_KEEP, 20, 1000);
	int64_t t0 = mono_ms();
	int got = 0;
	while (mono_ms() - t0 < 1500) {
		cueq_job *j[10];
		size_t n = claim_n(c, "api", 10, 0, j);
		for (size_t i = 0; i < n; i++)
			cueq_job_free(j[i]);
		got += (int)n;
	}
	int64_t took = mono_ms() - t0;
	/* a full bucket of 20, then 20 a second: at most 20 + 20 x seconds */
	int most = 20 + (int)(20 * took / 1000) + 2;
	if (got < 20 || got > most)
		fail_msg("%d claims in %lld ms under a rate of 20/s (expected 20..%d)", got,
			 (long long)took, most);
	/* a claim parked without a token is served when the next one comes */
	cueq_job *j[1];
	int64_t t1 = mono_ms();
	assert_int_equal(claim_n(c, "api", 1, 5000, j), 1);
	assert_true(mono_ms() - t1 < 3000);
	cueq_job_free(j[0]);
	/* a group's own rate within a queue without one */
	for (int i = 0; i < 30; i++)
		push_in(c, "api2", "slow", "s", 0, NULL);
	for (int i = 0; i < 30; i++)
		push_in(c, "api2", "fast", "f", 0, NULL);
	set_limit(c, "api2", "slow", false, CUEQ_LIMIT_KEEP, 5, 60000);
	int slow = 0, fast = 0;
	for (int round = 0; round < 10; round++) {
		cueq_job *k[10];
		size_t n = claim_n(c, "api2", 10, 0, k);
		for (size_t i = 0; i < n; i++) {
			size_t len;
			const char *p = cueq_job_payload(k[i], &len);
			slow += p[0] == 's';
			fast += p[0] == 'f';
			cueq_job_free(k[i]);
		}
	}
	assert_int_equal(slow, 5);
	assert_int_equal(fast, 30);
	cueq_close(c);
}

/* ---- across kill -9 ---- */

static void test_limits_and_groups_survive_kill9(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_limit lims[2];
	cueq_group_stats *g = NULL;
	size_t n = 0;
	cueq_job *j[10];

	set_limit(c, "kept", NULL, true, 1, CUEQ_LIMIT_KEEP, 0);
	set_limit(c, "kept", "vip", false, 3, 100, 60000);
	set_limit(c, "empty-limited", NULL, false, 7, CUEQ_LIMIT_KEEP, 0);
	for (int i = 0; i < 4; i++)
		push_in(c, "kept", "x", "x", 0, NULL);
	for (int i = 0; i < 4; i++)
		push_in(c, "kept", "vip", "v", 0, NULL);
	cueq_close(c);
	assert_int_equal(th_broker_kill9(b), 0);
	assert_int_equal(th_broker_restart(b), 0);
	c = th_sdk_connect(b);
	assert_int_equal(cueq_groups(c, "kept", lims, &g, &n), CUEQ_OK);
	assert_int_equal(lims[1].concurrency, 1);
	assert_int_equal(n, 2);
	assert_string_equal(g[0].group, "vip");
	assert_true(g[0].own_limit);
	assert_int_equal(g[0].limit.concurrency, 3);
	assert_int_equal(g[0].limit.rate, 100);
	assert_int_equal(g[0].unfinished, 4);
	assert_string_equal(g[1].group, "x");
	assert_false(g[1].own_limit);
	assert_int_equal(g[1].ready, 4);
	cueq_groups_free(g, n);
	/* x gives 1 (each group: 1), vip 3 (its own) */
	size_t got = claim_n(c, "kept", 10, 0, j);
	assert_int_equal(got, 4);
	int vip = 0;
	for (size_t i = 0; i < got; i++) {
		size_t len;
		vip += ((const char *)cueq_job_payload(j[i], &len))[0] == 'v';
		cueq_job_free(j[i]);
	}
	assert_int_equal(vip, 3);
	/* a queue with a limit and no job is kept too */
	assert_int_equal(cueq_groups(c, "empty-limited", lims, &g, &n), CUEQ_OK);
	assert_int_equal(lims[0].concurrency, 7);
	cueq_groups_free(g, n);
	cueq_close(c);
}

/* ---- the CLI ---- */

static void test_cli_limit_and_stats(void **state)
{
	th_broker *b = *state;
	th_proc p;
	char v[64];

	CLI(&p, NULL, 0, "push", "cliq", "x", "--group", "acme", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 0, "limit", "cliq", "--group", "*", "--concurrency", "2", "--url", b->url);
	assert_non_null(strstr(p.out, "each group without its own limit: concurrency 2"));
	th_proc_free(&p);
	CLI(&p, NULL, 0, "limit", "cliq", "--group", "acme", "--rate", "10/s", "--json", "--url",
	    b->url);
	assert_true(th_json_str(p.out, "group", v, sizeof(v)));
	assert_string_equal(v, "acme");
	assert_non_null(strstr(p.out, "\"rate\":10"));
	assert_non_null(strstr(p.out, "\"per_ms\":1000"));
	th_proc_free(&p);
	CLI(&p, NULL, 0, "stats", "cliq", "--url", b->url);
	assert_non_null(strstr(p.out, "each group concurrency 2"));
	assert_non_null(strstr(p.out, "acme"));
	assert_non_null(strstr(p.out, "rate 10/1s (its own)"));
	th_proc_free(&p);
	CLI(&p, NULL, 0, "stats", "cliq", "--json", "--url", b->url);
	assert_non_null(strstr(p.out, "\"per_group\":{\"concurrency\":2"));
	assert_non_null(strstr(p.out, "\"groups\":[{\"group\":\"acme\""));
	th_proc_free(&p);

	/* refusals: a clear sentence, exit 1, nothing changed */
	CLI(&p, NULL, 1, "limit", "cliq", "--url", b->url);
	assert_non_null(strstr(p.err, "--concurrency"));
	th_proc_free(&p);
	CLI(&p, NULL, 1, "limit", "cliq", "--rate", "10", "--url", b->url);
	assert_non_null(strstr(p.err, "N/PERIOD"));
	th_proc_free(&p);
	CLI(&p, NULL, 1, "limit", "cliq", "--rate", "10/0s", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "limit", "cliq", "--concurrency", "100001", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "limit", "cliq", "--group", "no spaces", "--concurrency", "1", "--url",
	    b->url);
	assert_non_null(strstr(p.err, "invalid"));
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "cliq", "x", "--group", "acme", "--every", "1h", "--url", b->url);
	assert_non_null(strstr(p.err, "group"));
	th_proc_free(&p);
	CLI(&p, NULL, 0, "stats", "cliq", "--json", "--url", b->url);
	assert_non_null(strstr(p.out, "\"per_group\":{\"concurrency\":2"));
	assert_non_null(strstr(p.out, "\"ready\":1"));
	th_proc_free(&p);
}

/* A limit is a write like any other: killed before its write, after it, at
 * its sync, or with its write failing, the broker never answers it ok, and
 * after a restart the limit is wholly there or wholly not (killed before
 * the write or failed: not); the retry then sets it, and it stays. */
static int limit_request(th_raw *r, th_reply *rep)
{
	th_req q;
	if (th_req_begin_rid(&q, "limit", 2, "the-limit") != 0)
		return -1;
	proto_kv_cstr(th_pk(&q), "queue", "faulty");
	proto_kv_uint(th_pk(&q), "concurrency", 1);
	return th_req_call(r, &q, rep);
}

/* The queue's own concurrency limit as the broker has it now. */
static uint32_t stored_limit(th_broker *b)
{
	cueq_client *c = th_sdk_connect(b);
	cueq_limit lims[2] = { { 0 } };
	cueq_group_stats *g = NULL;
	size_t n = 0;
	int rc = cueq_groups(c, "faulty", lims, &g, &n);
	if (rc != CUEQ_OK)
		fail_msg("stats of faulty: %s (%s)", cueq_strerror(rc), cueq_last_error());
	cueq_groups_free(g, n);
	cueq_close(c);
	return lims[0].concurrency;
}

static void test_limit_under_storage_faults(void **state)
{
	th_broker *b = *state;
	static const char *const faults[] = { "CUEQ_FAULT=write:1:exit", "CUEQ_FAULT=write:1:fail",
					      "CUEQ_FAULT=write:1:exit-after", "CUEQ_FAULT=sync:1:exit" };
	for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
		cueq_client *c = th_sdk_connect(b);
		set_limit(c, "faulty", NULL, false, 0, CUEQ_LIMIT_KEEP, 0);
		set_limit(c, "faulty", NULL, false, CUEQ_LIMIT_KEEP, 5, 1000); /* kept throughout */
		cueq_close(c);
		assert_int_equal(stored_limit(b), 0);
		int status = 0;
		assert_int_equal(th_broker_stop(b, 10000, &status), 0);
		b->env[0] = faults[f];
		b->n_env = 1;
		assert_int_equal(th_broker_restart(b), 0);
		th_raw r;
		th_reply rep;
		assert_int_equal(th_raw_open(&r, b->url, 3000), 0);
		int rc = limit_request(&r, &rep);
		if (rc == 0 && rep.ok)
			fail_msg("%s: the limit was answered ok", faults[f]);
		th_reply_free(&rep);
		th_raw_close(&r);
		b->n_env = 0;
		th_broker_kill9(b);
		assert_int_equal(th_broker_restart(b), 0);
		uint32_t got = stored_limit(b);
		if (f <= 1 && got != 0)
			fail_msg("%s: the limit is there after the restart", faults[f]);
		if (got != 0 && got != 1)
			fail_msg("%s: the limit is %u after the restart", faults[f], got);
		/* the client's retry, same request ID */
		assert_int_equal(th_raw_open(&r, b->url, 5000), 0);
		assert_int_equal(limit_request(&r, &rep), 0);
		assert_true(rep.ok);
		th_reply_free(&rep);
		th_raw_close(&r);
		assert_int_equal(stored_limit(b), 1);
		assert_int_equal(th_broker_stop(b, 10000, &status), 0);
		assert_int_equal(th_broker_restart(b), 0);
		assert_int_equal(stored_limit(b), 1);
		c = th_sdk_connect(b);
		cueq_limit lims[2];
		cueq_group_stats *g = NULL;
		size_t n = 0;
		assert_int_equal(cueq_groups(c, "faulty", lims, &g, &n), CUEQ_OK);
		assert_int_equal(lims[0].rate, 5); /* the other part of the limit stayed */
		cueq_close(c);
		fprintf(stderr, "flow: limit with %s: %s after the crash\n", faults[f],
			got == 1 ? "there" : "not there");
	}
}

/* The pusher keeps its own copy of each job's group. */
static void test_pusher_groups(void **state)
{
	th_broker *b = *state;
	cueq_client *c = th_sdk_connect(b);
	cueq_pusher *p = NULL;
	cueq_group_stats *g = NULL;
	size_t n = 0;
	char name[16];

	assert_int_equal(cueq_pusher_new(c, NULL, &p), CUEQ_OK);
	for (int i = 0; i < 50; i++) {
		cueq_push_opts o = { .group = name };
		snprintf(name, sizeof(name), "p%d", i % 5);
		assert_int_equal(cueq_pusher_add(p, "pushed", "x", 1, &o, NULL), CUEQ_OK);
		memset(name, 'z', sizeof(name) - 1); /* the caller's buffer changes at once */
	}
	assert_int_equal(cueq_pusher_flush(p), CUEQ_OK);
	cueq_pusher_free(p);
	assert_int_equal(cueq_groups(c, "pushed", NULL, &g, &n), CUEQ_OK);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "p%u", (unsigned)i % 10);
		assert_string_equal(g[i].group, name);
		assert_int_equal(g[i].ready, 10);
	}
	cueq_groups_free(g, n);
	cueq_close(c);
}

/* A raw request the SDK would not send: group and each_group at once. */
static void test_raw_refusals(void **state)
{
	th_broker *b = *state;
	th_raw raw;
	th_req q;
	th_reply rep;

	assert_int_equal(th_raw_open(&raw, b->url, 5000), 0);
	assert_int_equal(th_req_begin(&q, "limit", 4), 0);
	proto_kv_cstr(th_pk(&q), "queue", "rawq");
	proto_kv_cstr(th_pk(&q), "group", "g");
	proto_kv_bool(th_pk(&q), "each_group", true);
	proto_kv_uint(th_pk(&q), "concurrency", 1);
	assert_int_equal(th_req_call(&raw, &q, &rep), 0);
	assert_false(rep.ok);
	assert_string_equal(rep.err, "BAD_REQUEST");
	th_reply_free(&rep);
	assert_int_equal(th_req_begin(&q, "limit", 2), 0);
	proto_kv_cstr(th_pk(&q), "queue", "rawq");
	proto_kv_uint(th_pk(&q), "rate", 5);
	assert_int_equal(th_req_call(&raw, &q, &rep), 0);
	assert_false(rep.ok);
	assert_non_null(strstr(rep.msg, "per_ms"));
	th_reply_free(&rep);
	th_raw_close(&raw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group_limit_under_8_workers, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_queue_concurrency_and_parked_claim,
						th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_groups_take_turns, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_rate_limit, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_limits_and_groups_survive_kill9,
						th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_limit_and_stats, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_raw_refusals, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_pusher_groups, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_limit_under_storage_faults, th_fixture_start,
						th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
