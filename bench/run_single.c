/*
 * run_single.c - the "single" mode: one request per job operation.
 *
 * Every producer thread pushes its share with cueq_push, one job per
 * request; every worker thread loops cueq_claim (max 1, long poll) and
 * cueq_ack.  Each thread has its own cueq_client, as separate processes
 * would.  This is the floor: what a naive client gets, bounded by one nng
 * round trip per operation.
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

#define CLAIM_WAIT_MS 200

struct ctx {
	const struct bench_cfg *cfg;
	struct tally tally;
	struct lat push, claim, ack;
	atomic_size_t errors;
	atomic_uint producers_left;
	atomic_uint running; /* threads not yet finished */
	_Atomic uint64_t deadline; /* monotonic ns; 0 stops every thread */
};

struct thr {
	struct ctx *ctx;
	cueq_client *client;
	pthread_t tid;
	bool started;
	size_t first, end; /* producers: sequence numbers [first, end) */
	uint64_t t_first;  /* producers: start of the first push */
	uint64_t t_last;   /* workers: end of the last ack */
};

static void *producer(void *arg)
{
	struct thr *me = arg;
	struct ctx *x = me->ctx;
	unsigned char *buf = malloc(x->tally.payload);

	for (size_t seq = me->first; buf != NULL && seq < me->end; seq++) {
		uint64_t t0 = now_ns();

		if (seq == me->first)
			me->t_first = t0;
		payload_fill(&x->tally, buf, seq, t0);
		if (cueq_push(me->client, x->cfg->queue, buf, x->tally.payload, NULL, NULL) !=
		    CUEQ_OK) {
			if (atomic_fetch_add(&x->errors, 1) < 5)
				fprintf(stderr, "cueq-bench: push failed: %s\n", cueq_last_error());
			if (now_ns() > atomic_load(&x->deadline))
				break;
			continue;
		}
		lat_add(&x->push, now_ns() - t0);
	}
	if (buf == NULL)
		atomic_fetch_add(&x->errors, 1);
	free(buf);
	atomic_fetch_sub(&x->producers_left, 1);
	atomic_fetch_sub(&x->running, 1);
	return NULL;
}

static bool all_done(struct ctx *x)
{
	return atomic_load(&x->tally.distinct) == x->tally.jobs &&
	       atomic_load(&x->tally.finished) == atomic_load(&x->tally.calls);
}

static void *worker(void *arg)
{
	struct thr *me = arg;
	struct ctx *x = me->ctx;

	while (!all_done(x) && now_ns() < atomic_load(&x->deadline)) {
		cueq_job *job = NULL;
		size_t n = 0;
		uint64_t t0 = now_ns(), t1, t2;
		int rc = cueq_claim(me->client, x->cfg->queue, 1, 0, CLAIM_WAIT_MS, &job, &n);

		if (rc == CUEQ_ERR_EMPTY || (rc == CUEQ_OK && n == 0)) {
			/* Nothing left to come if a producer gave up on some jobs. */
			if (atomic_load(&x->producers_left) == 0 && atomic_load(&x->errors) > 0)
				break;
			continue;
		}
		if (rc != CUEQ_OK) {
			if (atomic_fetch_add(&x->errors, 1) < 5)
				fprintf(stderr, "cueq-bench: claim failed: %s\n", cueq_last_error());
			sleep_ms(10);
			continue;
		}
		t1 = now_ns();
		lat_add(&x->claim, t1 - t0);
		size_t len = 0;
		const void *p = cueq_job_payload(job, &len);
		tally_see(&x->tally, p, len, t1);
		t2 = now_ns();
		rc = cueq_ack(me->client, cueq_job_id(job), cueq_job_token(job), NULL);
		me->t_last = now_ns();
		if (rc == CUEQ_OK) {
			lat_add(&x->ack, me->t_last - t2);
		} else if (atomic_fetch_add(&x->errors, 1) < 5) {
			fprintf(stderr, "cueq-bench: ack of %s failed: %s\n", cueq_job_id(job),
				cueq_last_error());
		}
		atomic_fetch_add(&x->tally.finished, 1);
		cueq_job_free(job);
	}
	atomic_fetch_sub(&x->running, 1);
	return NULL;
}

/* Waits for the threads; stops them early if the broker dies. */
static bool watch(struct ctx *x)
{
	while (atomic_load(&x->running) > 0) {
		if (x->cfg->broker_pid > 0 && !proc_alive(x->cfg->broker_pid)) {
			fprintf(stderr, "cueq-bench: the broker died; stopping the run\n");
			atomic_store(&x->deadline, 0);
			return true;
		}
		sleep_ms(10);
	}
	return false;
}

static int connect_all(const char *url, struct thr *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (cueq_connect(url, NULL, &t[i].client) != CUEQ_OK) {
			fprintf(stderr, "cueq-bench: cannot connect to %s: %s\n", url,
				cueq_last_error());
			return -1;
		}
	}
	return 0;
}

static void fill_pct(struct lat *l, uint64_t out[2])
{
	out[0] = lat_pct(l, 50);
	out[1] = lat_pct(l, 99);
}

int run_single(const char *url, const struct bench_cfg *cfg, struct bench_result *r)
{
	unsigned np = cfg->producers, nw = cfg->workers, i;
	struct thr *t = calloc(np + nw, sizeof(*t));
	struct ctx x = { .cfg = cfg };
	uint64_t t_first = UINT64_MAX, t_last = 0;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if (t == NULL || tally_init(&x.tally, cfg->jobs, cfg->payload) != 0 ||
	    lat_init(&x.push, cfg->jobs) != 0 || lat_init(&x.claim, cfg->jobs * 2) != 0 ||
	    lat_init(&x.ack, cfg->jobs * 2) != 0) {
		fprintf(stderr, "cueq-bench: out of memory\n");
		goto out;
	}
	atomic_init(&x.errors, 0);
	atomic_init(&x.producers_left, np);
	atomic_init(&x.running, np + nw);
	if (connect_all(url, t, np + nw) != 0)
		goto out;
	atomic_init(&x.deadline, now_ns() + (uint64_t)(cfg->timeout_s * 1e9));
	for (i = 0; i < np + nw; i++) {
		t[i].ctx = &x;
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
			atomic_fetch_sub(&x.running, 1);
			atomic_store(&x.deadline, 0); /* the others stop at once */
		}
	}
	r->broker_died = watch(&x);
	for (i = 0; i < np + nw; i++) {
		if (!t[i].started)
			continue;
		pthread_join(t[i].tid, NULL);
		if (i < np && t[i].t_first != 0 && t[i].t_first < t_first)
			t_first = t[i].t_first;
		if (i >= np && t[i].t_last > t_last)
			t_last = t[i].t_last;
	}
	r->timed_out = !all_done(&x);
	r->secs = t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0;
	r->rate = r->secs > 0 ? (double)atomic_load(&x.tally.distinct) / r->secs : 0;
	fill_pct(&x.push, r->push);
	fill_pct(&x.claim, r->claim);
	fill_pct(&x.ack, r->ack);
	fill_pct(&x.tally.e2e, r->e2e);
	r->lost = tally_lost(&x.tally);
	r->dups = tally_dups(&x.tally);
	r->bad = atomic_load(&x.tally.bad);
	r->errors = atomic_load(&x.errors);
	rc = 0;
out:
	if (t != NULL)
		for (i = 0; i < np + nw; i++)
			if (t[i].client != NULL)
				cueq_close(t[i].client);
	free(t);
	tally_free(&x.tally);
	lat_free(&x.push);
	lat_free(&x.claim);
	lat_free(&x.ack);
	return rc;
}
