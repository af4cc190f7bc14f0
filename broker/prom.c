/*
 * prom.c - the metrics reply as Prometheus text (prom.h).
 *
 * The reply is the core's own, but it is read as carefully as any
 * msgpack: a field missing or of another type reads as zero or is left
 * out, never trusted.  Families come in a fixed order, each once with its
 * HELP and TYPE and then all its series, as the format wants; a family
 * with no series is left out.  Times on the wire are whole microseconds
 * and are written as exact decimal seconds.
 */
#include "prom.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

struct buf {
	char *p;
	size_t n, cap;
	bool failed;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool reserve(struct buf *b, size_t more)
{
	if (b->failed)
		return false;
	if (b->n + more + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 16384;
	while (cap < b->n + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		b->failed = true;
		return false;
	}
	b->p = p, b->cap = cap;
	return true;
}

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

static void put_bytes(struct buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

/* s escaped as the format wants: in a label value \, " and newline; in
 * HELP text \ and newline. */
static void put_escaped(struct buf *b, const char *s, size_t n, bool label)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\')
			put_bytes(b, "\\\\", 2);
		else if (s[i] == '\n')
			put_bytes(b, "\\n", 2);
		else if (s[i] == '"' && label)
			put_bytes(b, "\\\"", 2);
		else
			put_bytes(b, &s[i], 1);
	}
}

/* Whole microseconds as exact decimal seconds ("0.00025", "2.5", "60"). */
static void put_seconds(struct buf *b, uint64_t us)
{
	uint64_t frac = us % 1000000;
	if (frac == 0) {
		put(b, "%llu", (unsigned long long)(us / 1000000));
		return;
	}
	char f[8];
	snprintf(f, sizeof(f), "%06llu", (unsigned long long)frac);
	size_t k = 6;
	while (k > 0 && f[k - 1] == '0')
		k--;
	f[k] = '\0';
	put(b, "%llu.%s", (unsigned long long)(us / 1000000), f);
}

/* ---- reading the reply ---- */

static const msgpack_object *field(const msgpack_object *map, const char *key, int type)
{
	const msgpack_object *v = proto_get(map, key);
	return v != NULL && (int)v->type == type ? v : NULL;
}

static uint64_t uint_of(const msgpack_object *map, const char *key)
{
	const msgpack_object *v = field(map, key, MSGPACK_OBJECT_POSITIVE_INTEGER);
	return v != NULL ? v->via.u64 : 0;
}

static bool str_of(const msgpack_object *map, const char *key, const char **s, size_t *n)
{
	const msgpack_object *v = field(map, key, MSGPACK_OBJECT_STR);
	*s = v != NULL ? v->via.str.ptr : "";
	*n = v != NULL ? v->via.str.size : 0;
	return v != NULL;
}

static const msgpack_object_array *array_of(const msgpack_object *map, const char *key)
{
	const msgpack_object *v = field(map, key, MSGPACK_OBJECT_ARRAY);
	return v != NULL ? &v->via.array : NULL;
}

static bool bool_of(const msgpack_object *map, const char *key)
{
	const msgpack_object *v = field(map, key, MSGPACK_OBJECT_BOOLEAN);
	return v != NULL && v->via.boolean;
}

/* ---- families and series ---- */

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s ", name);
	put_escaped(b, help, strlen(help), false);
	put(b, "\n# TYPE %s %s\n", name, type);
}

/* One label, key="value", after a comma when not the first. */
static void label(struct buf *b, bool first, const char *key, const char *v, size_t n)
{
	put(b, "%s%s=\"", first ? "" : ",", key);
	put_escaped(b, v, n, true);
	put_bytes(b, "\"", 1);
}

static void sample_u(struct buf *b, const char *name, const char *lk, const char *lv, size_t ln,
		     uint64_t v)
{
	put(b, "%s", name);
	if (lk != NULL) {
		put_bytes(b, "{", 1);
		label(b, true, lk, lv, ln);
		put_bytes(b, "}", 1);
	}
	put(b, " %llu\n", (unsigned long long)v);
}

/* A plain family of one series without labels. */
static void single(struct buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
	family(b, name, type, help);
	sample_u(b, name, NULL, NULL, 0, v);
}

/* A gauge family of one series in seconds (us microseconds). */
static void seconds(struct buf *b, const char *name, const char *help, uint64_t us)
{
	family(b, name, "gauge", help);
	put(b, "%s ", name);
	put_seconds(b, us);
	put_bytes(b, "\n", 1);
}

/* The series of one histogram h ({le, counts, sum} or, with le apart,
 * {counts, sum}), under the label lk=lv when lk is not NULL.  seconds:
 * bounds and sum are microseconds, written as seconds. */
static void hist_series(struct buf *b, const char *name, const msgpack_object_array *le,
			const msgpack_object *h, const char *lk, const char *lv, size_t ln,
			bool seconds)
{
	const msgpack_object_array *counts = array_of(h, "counts");
	uint64_t cum = 0;
	if (le == NULL || counts == NULL || counts->size != le->size + 1)
		return;
	for (uint32_t i = 0; i <= le->size; i++) {
		const msgpack_object *c = &counts->ptr[i];
		cum += c->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? c->via.u64 : 0;
		put(b, "%s_bucket{", name);
		if (lk != NULL) {
			label(b, true, lk, lv, ln);
			put_bytes(b, ",", 1);
		}
		put_bytes(b, "le=\"", 4);
		if (i == le->size) {
			put_bytes(b, "+Inf", 4);
		} else {
			uint64_t bound = le->ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER
						 ? le->ptr[i].via.u64
						 : 0;
			if (seconds)
				put_seconds(b, bound);
			else
				put(b, "%llu", (unsigned long long)bound);
		}
		put(b, "\"} %llu\n", (unsigned long long)cum);
	}
	const char *open = lk != NULL ? "{" : "", *close = lk != NULL ? "}" : "";
	put(b, "%s_sum%s", name, open);
	if (lk != NULL)
		label(b, true, lk, lv, ln);
	put(b, "%s ", close);
	if (seconds)
		put_seconds(b, uint_of(h, "sum"));
	else
		put(b, "%llu", (unsigned long long)uint_of(h, "sum"));
	put(b, "\n%s_count%s", name, open);
	if (lk != NULL)
		label(b, true, lk, lv, ln);
	put(b, "%s %llu\n", close, (unsigned long long)cum);
}

static void histogram(struct buf *b, const msgpack_object *root, const char *key, const char *name,
		      const char *help, bool seconds)
{
	const msgpack_object *h = field(root, key, MSGPACK_OBJECT_MAP);
	if (h == NULL)
		return;
	family(b, name, "histogram", help);
	hist_series(b, name, array_of(h, "le"), h, NULL, NULL, 0, seconds);
}

static void requests(struct buf *b, const msgpack_object *root)
{
	const msgpack_object_array *rq = array_of(root, "requests");
	if (rq != NULL && rq->size > 0) {
		family(b, "cueq_requests_total", "counter",
		       "Requests answered, by op and answer code (unknown: no op could be read)");
		for (uint32_t i = 0; i < rq->size; i++) {
			const char *op, *code;
			size_t ol, cl;
			str_of(&rq->ptr[i], "op", &op, &ol);
			str_of(&rq->ptr[i], "code", &code, &cl);
			put(b, "cueq_requests_total{");
			label(b, true, "op", op, ol);
			label(b, false, "code", code, cl);
			put(b, "} %llu\n", (unsigned long long)uint_of(&rq->ptr[i], "n"));
		}
	}
	const msgpack_object *lat = field(root, "request_us", MSGPACK_OBJECT_MAP);
	const msgpack_object_array *ops = array_of(lat, "ops");
	if (ops == NULL || ops->size == 0)
		return;
	family(b, "cueq_request_duration_seconds", "histogram",
	       "Time from a request's arrival to its reply handed to the transport, by op (a long poll's includes its wait)");
	for (uint32_t i = 0; i < ops->size; i++) {
		const char *op;
		size_t ol;
		str_of(&ops->ptr[i], "op", &op, &ol);
		hist_series(b, "cueq_request_duration_seconds", array_of(lat, "le"), &ops->ptr[i], "op",
			    op, ol, true);
	}
}

static void totals(struct buf *b, const msgpack_object *root)
{
	static const struct {
		const char *key, *name, *help;
	} t[] = {
		{"pushed", "cueq_pushed_total", "Jobs created by pushes (executions and recurring cues)"},
		{"duplicates", "cueq_push_duplicates_total",
		 "Pushes answered with an earlier push's result by idempotency key (nothing created)"},
		{NULL, NULL, NULL}, /* the refusals, below */
		{"claimed", "cueq_claimed_total", "Leases given to workers (deliveries)"},
		{"acked", "cueq_acked_total", "Executions that succeeded (acked)"},
		{"nacked", "cueq_nacked_total", "Nacks applied (handler failures), dead or to run again"},
		{"expired", "cueq_expired_total", "Leases that ran out without an outcome"},
		{"released", "cueq_released_total",
		 "Leases ended at once because their worker's connection closed"},
		{"dead", "cueq_dead_total",
		 "Executions that became dead (attempts or expiries used up, or failed terminally)"},
		{"cancelled", "cueq_cancelled_total", "Executions cancelled by an operator"},
		{"dropped", "cueq_replies_dropped_total",
		 "Requests left unanswered: a write or sync failed, or the broker stopped first"},
	};
	const msgpack_object *m = field(root, "totals", MSGPACK_OBJECT_MAP);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (t[i].key != NULL) {
			single(b, t[i].name, "counter", t[i].help, uint_of(m, t[i].key));
			continue;
		}
		family(b, "cueq_push_refused_total", "counter",
		       "Jobs of pushes refused: unique key held by an unfinished execution, or idempotency key used for another request");
		sample_u(b, "cueq_push_refused_total", "reason", "unique_key", 10,
			 uint_of(m, "refused_unique"));
		sample_u(b, "cueq_push_refused_total", "reason", "idempotency_mismatch", 20,
			 uint_of(m, "refused_mismatch"));
	}
}

static void queues(struct buf *b, const msgpack_object *root)
{
	static const char *const states[] = {"scheduled", "ready", "leased", "succeeded", "dead",
					     "cancelled"};
	static const struct {
		const char *key, *name, *type, *help;
	} per[] = {
		{"paused", "cueq_queue_paused", "gauge", "1 when the queue is paused (claims get nothing)"},
		{"cues", "cueq_queue_cues", "gauge", "Recurring cues of the queue that will fire"},
		{"deliveries", "cueq_queue_deliveries_total", "counter",
		 "Leases given in the queue since it was created"},
		{"expiries", "cueq_queue_expiries_total", "counter",
		 "Leases of the queue that ended without an outcome (expired or released) since it was created"},
		{"failures", "cueq_queue_failures_total", "counter",
		 "Nacks in the queue since it was created"},
		{"releases", "cueq_queue_releases_total", "counter",
		 "Leases of the queue released when their worker's connection closed, since it was created"},
	};
	const msgpack_object_array *qs = array_of(root, "queues");
	single(b, "cueq_queues_truncated", "gauge",
	       "1 when there were more queues than one answer shows (5000): the others are left out",
	       bool_of(root, "queues_more"));
	if (qs == NULL || qs->size == 0)
		return;
	family(b, "cueq_queue_jobs", "gauge",
	       "Executions of the queue by state (finished ones while retained)");
	for (uint32_t i = 0; i < qs->size; i++) {
		const char *q;
		size_t ql;
		str_of(&qs->ptr[i], "queue", &q, &ql);
		for (size_t k = 0; k < 6; k++) {
			put(b, "cueq_queue_jobs{");
			label(b, true, "queue", q, ql);
			label(b, false, "state", states[k], strlen(states[k]));
			put(b, "} %llu\n", (unsigned long long)uint_of(&qs->ptr[i], states[k]));
		}
	}
	for (size_t f = 0; f < sizeof(per) / sizeof(per[0]); f++) {
		family(b, per[f].name, per[f].type, per[f].help);
		for (uint32_t i = 0; i < qs->size; i++) {
			const char *q;
			size_t ql;
			str_of(&qs->ptr[i], "queue", &q, &ql);
			uint64_t v = f == 0 ? bool_of(&qs->ptr[i], per[f].key)
					    : uint_of(&qs->ptr[i], per[f].key);
			sample_u(b, per[f].name, "queue", q, ql, v);
		}
	}
}

/* The metric name of a store figure: cueq_store_NAME, with only the
 * characters a name may hold, and _total for a counter. */
static void figure_name(char *out, size_t size, const char *name, size_t n, bool counter)
{
	size_t k = (size_t)snprintf(out, size, "cueq_store_");
	for (size_t i = 0; i < n && k + 7 < size; i++) {
		char c = name[i];
		out[k++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ? c : '_';
	}
	out[k] = '\0';
	if (counter && (k < 6 || strcmp(out + k - 6, "_total") != 0))
		snprintf(out + k, size - k, "_total");
}

static bool same_name(const msgpack_object *a, const msgpack_object *b)
{
	const char *x, *y;
	size_t xl, yl;
	str_of(a, "name", &x, &xl);
	str_of(b, "name", &y, &yl);
	return xl == yl && memcmp(x, y, xl) == 0;
}

static void store(struct buf *b, const msgpack_object *root)
{
	const msgpack_object_array *fs = array_of(root, "store");
	for (uint32_t i = 0; fs != NULL && i < fs->size; i++) {
		const msgpack_object *f = &fs->ptr[i];
		bool seen = false;
		for (uint32_t k = 0; k < i && !seen; k++)
			seen = same_name(&fs->ptr[k], f);
		const char *name, *kind, *help;
		size_t nl, kl, hl;
		if (seen || !str_of(f, "name", &name, &nl) || nl == 0)
			continue; /* one family per name, all its parts together */
		str_of(f, "kind", &kind, &kl);
		str_of(f, "help", &help, &hl);
		bool counter = kl == 7 && memcmp(kind, "counter", 7) == 0;
		char mname[96], h[512];
		figure_name(mname, sizeof(mname), name, nl, counter);
		snprintf(h, sizeof(h), "%.*s", (int)(hl < sizeof(h) ? hl : sizeof(h) - 1), help);
		family(b, mname, counter ? "counter" : "gauge", hl > 0 ? h : "A figure of the engine's store");
		for (uint32_t k = i; k < fs->size; k++) {
			if (!same_name(&fs->ptr[k], f))
				continue;
			const char *part;
			size_t pl;
			bool has_part = str_of(&fs->ptr[k], "part", &part, &pl);
			sample_u(b, mname, has_part ? "part" : NULL, part, pl, uint_of(&fs->ptr[k], "value"));
		}
	}
}

char *prom_render(const void *reply, size_t len, size_t *out_len)
{
	msgpack_unpacked up;
	struct buf b = {0};
	size_t off = 0;
	*out_len = 0;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, reply, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_MAP || !bool_of(&up.data, "ok") ||
	    field(&up.data, "totals", MSGPACK_OBJECT_MAP) == NULL) {
		msgpack_unpacked_destroy(&up);
		return NULL;
	}
	const msgpack_object *root = &up.data;
	const char *version, *engine;
	size_t vl, el;
	str_of(root, "version", &version, &vl);
	str_of(root, "engine", &engine, &el);
	family(&b, "cueq_build_info", "gauge", "The broker's version and storage engine (always 1)");
	put(&b, "cueq_build_info{");
	label(&b, true, "version", version, vl);
	label(&b, false, "engine", engine, el);
	put(&b, "} 1\n");
	seconds(&b, "cueq_start_time_seconds", "When the broker started, Unix time",
		uint_of(root, "started_at") * 1000);
	seconds(&b, "cueq_uptime_seconds", "Time since the broker started",
		uint_of(root, "uptime_ms") * 1000);
	single(&b, "cueq_connections", "gauge", "Client connections open now (nng)",
	       uint_of(root, "connections"));
	single(&b, "cueq_http_connections", "gauge", "HTTP connections open now",
	       uint_of(root, "http_connections"));
	single(&b, "cueq_parked_claims", "gauge",
	       "Long-poll claims and outcome waits parked now, waiting for work",
	       uint_of(root, "parked"));
	totals(&b, root);
	requests(&b, root);
	histogram(&b, root, "fsync_us", "cueq_fsync_duration_seconds",
		  "Time of each sync that made writes durable (WAL fsync)", true);
	histogram(&b, root, "sync_batch", "cueq_group_commit_batch_requests",
		  "Replies released by one sync: the requests of one group commit", false);
	queues(&b, root);
	store(&b, root);
	msgpack_unpacked_destroy(&up);
	if (b.failed || b.p == NULL) {
		free(b.p);
		return NULL;
	}
	*out_len = b.n;
	return b.p;
}
