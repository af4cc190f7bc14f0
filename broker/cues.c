/*
 * cues.c - recurring cues of the embedded engine: creating them, firing
 * them, cancelling them, and showing them.
 *
 * A cue's record (record.h, cues family) holds its payload, options and
 * schedule; memory holds only what says when it fires next, in a heap by
 * next fire.  A fire writes its execution (record, payload, active) and the
 * cue's record with the next fire in the turn's batch, so both are there
 * after a crash or neither is.  Its execution ID is derived from (cue ID,
 * fire time), so even a fire repeated from older state could only make the
 * same execution again, never a second one.
 *
 * Missed fires: a slot is missed when the slot after it is due too, or when
 * it is more than CATCH_UP_GRACE_MS late (the broker was down, the loop
 * stalled, the clock stepped forward).  catch_up all fires every slot (at
 * most FIRES_PER_TURN a turn), one fires the latest missed slot only, none
 * fires no missed slot.  A clock stepped back fires nothing early: the next
 * fire stays where it was.
 */
#include "embedded.h"

#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "log.h"

#define CATCH_UP_GRACE_MS 10000
#define FIRES_PER_TURN 1000
/* missed slots walked over per turn: a cron slot costs a few zone
 * lookups, so a long outage is caught up over several short turns */
#define SLOTS_PER_TURN 5000
#define READ_RETRY_MS 1000 /* after a cue's record could not be read */
#define FIRE_ID_BIT (1ull << 63)

/* ---- the heap of next fires ---- */

static bool cue_before(const struct cue *a, const struct cue *b)
{
	return a->next_fire < b->next_fire || (a->next_fire == b->next_fire && a->id < b->id);
}

static void heap_set(struct cues *h, uint32_t i, struct cue *c)
{
	h->heap[i] = c;
	c->heap_pos = i;
}

static void sift_up(struct cues *h, uint32_t i)
{
	struct cue *c = h->heap[i];
	while (i > 0 && cue_before(c, h->heap[(i - 1) / 2])) {
		heap_set(h, i, h->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(h, i, c);
}

static void sift_down(struct cues *h, uint32_t i)
{
	struct cue *c = h->heap[i];
	for (;;) {
		uint32_t l = 2 * i + 1, m = l + 1, k = i;
		struct cue *best = c;
		if (l < h->n && cue_before(h->heap[l], best))
			k = l, best = h->heap[l];
		if (m < h->n && cue_before(h->heap[m], best))
			k = m, best = h->heap[m];
		if (k == i)
			break;
		heap_set(h, i, best);
		i = k;
	}
	heap_set(h, i, c);
}

static void cue_insert(struct cues *h, struct cue *c)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->heap = emb_oom(realloc(h->heap, h->cap * sizeof(*h->heap)));
	}
	heap_set(h, h->n++, c);
	sift_up(h, h->n - 1);
}

static void cue_remove(struct cues *h, struct cue *c)
{
	uint32_t i = c->heap_pos;
	struct cue *last = h->heap[--h->n];
	if (i < h->n) {
		heap_set(h, i, last);
		sift_down(h, i);
		sift_up(h, last->heap_pos);
	}
	c->heap_pos = HEAP_NONE;
}

static struct cue *cue_find(const struct engine *e, uint64_t id)
{
	for (uint32_t i = 0; i < e->cues.n; i++)
		if (e->cues.heap[i]->id == id)
			return e->cues.heap[i];
	return NULL;
}

static void cue_free(struct cue *c)
{
	if (c != NULL)
		cron_free(c->cron);
	free(c);
}

void emb_cues_free(struct engine *e)
{
	for (uint32_t i = 0; i < e->cues.n; i++)
		cue_free(e->cues.heap[i]);
	free(e->cues.heap);
	e->cues = (struct cues){0};
}

int64_t emb_cues_next(const struct engine *e)
{
	int64_t next = e->cues.n ? e->cues.heap[0]->next_fire : INT64_MAX;
	/* a read failed: try again later, not in a loop */
	return next < e->cues_retry_at ? e->cues_retry_at : next;
}

/* ---- schedules ---- */

/* The first slot of c strictly after t, INT64_MAX none. */
static int64_t slot_after(const struct cue *c, int64_t t)
{
	if (c->cron != NULL)
		return cron_next(c->cron, t);
	if (t < c->anchor)
		return c->anchor;
	int64_t k = (t - c->anchor) / c->every_ms + 1;
	if (k > (INT64_MAX - c->anchor) / c->every_ms)
		return INT64_MAX;
	return c->anchor + k * c->every_ms;
}

/* The latest slot of c at or before now, from slot (<= now) on. */
static int64_t latest_slot(const struct cue *c, int64_t slot, int64_t now, uint64_t *passed,
			   int *budget)
{
	if (c->cron == NULL) {
		int64_t k = (now - c->anchor) / c->every_ms, last = c->anchor + k * c->every_ms;
		*passed += (uint64_t)((last - slot) / c->every_ms);
		return last;
	}
	for (int64_t next; (next = cron_next(c->cron, slot)) <= now && (*budget)-- > 0;) {
		slot = next;
		(*passed)++;
	}
	return slot;
}

static int cue_schedule(struct cue *c, int64_t every_ms, const char *cron, size_t cron_len,
			const char *tz, size_t tz_len, char *err, size_t errlen)
{
	c->every_ms = every_ms;
	if (cron == NULL)
		return 0;
	return cron_parse(cron, cron_len, tz, tz_len, &c->cron, err, errlen);
}

/* ---- records ---- */

static void cue_key(uint8_t k[8], uint64_t id)
{
	store_be64(k, id);
}

/* Reads cue id: 1 found, 0 none, -1 error.  r's strings point into *up
 * and *buf: release both with release_cue whatever the answer. */
static int read_cue(struct engine *e, uint64_t id, struct cue_rec *r, msgpack_unpacked *up,
		    char **buf)
{
	uint8_t k[8];
	size_t vl;
	cue_key(k, id);
	*buf = NULL;
	msgpack_unpacked_init(up);
	int rc = store_get(e->st, CF_CUES, k, 8, buf, &vl);
	if (rc <= 0)
		return rc;
	msgpack_unpacked_destroy(up);
	if (record_unpack_cue(*buf, vl, up, r) != 0) {
		log_error("cue record %016llx is corrupt or from a newer cueqd", (unsigned long long)id);
		return -1;
	}
	return 1;
}

static void release_cue(msgpack_unpacked *up, char *buf)
{
	msgpack_unpacked_destroy(up);
	store_free(buf);
}

static void put_cue(struct engine *e, const struct cue_rec *r)
{
	uint8_t k[8];
	cue_key(k, r->id);
	msgpack_sbuffer_clear(&e->sbuf);
	record_pack_cue(&e->pk, r);
	store_put(e->st, CF_CUES, k, 8, e->sbuf.data, e->sbuf.size);
}

void emb_cue_new(struct engine *e, const struct eng_push *p, int64_t now, struct eng_pushed *o)
{
	struct queue *q = emb_queue(e, p->queue, p->queue_len, true);
	struct cue *c = emb_oom(calloc(1, sizeof(*c)));
	char err[256];

	c->id = emb_next_id(e);
	c->queue = q->idx;
	c->catch_up = p->catch_up;
	c->overlap = p->overlap;
	if (cue_schedule(c, p->every_ms, p->cron, p->cron_len, p->tz, p->tz_len, err,
			 sizeof(err)) != 0) {
		/* checked by the protocol layer before: a bug if it happens */
		log_error("recurring cue refused after its check: %s", err);
		abort();
	}
	if (c->cron == NULL)
		c->anchor = p->run_at > now ? p->run_at : now + p->every_ms;
	else
		c->anchor = 0;
	c->next_fire = c->cron ? cron_next(c->cron, (p->run_at > now ? p->run_at : now) - 1)
			       : c->anchor;
	struct cue_rec r = {
		.id = c->id,
		.queue = q->name,
		.queue_len = q->len,
		.payload = p->payload,
		.payload_len = p->payload_len,
		.priority = p->priority,
		.max_attempts = p->max_attempts,
		.max_expiries = p->max_expiries,
		.lease_ms = p->lease_ms,
		.backoff_ms = p->backoff.base_ms,
		.backoff_max_ms = p->backoff.max_ms,
		.backoff_factor = p->backoff.factor_milli,
		.flags = p->backoff.no_jitter ? REC_F_NO_JITTER : 0,
		.every_ms = p->every_ms,
		.cron = p->cron,
		.cron_len = p->cron_len,
		.tz = p->tz,
		.tz_len = p->tz_len,
		.catch_up = p->catch_up,
		.overlap = p->overlap,
		.created_at = now,
		.anchor = c->anchor,
		.next_fire = c->next_fire,
	};
	put_cue(e, &r);
	if (c->next_fire == INT64_MAX) {
		cue_free(c); /* it never fires: kept on disk for get, not in memory */
	} else {
		cue_insert(&e->cues, c);
		q->n_cues++;
	}
	*o = (struct eng_pushed){
		.cue_id = r.id,
		.state = CUEQ_SCHEDULED,
		.recurring = true,
		.run_at = r.next_fire,
		.created_at = now,
	};
}

int emb_cues_load(struct engine *e)
{
	uint8_t lo[8] = {0};
	struct store_iter *it = store_iter_new(e->st, CF_CUES, lo, 8, NULL, 0);
	size_t n = 0;
	if (it == NULL)
		return -1;
	for (; store_iter_valid(it); store_iter_next(it)) {
		size_t kl, vl;
		const char *k = store_iter_key(it, &kl), *v = store_iter_value(it, &vl);
		msgpack_unpacked up;
		struct cue_rec r;
		char err[256];
		if (kl != 8)
			continue;
		msgpack_unpacked_init(&up);
		if (record_unpack_cue(v, vl, &up, &r) != 0) {
			log_warn("cue %016llx has no usable record; it does not fire",
				 (unsigned long long)store_get_be64((const uint8_t *)k));
			msgpack_unpacked_destroy(&up);
			continue;
		}
		struct queue *q = emb_queue(e, r.queue, r.queue_len, true);
		if (r.cancelled) {
			msgpack_unpacked_destroy(&up);
			continue;
		}
		struct cue *c = emb_oom(calloc(1, sizeof(*c)));
		c->id = r.id;
		c->queue = q->idx;
		c->catch_up = r.catch_up;
		c->overlap = r.overlap;
		c->anchor = r.anchor;
		c->next_fire = r.next_fire;
		c->last_exec = r.n_last ? r.last_id[0] : 0;
		if (cue_schedule(c, r.every_ms, r.cron, r.cron_len, r.tz, r.tz_len, err,
				 sizeof(err)) != 0) {
			log_warn("cue %016llx: %s; it does not fire", (unsigned long long)r.id, err);
			cue_free(c);
		} else if (c->next_fire == INT64_MAX) {
			cue_free(c);
		} else {
			cue_insert(&e->cues, c);
			q->n_cues++;
			n++;
		}
		msgpack_unpacked_destroy(&up);
	}
	int rc = store_iter_status(it);
	store_iter_free(it);
	if (rc == 0 && n > 0)
		log_info("recovered %zu recurring cues", n);
	return rc;
}

/* ---- firing ---- */

static uint64_t fire_id(uint64_t cue, int64_t slot)
{
	uint8_t b[16];
	store_be64(b, cue);
	store_be64(b + 8, (uint64_t)slot);
	return record_hash(RECORD_HASH_INIT, b, sizeof(b)) | FIRE_ID_BIT;
}

/* Creates the execution of r's fire at slot. */
static void fire(struct engine *e, struct cue *c, struct cue_rec *r, int64_t slot, int64_t now)
{
	struct queue *q = emb_queue_at(e, c->queue);
	uint64_t id = fire_id(c->id, slot);
	struct exec_rec rec;
	uint8_t k[8];

	if (jobs_find(e->jobs, id) != NULL)
		return; /* made before (cannot happen: the cue's record moved on with it) */
	struct job *j = emb_oom(jobs_alloc(e->jobs));
	j->id = id;
	j->cue_id = c->id;
	j->queue = q->idx;
	j->group = &q->dflt; /* a fire's group: the queue's default */
	j->group->n_jobs++;
	j->priority = (int16_t)r->priority;
	j->max_attempts = (uint16_t)r->max_attempts;
	j->max_expiries = (uint16_t)r->max_expiries;
	emb_job_backoff(j, r->backoff_ms, r->backoff_max_ms, r->backoff_factor);
	j->flags = r->flags & REC_F_NO_JITTER;
	j->lease_ms = r->lease_ms;
	j->created_at = now;
	j->run_at = slot;
	j->state = ST_NONE;
	emb_oom(jobs_insert(e->jobs, j) == 0 ? j : NULL);
	emb_set_state(e, j, CUEQ_READY);
	emb_key(k, id);
	emb_rec_from_job(e, j, &rec);
	emb_put_rec(e, &rec);
	store_put(e->st, CF_PAYLOAD, k, 8, r->payload, r->payload_len);
	store_put(e->st, CF_ACTIVE, k, 8, "", 0);
	memmove(r->last_id + 1, r->last_id, (CUE_LAST - 1) * sizeof(r->last_id[0]));
	memmove(r->last_at + 1, r->last_at, (CUE_LAST - 1) * sizeof(r->last_at[0]));
	r->last_id[0] = id;
	r->last_at[0] = slot;
	if (r->n_last < CUE_LAST)
		r->n_last++;
	r->fires++;
	c->last_exec = id;
}

/* Fires c's due slots (within the turn's budgets) and moves it on. */
static int fire_cue(struct engine *e, struct cue *c, int64_t now, int *fires, int *slots)
{
	struct cue_rec r;
	msgpack_unpacked up;
	char *buf;
	int rc = read_cue(e, c->id, &r, &up, &buf);
	if (rc <= 0) {
		release_cue(&up, buf);
		if (rc == 0) { /* gone (cannot happen: cues are kept) */
			cue_remove(&e->cues, c);
			cue_free(c);
			return 0;
		}
		return -1; /* read failed: nothing changed, the next turn tries again */
	}
	int64_t slot = c->next_fire;
	while (slot <= now && *fires > 0 && *slots > 0) {
		int64_t following = slot_after(c, slot);
		bool missed = following <= now || now - slot > CATCH_UP_GRACE_MS;
		bool go = !missed || c->catch_up == ENG_CATCH_UP_ALL ||
			  (c->catch_up == ENG_CATCH_UP_ONE && following > now);
		if (missed && c->catch_up != ENG_CATCH_UP_ALL && following <= now) {
			/* walk to the latest missed slot at once */
			uint64_t passed = 0;
			int64_t last = latest_slot(c, slot, now, &passed, slots);
			r.skipped += passed;
			slot = last;
			continue;
		}
		(*slots)--;
		if (go && c->overlap == ENG_OVERLAP_SKIP && c->last_exec != 0 &&
		    jobs_find(e->jobs, c->last_exec) != NULL)
			go = false; /* the previous one is still unfinished */
		if (go) {
			fire(e, c, &r, slot, now);
			(*fires)--;
		} else {
			r.skipped++;
		}
		slot = following;
	}
	c->next_fire = slot;
	r.next_fire = slot;
	put_cue(e, &r);
	release_cue(&up, buf);
	if (slot == INT64_MAX) { /* its schedule ended */
		struct queue *q = emb_queue_at(e, c->queue);
		if (q->n_cues > 0)
			q->n_cues--;
		emb_counts_dirty(e, q);
		cue_remove(&e->cues, c);
		cue_free(c);
	} else {
		sift_down(&e->cues, c->heap_pos);
	}
	return 0;
}

int64_t emb_cues_fire(struct engine *e, int64_t now)
{
	int fires = FIRES_PER_TURN, slots = SLOTS_PER_TURN;
	if (now < e->cues_retry_at)
		return emb_cues_next(e);
	e->cues_retry_at = 0;
	while (e->cues.n > 0 && e->cues.heap[0]->next_fire <= now && fires > 0 && slots > 0) {
		struct cue *c = e->cues.heap[0];
		if (fire_cue(e, c, now, &fires, &slots) != 0) {
			e->cues_retry_at = now + READ_RETRY_MS;
			break;
		}
		if (c == e->cues.heap[0] && c->next_fire <= now && (fires <= 0 || slots <= 0))
			break;
	}
	return emb_cues_next(e);
}

/* ---- the operator's view ---- */

int emb_cue_cancel(struct engine *e, uint64_t id)
{
	struct cue_rec r;
	msgpack_unpacked up;
	char *buf;
	int rc = read_cue(e, id, &r, &up, &buf);
	if (rc == 1 && !r.cancelled) {
		struct cue *c = cue_find(e, id);
		struct queue *q = emb_queue(e, r.queue, r.queue_len, true);
		r.cancelled = 1;
		put_cue(e, &r);
		if (c != NULL && q->n_cues > 0) /* it was one that fires */
			q->n_cues--;
		emb_counts_dirty(e, q); /* it may be empty now */
		if (c != NULL) {
			cue_remove(&e->cues, c);
			cue_free(c);
		}
		e->durable = true;
	}
	release_cue(&up, buf);
	return rc;
}

static void copy_str(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* The states of v's last fires: those still unfinished from memory, the
 * others from their records, which are written aside (store.c): the turn
 * so far is written first, once (*settled), and only when one is needed.
 * No iterator may be open meanwhile: the write would move under it. */
static void fire_states(struct engine *e, struct eng_cue *v, bool *settled)
{
	for (size_t i = 0; i < v->n_last; i++) {
		struct job *j = jobs_find(e->jobs, v->last[i].id);
		if (j != NULL) {
			v->last[i].state = j->state;
		} else if (*settled || (*settled = emb_settle(e) == 0)) {
			struct exec_rec x;
			msgpack_unpacked xu;
			char *buf;
			if (emb_read_rec(e, v->last[i].id, &x, &xu, &buf) == 1)
				v->last[i].state = x.state;
			emb_rec_release(&xu, buf);
		}
	}
}

/* The view of r with its last fires (at most last of them), their states
 * unknown yet (fire_states). */
static void cue_view(const struct cue_rec *r, struct eng_cue *v, uint32_t last)
{
	*v = (struct eng_cue){
		.id = r->id,
		.cancelled = r->cancelled != 0,
		.every_ms = r->every_ms,
		.catch_up = r->catch_up,
		.overlap = r->overlap,
		.priority = r->priority,
		.max_attempts = r->max_attempts,
		.max_expiries = r->max_expiries ? r->max_expiries : MAX_EXPIRIES,
		.lease_ms = r->lease_ms,
		.created_at = r->created_at,
		.fires = r->fires,
		.skipped = r->skipped,
	};
	copy_str(v->queue, sizeof(v->queue), r->queue, r->queue_len);
	if (r->cron != NULL)
		copy_str(v->cron, sizeof(v->cron), r->cron, r->cron_len);
	copy_str(v->tz, sizeof(v->tz), r->tz ? r->tz : "UTC", r->tz ? r->tz_len : 3);
	if (!r->cancelled && r->next_fire != INT64_MAX) {
		struct cue probe = {.every_ms = r->every_ms, .anchor = r->anchor};
		char err[256];
		if (cue_schedule(&probe, r->every_ms, r->cron, r->cron_len, r->tz, r->tz_len, err,
				 sizeof(err)) == 0) {
			int64_t t = r->next_fire;
			for (int i = 0; i < ENG_CUE_NEXT && t != INT64_MAX; i++) {
				v->next[i] = t;
				t = slot_after(&probe, t);
			}
		}
		cron_free(probe.cron);
	}
	v->n_last = r->n_last < last ? r->n_last : last;
	for (uint32_t i = 0; i < v->n_last; i++) {
		v->last[i].id = r->last_id[i];
		v->last[i].fire_at = r->last_at[i];
		v->last[i].state = -1;
	}
}

int emb_cue_queue(struct engine *e, uint64_t id, char *out, size_t *len)
{
	struct cue_rec r;
	msgpack_unpacked up;
	char *buf;
	int rc = read_cue(e, id, &r, &up, &buf);
	if (rc == 1) {
		*len = r.queue_len <= PROTO_MAX_QUEUE ? r.queue_len : PROTO_MAX_QUEUE;
		memcpy(out, r.queue, *len);
		out[*len] = '\0';
	}
	release_cue(&up, buf);
	return rc;
}

int emb_cue_get(struct engine *e, uint64_t id, struct eng_cue *out, proto_error *err)
{
	struct cue_rec r;
	msgpack_unpacked up;
	char s[PROTO_ID_LEN + 1], *buf;
	bool settled = false;
	int rc = read_cue(e, id, &r, &up, &buf);
	proto_id_fmt(id, s);
	if (rc <= 0) {
		release_cue(&up, buf);
		return rc < 0 ? proto_fail(err, CUEQ_ERR_UNAVAILABLE,
					   "the broker could not read cue %s; try again", s)
			      : proto_fail(err, CUEQ_ERR_NOT_FOUND, "no execution or cue %s", s);
	}
	cue_view(&r, out, ENG_CUE_LAST);
	fire_states(e, out, &settled);
	out->payload = emb_oom(malloc(r.payload_len + 1));
	memcpy(out->payload, r.payload, r.payload_len);
	out->payload_len = r.payload_len;
	release_cue(&up, buf);
	return CUEQ_OK;
}

int emb_cues_list(struct engine *e, const char *queue, size_t qlen, size_t max,
		  struct eng_cue **out, size_t *n, proto_error *err)
{
	uint8_t lo[8] = {0};
	bool settled = false;
	*out = NULL;
	*n = 0;
	struct store_iter *it = store_iter_new(e->st, CF_CUES, lo, 8, NULL, 0);
	if (it == NULL)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read its cues; try again");
	struct eng_cue *v = emb_oom(calloc(max ? max : 1, sizeof(*v)));
	for (; *n < max && store_iter_valid(it); store_iter_next(it)) {
		size_t vl;
		const char *val = store_iter_value(it, &vl);
		msgpack_unpacked up;
		struct cue_rec r;
		msgpack_unpacked_init(&up);
		if (record_unpack_cue(val, vl, &up, &r) == 0 && r.queue_len == qlen &&
		    memcmp(r.queue, queue, qlen) == 0)
			cue_view(&r, &v[(*n)++], 1);
		msgpack_unpacked_destroy(&up);
	}
	int rc = store_iter_status(it);
	store_iter_free(it);
	if (rc != 0) {
		free(v);
		*n = 0;
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read its cues; try again");
	}
	for (size_t i = 0; i < *n; i++) /* the iterator is closed now */
		fire_states(e, &v[i], &settled);
	*out = v;
	return CUEQ_OK;
}
