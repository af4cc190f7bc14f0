/*
 * test_lease.c - lease exclusivity under concurrent claimers (promise 2:
 * never two live leases on one execution).
 *
 * 200 jobs, 8 claimer threads: four with a client each and four sharing
 * one client (the SDK documents a client as thread-safe).  Leases are long,
 * so any execution handed out twice is a violation.  The threads only
 * record what they saw; all assertions run on the main thread (cmocka's
 * asserts are not thread-safe).
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

#define N_JOBS 200
#define N_THREADS 8
#define QUEUE "lease.excl"
#define RUN_MS 30000

typedef struct claimed {
	cueq_job *job;
	int thread;
} claimed;

typedef struct shared {
	pthread_mutex_t mu;
	claimed got[N_JOBS + 64];
	size_t n;
	size_t duplicates;
	char first_dup[200];
	size_t errors;
	char first_err[300];
} shared;

typedef struct claimer {
	shared *sh;
	cueq_client *c;
	int index;
} claimer;

static size_t total(shared *sh)
{
	pthread_mutex_lock(&sh->mu);
	size_t n = sh->n;
	pthread_mutex_unlock(&sh->mu);
	return n;
}

static void record(shared *sh, int thread, cueq_job *j)
{
	pthread_mutex_lock(&sh->mu);
	for (size_t i = 0; i < sh->n; i++) {
		if (strcmp(cueq_job_id(sh->got[i].job), cueq_job_id(j)) == 0) {
			if (sh->duplicates++ == 0)
				snprintf(sh->first_dup, sizeof(sh->first_dup),
					 "execution %s claimed by thread %d and again by thread %d "
					 "(tokens %s, %s) while the first lease was live",
					 cueq_job_id(j), sh->got[i].thread, thread,
					 cueq_job_token(sh->got[i].job), cueq_job_token(j));
		}
	}
	if (sh->n < sizeof(sh->got) / sizeof(sh->got[0])) {
		sh->got[sh->n].job = j;
		sh->got[sh->n].thread = thread;
		sh->n++;
	} else {
		cueq_job_free(j);
	}
	pthread_mutex_unlock(&sh->mu);
}

static void *claim_loop(void *arg)
{
	claimer *cl = arg;
	int64_t deadline = th_now_ms() + RUN_MS;
	size_t max = 1 + (size_t)(cl->index % 4);

	while (total(cl->sh) < N_JOBS && th_now_ms() < deadline) {
		cueq_job *jobs[4];
		size_t n = 0;
		int rc = cueq_claim(cl->c, QUEUE, max, 60000, 200, jobs, &n);
		if (rc == CUEQ_ERR_EMPTY)
			continue;
		if (rc != CUEQ_OK) {
			pthread_mutex_lock(&cl->sh->mu);
			if (cl->sh->errors++ == 0)
				snprintf(cl->sh->first_err, sizeof(cl->sh->first_err),
					 "thread %d: cueq_claim: %s (%s)", cl->index, cueq_strerror(rc),
					 cueq_last_error());
			pthread_mutex_unlock(&cl->sh->mu);
			th_sleep_ms(50);
			continue;
		}
		for (size_t i = 0; i < n; i++)
			record(cl->sh, cl->index, jobs[i]);
	}
	return NULL;
}

static void counts(cueq_client *c, cueq_queue_stats *out)
{
	cueq_queue_stats *st = NULL;
	size_t n = 0;
	int rc = cueq_stats(c, QUEUE, &st, &n);
	if (rc != CUEQ_OK)
		fail_msg("cueq_stats: %s (%s)", cueq_strerror(rc), cueq_last_error());
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		if (strcmp(st[i].queue, QUEUE) == 0)
			*out = st[i];
	cueq_stats_free(st, n);
}

static void test_lease_exclusivity(void **state)
{
	th_broker *b = *state;
	shared *sh = calloc(1, sizeof(*sh));
	cueq_client *own[4] = { 0 }, *common = NULL, *c = NULL;
	claimer cls[N_THREADS];
	pthread_t th[N_THREADS];
	cueq_job_spec specs[100];
	cueq_push_result res[100];
	char payloads[100][16];
	cueq_queue_stats st;

	assert_non_null(sh);
	pthread_mutex_init(&sh->mu, NULL);
	assert_int_equal(cueq_connect(b->url, NULL, &c), CUEQ_OK);
	for (int batch = 0; batch < N_JOBS / 100; batch++) {
		for (int i = 0; i < 100; i++) {
			snprintf(payloads[i], sizeof(payloads[i]), "job-%d", batch * 100 + i);
			memset(&specs[i], 0, sizeof(specs[i]));
			specs[i].queue = QUEUE;
			specs[i].payload = payloads[i];
			specs[i].payload_len = strlen(payloads[i]);
		}
		int rc = cueq_push_many(c, specs, 100, res);
		if (rc != CUEQ_OK)
			fail_msg("cueq_push_many: %s (%s)", cueq_strerror(rc), cueq_last_error());
		for (int i = 0; i < 100; i++)
			assert_int_equal(res[i].err, CUEQ_OK);
	}
	counts(c, &st);
	assert_int_equal(st.ready, N_JOBS);

	for (int i = 0; i < 4; i++)
		assert_int_equal(cueq_connect(b->url, NULL, &own[i]), CUEQ_OK);
	assert_int_equal(cueq_connect(b->url, NULL, &common), CUEQ_OK);
	for (int i = 0; i < N_THREADS; i++) {
		cls[i].sh = sh;
		cls[i].index = i;
		cls[i].c = i < 4 ? own[i] : common;
		assert_int_equal(pthread_create(&th[i], NULL, claim_loop, &cls[i]), 0);
	}
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);

	if (sh->duplicates != 0)
		fail_msg("%zu double claims; first: %s", sh->duplicates, sh->first_dup);
	if (sh->errors != 0)
		fail_msg("%zu claim errors; first: %s", sh->errors, sh->first_err);
	assert_int_equal(sh->n, N_JOBS);
	/* Every token distinct, every attempt 1. */
	for (size_t i = 0; i < sh->n; i++) {
		assert_int_equal(cueq_job_attempt(sh->got[i].job), 1);
		assert_int_equal(strlen(cueq_job_token(sh->got[i].job)), PROTO_ID_LEN);
		for (size_t k = i + 1; k < sh->n; k++)
			assert_string_not_equal(cueq_job_token(sh->got[i].job),
						cueq_job_token(sh->got[k].job));
	}
	/* While the leases are live nothing more can be claimed. */
	cueq_job *extra[4];
	size_t n_extra = 0;
	assert_int_equal(cueq_claim(c, QUEUE, 4, 0, 300, extra, &n_extra), CUEQ_ERR_EMPTY);
	counts(c, &st);
	assert_int_equal(st.leased, N_JOBS);
	assert_int_equal(st.ready, 0);

	/* Ack them all in two batches. */
	for (size_t off = 0; off < sh->n; off += 100) {
		cueq_ack_item items[100];
		size_t k = sh->n - off < 100 ? sh->n - off : 100;
		for (size_t i = 0; i < k; i++) {
			memset(&items[i], 0, sizeof(items[i]));
			items[i].execution_id = cueq_job_id(sh->got[off + i].job);
			items[i].lease_token = cueq_job_token(sh->got[off + i].job);
			items[i].result = "ok";
		}
		int rc = cueq_ack_many(c, items, k);
		if (rc != CUEQ_OK)
			fail_msg("cueq_ack_many: %s (%s)", cueq_strerror(rc), cueq_last_error());
		for (size_t i = 0; i < k; i++)
			if (items[i].err != CUEQ_OK)
				fail_msg("ack of %s: %s", items[i].execution_id, cueq_strerror(items[i].err));
	}
	counts(c, &st);
	assert_int_equal(st.succeeded, N_JOBS);
	assert_int_equal(st.leased, 0);
	assert_int_equal(st.ready, 0);
	assert_int_equal(st.dead, 0);

	for (size_t i = 0; i < sh->n; i++)
		cueq_job_free(sh->got[i].job);
	for (int i = 0; i < 4; i++)
		cueq_close(own[i]);
	cueq_close(common);
	cueq_close(c);
	pthread_mutex_destroy(&sh->mu);
	free(sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lease_exclusivity, th_fixture_start, th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
