/*
 * groups.c - concurrency groups, limits and fair claims of the embedded
 * engine.
 *
 * A queue's READY jobs sit in the ready heap of their group (push --group;
 * the queue's default group holds those pushed without one).  A group that
 * can give a job now (something ready, fewer leased than its concurrency
 * limit, a token in its rate bucket) is on its queue's ring; a claim takes
 * the top job of the group at the ring's cursor and moves the cursor on, so
 * claims take groups round-robin and one group's burst cannot starve the
 * others, while priority still orders the jobs within a group.  Every
 * change of a group's ready jobs, leases, limit or tokens puts it on the
 * ring or takes it off in O(1) (emb_group_review), so a claim costs one
 * heap pop whatever the number of groups.
 *
 * Limits: a queue's own (its concurrency counts every lease of the queue),
 * a default for each group without its own, and a group's own.  Rate limits
 * are token buckets (up to N claims at once, refilled at N per period); a
 * bucket without a token waits in the engine's heap of throttled buckets
 * until its next token is due (emb_throttle_tick, at every turn's tick).
 * Limits are stored in the meta family under "L;", written in the turn's
 * batch, and read at open.  Core thread only.
 */
#include "embedded.h"

#include <stdlib.h>
#include <string.h>

#include "keyhash.h"
#include "log.h"

#define META_LIMITS "L;"
#define LIMIT_VAL 16 /* concurrency(4) rate(4) per_ms(8), big-endian */

static uint32_t group_hash(const char *s, size_t n)
{
	return (uint32_t)keyhash(s, n);
}

static void bucket_init(struct bucket *b, struct queue *q, struct group *g)
{
	*b = (struct bucket){ .heap_pos = HEAP_NONE, .q = q, .g = g };
}

static void group_init(struct group *g, struct queue *q, const char *name, size_t len)
{
	memset(g, 0, sizeof(*g));
	memcpy(g->name, name, len);
	g->len = (uint8_t)len;
	heap_init(&g->ready, job_ready_before);
	bucket_init(&g->bucket, q, g);
}

void emb_groups_init(struct queue *q)
{
	group_init(&q->dflt, q, "", 0);
	bucket_init(&q->bucket, q, NULL);
}

/* ---- the heap of throttled buckets ---- */

static void thr_swap(struct engine *e, uint32_t a, uint32_t b)
{
	struct bucket *t = e->throttled[a];
	e->throttled[a] = e->throttled[b];
	e->throttled[b] = t;
	e->throttled[a]->heap_pos = a;
	e->throttled[b]->heap_pos = b;
}

static void thr_up(struct engine *e, uint32_t i)
{
	while (i > 0 && e->throttled[(i - 1) / 2]->wake > e->throttled[i]->wake) {
		thr_swap(e, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void thr_down(struct engine *e, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < e->n_throttled && e->throttled[l]->wake < e->throttled[m]->wake)
			m = l;
		if (r < e->n_throttled && e->throttled[r]->wake < e->throttled[m]->wake)
			m = r;
		if (m == i)
			return;
		thr_swap(e, i, m);
		i = m;
	}
}

static void thr_add(struct engine *e, struct bucket *b)
{
	if (e->n_throttled == e->cap_throttled) {
		e->cap_throttled = e->cap_throttled ? 2 * e->cap_throttled : 64;
		e->throttled =
			emb_oom(realloc(e->throttled, e->cap_throttled * sizeof(*e->throttled)));
	}
	b->heap_pos = e->n_throttled;
	e->throttled[e->n_throttled++] = b;
	thr_up(e, b->heap_pos);
}

static void thr_remove(struct engine *e, struct bucket *b)
{
	uint32_t i = b->heap_pos;
	if (i == HEAP_NONE)
		return;
	b->heap_pos = HEAP_NONE;
	if (i == --e->n_throttled)
		return;
	e->throttled[i] = e->throttled[e->n_throttled];
	e->throttled[i]->heap_pos = i;
	thr_up(e, i);
	thr_down(e, e->throttled[i]->heap_pos);
}

/* ---- buckets ---- */

static void refill(struct bucket *b, const struct eng_limit *lim, int64_t now)
{
	if (lim->rate == 0)
		return;
	if (now > b->at) {
		b->tokens += (double)(now - b->at) * lim->rate / (double)lim->per_ms;
		if (b->tokens > lim->rate)
			b->tokens = lim->rate;
	}
	b->at = now;
}

/* A full bucket for lim (a new limit, or a group new to it). */
static void bucket_reset(struct engine *e, struct bucket *b, const struct eng_limit *lim,
			 int64_t now)
{
	thr_remove(e, b);
	b->tokens = lim->rate;
	b->at = now;
}

/* Takes a token of b; throttles b when none is left. */
static void bucket_take(struct engine *e, struct bucket *b, const struct eng_limit *lim,
			int64_t now)
{
	if (lim->rate == 0)
		return;
	refill(b, lim, now);
	b->tokens -= 1;
	if (b->tokens < 1 && b->heap_pos == HEAP_NONE) {
		b->wake = now + (int64_t)((1 - b->tokens) * (double)lim->per_ms / lim->rate) + 1;
		thr_add(e, b);
	}
}

/* ---- the ring ---- */

static void ring_add(struct queue *q, struct group *g)
{
	if (q->ring == NULL) {
		g->next = g->prev = g;
		q->ring = g;
	} else { /* last of the round: just before the cursor */
		g->next = q->ring;
		g->prev = q->ring->prev;
		g->prev->next = g;
		q->ring->prev = g;
	}
	g->in_ring = true;
}

static void ring_remove(struct queue *q, struct group *g)
{
	if (g->next == g) {
		q->ring = NULL;
	} else {
		g->prev->next = g->next;
		g->next->prev = g->prev;
		if (q->ring == g)
			q->ring = g->next;
	}
	g->next = g->prev = NULL;
	g->in_ring = false;
}

void emb_group_review(struct queue *q, struct group *g)
{
	bool can = g->ready.n > 0 && (g->lim.concurrency == 0 || g->leased < g->lim.concurrency) &&
		   g->bucket.heap_pos == HEAP_NONE;
	if (can && !g->in_ring)
		ring_add(q, g);
	else if (!can && g->in_ring)
		ring_remove(q, g);
}

bool emb_queue_open(const struct queue *q)
{
	if (q->paused || q->ring == NULL)
		return false;
	if (q->lim.concurrency != 0 && q->count[CUEQ_LEASED] >= q->lim.concurrency)
		return false;
	return q->bucket.heap_pos == HEAP_NONE;
}

void emb_group_took(struct engine *e, struct queue *q, struct group *g, int64_t now)
{
	bucket_take(e, &g->bucket, &g->lim, now);
	bucket_take(e, &q->bucket, &q->lim, now);
	emb_group_review(q, g);
	if (g->in_ring) /* round-robin: the next group gives the next job */
		q->ring = g->next;
}

void emb_throttle_tick(struct engine *e, int64_t now)
{
	while (e->n_throttled > 0 && e->throttled[0]->wake <= now) {
		struct bucket *b = e->throttled[0];
		thr_remove(e, b);
		refill(b, b->g ? &b->g->lim : &b->q->lim, now);
		if (b->g != NULL)
			emb_group_review(b->q, b->g);
	}
}

int64_t emb_throttle_next(const struct engine *e)
{
	return e->n_throttled > 0 ? e->throttled[0]->wake : INT64_MAX;
}

/* ---- groups ---- */

static struct glimit *glimit_find(const struct queue *q, const char *name, size_t len,
				  uint32_t *at)
{
	uint32_t lo = 0, hi = q->n_glims;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct glimit *m = &q->glims[mid];
		size_t n = m->len < len ? m->len : len;
		int c = memcmp(m->name, name, n);
		if (c == 0)
			c = m->len < len ? -1 : m->len > len;
		if (c == 0) {
			*at = mid;
			return &q->glims[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return NULL;
}

/* The limit a group lives under: its own, else the queue's default. */
static struct eng_limit group_limit(const struct queue *q, const struct group *g)
{
	uint32_t at;
	const struct glimit *o;
	if (g == &q->dflt)
		return (struct eng_limit){ 0 };
	o = glimit_find(q, g->name, g->len, &at);
	return o != NULL ? o->lim : q->per_group;
}

static struct group *group_find(const struct queue *q, const char *name, size_t len)
{
	if (len == 0)
		return (struct group *)&q->dflt;
	if (q->gtab_cap == 0)
		return NULL;
	for (struct group *g = q->gtab[group_hash(name, len) & (q->gtab_cap - 1)]; g; g = g->hnext)
		if (g->len == len && memcmp(g->name, name, len) == 0)
			return g;
	return NULL;
}

static void gtab_grow(struct queue *q)
{
	uint32_t cap = q->gtab_cap ? 2 * q->gtab_cap : 16;
	struct group **t = emb_oom(calloc(cap, sizeof(*t)));
	for (uint32_t i = 0; i < q->gtab_cap; i++)
		for (struct group *g = q->gtab[i], *n; g; g = n) {
			n = g->hnext;
			uint32_t k = group_hash(g->name, g->len) & (cap - 1);
			g->hnext = t[k];
			t[k] = g;
		}
	free(q->gtab);
	q->gtab = t;
	q->gtab_cap = cap;
}

struct group *emb_group(struct engine *e, struct queue *q, const char *name, size_t len)
{
	struct group *g = group_find(q, name, len);
	if (g != NULL)
		return g;
	if (q->n_groups + 1 > q->gtab_cap)
		gtab_grow(q);
	g = emb_oom(malloc(sizeof(*g)));
	group_init(g, q, name, len);
	g->lim = group_limit(q, g);
	bucket_reset(e, &g->bucket, &g->lim, emb_now(e));
	uint32_t k = group_hash(name, len) & (q->gtab_cap - 1);
	g->hnext = q->gtab[k];
	q->gtab[k] = g;
	q->n_groups++;
	return g;
}

static void group_free(struct engine *e, struct queue *q, struct group *g)
{
	if (g->in_ring)
		ring_remove(q, g);
	thr_remove(e, &g->bucket);
	heap_fini(&g->ready);
	if (g != &q->dflt)
		free(g);
}

void emb_group_unref(struct engine *e, struct queue *q, struct group *g)
{
	if (g->n_jobs > 0)
		g->n_jobs--;
	if (g->n_jobs > 0 || g == &q->dflt)
		return;
	struct group **pp = &q->gtab[group_hash(g->name, g->len) & (q->gtab_cap - 1)];
	while (*pp != g)
		pp = &(*pp)->hnext;
	*pp = g->hnext;
	q->n_groups--;
	group_free(e, q, g);
}

void emb_groups_fini(struct engine *e, struct queue *q)
{
	for (uint32_t i = 0; i < q->gtab_cap; i++)
		for (struct group *g = q->gtab[i], *n; g; g = n) {
			n = g->hnext;
			group_free(e, q, g);
		}
	free(q->gtab);
	q->gtab = NULL;
	q->gtab_cap = q->n_groups = 0;
	group_free(e, q, &q->dflt);
	thr_remove(e, &q->bucket);
	free(q->glims);
	q->glims = NULL;
	q->n_glims = q->cap_glims = 0;
}

bool emb_queue_has_limits(const struct queue *q)
{
	const struct eng_limit *a = &q->lim, *b = &q->per_group;
	return a->concurrency || a->rate || b->concurrency || b->rate || q->n_glims > 0;
}

/* ---- setting limits ---- */

static size_t limit_key(uint8_t *k, const char *queue, size_t qlen, int scope, const char *group,
			size_t glen)
{
	memcpy(k, META_LIMITS, 2);
	k[2] = (uint8_t)qlen;
	memcpy(k + 3, queue, qlen);
	k[3 + qlen] = (uint8_t)scope;
	if (glen > 0)
		memcpy(k + 4 + qlen, group, glen);
	return 4 + qlen + glen;
}

static bool no_limit(const struct eng_limit *l)
{
	return l->concurrency == 0 && l->rate == 0;
}

/* Live group g takes the limit it now lives under. */
static void follow_limit(struct engine *e, struct queue *q, struct group *g, int64_t now)
{
	struct eng_limit was = g->lim;
	g->lim = group_limit(q, g);
	if (was.rate != g->lim.rate || was.per_ms != g->lim.per_ms)
		bucket_reset(e, &g->bucket, &g->lim, now);
	emb_group_review(q, g);
}

/* Sets the limit of scope (and group) in q to lim, in memory, and makes
 * the live groups it concerns follow it (no limit: a group's own goes). */
static void apply(struct engine *e, struct queue *q, int scope, const char *group, size_t glen,
		  const struct eng_limit *lim, int64_t now)
{
	if (scope == ENG_LIMIT_QUEUE) {
		bool rate_changed = lim->rate != q->lim.rate || lim->per_ms != q->lim.per_ms;
		q->lim = *lim;
		if (rate_changed)
			bucket_reset(e, &q->bucket, &q->lim, now);
		return;
	}
	if (scope == ENG_LIMIT_GROUP) {
		uint32_t at;
		struct glimit *o = glimit_find(q, group, glen, &at);
		if (no_limit(lim) && o != NULL) {
			memmove(o, o + 1, (q->n_glims - at - 1) * sizeof(*o));
			q->n_glims--;
		} else if (!no_limit(lim)) {
			if (o == NULL) {
				if (q->n_glims == q->cap_glims) {
					q->cap_glims = q->cap_glims ? 2 * q->cap_glims : 8;
					q->glims = emb_oom(realloc(q->glims, q->cap_glims * sizeof(*q->glims)));
				}
				o = &q->glims[at];
				memmove(o + 1, o, (q->n_glims - at) * sizeof(*o));
				q->n_glims++;
				memset(o, 0, sizeof(*o));
				memcpy(o->name, group, glen);
				o->len = (uint8_t)glen;
			}
			o->lim = *lim;
		}
	} else {
		q->per_group = *lim;
	}
	/* the live groups it concerns take it now: that one, or all */
	if (scope == ENG_LIMIT_GROUP) {
		struct group *g = group_find(q, group, glen);
		if (g != NULL && g != &q->dflt)
			follow_limit(e, q, g, now);
		return;
	}
	for (uint32_t i = 0; i < q->gtab_cap; i++)
		for (struct group *g = q->gtab[i]; g; g = g->hnext)
			follow_limit(e, q, g, now);
}

static const struct eng_limit *limit_of(const struct queue *q, int scope, const char *group,
					size_t glen)
{
	static const struct eng_limit none;
	uint32_t at;
	const struct glimit *o;
	if (scope == ENG_LIMIT_QUEUE)
		return &q->lim;
	if (scope == ENG_LIMIT_EACH_GROUP)
		return &q->per_group;
	o = glimit_find(q, group, glen, &at);
	return o != NULL ? &o->lim : &none;
}

int emb_limit(struct engine *e, struct eng_limit_set *s, proto_error *err)
{
	uint8_t k[4 + PROTO_MAX_QUEUE + PROTO_MAX_GROUP], v[LIMIT_VAL];
	struct queue *q = emb_queue_admit(e, s->queue, s->queue_len, err);
	int64_t now = emb_now(e);

	if (q == NULL)
		return err->code;
	struct eng_limit lim = *limit_of(q, s->scope, s->group, s->group_len);
	if (s->set_concurrency)
		lim.concurrency = s->concurrency;
	if (s->set_rate) {
		lim.rate = s->rate;
		lim.per_ms = s->rate ? s->per_ms : 0;
	}
	apply(e, q, s->scope, s->group, s->group_len, &lim, now);
	size_t kl = limit_key(k, s->queue, s->queue_len, s->scope, s->group, s->group_len);
	if (no_limit(&lim)) {
		store_del(e->st, CF_META, k, kl);
	} else {
		store_be32(v, lim.concurrency);
		store_be32(v + 4, lim.rate);
		store_be64(v + 8, (uint64_t)lim.per_ms);
		store_put(e->st, CF_META, k, kl, v, sizeof(v));
	}
	emb_counts_dirty(e, q); /* a queue left with no limit and no job may go */
	e->durable = true;
	s->now = lim;
	return CUEQ_OK;
}

int emb_limits_load(struct engine *e)
{
	struct store_iter *it = store_iter_new(e->st, CF_META, META_LIMITS, 2, "L<", 2);
	int64_t now = emb_now(e);
	if (it == NULL)
		return -1;
	for (; store_iter_valid(it); store_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)store_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)store_iter_value(it, &vl);
		size_t qlen = kl > 2 ? k[2] : 0;
		if (kl < 4 + qlen || qlen == 0 || qlen > PROTO_MAX_QUEUE || vl != LIMIT_VAL ||
		    k[3 + qlen] > ENG_LIMIT_GROUP || kl - 4 - qlen > PROTO_MAX_GROUP) {
			log_warn("a stored limit is damaged; skipped");
			continue;
		}
		struct eng_limit lim = {
			.concurrency = store_get_be32(v),
			.rate = store_get_be32(v + 4),
			.per_ms = (int64_t)store_get_be64(v + 8),
		};
		if (lim.rate != 0 && lim.per_ms <= 0) {
			log_warn("a stored rate limit has no period; skipped");
			continue;
		}
		struct queue *q = emb_queue(e, (const char *)k + 3, qlen, true);
		apply(e, q, k[3 + qlen], (const char *)k + 4 + qlen, kl - 4 - qlen, &lim, now);
	}
	int rc = store_iter_status(it);
	store_iter_free(it);
	return rc;
}

/* ---- stats ---- */

static int by_name(const void *a, const void *b)
{
	const struct eng_group_stats *x = a, *y = b;
	return strcmp(x->group, y->group);
}

int emb_groups_list(struct engine *e, const char *queue, size_t qlen, size_t max,
		    struct eng_group_stats **out, size_t *n, struct eng_queue_limits *lims,
		    proto_error *err)
{
	struct queue *q = emb_queue(e, queue, qlen, false);
	(void)err;
	*out = NULL;
	*n = 0;
	*lims = (struct eng_queue_limits){ 0 };
	if (q == NULL)
		return CUEQ_OK;
	lims->queue = q->lim;
	lims->per_group = q->per_group;
	struct eng_group_stats *s = emb_oom(calloc(q->n_groups + 1, sizeof(*s)));
	size_t k = 0;
	for (uint32_t i = 0; i < q->gtab_cap; i++)
		for (struct group *g = q->gtab[i]; g; g = g->hnext) {
			uint32_t at;
			memcpy(s[k].group, g->name, g->len);
			s[k].ready = g->ready.n;
			s[k].leased = g->leased;
			s[k].jobs = g->n_jobs;
			s[k].lim = g->lim;
			s[k].own = glimit_find(q, g->name, g->len, &at) != NULL;
			k++;
		}
	qsort(s, k, sizeof(*s), by_name);
	if (k > max)
		k = max;
	*out = s;
	*n = k;
	return CUEQ_OK;
}
