/*
 * metrics.c - the broker's measurements (metrics.h) and the metrics op.
 *
 * Histograms keep a count per bucket (not cumulative: one add per value)
 * and a sum; the reply carries the bounds, the counts and the sum, and
 * prom.c turns them into Prometheus's cumulative buckets.  Bounds are
 * fixed: latencies from 100 us (a claim answered from memory) to a minute
 * (a long poll waits its wait_ms, which its latency includes), fsyncs from
 * 50 us to 5 s, group-commit batches in powers of two.
 */
#include "metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "ops.h"
#include "proto.h"

/* Places of request counters: 0 for a request whose op is not known (it
 * did not decode, or named no op), then the op table's. */
#define M_OPS 48
/* Answer codes counted: CUEQ_OK and the wire's errors (1-9); anything
 * else counts as INTERNAL. */
#define M_CODES 10
/* Queues one answer shows at most (a reply of about 1 MiB): the rest are
 * left out, and queues_more says so. */
#define M_MAX_QUEUES 5000
#define M_MAX_BOUNDS 20

static const uint64_t latency_le_us[] = {
	100,	 250,	  500,	   1000,     2500,     5000,	   10000,    25000,    50000,
	100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000};
static const uint64_t fsync_le_us[] = {50,	100,	250,	 500,	  1000,	   2500,
				       5000,	10000,	25000,	 50000,	  100000,  250000,
				       500000, 1000000, 2500000, 5000000};
static const uint64_t batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(N_OF(latency_le_us) <= M_MAX_BOUNDS && N_OF(fsync_le_us) <= M_MAX_BOUNDS &&
		       N_OF(batch_le) <= M_MAX_BOUNDS,
	       "histogram bounds");

struct hist {
	/* n[i]: values in (le[i-1], le[i]]; n[n_le]: those past the last bound */
	_Atomic uint64_t n[M_MAX_BOUNDS + 1];
	_Atomic uint64_t sum; /* of the values as added (ns for times) */
};

static struct {
	/* any thread */
	_Atomic uint64_t requests[M_OPS][M_CODES];
	struct hist latency[M_OPS]; /* ns */
	struct hist fsync;	    /* ns */
	struct hist batch;	    /* replies */
	_Atomic uint64_t dropped;
	_Atomic int64_t http_connections; /* the HTTP face's, open now */
	/* the core's */
	uint64_t pushed, duplicates, refused_unique, refused_mismatch;
	int64_t started_at, started_mono; /* Unix ms, monotonic ms; 0: not started */
	void (*now)(void *arg, struct metrics_now *now);
	void *now_arg;
} m;

/* Adds value v (in the bounds' unit times scale) to h. */
static void hist_add(struct hist *h, const uint64_t *le, size_t n_le, uint64_t scale, uint64_t v)
{
	size_t i = 0;
	while (i < n_le && v > le[i] * scale)
		i++;
	atomic_fetch_add_explicit(&h->n[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void metrics_sent(const struct request *r)
{
	unsigned op = r->op < M_OPS ? r->op : 0;
	unsigned code = r->code < M_CODES ? r->code : CUEQ_ERR_INTERNAL;
	atomic_fetch_add_explicit(&m.requests[op][code], 1, memory_order_relaxed);
	if (r->arrived_ns > 0) {
		int64_t took = metrics_clock_ns() - r->arrived_ns;
		hist_add(&m.latency[op], latency_le_us, N_OF(latency_le_us), 1000,
			 took > 0 ? (uint64_t)took : 0);
	}
}

void metrics_dropped(size_t n)
{
	atomic_fetch_add_explicit(&m.dropped, n, memory_order_relaxed);
}

void metrics_http_connection(int delta)
{
	atomic_fetch_add_explicit(&m.http_connections, delta, memory_order_relaxed);
}

void metrics_synced(int64_t took_ns, size_t replies)
{
	uint64_t took = took_ns > 0 ? (uint64_t)took_ns : 0;
	hist_add(&m.fsync, fsync_le_us, N_OF(fsync_le_us), 1000, took);
	if (replies > 0)
		hist_add(&m.batch, batch_le, N_OF(batch_le), 1, replies);
}

void metrics_start(void (*fn)(void *arg, struct metrics_now *now), void *arg)
{
	m.now = fn;
	m.now_arg = arg;
	m.started_at = proto_now_ms();
	m.started_mono = proto_mono_ms();
}

void metrics_pushed(const struct eng_pushed *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (out[i].err.code == CUEQ_OK && out[i].duplicate)
			m.duplicates++;
		else if (out[i].err.code == CUEQ_OK)
			m.pushed++;
		else if (out[i].err.code == CUEQ_ERR_CONFLICT)
			m.refused_unique++;
		else if (out[i].err.code == CUEQ_ERR_IDEMPOTENCY_MISMATCH)
			m.refused_mismatch++;
	}
}

/* ---- the op ---- */

/* The name of request place i (0: none known). */
static const char *op_name(size_t i)
{
	const struct op *op = i > 0 ? ops_at(i - 1) : NULL;
	return i == 0 ? "unknown" : op != NULL ? op->name : NULL;
}

static void pack_le(msgpack_packer *pk, const uint64_t *le, size_t n_le)
{
	proto_key(pk, "le");
	msgpack_pack_array(pk, n_le);
	for (size_t i = 0; i < n_le; i++)
		msgpack_pack_uint64(pk, le[i]);
}

/* counts and sum of h (its sum divided by div); the count is the sum of
 * the buckets as read, so that it always matches them. */
static void pack_counts(msgpack_packer *pk, struct hist *h, size_t n_le, uint64_t div)
{
	proto_key(pk, "counts");
	msgpack_pack_array(pk, n_le + 1);
	for (size_t i = 0; i <= n_le; i++)
		msgpack_pack_uint64(pk, atomic_load_explicit(&h->n[i], memory_order_relaxed));
	proto_kv_uint(pk, "sum", atomic_load_explicit(&h->sum, memory_order_relaxed) / div);
}

static void pack_hist(msgpack_packer *pk, const char *key, struct hist *h, const uint64_t *le,
		      size_t n_le, uint64_t div)
{
	proto_key(pk, key);
	msgpack_pack_map(pk, 3);
	pack_le(pk, le, n_le);
	pack_counts(pk, h, n_le, div);
}

static uint64_t hist_total(struct hist *h, size_t n_le)
{
	uint64_t t = 0;
	for (size_t i = 0; i <= n_le; i++)
		t += atomic_load_explicit(&h->n[i], memory_order_relaxed);
	return t;
}

static void pack_requests(msgpack_packer *pk)
{
	uint64_t snap[M_OPS][M_CODES];
	size_t n = 0, n_timed = 0;
	for (size_t i = 0; i < M_OPS; i++) {
		for (size_t k = 0; k < M_CODES; k++) {
			snap[i][k] = atomic_load_explicit(&m.requests[i][k], memory_order_relaxed);
			if (op_name(i) == NULL) /* no such place: nothing counts there */
				snap[i][k] = 0;
			n += snap[i][k] > 0;
		}
		n_timed += op_name(i) != NULL && hist_total(&m.latency[i], N_OF(latency_le_us)) > 0;
	}
	proto_key(pk, "requests");
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < M_OPS; i++)
		for (size_t k = 0; k < M_CODES; k++) {
			if (snap[i][k] == 0)
				continue;
			msgpack_pack_map(pk, 3);
			proto_kv_cstr(pk, "op", op_name(i));
			proto_kv_cstr(pk, "code", k == CUEQ_OK ? "OK" : proto_err_name((int)k));
			proto_kv_uint(pk, "n", snap[i][k]);
		}
	proto_key(pk, "request_us");
	msgpack_pack_map(pk, 2);
	pack_le(pk, latency_le_us, N_OF(latency_le_us));
	proto_key(pk, "ops");
	msgpack_pack_array(pk, n_timed);
	for (size_t i = 0, done = 0; i < M_OPS && done < n_timed; i++) {
		if (op_name(i) == NULL || hist_total(&m.latency[i], N_OF(latency_le_us)) == 0)
			continue;
		msgpack_pack_map(pk, 3);
		proto_kv_cstr(pk, "op", op_name(i));
		pack_counts(pk, &m.latency[i], N_OF(latency_le_us), 1000);
		done++;
	}
}

/* The queues c's client may see, up to M_MAX_QUEUES (*more: others were
 * left out): *out malloc'd, caller frees. */
static int gather_queues(struct opctx *c, struct eng_stats **out, size_t *n, bool *more)
{
	struct eng_stats *all = NULL;
	size_t cap = 0;
	uint64_t from = 0, next;
	*out = NULL, *n = 0, *more = false;
	do {
		struct eng_stats *s = NULL;
		size_t got = 0;
		int rc = c->eo->stats(c->e, NULL, 0, from, CUEQ_MAX_BATCH, &s, &got, &next,
				      &c->err);
		if (rc != CUEQ_OK) {
			free(all);
			return rc;
		}
		for (size_t i = 0; i < got && !*more; i++) {
			if (!auth_queue_ok(c->who, s[i].queue, strlen(s[i].queue)))
				continue;
			if (*n == M_MAX_QUEUES) {
				*more = true;
				break;
			}
			if (*n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct eng_stats *g = realloc(all, nc * sizeof(*g));
				if (g == NULL) {
					free(s);
					free(all);
					return proto_fail(&c->err, CUEQ_ERR_UNAVAILABLE,
							  "the broker is out of memory; try again later");
				}
				all = g, cap = nc;
			}
			all[(*n)++] = s[i];
		}
		free(s);
		if (next <= from) /* positions only go on: 0 is the end */
			break;
		from = next;
	} while (!*more);
	*out = all;
	return CUEQ_OK;
}

static void pack_queues(msgpack_packer *pk, const struct eng_stats *s, size_t n, bool more)
{
	static const char *const names[] = {"scheduled", "ready", "leased", "succeeded", "dead",
					    "cancelled"};
	proto_key(pk, "queues");
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_map(pk, 13);
		proto_kv_cstr(pk, "queue", s[i].queue);
		for (int k = 0; k < 6; k++)
			proto_kv_uint(pk, names[k], s[i].count[k]);
		proto_kv_bool(pk, "paused", s[i].paused);
		proto_kv_uint(pk, "cues", s[i].cues);
		proto_kv_uint(pk, "deliveries", s[i].deliveries);
		proto_kv_uint(pk, "expiries", s[i].expiries);
		proto_kv_uint(pk, "failures", s[i].failures);
		proto_kv_uint(pk, "releases", s[i].releases);
	}
	proto_kv_bool(pk, "queues_more", more);
}

static void pack_totals(msgpack_packer *pk, const struct eng_counters *k)
{
	proto_key(pk, "totals");
	msgpack_pack_map(pk, 12);
	proto_kv_uint(pk, "pushed", m.pushed);
	proto_kv_uint(pk, "duplicates", m.duplicates);
	proto_kv_uint(pk, "refused_unique", m.refused_unique);
	proto_kv_uint(pk, "refused_mismatch", m.refused_mismatch);
	proto_kv_uint(pk, "claimed", k->claimed);
	proto_kv_uint(pk, "acked", k->succeeded);
	proto_kv_uint(pk, "nacked", k->nacked);
	proto_kv_uint(pk, "expired", k->expired);
	proto_kv_uint(pk, "released", k->released);
	proto_kv_uint(pk, "dead", k->dead);
	proto_kv_uint(pk, "cancelled", k->cancelled);
	proto_kv_uint(pk, "dropped", atomic_load_explicit(&m.dropped, memory_order_relaxed));
}

static void pack_store(msgpack_packer *pk, const struct eng_metrics *em)
{
	proto_key(pk, "store");
	msgpack_pack_array(pk, em->n_fig);
	for (size_t i = 0; i < em->n_fig; i++) {
		const struct eng_figure *f = &em->fig[i];
		msgpack_pack_map(pk, 4 + (f->part != NULL));
		proto_kv_cstr(pk, "name", f->name);
		proto_kv_cstr(pk, "help", f->help);
		if (f->part != NULL)
			proto_kv_cstr(pk, "part", f->part);
		proto_kv_uint(pk, "value", f->value);
		proto_kv_cstr(pk, "kind", f->counter ? "counter" : "gauge");
	}
}

int metrics_op(struct opctx *c)
{
	struct eng_metrics em;
	struct metrics_now now = {0};
	struct eng_stats *qs;
	size_t nq;
	bool more;
	int rc = gather_queues(c, &qs, &nq, &more);
	if (rc != CUEQ_OK)
		return rc;
	memset(&em, 0, sizeof(em));
	c->eo->metrics(c->e, &em);
	if (em.n_fig > ENG_MAX_FIGURES)
		em.n_fig = ENG_MAX_FIGURES;
	if (m.now != NULL)
		m.now(m.now_arg, &now);

	msgpack_packer *pk = c->pk;
	proto_reply_begin(pk, c->rid, c->rid_len, c->rid_bin, 15);
	proto_kv_cstr(pk, "version", "0.1.0");
	proto_kv_cstr(pk, "engine", c->eo->name);
	proto_kv_int(pk, "started_at", m.started_at);
	proto_kv_int(pk, "uptime_ms", m.started_mono ? proto_mono_ms() - m.started_mono : 0);
	proto_kv_uint(pk, "connections", now.connections);
	int64_t hc = atomic_load_explicit(&m.http_connections, memory_order_relaxed);
	proto_kv_uint(pk, "http_connections", hc > 0 ? (uint64_t)hc : 0);
	proto_kv_uint(pk, "parked", now.parked);
	pack_totals(pk, &em.counted);
	pack_requests(pk); /* requests, request_us */
	pack_hist(pk, "fsync_us", &m.fsync, fsync_le_us, N_OF(fsync_le_us), 1000);
	pack_hist(pk, "sync_batch", &m.batch, batch_le, N_OF(batch_le), 1);
	pack_queues(pk, qs, nq, more); /* queues, queues_more */
	pack_store(pk, &em);
	free(qs);
	return CUEQ_OK;
}
