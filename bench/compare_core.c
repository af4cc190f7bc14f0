/*
 * compare_core.c - the workloads of cueq-compare, one request per
 * operation, written once against struct peer (compare.h).
 *
 * A run: open every thread's connection, note the server's CPU time, start
 * the threads, watch until every pushed job was delivered once and acked
 * (or the server died, or the time ran out), note the CPU time again, join.
 * Producers stop pushing at cfg.max_secs; the workers then get as long
 * again to finish, so a run is bounded in count and in time.  What a run
 * counts comes from the payloads (tally.h), never from the server.
 */
#include "compare.h"
#include "brokerproc.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLAIM_WAIT_MS 200	 /* long poll of a worker's claim */
#define SINGLE_CLAIM_WAIT_MS 1000 /* one client: the job it just pushed */
#define MAX_ERRORS 20		 /* a run with this many failed calls stops */
#define FILL_CHUNK 1000		 /* jobs per fill call */
#define FILL_SECS 1800		 /* a fill that takes longer fails */

bool cmp_quiet;

/* One whole line per call, so that threads' lines do not interleave. */
static void say(const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "cueq-compare: %s\n", line);
}

void cmp_err(const char *fmt, ...)
{
	va_list ap;

	if (cmp_quiet)
		return;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
}

void cmp_run_err(struct cmp_run *r, const char *fmt, ...)
{
	size_t n = atomic_fetch_add(&r->errors, 1);
	va_list ap;

	if (n + 1 >= MAX_ERRORS)
		atomic_store(&r->stop, true);
	if (n >= 5 || cmp_quiet)
		return;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)us * 1000L };

	nanosleep(&ts, NULL);
}

static void atomic_max(_Atomic uint64_t *a, uint64_t v)
{
	uint64_t cur = atomic_load(a);

	while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

int cmp_run_init(struct cmp_run *r, const struct cmp_cfg *cfg)
{
	size_t n = cfg->jobs;

	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	r->pushed_ok = calloc(n ? n : 1, sizeof(*r->pushed_ok));
	if (r->pushed_ok == NULL || tally_init(&r->tally, n, cfg->payload) != 0 ||
	    lat_init(&r->push, n) != 0 || lat_init(&r->claim, n + 64) != 0 ||
	    lat_init(&r->ack, n + 64) != 0 || lat_init(&r->e2e, n) != 0) {
		cmp_err("out of memory for %zu jobs", n);
		cmp_run_free(r);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		atomic_init(&r->pushed_ok[i], 0);
	atomic_init(&r->next, 0);
	atomic_init(&r->pushed, 0);
	atomic_init(&r->acked, 0);
	atomic_init(&r->errors, 0);
	atomic_init(&r->producers_left, 0);
	atomic_init(&r->running, 0);
	atomic_init(&r->stop, false);
	atomic_init(&r->t_first_push, 0);
	atomic_init(&r->t_last_push, 0);
	atomic_init(&r->t_last_ack, 0);
	atomic_init(&r->acked_at_push_end, 0);
	return 0;
}

void cmp_run_free(struct cmp_run *r)
{
	free(r->pushed_ok);
	r->pushed_ok = NULL;
	tally_free(&r->tally);
	lat_free(&r->push);
	lat_free(&r->claim);
	lat_free(&r->ack);
	lat_free(&r->e2e);
}

void cmp_run_start(struct cmp_run *r)
{
	uint64_t span = (uint64_t)(r->cfg->max_secs * 1e9);

	r->t0 = now_ns();
	r->push_deadline = r->t0 + span;
	r->hard_deadline = r->push_deadline + (span > 10000000000ull ? span : 10000000000ull);
}

uint64_t cmp_seen(struct cmp_run *r, const void *payload, size_t len, uint64_t now)
{
	uint64_t seq = 0, pushed = 0;
	int before = tally_see(&r->tally, payload, len, now);

	if (before < 0) {
		cmp_run_err(r, "a claimed job is not one of ours (%zu bytes)", len);
		return 0;
	}
	memcpy(&seq, payload, 8);
	memcpy(&pushed, (const unsigned char *)payload + 8, 8);
	if (before > 0)
		cmp_run_err(r, "job %llu DELIVERED TWICE (%d deliveries so far)",
			    (unsigned long long)seq, before + 1);
	return pushed;
}

static size_t own_acked(struct cmp_run *r)
{
	return atomic_load(&r->acked);
}

size_t cmp_next_seq(struct cmp_run *r, size_t (*acked)(struct cmp_run *))
{
	const struct cmp_cfg *c = r->cfg;

	unsigned wait_us = 50;

	if (acked == NULL)
		acked = own_acked;
	for (;;) {
		if (atomic_load(&r->stop) || now_ns() > r->push_deadline)
			return SIZE_MAX;
		if (c->workload == WL_CAPPED) {
			size_t started = atomic_load(&r->next);

			if (started > r->tally.jobs)
				started = r->tally.jobs;
			/* Held back: the cap leaves a backlog the workers take
			 * many milliseconds to drain, so the wait grows to 1 ms
			 * rather than wake 20,000 times a second per producer,
			 * which took a core's worth of CPU from the server. */
			if (started >= acked(r) + c->cap) {
				sleep_us(wait_us);
				if (wait_us < 1000)
					wait_us *= 2;
				continue;
			}
		}
		size_t seq = atomic_fetch_add(&r->next, 1);
		if (seq >= r->tally.jobs)
			return SIZE_MAX;
		if (seq == 0 || atomic_load(&r->t_first_push) == 0) {
			uint64_t zero = 0;
			atomic_compare_exchange_strong(&r->t_first_push, &zero, now_ns());
		}
		return seq;
	}
}

void cmp_producer_done(struct cmp_run *r, size_t (*acked)(struct cmp_run *))
{
	if (acked == NULL)
		acked = own_acked;
	if (atomic_fetch_sub(&r->producers_left, 1) == 1) {
		atomic_store(&r->t_last_push, now_ns());
		atomic_store(&r->acked_at_push_end, acked(r));
	}
}

bool cmp_all_done(struct cmp_run *r)
{
	return atomic_load(&r->producers_left) == 0 &&
	       atomic_load(&r->tally.distinct) >= atomic_load(&r->pushed) &&
	       atomic_load(&r->tally.finished) == atomic_load(&r->tally.calls);
}

void cmp_watch(struct cmp_run *r, bool (*done)(struct cmp_run *), struct cmp_result *res)
{
	uint64_t next_sample = 0;

	for (;;) {
		uint64_t now = now_ns();

		if (done(r)) {
			r->t_done = now;
			return;
		}
		if (r->cfg->pid > 0 && !proc_alive(r->cfg->pid)) {
			cmp_err("THE SERVER DIED during the run (pid %d)", (int)r->cfg->pid);
			res->server_died = true;
			break;
		}
		if (now > r->hard_deadline) {
			cmp_err("the run did not finish in time; stopping it");
			res->timed_out = true;
			break;
		}
		if (atomic_load(&r->running) == 0 || atomic_load(&r->stop))
			break; /* every thread gave up, or too many errors */
		if (r->cfg->pss_tree && r->cfg->pid > 0 && now >= next_sample) {
			long kb = tree_pss_kb(r->cfg->pid);

			if ((double)kb > r->rss_peak_kb)
				r->rss_peak_kb = (double)kb;
			next_sample = now + 100000000ull;
		}
		sleep_us(1000);
	}
	r->t_done = now_ns();
	atomic_store(&r->stop, true);
}

static void pct(struct lat *l, uint64_t out[2])
{
	if (lat_count(l) == 0) {
		out[0] = out[1] = CMP_NO_LAT;
		return;
	}
	out[0] = lat_pct(l, 50);
	out[1] = lat_pct(l, 99);
}

void cmp_finish(struct cmp_run *r, struct cmp_result *res)
{
	uint64_t first = r->cfg->workload == WL_DRAIN ? r->t0 : atomic_load(&r->t_first_push);
	uint64_t last = atomic_load(&r->t_last_ack), last_push = atomic_load(&r->t_last_push);

	res->pushed = atomic_load(&r->pushed);
	if (res->acked == 0)
		res->acked = atomic_load(&r->acked);
	if (last == 0)
		last = r->t_done;
	res->secs = last > first && first > 0 ? (double)(last - first) / 1e9 : 0;
	res->rate = res->secs > 0 ? (double)res->acked / res->secs : 0;
	if (r->cfg->workload != WL_DRAIN && last_push > first && first > 0) {
		res->push_secs = (double)(last_push - first) / 1e9;
		res->push_rate = (double)res->pushed / res->push_secs;
		res->ack_rate_push = (double)atomic_load(&r->acked_at_push_end) / res->push_secs;
	}
	pct(&r->push, res->push);
	pct(&r->claim, res->claim);
	pct(&r->ack, res->ack);
	pct(&r->e2e, res->e2e);
	res->lost = 0;
	for (size_t i = 0; i < r->tally.jobs; i++)
		if (atomic_load(&r->pushed_ok[i]) && atomic_load(&r->tally.seen[i]) == 0)
			res->lost++;
	res->dups = tally_dups(&r->tally);
	res->bad = atomic_load(&r->tally.bad);
	res->errors = atomic_load(&r->errors);
	if (atomic_load(&r->next) < r->tally.jobs && r->cfg->workload != WL_DRAIN)
		res->timed_out = true; /* pushing stopped at the time limit */
}

/* ---- the threads ------------------------------------------------------ */

struct op_thr {
	struct cmp_run *r;
	const struct peer *p;
	void *conn;
	pthread_t tid;
	bool started;
};

static void *op_producer(void *arg)
{
	struct op_thr *me = arg;
	struct cmp_run *r = me->r;
	unsigned char *buf = malloc(r->tally.payload);
	size_t seq;

	while (buf != NULL && (seq = cmp_next_seq(r, NULL)) != SIZE_MAX) {
		uint64_t t0 = now_ns();

		payload_fill(&r->tally, buf, seq, t0);
		if (me->p->push(me->conn, buf, r->tally.payload) != 0) {
			cmp_run_err(r, "%s: push of job %zu failed", me->p->name, seq);
			continue;
		}
		lat_add(&r->push, now_ns() - t0);
		atomic_store(&r->pushed_ok[seq], 1);
		atomic_fetch_add(&r->pushed, 1);
	}
	if (buf == NULL)
		cmp_run_err(r, "out of memory");
	free(buf);
	cmp_producer_done(r, NULL);
	atomic_fetch_sub(&r->running, 1);
	return NULL;
}

/* One claim -> ack; returns 1 when a job was acked, 0 when none came, -1. */
static int claim_ack(struct op_thr *me, int wait_ms, struct job_ref *j, uint64_t t_claim)
{
	struct cmp_run *r = me->r;
	uint64_t t1, t2, t3, pushed;
	int got;

	memset(j, 0, sizeof(*j));
	got = me->p->claim(me->conn, wait_ms, j);
	if (got <= 0) {
		if (got < 0)
			cmp_run_err(r, "%s: claim failed", me->p->name);
		return got;
	}
	t1 = now_ns();
	lat_add(&r->claim, t1 - t_claim);
	pushed = cmp_seen(r, j->payload, j->len, t1);
	t2 = now_ns();
	if (me->p->ack(me->conn, j) != 0) {
		cmp_run_err(r, "%s: ack failed", me->p->name);
		atomic_fetch_add(&r->tally.finished, 1);
		return -1;
	}
	t3 = now_ns();
	lat_add(&r->ack, t3 - t2);
	if (pushed != 0 && r->cfg->workload != WL_DRAIN)
		lat_add(&r->e2e, t3 > pushed ? t3 - pushed : 0);
	atomic_fetch_add(&r->acked, 1);
	atomic_fetch_add(&r->tally.finished, 1);
	atomic_max(&r->t_last_ack, t3);
	return 1;
}

static void *op_worker(void *arg)
{
	struct op_thr *me = arg;
	struct cmp_run *r = me->r;
	unsigned backoff_us = 0;

	while (!atomic_load(&r->stop) && !cmp_all_done(r)) {
		struct job_ref j;
		int got = claim_ack(me, CLAIM_WAIT_MS, &j, now_ns());

		if (got < 0) {
			sleep_us(10000);
		} else if (got == 0 && me->p->polls) {
			/* A server that cannot wait for a job: poll, backing off. */
			backoff_us = backoff_us ? backoff_us * 2 : 500;
			if (backoff_us > 8000)
				backoff_us = 8000;
			sleep_us(backoff_us);
		} else if (got > 0) {
			backoff_us = 0;
		}
	}
	atomic_fetch_sub(&r->running, 1);
	return NULL;
}

/* (a): push a job, claim it, ack it; the next only after. */
static void *op_single(void *arg)
{
	struct op_thr *me = arg;
	struct cmp_run *r = me->r;
	unsigned char *buf = malloc(r->tally.payload);
	size_t seq;

	while (buf != NULL && (seq = cmp_next_seq(r, NULL)) != SIZE_MAX) {
		uint64_t t0 = now_ns(), t1, deadline;
		struct job_ref j;
		uint64_t got_seq = UINT64_MAX;
		int got;

		payload_fill(&r->tally, buf, seq, t0);
		if (me->p->push(me->conn, buf, r->tally.payload) != 0) {
			cmp_run_err(r, "%s: push of job %zu failed", me->p->name, seq);
			break;
		}
		t1 = now_ns();
		lat_add(&r->push, t1 - t0);
		atomic_store(&r->pushed_ok[seq], 1);
		atomic_fetch_add(&r->pushed, 1);
		deadline = t1 + 5000000000ull;
		do {
			memset(&j, 0, sizeof(j));
			got = me->p->claim(me->conn, SINGLE_CLAIM_WAIT_MS, &j);
		} while (got == 0 && now_ns() < deadline && !atomic_load(&r->stop));
		if (got <= 0) {
			cmp_run_err(r, "%s: job %zu was pushed but could not be claimed%s", me->p->name,
				    seq, got == 0 ? " within 5 s" : "");
			break;
		}
		if (j.len >= 8)
			memcpy(&got_seq, j.payload, 8);
		if (got_seq != seq)
			cmp_run_err(r, "%s: claimed job %llu, but the only one pushed was %zu",
				    me->p->name, (unsigned long long)got_seq, seq);
		uint64_t t2 = now_ns();
		lat_add(&r->claim, t2 - t1);
		uint64_t pushed = cmp_seen(r, j.payload, j.len, t2);
		uint64_t t3 = now_ns();
		if (me->p->ack(me->conn, &j) != 0) {
			cmp_run_err(r, "%s: ack of job %zu failed", me->p->name, seq);
			atomic_fetch_add(&r->tally.finished, 1);
			break;
		}
		uint64_t t4 = now_ns();
		lat_add(&r->ack, t4 - t3);
		if (pushed != 0)
			lat_add(&r->e2e, t4 - pushed);
		atomic_fetch_add(&r->acked, 1);
		atomic_fetch_add(&r->tally.finished, 1);
		atomic_store(&r->t_last_ack, t4);
	}
	if (buf == NULL)
		cmp_run_err(r, "out of memory");
	free(buf);
	cmp_producer_done(r, NULL);
	atomic_fetch_sub(&r->running, 1);
	return NULL;
}

/* ---- fill, first claim ------------------------------------------------ */

/* Pushes every job of the run the fastest way the server has, then checks
 * that the server holds them all.  Marks them pushed. */
static int op_fill(const struct peer *p, void *conn, struct cmp_run *r)
{
	size_t n = r->tally.jobs, have = 0;
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)FILL_SECS * 1000000000ull;

	for (size_t first = 0; first < n; first += FILL_CHUNK) {
		size_t end = first + FILL_CHUNK < n ? first + FILL_CHUNK : n;

		if (now_ns() > deadline) {
			cmp_err("%s: filling %zu jobs took over %d s; giving up at %zu", p->name, n,
				FILL_SECS, first);
			return -1;
		}
		if (p->fill(conn, &r->tally, first, end) != 0) {
			cmp_err("%s: filling jobs %zu..%zu failed", p->name, first, end - 1);
			return -1;
		}
	}
	if (p->pending(conn, &have) != 0)
		return -1;
	if (have != n) {
		cmp_err("%s: %zu jobs pushed, but the server holds %zu", p->name, n, have);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		atomic_store(&r->pushed_ok[i], 1);
	atomic_store(&r->pushed, n);
	fprintf(stderr, "cueq-compare: %s: filled %zu jobs in %.1f s\n", p->name, n,
		(double)(now_ns() - t0) / 1e9);
	return 0;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* (e) after a restart: connect and claim until a job comes (the clock runs
 * from cfg.since_ns, taken just before the server was started again), then
 * check that it holds every job pushed before the kill. */
static int op_first_claim(const struct peer *p, const struct cmp_cfg *cfg, struct cmp_run *r,
			  struct cmp_result *res)
{
	uint64_t deadline = now_ns() + (uint64_t)(cfg->max_secs * 1e9);
	void *conn = NULL;
	struct job_ref j;
	int64_t t_claim = 0;
	size_t have = 0;
	int got = 0;

	cmp_quiet = true;
	while (now_ns() < deadline) {
		if (conn == NULL && (conn = p->open(cfg)) == NULL) {
			sleep_us(2000);
			continue;
		}
		memset(&j, 0, sizeof(j));
		got = p->claim(conn, 0, &j);
		if (got > 0) {
			t_claim = realtime_ns();
			break;
		}
		if (got < 0) { /* still starting: a fresh connection next time */
			p->close(conn);
			conn = NULL;
		}
		sleep_us(2000);
	}
	cmp_quiet = false;
	if (got <= 0) {
		cmp_err("%s: no job could be claimed within %.0f s of the restart", p->name,
			cfg->max_secs);
		res->timed_out = true;
		if (conn != NULL)
			p->close(conn);
		return -1;
	}
	res->restart_s = (double)(t_claim - cfg->since_ns) / 1e9;
	cmp_seen(r, j.payload, j.len, now_ns());
	p->drop(conn, &j);
	if (p->pending(conn, &have) != 0) {
		cmp_run_err(r, "%s: cannot count the jobs after the restart", p->name);
	} else if (have != cfg->jobs) {
		cmp_run_err(r, "%s: %zu jobs pending before the kill, %zu after the restart",
			    p->name, cfg->jobs, have);
		res->lost = have < cfg->jobs ? cfg->jobs - have : 0;
		res->dups = have > cfg->jobs ? have - cfg->jobs : 0;
	}
	res->pushed = cfg->jobs;
	res->errors = atomic_load(&r->errors);
	res->bad = atomic_load(&r->tally.bad);
	res->push[0] = res->push[1] = res->claim[0] = res->claim[1] = CMP_NO_LAT;
	res->ack[0] = res->ack[1] = res->e2e[0] = res->e2e[1] = CMP_NO_LAT;
	p->close(conn);
	return 0;
}

/* ---- one run ---------------------------------------------------------- */

static void measure_mem(const struct cmp_cfg *cfg, struct cmp_run *r, struct cmp_result *res)
{
	pid_t pid = cmp_server_pid(cfg);

	if (pid <= 0)
		return;
	if (cfg->pss_tree) {
		long kb = tree_pss_kb(pid);
		if ((double)kb > r->rss_peak_kb)
			r->rss_peak_kb = (double)kb;
		res->rss_mib = r->rss_peak_kb / 1024.0;
	} else {
		long kb = proc_status_kb(pid, "VmHWM");
		res->rss_mib = kb > 0 ? (double)kb / 1024.0 : 0;
	}
}

int cmp_op_run(const struct peer *p, const struct cmp_cfg *cfg, struct cmp_result *res)
{
	unsigned np = 0, nw = 0, i;
	struct op_thr *t = NULL;
	struct cmp_run r;
	double cpu0 = 0;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (cmp_run_init(&r, cfg) != 0)
		return -1;
	if (cfg->workload == WL_FIRST_CLAIM) {
		rc = op_first_claim(p, cfg, &r, res);
		measure_mem(cfg, &r, res);
		cmp_run_free(&r);
		return rc;
	}
	switch (cfg->workload) {
	case WL_SINGLE:
		np = 1;
		break;
	case WL_CAPPED:
	case WL_UNCAPPED:
		np = cfg->producers;
		nw = cfg->workers;
		break;
	case WL_DRAIN:
		nw = cfg->workers;
		break;
	default:
		break;
	}
	t = calloc(np + nw + 1, sizeof(*t));
	if (t == NULL)
		goto out;
	/* Connection 0 sets the server up (and fills it); every thread then
	 * has its own, as separate processes would. */
	for (i = 0; i < np + nw + 1; i++) {
		t[i].r = &r;
		t[i].p = p;
		if ((t[i].conn = p->open(cfg)) == NULL)
			goto out;
		if (i == 0 && p->setup(t[0].conn) != 0)
			goto out;
	}
	if (cfg->workload == WL_DRAIN || cfg->workload == WL_FILL) {
		if (op_fill(p, t[0].conn, &r) != 0)
			goto out;
		if (cfg->workload == WL_FILL) {
			res->pushed = cfg->jobs;
			rc = 0;
			goto out;
		}
	}
	atomic_store(&r.producers_left, np);
	atomic_store(&r.running, np + nw);
	cpu0 = cfg->pid > 0 ? tree_cpu_s(cfg->pid) : 0;
	cmp_run_start(&r);
	for (i = 1; i < np + nw + 1; i++) {
		void *(*fn)(void *) = i > np ? op_worker : cfg->workload == WL_SINGLE ? op_single
										  : op_producer;

		t[i].started = pthread_create(&t[i].tid, NULL, fn, &t[i]) == 0;
		if (!t[i].started) {
			cmp_err("cannot start a thread");
			if (i <= np)
				cmp_producer_done(&r, NULL);
			atomic_fetch_sub(&r.running, 1);
			atomic_store(&r.stop, true);
		}
	}
	cmp_watch(&r, cmp_all_done, res);
	measure_mem(cfg, &r, res);
	if (cfg->pid > 0 && !res->server_died) {
		res->server_cpu_s = tree_cpu_s(cfg->pid) - cpu0;
	}
	atomic_store(&r.stop, true);
	for (i = 1; i < np + nw + 1; i++)
		if (t[i].started)
			pthread_join(t[i].tid, NULL);
	cmp_finish(&r, res);
	if (res->acked > 0)
		res->cpu_us_per_job = res->server_cpu_s / (double)res->acked * 1e6;
	rc = 0;
out:
	if (t != NULL)
		for (i = 0; i < np + nw + 1; i++)
			if (t[i].conn != NULL)
				p->close(t[i].conn);
	free(t);
	cmp_run_free(&r);
	return rc;
}
