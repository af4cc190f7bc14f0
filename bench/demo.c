/*
 * demo.c - cueq-demo: the README's main job, end to end.
 *
 * A producer pushes N small jobs through a cueq_pusher while a few worker
 * threads each run a cueq_worker loop.  The handler does a little work and
 * records every execution ID it is given, so the demo can show the queue's
 * promise: every pushed job is done, a redelivery comes with a higher
 * attempt, and no execution is handed out twice for the same attempt.  It
 * exits non-zero when a job is missing or duplicated.
 *
 * One cueq_client is shared by the producer and all workers: a client is
 * thread-safe, each call uses its own request context.
 */
#include "idset.h"
#include "latency.h"

#include <cueq/cueq.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct demo {
	const char *url;
	char queue[64];
	size_t jobs;
	unsigned workers, concurrency;
	unsigned timeout_s;

	struct idset seen;		/* execution IDs handled */
	atomic_size_t calls;		/* handler calls */
	atomic_size_t redeliveries;	/* handler calls with attempt > 1 */
	atomic_size_t duplicates;	/* same ID again without a higher attempt */
	atomic_uint_fast64_t checksum;	/* the handlers' "work" */
	char (*pushed)[CUEQ_ID_SIZE];	/* execution ID of each job pushed */
	atomic_size_t push_ok, push_failed;
};

static int handler(cueq_job *job, void *arg)
{
	struct demo *d = arg;
	size_t len = 0;
	const unsigned char *p = cueq_job_payload(job, &len);
	uint64_t h = 1469598103934665603ull;

	/* The work: a hash of the payload. */
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	atomic_fetch_xor(&d->checksum, h);

	atomic_fetch_add(&d->calls, 1);
	if (cueq_job_attempt(job) > 1)
		atomic_fetch_add(&d->redeliveries, 1);
	switch (idset_see(&d->seen, cueq_job_id(job), cueq_job_attempt(job))) {
	case IDSET_DUPLICATE:
		atomic_fetch_add(&d->duplicates, 1);
		fprintf(stderr, "cueq-demo: execution %s handed out again at attempt %u\n",
			cueq_job_id(job), cueq_job_attempt(job));
		break;
	case IDSET_NOMEM:
		return CUEQ_ERR_NOMEM; /* nack: it comes back later */
	default:
		break;
	}
	return CUEQ_OK;
}

static void on_pushed(void *arg, void *tag, const cueq_push_result *res)
{
	struct demo *d = arg;
	size_t i = (size_t)(uintptr_t)tag;

	if (res->err != CUEQ_OK) {
		if (atomic_fetch_add(&d->push_failed, 1) == 0)
			fprintf(stderr, "cueq-demo: push refused: %s\n", cueq_strerror(res->err));
		return;
	}
	memcpy(d->pushed[i], res->execution_id, CUEQ_ID_SIZE);
	atomic_fetch_add(&d->push_ok, 1);
}

static void *run_worker(void *w)
{
	if (cueq_worker_run(w) != CUEQ_OK)
		fprintf(stderr, "cueq-demo: worker stopped: %s\n", cueq_last_error());
	return NULL;
}

/* Connects and pings, retrying for up to 15 s while the broker starts. */
static cueq_client *connect_retry(const char *url)
{
	cueq_client_opts o = { .connect_timeout_ms = 1000 };
	uint64_t deadline = now_ns() + 15000000000ull;
	cueq_client *c = NULL;

	do {
		if (cueq_connect(url, &o, &c) == CUEQ_OK) {
			if (cueq_ping(c, NULL) == CUEQ_OK)
				return c;
			cueq_close(c);
			c = NULL;
		}
		sleep_ms(200);
	} while (now_ns() < deadline);
	fprintf(stderr, "cueq-demo: no broker answers at %s: %s (start one with: cueqd --listen "
			"%s)\n",
		url, cueq_last_error(), url);
	return NULL;
}

/* Pushes every job; returns when each has its answer.  Stops adding at the
 * first refused push or at the deadline: with the broker gone, every batch
 * would wait out the SDK's retry deadline. */
static void produce(struct demo *d, cueq_client *c, uint64_t deadline)
{
	cueq_pusher_opts po = { .on_result = on_pushed, .arg = d };
	cueq_pusher *p = NULL;
	char payload[64];

	if (cueq_pusher_new(c, &po, &p) != CUEQ_OK) {
		fprintf(stderr, "cueq-demo: cannot make a pusher: %s\n", cueq_last_error());
		return;
	}
	for (size_t i = 0; i < d->jobs; i++) {
		int n = snprintf(payload, sizeof(payload), "{\"job\":%zu}", i);

		if (atomic_load(&d->push_failed) > 0 || now_ns() > deadline) {
			fprintf(stderr, "cueq-demo: stopped pushing after %zu of %zu jobs\n", i,
				d->jobs);
			break;
		}

		if (cueq_pusher_add(p, d->queue, payload, (size_t)n, NULL, (void *)(uintptr_t)i) !=
		    CUEQ_OK) {
			fprintf(stderr, "cueq-demo: push failed: %s\n", cueq_last_error());
			break;
		}
	}
	cueq_pusher_free(p); /* flushes: every job has its answer */
}

static size_t outcomes(cueq_worker **w, unsigned n)
{
	size_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		cueq_worker_counts c;

		cueq_worker_get_counts(w[i], &c);
		sum += c.succeeded + c.failed + c.lost;
	}
	return sum;
}

static size_t acked(cueq_worker **w, unsigned n)
{
	size_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		cueq_worker_counts c;

		cueq_worker_get_counts(w[i], &c);
		sum += c.succeeded;
	}
	return sum;
}

/* Waits until every pushed job was handled and every outcome sent. */
static bool wait_done(struct demo *d, cueq_worker **w, uint64_t deadline)
{
	while (now_ns() < deadline && atomic_load(&d->push_failed) == 0) {
		size_t ok = atomic_load(&d->push_ok);

		if (ok + atomic_load(&d->push_failed) == d->jobs && idset_size(&d->seen) >= ok &&
		    outcomes(w, d->workers) >= atomic_load(&d->calls))
			return true;
		sleep_ms(5);
	}
	return false;
}

static int parse_args(int argc, char **argv, struct demo *d)
{
	for (int i = 1; i < argc; i += 2) { /* every flag takes a value */
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		long n = v != NULL ? strtol(v, NULL, 10) : 0;

		if (strcmp(a, "--url") == 0 && v != NULL)
			d->url = v;
		else if (strcmp(a, "--queue") == 0 && v != NULL)
			snprintf(d->queue, sizeof(d->queue), "%s", v);
		else if (strcmp(a, "--jobs") == 0 && n >= 1 && n <= 10000000)
			d->jobs = (size_t)n;
		else if (strcmp(a, "--workers") == 0 && n >= 1 && n <= 64)
			d->workers = (unsigned)n;
		else if (strcmp(a, "--concurrency") == 0 && n >= 1 && n <= 64)
			d->concurrency = (unsigned)n;
		else if (strcmp(a, "--timeout") == 0 && n >= 1 && n <= 86400)
			d->timeout_s = (unsigned)n;
		else {
			fprintf(stderr, "usage: cueq-demo [--url URL] [--jobs N] [--workers N] "
					"[--concurrency N] [--timeout SECONDS] [--queue NAME]\n"
					"  defaults: $CUEQ_URL or tcp://127.0.0.1:7700, 10000 jobs, 4 "
					"workers, 4 handler threads each, 120 s, a new queue demo-...\n");
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct demo d = { .jobs = 10000, .workers = 4, .concurrency = 4, .timeout_s = 120 };
	cueq_worker_opts wo = { 0 };
	cueq_worker **w = NULL;
	pthread_t *tid = NULL;
	cueq_client *c = NULL;
	size_t missing = 0, done;
	unsigned started = 0;
	uint64_t t0 = now_ns(), t1 = t0;
	bool finished = false;
	int rc = 1;

	d.url = getenv("CUEQ_URL") != NULL ? getenv("CUEQ_URL") : "tcp://127.0.0.1:7700";
	snprintf(d.queue, sizeof(d.queue), "demo-%lx-%ld", (unsigned long)time(NULL), (long)getpid());
	if (parse_args(argc, argv, &d) != 0)
		return 2;
	wo.concurrency = d.concurrency;
	w = calloc(d.workers, sizeof(*w));
	tid = calloc(d.workers, sizeof(*tid));
	d.pushed = calloc(d.jobs, sizeof(*d.pushed));
	if (w == NULL || tid == NULL || d.pushed == NULL || idset_init(&d.seen, d.jobs) != 0) {
		fprintf(stderr, "cueq-demo: out of memory\n");
		goto out;
	}
	c = connect_retry(d.url);
	if (c == NULL)
		goto out;

	/* Workers first, so they are waiting when the jobs arrive. */
	for (unsigned i = 0; i < d.workers; i++) {
		if (cueq_worker_new(c, d.queue, handler, &d, &wo, &w[i]) != CUEQ_OK) {
			fprintf(stderr, "cueq-demo: cannot make a worker: %s\n", cueq_last_error());
			goto stop;
		}
		if (pthread_create(&tid[i], NULL, run_worker, w[i]) != 0) {
			fprintf(stderr, "cueq-demo: cannot start a worker thread\n");
			goto stop;
		}
		started++;
	}
	t0 = now_ns();
	produce(&d, c, t0 + (uint64_t)d.timeout_s * 1000000000ull);
	finished = wait_done(&d, w, t0 + (uint64_t)d.timeout_s * 1000000000ull);
	t1 = now_ns();
	if (!finished)
		fprintf(stderr, "cueq-demo: not done after %u s; stopping\n", d.timeout_s);
stop:
	for (unsigned i = 0; i < d.workers; i++)
		if (w[i] != NULL)
			cueq_worker_stop(w[i]);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	if (started < d.workers)
		goto out;

	/* Missing: not pushed (refused, or never sent), or pushed and not handled. */
	for (size_t i = 0; i < d.jobs; i++)
		if (d.pushed[i][0] == '\0' || idset_times(&d.seen, d.pushed[i]) == 0)
			missing++;
	done = acked(w, d.workers);
	double secs = (double)(t1 - t0) / 1e9;
	printf("cueq demo on %s, queue %s\n", d.url, d.queue);
	printf("  jobs pushed      %zu of %zu (one cueq_pusher)\n", atomic_load(&d.push_ok), d.jobs);
	printf("  jobs done        %zu (acked by %u workers x %u handler threads)\n", done,
	       d.workers, d.concurrency);
	printf("  elapsed          %.2f s\n", secs);
	printf("  throughput       %.0f jobs/s (push to last ack)\n", secs > 0 ? done / secs : 0);
	printf("  redeliveries     %zu (handler calls with attempt > 1)\n",
	       atomic_load(&d.redeliveries));
	printf("  handled twice    %zu execution IDs\n", idset_multi(&d.seen));
	printf("  duplicates       %zu (same execution ID again, attempt not higher; must be 0)\n",
	       atomic_load(&d.duplicates));
	printf("  missing          %zu (not pushed, or never handled; must be 0)\n", missing);
	if (missing == 0 && atomic_load(&d.duplicates) == 0 && finished) {
		printf("OK: every job was done, none twice.\n");
		rc = 0;
	} else {
		printf("FAILED: %s.\n", missing > 0 ? "jobs are missing" :
				       atomic_load(&d.duplicates) > 0 ? "jobs were duplicated"
								      : "the run did not finish");
	}
out:
	if (w != NULL)
		for (unsigned i = 0; i < d.workers; i++)
			if (w[i] != NULL)
				cueq_worker_free(w[i]);
	if (c != NULL)
		cueq_close(c);
	idset_free(&d.seen);
	free(d.pushed);
	free(tid);
	free(w);
	return rc;
}
