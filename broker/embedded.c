/*
 * embedded.c - the embedded engine: opening, recovery, the queue table,
 * record helpers, commit and sync.
 *
 * Start-up reads the boot epoch, bumps it and syncs it before anything else,
 * so IDs and lease tokens of this run can never repeat those of a run whose
 * unsynced writes were lost.  Memory is then rebuilt from the active column
 * family only: start-up time follows the unfinished work, not the history.
 */
#include "embedded.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyhash.h"
#include "log.h"

/* 2: the epoch record carries the lease token key (a cueqd of format 1
 * would read it as epoch 0 and hand out IDs again, so it must refuse). */
#define FORMAT_VERSION 2

static const char META_EPOCH[] = "epoch";
static const char META_FORMAT[] = "format";
/* + queue: finished counts (3 x 8), then totals (deliveries, expiries,
 * failures, releases: 4 x 8) and paused (1); older brokers wrote the
 * counts alone */
static const char META_COUNTS[] = "n:";
#define COUNTS_OLD 24
#define COUNTS_LEN 57

void *emb_oom(void *p)
{
	if (p == NULL) {
		log_error("out of memory in the core; stopping without committing this turn");
		abort();
	}
	return p;
}

uint64_t emb_next_id(struct engine *e)
{
	if (++e->counter >= (1ull << ID_EPOCH_SHIFT)) {
		log_error("ID space of this boot is used up; restart the broker");
		abort();
	}
	return ((uint64_t)e->epoch << ID_EPOCH_SHIFT) | e->counter;
}

/* A lease token: a new ID (never reused, not even across crashes) through
 * a keyed permutation of 64-bit numbers, a four-round Feistel network on
 * SipHash under the data directory's own secret.  A permutation maps
 * distinct IDs to distinct tokens, so tokens stay unique; the key makes
 * them unguessable, so knowing execution IDs (or earlier tokens) does not
 * let anyone forge the live lease of an execution. */
uint64_t emb_next_token(struct engine *e)
{
	for (;;) {
		uint64_t id = emb_next_id(e);
		uint32_t l = (uint32_t)(id >> 32), r = (uint32_t)id;
		for (uint8_t round = 0; round < 4; round++) {
			uint8_t in[5] = {round, (uint8_t)(r >> 24), (uint8_t)(r >> 16), (uint8_t)(r >> 8),
					 (uint8_t)r};
			uint8_t h[crypto_shorthash_BYTES];
			crypto_shorthash(h, in, sizeof(in), e->token_key);
			uint32_t f = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
			uint32_t t = l ^ f;
			l = r, r = t;
		}
		uint64_t token = (uint64_t)l << 32 | r;
		if (token != 0) /* 0 means "not leased" */
			return token;
	}
}

void emb_key(uint8_t k[8], uint64_t id)
{
	store_be64(k, id);
}

size_t emb_done_key(uint8_t *k, const char *queue, size_t qlen, int state, uint64_t id)
{
	memcpy(k, queue, qlen);
	k[qlen] = 0;
	k[qlen + 1] = (uint8_t)state;
	store_be64(k + qlen + 2, id);
	return qlen + 10;
}

/* ---- queues ---- */

/* Queue names are the clients': keyed, so none can be made to collide. */
static uint32_t name_hash(const char *s, size_t n)
{
	return (uint32_t)keyhash(s, n);
}

static void qslot_insert(struct engine *e, uint32_t idx)
{
	struct queue *q = e->queues[idx];
	uint32_t mask = e->qslot_cap - 1, k = name_hash(q->name, q->len) & mask;
	while (e->qslot[k])
		k = (k + 1) & mask;
	e->qslot[k] = idx + 1;
}

struct queue *emb_queue_admit(struct engine *e, const char *name, size_t len, proto_error *err)
{
	struct queue *q = emb_queue(e, name, len, false);
	if (q != NULL || e->max_queues == 0 || e->n_live < e->max_queues)
		return q != NULL ? q : emb_queue(e, name, len, true);
	proto_fail(err, CUEQ_ERR_UNAVAILABLE,
		   "the broker holds %u queues, its --max-queues: push to an existing queue, or wait until queues empty (an empty queue is forgotten)",
		   e->max_queues);
	return NULL;
}

struct queue *emb_queue(struct engine *e, const char *name, size_t len, bool create)
{
	uint32_t mask = e->qslot_cap - 1, k = name_hash(name, len) & mask;
	for (; e->qslot[k]; k = (k + 1) & mask) {
		struct queue *q = e->queues[e->qslot[k] - 1];
		if (q->len == len && memcmp(q->name, name, len) == 0)
			return q;
	}
	if (!create)
		return NULL;
	uint32_t idx;
	if (e->n_free > 0) { /* the slot of a queue forgotten before */
		idx = e->free_idx[--e->n_free];
	} else {
		if (e->nq == e->capq) {
			e->capq = e->capq ? e->capq * 2 : 16;
			e->queues = emb_oom(realloc(e->queues, e->capq * sizeof(*e->queues)));
		}
		idx = e->nq++;
	}
	struct queue *q = emb_oom(calloc(1, sizeof(*q)));
	memcpy(q->name, name, len);
	q->len = (uint8_t)len;
	q->idx = idx;
	emb_groups_init(q);
	e->queues[idx] = q;
	e->n_live++;
	emb_counts_dirty(e, q); /* checked at the end of the turn: it may stay empty */
	if (e->n_live * 2 > e->qslot_cap) {
		free(e->qslot);
		e->qslot_cap *= 2;
		e->qslot = emb_oom(calloc(e->qslot_cap, sizeof(*e->qslot)));
		for (uint32_t i = 0; i < e->nq; i++)
			if (e->queues[i] != NULL)
				qslot_insert(e, i);
	} else {
		qslot_insert(e, idx);
	}
	return q;
}

/* Whether q holds nothing: no execution in any state (retained finished
 * ones included), no recurring cue, not paused. */
static bool queue_empty(const struct queue *q)
{
	for (int s = 0; s < 6; s++)
		if (q->count[s] != 0)
			return false;
	return q->count[CUEQ_READY] == 0 && q->n_cues == 0 && !q->paused && !emb_queue_has_limits(q);
}

/* Forgets empty queue q: memory and its stored counters go, so queues that
 * come and go cost nothing once gone (the totals start over if it comes
 * back).  Only at the end of a turn: no request holds q then. */
static void queue_forget(struct engine *e, struct queue *q)
{
	uint8_t k[2 + PROTO_MAX_QUEUE];
	memcpy(k, META_COUNTS, 2);
	memcpy(k + 2, q->name, q->len);
	store_del(e->st, CF_META, k, 2 + (size_t)q->len);
	/* out of the name table: backward-shift deletion keeps probing right */
	uint32_t mask = e->qslot_cap - 1, i = name_hash(q->name, q->len) & mask;
	while (e->qslot[i] != q->idx + 1)
		i = (i + 1) & mask;
	for (uint32_t j = (i + 1) & mask; e->qslot[j]; j = (j + 1) & mask) {
		const struct queue *o = e->queues[e->qslot[j] - 1];
		uint32_t home = name_hash(o->name, o->len) & mask;
		/* o may fill the hole when its home is not within (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			e->qslot[i] = e->qslot[j];
			i = j;
		}
	}
	e->qslot[i] = 0;
	if (e->n_free == e->cap_free) {
		e->cap_free = e->cap_free ? 2 * e->cap_free : 64;
		e->free_idx = emb_oom(realloc(e->free_idx, e->cap_free * sizeof(*e->free_idx)));
	}
	e->free_idx[e->n_free++] = q->idx;
	e->queues[q->idx] = NULL;
	e->n_live--;
	emb_groups_fini(e, q);
	free(q);
}

/* ---- states ---- */

void emb_set_state(struct engine *e, struct job *j, int state)
{
	struct queue *q = e->queues[j->queue];
	struct group *g = j->group;
	int was = j->state;
	if (j->heap_pos != HEAP_NONE) {
		if (j->state == CUEQ_READY)
			heap_remove(&g->ready, j);
		else
			heap_remove(&e->timers, j);
	}
	if (j->state <= CUEQ_LEASED && q->count[j->state] > 0)
		q->count[j->state]--;
	if (was == CUEQ_LEASED && g->leased > 0)
		g->leased--;
	j->state = (uint8_t)state;
	q->count[state]++;
	if (state >= CUEQ_SUCCEEDED)
		emb_counts_dirty(e, q);
	if (state == CUEQ_READY) {
		emb_oom(heap_push(&g->ready, j) == 0 ? j : NULL);
	} else if (state == CUEQ_SCHEDULED || state == CUEQ_LEASED) {
		emb_oom(heap_push(&e->timers, j) == 0 ? j : NULL);
		if (state == CUEQ_LEASED)
			g->leased++;
	}
	if (was == CUEQ_READY || was == CUEQ_LEASED || state == CUEQ_READY || state == CUEQ_LEASED)
		emb_group_review(q, g);
}

/* ---- records ---- */

void emb_rec_from_job(struct engine *e, const struct job *j, struct exec_rec *rec)
{
	const struct queue *q = e->queues[j->queue];
	*rec = (struct exec_rec){
		.id = j->id,
		.cue_id = j->cue_id,
		.queue = q->name,
		.queue_len = q->len,
		.group = j->group->name,
		.group_len = j->group->len,
		.priority = j->priority,
		.max_attempts = j->max_attempts,
		.lease_ms = j->lease_ms,
		.attempt = j->attempt,
		.expiries = j->expiries,
		.failures = j->failures,
		.hist_seq = j->hist_seq,
		.state = j->state,
		.flags = j->flags & (uint8_t)~JOB_F_MEMORY,
		.created_at = j->created_at,
		.run_at = j->run_at,
		.deadline = j->state == CUEQ_LEASED ? j->deadline : 0,
		.token = j->state == CUEQ_LEASED ? j->token : 0,
		.error = j->error,
		.error_len = j->error_len,
		.max_expiries = j->max_expiries,
		.backoff_ms = j->backoff_ms,
		.backoff_max_ms = j->backoff_max_ms,
		.backoff_factor = j->backoff_factor,
	};
}

void emb_put_rec(struct engine *e, const struct exec_rec *rec)
{
	uint8_t k[8];
	emb_key(k, rec->id);
	msgpack_sbuffer_clear(&e->sbuf);
	record_pack(&e->pk, rec);
	store_put(e->st, CF_EXEC, k, 8, e->sbuf.data, e->sbuf.size);
}

void emb_history(struct engine *e, struct job *j, int event, uint32_t attempt, uint64_t token,
		 const char *detail, size_t detail_len, int64_t now)
{
	uint8_t k[12];
	/* a run of extensions of one lease is one event, the newest: a worker
	 * that extends all day does not grow the history */
	bool again = event == EV_EXTENDED && (j->flags & JOB_F_EXTENDED) && j->hist_seq > 0;
	if (event == EV_EXTENDED)
		j->flags |= JOB_F_EXTENDED;
	else
		j->flags &= (uint8_t)~JOB_F_EXTENDED;
	struct hist_rec h = {
		.at = now,
		.event = (uint8_t)event,
		.attempt = attempt,
		.token = token,
		.detail = detail,
		.detail_len = detail_len,
	};
	emb_key(k, j->id);
	uint32_t seq = again ? j->hist_seq - 1 : j->hist_seq++;
	store_be32(k + 8, seq);
	msgpack_sbuffer_clear(&e->sbuf);
	record_pack_event(&e->pk, &h);
	store_put(e->st, CF_HIST, k, sizeof(k), e->sbuf.data, e->sbuf.size);
	if (!again && seq >= HIST_KEEP) { /* the newest HIST_KEEP are kept */
		store_be32(k + 8, seq - HIST_KEEP);
		store_del(e->st, CF_HIST, k, sizeof(k));
	}
}

int emb_read_rec(struct engine *e, uint64_t id, struct exec_rec *rec, msgpack_unpacked *up,
		 char **buf)
{
	uint8_t k[8];
	size_t len;
	int rc;

	*buf = NULL;
	msgpack_unpacked_init(up);
	emb_key(k, id);
	rc = store_get(e->st, CF_EXEC, k, 8, buf, &len);
	if (rc <= 0)
		return rc;
	msgpack_unpacked_destroy(up);
	if (record_unpack(*buf, len, up, rec) != 0) {
		log_error("execution record %016llx is corrupt or from a newer cueqd",
			  (unsigned long long)id);
		emb_rec_release(up, *buf);
		msgpack_unpacked_init(up);
		*buf = NULL;
		return -1;
	}
	return 1;
}

void emb_rec_release(msgpack_unpacked *up, char *buf)
{
	msgpack_unpacked_destroy(up);
	store_free(buf);
}

/* ---- open, recovery, close ---- */

static int load_meta(struct engine *e, char *err, size_t errlen)
{
	char *v = NULL;
	size_t vl = 0;
	uint8_t b[8];
	int rc = store_get(e->st, CF_META, META_FORMAT, strlen(META_FORMAT), &v, &vl);
	if (rc < 0)
		goto io;
	uint64_t format = 0;
	if (rc == 1) {
		uint64_t f = vl == 8 ? store_get_be64((uint8_t *)v) : UINT64_MAX;
		format = f;
		store_free(v);
		if (f > FORMAT_VERSION) {
			snprintf(err, errlen,
				 "the data directory was written by a newer cueqd (format %llu, this one reads %d); use that version",
				 (unsigned long long)f, FORMAT_VERSION);
			return -1;
		}
	}
	if (rc == 0 || format < FORMAT_VERSION) {
		store_be64(b, FORMAT_VERSION);
		if (store_put_now(e->st, CF_META, META_FORMAT, strlen(META_FORMAT), b, 8) != 0)
			goto io;
	}
	rc = store_get(e->st, CF_META, META_EPOCH, strlen(META_EPOCH), &v, &vl);
	if (rc < 0)
		goto io;
	/* the epoch, then (since lease tokens are keyed) the token key */
	uint64_t epoch = rc == 1 && vl >= 8 ? store_get_be64((uint8_t *)v) : 0;
	bool keyed = rc == 1 && vl == 8 + sizeof(e->token_key);
	if (keyed)
		memcpy(e->token_key, v + 8, sizeof(e->token_key));
	if (rc == 1)
		store_free(v);
	if (!keyed) { /* a new data directory, or an older one */
		if (keyhash_init() != 0) /* starts libsodium */
			goto io;
		crypto_shorthash_keygen(e->token_key);
	}
	if (++epoch >= (1u << 24)) {
		snprintf(err, errlen, "boot epoch exhausted after 16 million starts");
		return -1;
	}
	e->epoch = (uint32_t)epoch;
	/* what start-up recovered is durable (RocksDB writes it to synced
	 * table files as it opens); this boot's IDs come after */
	atomic_store(&e->committed_id, (uint64_t)e->epoch << ID_EPOCH_SHIFT);
	atomic_store(&e->synced_id, (uint64_t)e->epoch << ID_EPOCH_SHIFT);
	uint8_t eb[8 + sizeof(e->token_key)];
	store_be64(eb, epoch);
	memcpy(eb + 8, e->token_key, sizeof(e->token_key));
	/* synced before any ID of this boot can be handed out */
	if (store_put_now(e->st, CF_META, META_EPOCH, strlen(META_EPOCH), eb, sizeof(eb)) != 0)
		goto io;
	sodium_memzero(eb, sizeof(eb));
	return 0;
io:
	snprintf(err, errlen, "cannot read or write the broker's metadata (see the log above)");
	return -1;
}

static int load_counts(struct engine *e)
{
	struct store_iter *it = store_iter_new(e->st, CF_META, META_COUNTS, 2, "n;", 2);
	if (it == NULL)
		return -1;
	for (; store_iter_valid(it); store_iter_next(it)) {
		size_t kl, vl;
		const char *k = store_iter_key(it, &kl), *v = store_iter_value(it, &vl);
		const uint8_t *b = (const uint8_t *)v;
		if (kl <= 2 || kl - 2 > PROTO_MAX_QUEUE || (vl != COUNTS_OLD && vl != COUNTS_LEN))
			continue;
		struct queue *q = emb_queue(e, k + 2, kl - 2, true);
		for (int i = 0; i < 3; i++)
			q->count[CUEQ_SUCCEEDED + i] = store_get_be64(b + 8 * i);
		if (vl == COUNTS_LEN) {
			q->deliveries = store_get_be64(b + 24);
			q->expiries = store_get_be64(b + 32);
			q->failures = store_get_be64(b + 40);
			q->releases = store_get_be64(b + 48);
			q->paused = b[56] != 0;
		}
	}
	store_iter_free(it);
	return 0;
}

/* Moves x (over exec) to the record of id: true when it is there.  The
 * active IDs come in order and most records between them are of other
 * active ones, so a few steps forward beat a seek; far gaps (finished
 * executions kept for retention) are sought over. */
#define RECOVER_STEPS 8
static bool exec_at(struct store_iter *x, uint64_t id)
{
	for (int steps = 0; store_iter_valid(x);) {
		size_t kl;
		const char *k = store_iter_key(x, &kl);
		if (kl != 8) { /* not a record's key: step over it, never seek to it */
			store_iter_next(x);
			continue;
		}
		uint64_t at = store_get_be64((const uint8_t *)k);
		if (at >= id)
			return at == id;
		if (steps++ == RECOVER_STEPS) {
			uint8_t key[8];
			store_be64(key, id);
			store_iter_seek(x, key, 8); /* now at id or past it */
			continue;
		}
		store_iter_next(x);
	}
	return false;
}

static int recover(struct engine *e)
{
	uint8_t lo[8] = {0};
	size_t n = 0;
	msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	struct store_iter *it = store_iter_new(e->st, CF_ACTIVE, lo, 8, NULL, 0);
	struct store_iter *x = store_iter_new(e->st, CF_EXEC, lo, 8, NULL, 0);
	if (z == NULL || it == NULL || x == NULL) {
		if (z != NULL)
			msgpack_zone_free(z);
		store_iter_free(it);
		store_iter_free(x);
		return -1;
	}
	jobs_reserve(e->jobs, store_estimate_keys(e->st, CF_ACTIVE));
	for (; store_iter_valid(it); store_iter_next(it)) {
		size_t kl, vl;
		const char *k = store_iter_key(it, &kl);
		struct exec_rec r;
		if (kl != 8)
			continue;
		uint64_t id = store_get_be64((const uint8_t *)k);
		const char *v = exec_at(x, id) ? store_iter_value(x, &vl) : NULL;
		if (v == NULL || record_unpack_zone(v, vl, z, &r) != 0 || r.state > CUEQ_LEASED) {
			log_warn("active execution %016llx has no usable record; skipped",
				 (unsigned long long)id);
			continue;
		}
		struct job *j = emb_oom(jobs_alloc(e->jobs));
		struct queue *q = emb_queue(e, r.queue, r.queue_len, true);
		j->id = id;
		j->cue_id = r.cue_id ? r.cue_id : id;
		j->queue = q->idx;
		j->group = emb_group(e, q, r.group, r.group_len);
		j->group->n_jobs++;
		j->priority = (int16_t)r.priority;
		j->max_attempts = (uint16_t)r.max_attempts;
		j->lease_ms = r.lease_ms;
		j->attempt = (uint16_t)r.attempt;
		j->expiries = (uint16_t)r.expiries;
		j->failures = (uint16_t)r.failures;
		j->hist_seq = r.hist_seq;
		j->created_at = r.created_at;
		j->run_at = r.run_at;
		j->deadline = r.deadline;
		j->token = r.token;
		j->flags = r.flags;
		j->max_expiries = (uint16_t)r.max_expiries;
		emb_job_backoff(j, r.backoff_ms, r.backoff_max_ms, r.backoff_factor);
		if (r.error) {
			j->error = emb_oom(malloc(r.error_len + 1));
			memcpy(j->error, r.error, r.error_len);
			j->error_len = (uint32_t)r.error_len;
		}
		j->state = ST_NONE;
		emb_oom(jobs_insert(e->jobs, j) == 0 ? j : NULL);
		/* a scheduled job whose time came is made ready by the first tick */
		emb_set_state(e, j, r.state == CUEQ_LEASED && r.token ? CUEQ_LEASED :
				    r.state == CUEQ_SCHEDULED ? CUEQ_SCHEDULED : CUEQ_READY);
		n++;
	}
	msgpack_zone_free(z);
	int rc = store_iter_status(it) != 0 || store_iter_status(x) != 0 ? -1 : 0;
	store_iter_free(it);
	store_iter_free(x);
	if (rc == 0)
		log_info("recovered %zu unfinished executions", n);
	return rc;
}

static void emb_close(struct engine *e);

static int emb_open(const struct eng_config *cfg, struct engine **out, char *err, size_t errlen)
{
	struct engine *e = calloc(1, sizeof(*e));
	*out = NULL;
	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (keyhash_init() != 0) {
		snprintf(err, errlen, "cannot make a random hash key (no randomness from the system)");
		free(e);
		return -1;
	}
	msgpack_sbuffer_init(&e->sbuf);
	msgpack_packer_init(&e->pk, &e->sbuf, msgpack_sbuffer_write);
	heap_init(&e->timers, job_due_before);
	e->clock = cfg->clock;
	e->clock_arg = cfg->clock_arg;
	e->retention_ms = cfg->retention_ms;
	e->idem_window_ms = cfg->idem_window_ms;
	e->max_queues = cfg->max_queues;
	e->qslot_cap = 64;
	e->qslot = calloc(e->qslot_cap, sizeof(*e->qslot));
	e->jobs = jobs_new();
	if (e->qslot == NULL || e->jobs == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (store_open(cfg->location, cfg->max_open_files, &e->st, err, errlen) != 0)
		goto fail;
	if (load_meta(e, err, errlen) != 0)
		goto fail;
	if (load_counts(e) != 0 || recover(e) != 0) {
		snprintf(err, errlen, "cannot read the unfinished executions (see the log above)");
		goto fail;
	}
	if (emb_cues_load(e) != 0) {
		snprintf(err, errlen, "cannot read the recurring cues (see the log above)");
		goto fail;
	}
	if (emb_limits_load(e) != 0) {
		snprintf(err, errlen, "cannot read the queues' limits (see the log above)");
		goto fail;
	}
	/* the first commit forgets the queues that start empty (counters
	 * stored by an older broker): only those, so a start writes nothing
	 * else (the queues made while loading are not new) */
	for (uint32_t i = 0; i < e->n_dirty; i++)
		e->queues[e->dirty[i]]->counts_dirty = false;
	e->n_dirty = 0;
	for (uint32_t i = 0; i < e->nq; i++)
		if (queue_empty(e->queues[i]))
			emb_counts_dirty(e, e->queues[i]);
	e->rng = ((uint64_t)e->epoch << 32 ^ (uint64_t)proto_now_ms()) | 1;
	*out = e;
	return 0;
fail:
	emb_close(e);
	return -1;
}

static void emb_close(struct engine *e)
{
	if (e == NULL)
		return;
	store_close(e->st);
	emb_cues_free(e);
	for (uint32_t i = 0; i < e->nq; i++) {
		if (e->queues[i] == NULL)
			continue;
		emb_groups_fini(e, e->queues[i]);
		free(e->queues[i]);
	}
	free(e->queues);
	free(e->dirty);
	free(e->free_idx);
	free(e->qslot);
	heap_fini(&e->timers);
	free(e->throttled);
	jobs_free(e->jobs);
	msgpack_sbuffer_destroy(&e->sbuf);
	free(e);
}

static uint64_t emb_boot_id(struct engine *e)
{
	return e->epoch;
}

void emb_counts_dirty(struct engine *e, struct queue *q)
{
	if (q->counts_dirty)
		return;
	q->counts_dirty = true;
	if (e->n_dirty == e->cap_dirty) {
		e->cap_dirty = e->cap_dirty ? 2 * e->cap_dirty : 64;
		e->dirty = emb_oom(realloc(e->dirty, e->cap_dirty * sizeof(*e->dirty)));
	}
	e->dirty[e->n_dirty++] = q->idx;
}

/* Adds the counters that changed this turn to the batch: of the queues
 * marked, so a turn costs the same among a million queues as among ten.
 * At the end of a turn (forget), a queue marked that is empty now is
 * forgotten instead; in the middle of one (a settle) the marks stay for
 * the end. */
static void put_counts(struct engine *e, bool forget)
{
	for (uint32_t i = 0; i < e->n_dirty; i++) {
		struct queue *q = e->queues[e->dirty[i]];
		uint8_t k[2 + PROTO_MAX_QUEUE], v[COUNTS_LEN];
		if (forget && queue_empty(q)) {
			queue_forget(e, q);
			continue;
		}
		if (forget)
			q->counts_dirty = false;
		memcpy(k, META_COUNTS, 2);
		memcpy(k + 2, q->name, q->len);
		for (int s = 0; s < 3; s++)
			store_be64(v + 8 * s, q->count[CUEQ_SUCCEEDED + s]);
		store_be64(v + 24, q->deliveries);
		store_be64(v + 32, q->expiries);
		store_be64(v + 40, q->failures);
		store_be64(v + 48, q->releases);
		v[56] = q->paused;
		store_put(e->st, CF_META, k, 2 + (size_t)q->len, v, sizeof(v));
	}
	if (forget)
		e->n_dirty = 0;
}

/* After a commit that wrote: every ID handed out so far is written. */
static void committed(struct engine *e)
{
	atomic_store(&e->committed_id, ((uint64_t)e->epoch << ID_EPOCH_SHIFT) | e->counter);
}

int emb_settle(struct engine *e)
{
	if (!store_dirty(e->st))
		return 0;
	put_counts(e, false);
	int rc = store_commit(e->st, true);
	if (rc == 0)
		committed(e);
	return rc;
}

static int emb_commit(struct engine *e, bool wait, bool *durable_needed)
{
	put_counts(e, true);
	int rc = store_commit(e->st, wait);
	if (rc == 0)
		committed(e);
	*durable_needed = e->durable;
	if (rc != 1) /* busy: the writes stay pending, and so does their need */
		e->durable = false;
	return rc;
}

static int emb_sync(struct engine *e)
{
	uint64_t upto = atomic_load(&e->committed_id); /* written before this sync */
	int rc = store_sync(e->st);
	if (rc == 0)
		atomic_store(&e->synced_id, upto);
	return rc;
}

const struct engine_ops embedded_engine = {
	.version = ENGINE_OPS_VERSION,
	.name = "embedded",
	.open = emb_open,
	.close = emb_close,
	.boot_id = emb_boot_id,
	.push = emb_push,
	.remember = emb_remember,
	.recall = emb_recall,
	.claim = emb_claim,
	.claimed_again = emb_claimed_again,
	.claimed_free = emb_claimed_free,
	.has_ready = emb_has_ready,
	.finish = emb_finish,
	.extend = emb_extend,
	.step_set = emb_step_set,
	.steps = emb_steps,
	.get = emb_get,
	.list = emb_list,
	.view_free = emb_view_free,
	.stats = emb_stats,
	.tick = emb_tick,
	.cancel = emb_cancel,
	.retry = emb_retry,
	.purge = emb_purge,
	.pause = emb_pause,
	.release = emb_release,
	.is_live = emb_is_live,
	.unfinished = emb_unfinished,
	.queue_of = emb_queue_of,
	.limit = emb_limit,
	.groups = emb_groups_list,
	.cue_get = emb_cue_get,
	.cues = emb_cues_list,
	.next_due = emb_next_due,
	.commit = emb_commit,
	.sync = emb_sync,
	.metrics = emb_metrics,
};
