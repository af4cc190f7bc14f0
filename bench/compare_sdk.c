/*
 * compare_sdk.c - the same workloads through cueq's SDK defaults: each
 * producer feeds a cueq_pusher, each worker is a cueq_worker (default
 * options: one handler thread, its own prefetch and coalesced acks).  A
 * thread has its own cueq_client, as a separate process would; the one
 * client of workload (a) carries both its pusher and its worker.
 *
 * The handler only records the delivery.  An ack is sent by the worker
 * after the handler returns, so "acked" is the workers' own count of
 * accepted outcomes, read by the producers (the backlog cap) and by the
 * watcher (the end of the run).  Push latency is add -> result callback;
 * claims and acks are not separate calls here, so they have no latency of
 * their own; end to end is push -> handler.
 */
#include "compare.h"
#include "brokerproc.h"

#include <cueq/cueq.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sdk_thr {
	struct cmp_run *r;
	cueq_client *client;
	cueq_worker *worker; /* workers */
	pthread_t tid;
	bool started;
};

/* One run per process: the workers whose counts say what was acked. */
static struct sdk_thr *g_workers;
static unsigned g_nw;
static uint64_t *g_t_add; /* per sequence number: when it was added */

static size_t sdk_acked(struct cmp_run *r)
{
	size_t sum = 0;

	(void)r;
	for (unsigned i = 0; i < g_nw; i++) {
		cueq_worker_counts c;

		cueq_worker_get_counts(g_workers[i].worker, &c);
		sum += c.succeeded;
	}
	return sum;
}

/* Outcomes settled: acked, nacked or lost (the last two fail the run). */
static size_t sdk_outcomes(size_t *bad)
{
	size_t sum = 0;

	*bad = 0;
	for (unsigned i = 0; i < g_nw; i++) {
		cueq_worker_counts c;

		cueq_worker_get_counts(g_workers[i].worker, &c);
		sum += c.succeeded + c.failed + c.lost;
		*bad += c.failed + c.lost;
	}
	return sum;
}

static bool sdk_done(struct cmp_run *r)
{
	size_t bad;

	return atomic_load(&r->producers_left) == 0 &&
	       atomic_load(&r->tally.distinct) >= atomic_load(&r->pushed) &&
	       sdk_outcomes(&bad) >= atomic_load(&r->tally.calls);
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)us * 1000L };

	nanosleep(&ts, NULL);
}

static void on_result(void *arg, void *tag, const cueq_push_result *res)
{
	struct cmp_run *r = arg;
	size_t seq = (size_t)(uintptr_t)tag - 1;

	if (res->err != CUEQ_OK) {
		cmp_run_err(r, "cueq: the pusher's job %zu was refused: %s", seq,
			    cueq_strerror(res->err));
		return;
	}
	if (seq >= r->tally.jobs) {
		cmp_run_err(r, "cueq: a push result for an unknown job");
		return;
	}
	lat_add(&r->push, now_ns() - g_t_add[seq]);
	atomic_store(&r->pushed_ok[seq], 1);
	atomic_fetch_add(&r->pushed, 1);
}

static int handler(cueq_job *job, void *arg)
{
	struct cmp_run *r = arg;
	size_t len = 0;
	const void *p = cueq_job_payload(job, &len);
	uint64_t now = now_ns(), pushed = cmp_seen(r, p, len, now);

	if (pushed != 0 && r->cfg->workload != WL_DRAIN)
		lat_add(&r->e2e, now > pushed ? now - pushed : 0);
	return CUEQ_OK;
}

static void *worker_main(void *arg)
{
	struct sdk_thr *me = arg;

	if (cueq_worker_run(me->worker) != CUEQ_OK)
		cmp_run_err(me->r, "cueq: a worker stopped: %s", cueq_last_error());
	return NULL;
}

/* Adds one job to p; returns 0 or -1. */
static int add_one(struct cmp_run *r, cueq_pusher *p, unsigned char *buf, size_t seq)
{
	uint64_t t0 = now_ns();

	char g[16];
	cueq_push_opts o = { .group = cmp_group(r->cfg, seq, g) };

	g_t_add[seq] = t0;
	payload_fill(&r->tally, buf, seq, t0);
	if (cueq_pusher_add(p, r->cfg->queue, buf, r->tally.payload, o.group ? &o : NULL,
			    (void *)(uintptr_t)(seq + 1)) != CUEQ_OK) {
		cmp_run_err(r, "cueq: pusher add: %s", cueq_last_error());
		return -1;
	}
	return 0;
}

static void *producer_main(void *arg)
{
	struct sdk_thr *me = arg;
	struct cmp_run *r = me->r;
	cueq_pusher_opts po = { .on_result = on_result, .arg = r };
	unsigned char *buf = malloc(r->tally.payload);
	cueq_pusher *p = NULL;
	size_t seq;
	int rc;

	if (buf == NULL || cueq_pusher_new(me->client, &po, &p) != CUEQ_OK) {
		cmp_run_err(r, "cueq: cannot make a pusher: %s", cueq_last_error());
		goto out;
	}
	while ((seq = cmp_next_seq(r, sdk_acked)) != SIZE_MAX) {
		if (add_one(r, p, buf, seq) != 0)
			break;
		if (r->cfg->workload != WL_SINGLE)
			continue;
		/* One job at a time: the next only once this one is acked. */
		while (sdk_acked(r) < seq + 1 && !atomic_load(&r->stop) &&
		       now_ns() < r->hard_deadline)
			sleep_us(20);
	}
	if ((rc = cueq_pusher_flush(p)) != CUEQ_OK)
		cmp_run_err(r, "cueq: pusher flush: %s", cueq_strerror(rc));
out:
	if (p != NULL)
		cueq_pusher_free(p);
	free(buf);
	cmp_producer_done(r, sdk_acked);
	return NULL;
}

int cmp_sdk_run(const struct cmp_cfg *cfg, struct cmp_result *res)
{
	unsigned np = 0, nw = 0, i;
	struct sdk_thr *t = NULL, *w;
	struct cmp_run r;
	double cpu0 = 0;
	size_t bad = 0;
	bool shared;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	switch (cfg->workload) {
	case WL_SINGLE:
		np = nw = 1;
		break;
	case WL_CAPPED:
	case WL_UNCAPPED:
		np = cfg->producers;
		nw = cfg->workers;
		break;
	case WL_DRAIN:
		nw = cfg->workers;
		break;
	default: /* fill and first claim are the same calls in either mode */
		return cmp_op_run(&peer_cueq, cfg, res);
	}
	shared = cfg->workload == WL_SINGLE; /* (a): one client for both */
	if (cmp_run_init(&r, cfg) != 0)
		return -1;
	t = calloc(np + nw, sizeof(*t));
	g_t_add = calloc(cfg->jobs ? cfg->jobs : 1, sizeof(*g_t_add));
	if (t == NULL || g_t_add == NULL) {
		cmp_err("out of memory");
		goto out;
	}
	w = t + np;
	g_workers = w;
	g_nw = nw;
	for (i = 0; i < np + nw; i++) {
		t[i].r = &r;
		if (shared && i > 0) {
			t[i].client = NULL; /* borrows t[0]'s */
			continue;
		}
		if (cueq_connect(cfg->url, NULL, &t[i].client) != CUEQ_OK) {
			cmp_err("cueq: connect to %s: %s", cfg->url, cueq_last_error());
			goto out;
		}
	}
	if (cmp_cueq_group_limit(t[0].client, cfg) != 0)
		goto out;
	if (cfg->workload == WL_DRAIN) {
		/* The backlog, with one request per push_many, then drained. */
		struct cmp_result fill;
		struct cmp_cfg fc = *cfg;

		fc.workload = WL_FILL;
		if (cmp_op_run(&peer_cueq, &fc, &fill) != 0)
			goto out;
		for (size_t s = 0; s < cfg->jobs; s++)
			atomic_store(&r.pushed_ok[s], 1);
		atomic_store(&r.pushed, cfg->jobs);
	}
	for (i = 0; i < nw; i++) {
		cueq_client *c = shared ? t[0].client : w[i].client;

		if (cueq_worker_new(c, cfg->queue, handler, &r, NULL, &w[i].worker) != CUEQ_OK) {
			cmp_err("cueq: cannot make a worker: %s", cueq_last_error());
			goto out;
		}
	}
	atomic_store(&r.producers_left, np);
	atomic_store(&r.running, np + nw);
	cpu0 = cfg->pid > 0 ? tree_cpu_s(cfg->pid) : 0;
	cmp_run_start(&r);
	for (i = 0; i < np + nw; i++) {
		t[i].started = pthread_create(&t[i].tid, NULL, i < np ? producer_main : worker_main,
					      &t[i]) == 0;
		if (!t[i].started) {
			cmp_err("cannot start a thread");
			if (i < np)
				cmp_producer_done(&r, sdk_acked);
			atomic_store(&r.stop, true);
		}
	}
	cmp_watch(&r, sdk_done, res);
	if (cfg->pid > 0 && !res->server_died)
		res->server_cpu_s = tree_cpu_s(cfg->pid) - cpu0;
	if (cfg->pid > 0) {
		long kb = proc_status_kb(cfg->pid, "VmHWM");
		res->rss_mib = kb > 0 ? (double)kb / 1024.0 : 0;
	}
	atomic_store(&r.stop, true);
	for (i = 0; i < nw; i++)
		if (w[i].worker != NULL)
			cueq_worker_stop(w[i].worker);
	for (i = 0; i < np + nw; i++)
		if (t[i].started)
			pthread_join(t[i].tid, NULL);
	res->acked = sdk_acked(&r);
	sdk_outcomes(&bad);
	if (bad > 0)
		cmp_run_err(&r, "cueq: %zu jobs were nacked or lost their lease", bad);
	cmp_finish(&r, res);
	res->claim[0] = res->claim[1] = res->ack[0] = res->ack[1] = CMP_NO_LAT;
	if (res->acked > 0)
		res->cpu_us_per_job = res->server_cpu_s / (double)res->acked * 1e6;
	rc = 0;
out:
	if (t != NULL) {
		for (i = 0; i < np + nw; i++)
			if (t[i].worker != NULL)
				cueq_worker_free(t[i].worker);
		for (i = 0; i < np + nw; i++)
			if (t[i].client != NULL)
				cueq_close(t[i].client);
	}
	free(t);
	free(g_t_add);
	g_t_add = NULL;
	g_workers = NULL;
	g_nw = 0;
	cmp_run_free(&r);
	return rc;
}
