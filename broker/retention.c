/*
 * retention.c - the end of an execution's life: retiring finished ones
 * from memory into the done/expiry indexes, and deleting them for good once
 * the retention window has passed.
 *
 * Expired idempotency keys go the same way, through idemexp.
 *
 * The expiry column family is ordered by finish time, so the sweep reads
 * only what is due and resumes from the last key it deleted (seeking past
 * the tombstones of earlier sweeps instead of over them).  It deletes at
 * most SWEEP_BATCH executions per turn so a backlog never stalls the loop.
 */
#include "embedded.h"

#include <string.h>

#define SWEEP_BATCH 1000
#define SWEEP_EVERY_MS 1000

void emb_retire(struct engine *e, struct job *j, int state, int64_t now)
{
	struct queue *q = emb_queue_at(e, j->queue);
	uint8_t k[8], done[PROTO_MAX_QUEUE + 10], exp[16], val[PROTO_MAX_QUEUE + 2];
	size_t dl;

	emb_unique_release(e, j);
	emb_key(k, j->id);
	store_del(e->st, CF_ACTIVE, k, 8);
	dl = emb_done_key(done, q->name, q->len, state, j->id);
	store_put(e->st, CF_DONE, done, dl, "", 0);
	store_be64(exp, (uint64_t)now);
	store_be64(exp + 8, j->id);
	memcpy(val, q->name, q->len);
	val[q->len] = 0;
	val[q->len + 1] = (uint8_t)state;
	store_put(e->st, CF_EXPIRY, exp, 16, val, (size_t)q->len + 2);
	emb_set_state(e, j, state);
	e->counted.succeeded += state == CUEQ_SUCCEEDED;
	e->counted.dead += state == CUEQ_DEAD;
	e->counted.cancelled += state == CUEQ_CANCELLED;
	emb_group_unref(e, q, j->group);
	jobs_remove(e->jobs, j);
	jobs_release(e->jobs, j);
}

void emb_steps_forget(struct engine *e, uint64_t id)
{
	uint8_t from[8], to[8];
	store_be64(from, id);
	store_be64(to, id + 1);
	store_del_range(e->st, CF_STEPS, from, 8, to, 8);
}

void emb_forget(struct engine *e, uint64_t id, const char *queue, size_t qlen, int state,
		int64_t finished_at)
{
	uint8_t k[8], from[12] = {0}, to[12] = {0}, done[PROTO_MAX_QUEUE + 10], exp[16];

	emb_key(k, id);
	store_del(e->st, CF_EXEC, k, 8);
	store_del(e->st, CF_PAYLOAD, k, 8);
	store_be64(from, id);
	store_be64(to, id + 1);
	store_del_range(e->st, CF_HIST, from, 12, to, 12);
	emb_steps_forget(e, id);
	uint8_t r[9] = {'r'};
	store_be64(r + 1, id);
	store_del(e->st, CF_UNIQUE, r, 9); /* the key it held, kept while retained */
	if (finished_at != 0) {
		store_be64(exp, (uint64_t)finished_at);
		store_be64(exp + 8, id);
		store_del(e->st, CF_EXPIRY, exp, 16);
	}
	if (queue == NULL)
		return;
	store_del(e->st, CF_DONE, done, emb_done_key(done, queue, qlen, state, id));
	struct queue *q = emb_queue(e, queue, qlen, false);
	if (q != NULL && state >= CUEQ_SUCCEEDED && state <= CUEQ_CANCELLED && q->count[state] > 0) {
		q->count[state]--;
		emb_counts_dirty(e, q);
	}
}

/* Deletes everything of one execution, from its expiry entry. */
static void forget(struct engine *e, uint64_t id, const uint8_t *val, size_t vl)
{
	const uint8_t *nul = memchr(val, 0, vl);
	if (nul == NULL || nul + 2 != val + vl || nul - val > PROTO_MAX_QUEUE) {
		emb_forget(e, id, NULL, 0, 0, 0);
		return;
	}
	/* the sweep deletes the expiry entry itself */
	emb_forget(e, id, (const char *)val, (size_t)(nul - val), nul[1], 0);
}

/* Deletes idempotency keys whose time ran out (a key given again after
 * that was stored anew with a later expiry and is left alone). */
static size_t sweep_keys(struct engine *e, int64_t now)
{
	uint8_t hi[8];
	size_t n = 0;
	store_be64(hi, (uint64_t)now);
	struct store_iter *it = store_iter_new(e->st, CF_IDEMEXP, e->idem_sweep_from, 8, hi, 8);
	for (; it && n < SWEEP_BATCH && store_iter_valid(it); store_iter_next(it), n++) {
		size_t kl, vl;
		const char *k = store_iter_key(it, &kl);
		char *v;
		struct idem_rec r;
		if (kl <= 8)
			continue;
		int rc = store_get(e->st, CF_IDEM, k + 8, kl - 8, &v, &vl);
		if (rc < 0)
			break; /* a read failed: leave both for the next sweep */
		if (rc == 1) {
			int64_t exp = 0;
			bool rid = k[8] == 0; /* a remembered request (ridstore.c) */
			if (rid ? emb_rid_expiry(v, vl, &exp) == 0
				: record_unpack_idem(v, vl, &r) == 0 && ((exp = r.expires_at), true))
				if (exp == (int64_t)store_get_be64((const uint8_t *)k))
					store_del(e->st, CF_IDEM, k + 8, kl - 8);
			store_free(v);
		}
		store_del(e->st, CF_IDEMEXP, k, kl);
		memcpy(e->idem_sweep_from, k, 8);
	}
	store_iter_free(it);
	return n;
}

int64_t emb_sweep(struct engine *e, int64_t now)
{
	uint8_t hi[8];
	size_t n = 0;

	if (now < e->next_sweep && e->next_sweep - now <= SWEEP_EVERY_MS)
		return e->next_sweep;
	if (now < e->last_sweep) { /* the clock stepped back: start over */
		memset(e->sweep_from, 0, sizeof(e->sweep_from));
		memset(e->idem_sweep_from, 0, sizeof(e->idem_sweep_from));
	}
	e->last_sweep = now;
	e->next_sweep = now + SWEEP_EVERY_MS;
	if (sweep_keys(e, now) == SWEEP_BATCH)
		e->next_sweep = now; /* more is due: go on next turn */
	if (now - e->retention_ms <= 0)
		return e->next_sweep;
	store_be64(hi, (uint64_t)(now - e->retention_ms));
	struct store_iter *it = store_iter_new(e->st, CF_EXPIRY, e->sweep_from, 16, hi, 8);
	if (it == NULL)
		return e->next_sweep;
	for (; n < SWEEP_BATCH && store_iter_valid(it); store_iter_next(it), n++) {
		size_t kl, vl;
		const char *k = store_iter_key(it, &kl), *v = store_iter_value(it, &vl);
		if (kl != 16)
			continue;
		forget(e, store_get_be64((const uint8_t *)k + 8), (const uint8_t *)v, vl);
		store_del(e->st, CF_EXPIRY, k, kl);
		memcpy(e->sweep_from, k, 16);
	}
	store_iter_free(it);
	if (n == SWEEP_BATCH)
		e->next_sweep = now; /* more is due: go on next turn */
	return e->next_sweep;
}
