/*
 * test_worker.c - the SDK worker loop (cueq_worker_*).
 *
 * A handler that runs longer than its lease must not lose the job: the
 * worker extends the lease in the background, so each job is handled once
 * (attempt 1), never redelivered, and its history shows the extensions.
 * A handler that fails gets its job nacked and redelivered with attempt 2.
 * The default prefetch adapts: behind a deep backlog a worker holds many
 * more jobs than concurrency + 1 (so one round trip carries many), and with
 * slow handlers it holds no more than it can start, so two workers share a
 * short queue instead of one hoarding it.
 * A watchdog thread stops a worker that overruns, so a hang is a failed
 * assertion, not a ctest timeout.
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>
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
#include "proc.h"

#define MAX_SEEN 64

typedef struct seen {
	pthread_mutex_t mu;
	char id[MAX_SEEN][CUEQ_ID_SIZE];
	uint32_t attempt[MAX_SEEN];
	size_t n;
	int64_t sleep_ms; /* how long the handler runs */
	bool fail;	  /* the handler fails */
	bool fail_returns_ok; /* ... with cueq_job_fail, then returns CUEQ_OK */
	size_t lost;	  /* handlers that saw cueq_job_lease_lost() */
} seen;

static int handler(cueq_job *j, void *arg)
{
	seen *s = arg;
	pthread_mutex_lock(&s->mu);
	if (s->n < MAX_SEEN) {
		snprintf(s->id[s->n], CUEQ_ID_SIZE, "%s", cueq_job_id(j));
		s->attempt[s->n] = cueq_job_attempt(j);
		s->n++;
	}
	pthread_mutex_unlock(&s->mu);
	/* Sleep in slices, as a real handler would check for a lost lease. */
	for (int64_t slept = 0; slept < s->sleep_ms; slept += 50)
		th_sleep_ms(50);
	if (cueq_job_lease_lost(j)) {
		pthread_mutex_lock(&s->mu);
		s->lost++;
		pthread_mutex_unlock(&s->mu);
	}
	if (s->fail) {
		cueq_job_fail(j, "handler failed", 0, false);
		/* a failure is nacked even when the handler then returns ok */
		return s->fail_returns_ok ? CUEQ_OK : CUEQ_ERR_INVALID;
	}
	cueq_job_set_result(j, "handled");
	return CUEQ_OK;
}

typedef struct watchdog {
	cueq_worker *w;
	int64_t limit_ms;
	pthread_mutex_t mu;
	bool done, fired;
} watchdog;

static void *watch(void *arg)
{
	watchdog *d = arg;
	int64_t deadline = th_now_ms() + d->limit_ms;
	pthread_mutex_lock(&d->mu);
	while (!d->done && th_now_ms() < deadline) {
		pthread_mutex_unlock(&d->mu);
		th_sleep_ms(20);
		pthread_mutex_lock(&d->mu);
	}
	if (!d->done) {
		d->fired = true;
		cueq_worker_stop(d->w);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Runs a worker on queue until max_jobs (or the watchdog's limit). */
static void run_worker(cueq_client *c, const char *queue, seen *s, const cueq_worker_opts *o,
		       int64_t limit_ms, cueq_worker_counts *counts)
{
	cueq_worker *w = NULL;
	pthread_t t;
	watchdog d = { .limit_ms = limit_ms };
	int rc = cueq_worker_new(c, queue, handler, s, o, &w);

	if (rc != CUEQ_OK)
		fail_msg("cueq_worker_new: %s (%s)", cueq_strerror(rc), cueq_last_error());
	d.w = w;
	pthread_mutex_init(&d.mu, NULL);
	assert_int_equal(pthread_create(&t, NULL, watch, &d), 0);
	rc = cueq_worker_run(w);
	pthread_mutex_lock(&d.mu);
	d.done = true;
	pthread_mutex_unlock(&d.mu);
	pthread_join(t, NULL);
	pthread_mutex_destroy(&d.mu);
	cueq_worker_get_counts(w, counts);
	cueq_worker_free(w);
	if (d.fired)
		fail_msg("the worker on %s did not finish %llu jobs within %lld ms (handled %zu)", queue,
			 (unsigned long long)o->max_jobs, (long long)limit_ms, s->n);
	if (rc != CUEQ_OK)
		fail_msg("cueq_worker_run: %s (%s)", cueq_strerror(rc), cueq_last_error());
}

#define N_LONG 4

static void test_long_handler_keeps_lease(void **state)
{
	th_broker *b = *state;
	cueq_client *c = NULL;
	seen s = { .sleep_ms = 2500 };
	cueq_worker_opts o = { .concurrency = 2, .lease_ms = 1000, .max_jobs = N_LONG };
	cueq_push_opts po = { .lease_ms = 1000 };
	cueq_worker_counts counts = { 0 };
	char ids[N_LONG][CUEQ_ID_SIZE];

	pthread_mutex_init(&s.mu, NULL);
	assert_int_equal(cueq_connect(b->url, NULL, &c), CUEQ_OK);
	for (int i = 0; i < N_LONG; i++) {
		cueq_push_result r;
		char p[16];
		snprintf(p, sizeof(p), "slow-%d", i);
		assert_int_equal(cueq_push(c, "slow", p, strlen(p), &po, &r), CUEQ_OK);
		strcpy(ids[i], r.execution_id);
	}
	run_worker(c, "slow", &s, &o, 30000, &counts);

	assert_int_equal(s.n, N_LONG);
	assert_int_equal(s.lost, 0);
	for (size_t i = 0; i < s.n; i++) {
		assert_int_equal(s.attempt[i], 1);
		for (size_t k = i + 1; k < s.n; k++)
			if (strcmp(s.id[i], s.id[k]) == 0)
				fail_msg("%s was handled twice", s.id[i]);
	}
	assert_int_equal(counts.succeeded, N_LONG);
	assert_int_equal(counts.failed, 0);
	assert_int_equal(counts.lost, 0);
	for (int i = 0; i < N_LONG; i++) {
		cueq_execution *e = NULL;
		assert_int_equal(cueq_get(c, ids[i], &e), CUEQ_OK);
		assert_int_equal(e->state, CUEQ_SUCCEEDED);
		assert_int_equal(e->attempt, 1);
		assert_int_equal(e->expiries, 0);
		assert_string_equal(e->result, "handled");
		if (th_count_events(e, "extended") < 1)
			fail_msg("%s: a 2.5 s handler under a 1 s lease, but no 'extended' event", ids[i]);
		assert_int_equal(th_count_events(e, "claimed"), 1);
		cueq_execution_free(e);
	}
	/* Nothing left to redeliver. */
	cueq_job *j = NULL;
	size_t n = 0;
	assert_int_equal(cueq_claim(c, "slow", 1, 0, 1500, &j, &n), CUEQ_ERR_EMPTY);
	cueq_close(c);
	pthread_mutex_destroy(&s.mu);
}

static void test_failing_handler_nacks(void **state)
{
	th_broker *b = *state;
	cueq_client *c = NULL;
	seen s = { .fail = true };
	cueq_worker_opts o = { .concurrency = 1, .max_jobs = 1 };
	cueq_worker_counts counts = { 0 };
	cueq_push_result r;
	cueq_execution *e = NULL;

	pthread_mutex_init(&s.mu, NULL);
	assert_int_equal(cueq_connect(b->url, NULL, &c), CUEQ_OK);
	assert_int_equal(cueq_push(c, "flaky", "x", 1, NULL, &r), CUEQ_OK);

	run_worker(c, "flaky", &s, &o, 15000, &counts);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.attempt[0], 1);
	assert_int_equal(counts.failed, 1);
	assert_int_equal(counts.succeeded, 0);
	assert_int_equal(cueq_get(c, r.execution_id, &e), CUEQ_OK);
	assert_true(e->state == CUEQ_READY || e->state == CUEQ_SCHEDULED);
	assert_int_equal(e->failures, 1);
	assert_non_null(e->error);
	assert_string_equal(e->error, "handler failed");
	assert_int_equal(th_count_events(e, "nacked"), 1);
	cueq_execution_free(e);

	/* cueq_job_fail and then CUEQ_OK: still a nack (attempt 2 fails so). */
	s.fail_returns_ok = true;
	s.n = 0;
	run_worker(c, "flaky", &s, &o, 15000, &counts);
	assert_int_equal(s.n, 1);
	assert_int_equal(counts.failed, 1);
	assert_int_equal(counts.succeeded, 0);
	assert_int_equal(cueq_get(c, r.execution_id, &e), CUEQ_OK);
	assert_int_not_equal(e->state, CUEQ_SUCCEEDED);
	assert_int_equal(e->failures, 2);
	cueq_execution_free(e);

	/* Redelivered to the next worker with attempt 3. */
	s.fail = false;
	s.n = 0;
	run_worker(c, "flaky", &s, &o, 15000, &counts);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.id[0], r.execution_id);
	assert_int_equal(s.attempt[0], 3);
	assert_int_equal(counts.succeeded, 1);
	assert_int_equal(cueq_get(c, r.execution_id, &e), CUEQ_OK);
	assert_int_equal(e->state, CUEQ_SUCCEEDED);
	assert_int_equal(e->attempt, 3);
	cueq_execution_free(e);
	cueq_close(c);
	pthread_mutex_destroy(&s.mu);
}

/* ---- the adaptive prefetch ---- */

#define N_BACKLOG 1500

typedef struct backlog {
	pthread_mutex_t mu;
	cueq_client *observer; /* its own connection: the worker's is busy */
	const char *queue;
	size_t handled, redelivered;
	uint64_t max_leased;
	int64_t sleep_ms;
} backlog;

static int backlog_handler(cueq_job *j, void *arg)
{
	backlog *b = arg;
	cueq_queue_stats *st = NULL;
	size_t n = 0;
	pthread_mutex_lock(&b->mu);
	size_t seq = b->handled++;
	if (cueq_job_attempt(j) != 1)
		b->redelivered++;
	if (b->observer != NULL && seq % 50 == 10 &&
	    cueq_stats(b->observer, b->queue, &st, &n) == CUEQ_OK && n == 1 &&
	    st[0].leased > b->max_leased)
		b->max_leased = st[0].leased;
	cueq_stats_free(st, n);
	pthread_mutex_unlock(&b->mu);
	if (b->sleep_ms)
		th_sleep_ms(b->sleep_ms);
	return CUEQ_OK;
}

static void push_n(cueq_client *c, const char *queue, size_t n)
{
	static cueq_job_spec specs[CUEQ_MAX_BATCH];
	static cueq_push_result res[CUEQ_MAX_BATCH];
	for (size_t done = 0; done < n;) {
		size_t k = n - done < CUEQ_MAX_BATCH ? n - done : CUEQ_MAX_BATCH;
		for (size_t i = 0; i < k; i++)
			specs[i] = (cueq_job_spec){ .queue = queue, .payload = "job", .payload_len = 3 };
		assert_int_equal(cueq_push_many(c, specs, k, res), CUEQ_OK);
		for (size_t i = 0; i < k; i++)
			assert_int_equal(res[i].err, CUEQ_OK);
		done += k;
	}
}

static void test_prefetch_grows_behind_a_backlog(void **state)
{
	th_broker *b = *state;
	cueq_client *c = NULL;
	cueq_worker *w = NULL;
	/* 2 ms of work a job: the window's cap (200 ms of the handlers'
	 * measured rate, about 100 jobs) then does not hang on how fast a
	 * loaded machine turns claims and acks around */
	backlog bl = { .queue = "deep", .sleep_ms = 2 };
	cueq_worker_opts o = { .max_jobs = N_BACKLOG };
	cueq_worker_counts counts = { 0 };
	cueq_queue_stats *st = NULL;
	size_t n = 0;

	pthread_mutex_init(&bl.mu, NULL);
	assert_int_equal(cueq_connect(b->url, NULL, &c), CUEQ_OK);
	assert_int_equal(cueq_connect(b->url, NULL, &bl.observer), CUEQ_OK);
	push_n(c, "deep", N_BACKLOG);
	assert_int_equal(cueq_worker_new(c, "deep", backlog_handler, &bl, &o, &w), CUEQ_OK);
	assert_int_equal(cueq_worker_run(w), CUEQ_OK);
	cueq_worker_get_counts(w, &counts);
	cueq_worker_free(w);

	assert_int_equal(bl.handled, N_BACKLOG);
	assert_int_equal(bl.redelivered, 0);
	assert_int_equal(counts.succeeded, N_BACKLOG);
	/* one handler thread: without adapting it would hold 2 at most */
	if (bl.max_leased <= 8)
		fail_msg("the worker held at most %llu jobs at once behind a backlog of %d; "
			 "the adaptive prefetch should have grown past 8",
			 (unsigned long long)bl.max_leased, N_BACKLOG);
	assert_true(bl.max_leased <= CUEQ_MAX_CLAIM * 2);
	assert_int_equal(cueq_stats(c, "deep", &st, &n), CUEQ_OK);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].succeeded, N_BACKLOG);
	assert_int_equal(st[0].ready + st[0].leased, 0);
	cueq_stats_free(st, n);
	cueq_close(bl.observer);
	cueq_close(c);
	pthread_mutex_destroy(&bl.mu);
}

typedef struct slow_worker {
	cueq_worker *w;
	int rc;
} slow_worker;

static void *slow_worker_main(void *arg)
{
	slow_worker *sw = arg;
	sw->rc = cueq_worker_run(sw->w);
	return NULL;
}

static void test_prefetch_does_not_hoard_a_short_queue(void **state)
{
	th_broker *b = *state;
	cueq_client *c = NULL, *wc[2] = { NULL, NULL };
	backlog bl = { .queue = "short", .sleep_ms = 150 };
	cueq_worker_opts o = { .wait_ms = 200 };
	slow_worker sw[2] = { 0 };
	cueq_worker_counts counts[2] = { 0 };
	pthread_t t[2];

	pthread_mutex_init(&bl.mu, NULL);
	assert_int_equal(cueq_connect(b->url, NULL, &c), CUEQ_OK);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(cueq_connect(b->url, NULL, &wc[i]), CUEQ_OK);
		assert_int_equal(cueq_worker_new(wc[i], "short", backlog_handler, &bl, &o, &sw[i].w),
				 CUEQ_OK);
	}
	push_n(c, "short", 6);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, slow_worker_main, &sw[i]), 0);
	int64_t deadline = th_now_ms() + 10000;
	for (;;) {
		cueq_worker_get_counts(sw[0].w, &counts[0]);
		cueq_worker_get_counts(sw[1].w, &counts[1]);
		if (counts[0].succeeded + counts[1].succeeded >= 6 || th_now_ms() > deadline)
			break;
		th_sleep_ms(20);
	}
	for (int i = 0; i < 2; i++)
		cueq_worker_stop(sw[i].w);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(sw[i].rc, CUEQ_OK);
		cueq_worker_get_counts(sw[i].w, &counts[i]);
		cueq_worker_free(sw[i].w);
		cueq_close(wc[i]);
	}
	assert_int_equal(counts[0].succeeded + counts[1].succeeded, 6);
	assert_int_equal(bl.handled, 6);
	assert_int_equal(bl.redelivered, 0);
	/* one handler thread each, 150 ms a job: a worker holds what it can
	 * start and one more, so neither takes more than 4 of the 6 */
	for (int i = 0; i < 2; i++)
		if (counts[i].succeeded < 2)
			fail_msg("worker %d ran %llu of 6 jobs while the other ran %llu: the "
				 "prefetch hoarded a short queue", i,
				 (unsigned long long)counts[i].succeeded,
				 (unsigned long long)counts[1 - i].succeeded);
	cueq_close(c);
	pthread_mutex_destroy(&bl.mu);
}

/* The wall-clock time (Unix ms) of the claim of attempt 1 in id's history,
 * 0 when there is none. */
static int64_t first_claim_at(th_raw *r, const char *id)
{
	th_reply rep;
	const msgpack_object *exe, *h;
	int64_t at = 0;
	assert_int_equal(th_raw_get(r, id, &rep, &exe), 0);
	h = th_get(exe, "history");
	for (uint32_t i = 0; h != NULL && i < h->via.array.size; i++) {
		const msgpack_object *ev = &h->via.array.ptr[i];
		char name[32] = "";
		uint64_t attempt = 0, t = 0;
		th_str(ev, "event", name, sizeof(name));
		th_uint(ev, "attempt", &attempt);
		th_uint(ev, "at", &t);
		if (strcmp(name, "claimed") == 0 && attempt == 1 && at == 0)
			at = (int64_t)t;
	}
	th_reply_free(&rep);
	return at;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A worker stopped (SIGSTOP) with a claim in flight: the broker answers
 * it with a job while the worker is stopped, and the job's lease runs out
 * before the worker resumes.  On SIGCONT the worker reads that answer; it
 * must not start the job, whose lease it cannot show is live (the lease
 * began after the claim was sent, and that was before the stop).  The
 * commands log "ID ATTEMPT": attempt 1 of such a job must never appear,
 * and the worker says on stderr that it did not run it.  The job is
 * pushed right after the stop; a round where the claim was not in flight
 * (the broker's history shows attempt 1 claimed after the resume) proves
 * nothing and is played again with a new job. */
static void test_stopped_worker_runs_no_dead_lease(void **state)
{
	th_broker *b = *state;
	char dir[] = "/tmp/cueq-stop-XXXXXX", log[64], errlog[64], script[256];
	th_raw r;
	assert_non_null(mkdtemp(dir));
	snprintf(log, sizeof(log), "%s/ran", dir);
	snprintf(errlog, sizeof(errlog), "%s/stderr", dir);
	snprintf(script, sizeof(script), "echo \"$CUEQ_EXECUTION_ID $CUEQ_ATTEMPT\" >> %s", log);
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);

	char *const argv[] = {(char *)th_cli_path, "work", "stopq", "--lease", "1s", "--url", b->url,
			      "--", "/bin/sh", "-c", script, NULL};
	proc_opts o = {.log = errlog};
	pid_t w = proc_spawn(argv, &o);
	assert_true(w > 0);
	th_sleep_ms(500); /* its first claim waits */
	char id[PROTO_ID_LEN + 1] = "";
	bool shown = false;
	for (int round = 0; round < 6 && !shown; round++) {
		assert_int_equal(kill(w, SIGSTOP), 0);
		int64_t stopped = wall_ms();
		assert_int_equal(th_raw_push(&r, "stopq", "x", 0, 10, id), 0);
		th_sleep_ms(2500); /* its lease (1 s) runs out at the broker */
		int64_t resumed = wall_ms();
		assert_int_equal(kill(w, SIGCONT), 0);
		th_sleep_ms(2500); /* redelivered: attempt 2 runs */
		int64_t at = first_claim_at(&r, id);
		shown = at >= stopped && at < resumed;
	}
	if (!shown)
		fail_msg("in 6 rounds the broker never answered the stopped worker's claim");
	int status;
	proc_stop(w, 15000, &status);

	FILE *f = fopen(log, "r");
	assert_non_null(f);
	char got[64];
	unsigned attempt, second = 0;
	while (fscanf(f, "%63s %u", got, &attempt) == 2) {
		if (strcmp(got, id) == 0 && attempt == 1)
			fail_msg("%s was started at attempt 1 after its lease ended in the stop", id);
		second += strcmp(got, id) == 0 && attempt == 2;
	}
	fclose(f);
	assert_int_equal(second, 1); /* delivered again, and run */
	f = fopen(errlog, "r");
	assert_non_null(f);
	char line[512];
	bool said = false;
	while (fgets(line, sizeof(line), f) != NULL)
		said |= strstr(line, id) != NULL && strstr(line, "not run") != NULL;
	fclose(f);
	assert_true(said);
	th_raw_close(&r);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_long_handler_keeps_lease, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_failing_handler_nacks, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_prefetch_grows_behind_a_backlog,
						th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_stopped_worker_runs_no_dead_lease,
						th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_prefetch_does_not_hoard_a_short_queue,
						th_fixture_start, th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
