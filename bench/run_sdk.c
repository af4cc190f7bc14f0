/*
 * run_sdk.c - the "sdk" mode: the SDK's batching with its default options.
 *
 * Producer threads feed a cueq_pusher each (batches, several requests in
 * flight); worker threads each run a cueq_worker loop (prefetching claims,
 * coalesced acks) with a few handler threads.  Every thread has its own
 * cueq_client.  The handler only records the delivery, so the figures are
 * the queue's, not the handler's.
 *
 * The end of the run is seen from outside: the main thread polls the
 * workers' counts until every job was delivered and every delivery has its
 * outcome accepted, then stops the workers.
 */
#include "bench.h"
#include "brokerproc.h"
#include "latency.h"
#include "tally.h"

#include <cueq/cueq.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STALL_NS 3000000000ull /* no progress this long after failed pushes: stop */

struct ctx {
	const struct bench_cfg *cfg;
	struct tally tally;
	struct lat push;
	uint64_t *t_add; /* per sequence number: when it was given to the pusher */
	atomic_size_t errors;
	atomic_uint producers_left;
	atomic_bool stop; /* the run is over: producers stop adding */
};

struct thr {
	struct ctx *ctx;
	cueq_client *client;
	cueq_worker *worker; /* workers only */
	pthread_t tid;
	bool started;
	size_t first, end; /* producers: sequence numbers [first, end) */
	uint64_t t_first;  /* producers: first add */
};

static void on_result(void *arg, void *tag, const cueq_push_result *res)
{
	struct ctx *x = arg;
	size_t seq = (size_t)(uintptr_t)tag - 1;
	uint64_t now = now_ns();

	if (res->err != CUEQ_OK) {
		if (atomic_fetch_add(&x->errors, 1) < 5)
			fprintf(stderr, "cueq-bench: a push was refused: %s\n",
				cueq_strerror(res->err));
		return;
	}
	if (seq < x->tally.jobs)
		lat_add(&x->push, now - x->t_add[seq]);
}

static void *producer(void *arg)
{
	struct thr *me = arg;
	struct ctx *x = me->ctx;
	cueq_pusher_opts po = { .on_result = on_result, .arg = x };
	cueq_pusher *p = NULL;
	unsigned char *buf = malloc(x->tally.payload);
	int rc;

	if (buf == NULL || cueq_pusher_new(me->client, &po, &p) != CUEQ_OK) {
		fprintf(stderr, "cueq-bench: cannot make a pusher: %s\n", cueq_last_error());
		atomic_fetch_add(&x->errors, 1);
		goto out;
	}
	for (size_t seq = me->first; seq < me->end; seq++) {
		uint64_t t0 = now_ns();

		/* After a refused push or the end of the run, stop adding: with
		 * the broker gone every batch waits out the retry deadline. */
		if (atomic_load(&x->stop) || atomic_load(&x->errors) > 0)
			break;

		if (seq == me->first)
			me->t_first = t0;
		x->t_add[seq] = t0;
		payload_fill(&x->tally, buf, seq, t0);
		rc = cueq_pusher_add(p, x->cfg->queue, buf, x->tally.payload, NULL,
				     (void *)(uintptr_t)(seq + 1));
		if (rc != CUEQ_OK) {
			if (atomic_fetch_add(&x->errors, 1) < 5)
				fprintf(stderr, "cueq-bench: pusher add failed: %s\n",
					cueq_last_error());
			break;
		}
	}
	rc = cueq_pusher_flush(p);
	if (rc != CUEQ_OK)
		fprintf(stderr, "cueq-bench: pusher flush: %s\n", cueq_strerror(rc));
out:
	if (p != NULL)
		cueq_pusher_free(p);
	free(buf);
	atomic_fetch_sub(&x->producers_left, 1);
	return NULL;
}

static int handler(cueq_job *job, void *arg)
{
	struct ctx *x = arg;
	size_t len = 0;
	const void *p = cueq_job_payload(job, &len);

	tally_see(&x->tally, p, len, now_ns());
	return CUEQ_OK;
}

static void *worker(void *arg)
{
	struct thr *me = arg;

	if (cueq_worker_run(me->worker) != CUEQ_OK)
		fprintf(stderr, "cueq-bench: worker stopped: %s\n", cueq_last_error());
	return NULL;
}

/* Outcomes the workers have had accepted (or given up on). */
static size_t outcomes(struct thr *w, unsigned n)
{
	size_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		cueq_worker_counts c;

		cueq_worker_get_counts(w[i].worker, &c);
		sum += c.succeeded + c.failed + c.lost;
	}
	return sum;
}

/* Polls until done, timed out, stalled or the broker died; returns when the
 * last ack was seen. */
static uint64_t watch(struct ctx *x, struct thr *w, unsigned nw, uint64_t deadline,
		      bool *died)
{
	size_t last_calls = 0;
	uint64_t last_change = now_ns(), now;

	for (;;) {
		size_t calls = atomic_load(&x->tally.calls);

		now = now_ns();
		if (atomic_load(&x->tally.distinct) == x->tally.jobs && outcomes(w, nw) >= calls)
			return now;
		if (now > deadline)
			return now;
		if (x->cfg->broker_pid > 0 && !proc_alive(x->cfg->broker_pid)) {
			fprintf(stderr, "cueq-bench: the broker died; stopping the run\n");
			*died = true;
			return now;
		}
		if (calls != last_calls) {
			last_calls = calls;
			last_change = now;
		} else if (atomic_load(&x->producers_left) == 0 && atomic_load(&x->errors) > 0 &&
			   now - last_change > STALL_NS) {
			return now;
		}
		sleep_ms(1);
	}
}

int run_sdk(const char *url, const struct bench_cfg *cfg, struct bench_result *r)
{
	unsigned np = cfg->producers, nw = cfg->workers, i;
	struct thr *t = calloc(np + nw, sizeof(*t)), *w = t + np;
	struct ctx x = { .cfg = cfg };
	cueq_worker_opts wo = { .concurrency = cfg->concurrency };
	uint64_t t_first = UINT64_MAX, t_end;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	x.t_add = calloc(cfg->jobs ? cfg->jobs : 1, sizeof(*x.t_add));
	if (t == NULL || x.t_add == NULL || tally_init(&x.tally, cfg->jobs, cfg->payload) != 0 ||
	    lat_init(&x.push, cfg->jobs) != 0) {
		fprintf(stderr, "cueq-bench: out of memory\n");
		goto out;
	}
	atomic_init(&x.errors, 0);
	atomic_init(&x.producers_left, np);
	atomic_init(&x.stop, false);
	for (i = 0; i < np + nw; i++) {
		t[i].ctx = &x;
		if (cueq_connect(url, NULL, &t[i].client) != CUEQ_OK) {
			fprintf(stderr, "cueq-bench: cannot connect to %s: %s\n", url,
				cueq_last_error());
			goto out;
		}
	}
	for (i = 0; i < nw; i++) {
		if (cueq_worker_new(w[i].client, cfg->queue, handler, &x, &wo, &w[i].worker) !=
		    CUEQ_OK) {
			fprintf(stderr, "cueq-bench: cannot make a worker: %s\n", cueq_last_error());
			goto out;
		}
	}
	for (i = 0; i < np + nw; i++) {
		if (i < np) {
			t[i].first = cfg->jobs * i / np;
			t[i].end = cfg->jobs * (i + 1) / np;
		}
		t[i].started = pthread_create(&t[i].tid, NULL, i < np ? producer : worker,
					      &t[i]) == 0;
		if (!t[i].started) {
			fprintf(stderr, "cueq-bench: cannot start a thread\n");
			if (i < np)
				atomic_fetch_sub(&x.producers_left, 1);
		}
	}
	t_end = watch(&x, w, nw, now_ns() + (uint64_t)(cfg->timeout_s * 1e9), &r->broker_died);
	atomic_store(&x.stop, true);
	for (i = 0; i < nw; i++)
		cueq_worker_stop(w[i].worker);
	for (i = 0; i < np + nw; i++) {
		if (!t[i].started)
			continue;
		pthread_join(t[i].tid, NULL);
		if (i < np && t[i].t_first != 0 && t[i].t_first < t_first)
			t_first = t[i].t_first;
	}
	r->timed_out = atomic_load(&x.tally.distinct) != x.tally.jobs;
	r->secs = t_end > t_first ? (double)(t_end - t_first) / 1e9 : 0;
	r->rate = r->secs > 0 ? (double)atomic_load(&x.tally.distinct) / r->secs : 0;
	r->push[0] = lat_pct(&x.push, 50);
	r->push[1] = lat_pct(&x.push, 99);
	r->claim[0] = r->claim[1] = r->ack[0] = r->ack[1] = BENCH_NO_LAT;
	r->e2e[0] = lat_pct(&x.tally.e2e, 50);
	r->e2e[1] = lat_pct(&x.tally.e2e, 99);
	r->lost = tally_lost(&x.tally);
	r->dups = tally_dups(&x.tally);
	r->bad = atomic_load(&x.tally.bad);
	r->errors = atomic_load(&x.errors);
	rc = 0;
out:
	if (t != NULL) {
		for (i = 0; i < np + nw; i++) {
			if (t[i].worker != NULL)
				cueq_worker_free(t[i].worker);
			if (t[i].client != NULL)
				cueq_close(t[i].client);
		}
	}
	free(t);
	free(x.t_add);
	tally_free(&x.tally);
	lat_free(&x.push);
	return rc;
}
