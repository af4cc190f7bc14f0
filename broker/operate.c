/*
 * operate.c - the operator's changes in the embedded engine: cancel,
 * retry of dead executions, purge, pause, and the release of a gone
 * worker's leases.
 *
 * Each is one request and so one write with its turn.  Those that touch
 * many executions (retry all, purge) read everything they need first and
 * change nothing until every read succeeded: a failed read is UNAVAILABLE
 * with nothing half done.
 */
#include "embedded.h"

#include <stdlib.h>
#include <string.h>

static const char CANCELLED_WHY[] = "cancelled by an operator";
#define UNIQUE_BUF (PROTO_MAX_QUEUE + 2 + CUEQ_MAX_KEY) /* queue 0 key */

bool emb_is_live(struct engine *e, uint64_t id, uint64_t token)
{
	struct job *j = jobs_find(e->jobs, id);
	return j != NULL && j->state == CUEQ_LEASED && j->token == token;
}

static const char *state_name(int s)
{
	const char *n = proto_state_name(s);
	return n ? n : "unknown";
}

/* ---- cancel ---- */

static void cancel_job(struct engine *e, struct job *j, int64_t now)
{
	struct exec_rec rec;
	emb_history(e, j, EV_CANCELLED, j->attempt, j->state == CUEQ_LEASED ? j->token : 0,
		    CANCELLED_WHY, sizeof(CANCELLED_WHY) - 1, now);
	emb_end_rec(e, j, CUEQ_CANCELLED, now, CANCELLED_WHY, &rec);
	emb_put_rec(e, &rec);
	emb_retire(e, j, CUEQ_CANCELLED, now);
	e->durable = true;
}

int emb_cancel(struct engine *e, uint64_t id, int *kind, proto_error *err)
{
	struct job *j = jobs_find(e->jobs, id);
	char s[PROTO_ID_LEN + 1];

	proto_id_fmt(id, s);
	*kind = ENG_KIND_EXECUTION;
	if (j != NULL) {
		if (emb_unique_load(e, j) != 0) /* before any write: the end frees it */
			return proto_fail(err, CUEQ_ERR_UNAVAILABLE,
					  "the broker could not read the execution's unique key; try again");
		cancel_job(e, j, emb_now(e));
		return CUEQ_OK;
	}
	/* finished, or a cue: records are written aside (store.c) */
	if (emb_settle(e) != 0)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker's storage failed; try again");
	struct exec_rec r;
	msgpack_unpacked up;
	char *buf;
	int rc = emb_read_rec(e, id, &r, &up, &buf), state = rc == 1 ? r.state : -1;
	emb_rec_release(&up, buf);
	if (rc < 0)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read execution %s; try again", s);
	if (rc == 1) {
		if (state == CUEQ_CANCELLED)
			return CUEQ_OK; /* cancelled before: the same answer */
		return proto_fail(err, CUEQ_ERR_CONFLICT,
				  "execution %s already ended %s; only a scheduled, ready or leased execution can be cancelled",
				  s, state_name(state));
	}
	*kind = ENG_KIND_CUE;
	rc = emb_cue_cancel(e, id);
	if (rc < 0)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read cue %s; try again", s);
	if (rc == 0)
		return proto_fail(err, CUEQ_ERR_NOT_FOUND,
				  "no execution or recurring cue %s (never pushed, or deleted after the retention window)",
				  s);
	return CUEQ_OK;
}

/* ---- what retry and purge read first ---- */

struct done_item {
	uint64_t id;
	struct exec_rec rec;
	msgpack_unpacked up;
	char *buf;
	/* retry: the unique key it held, and whether another holds it now */
	char key[UNIQUE_BUF];
	size_t kl;
	int held;
	uint64_t holder;
};

static void items_free(struct done_item *it, size_t n)
{
	for (size_t i = 0; i < n; i++)
		emb_rec_release(&it[i].up, it[i].buf);
	free(it);
}

/* Reads the records of up to max executions of queue in state (the done
 * index), after settling, and (keys) the unique keys they held.  0 with
 * *out (*n of them, *more when others are left), or an error with
 * nothing read. */
static int read_done(struct engine *e, const char *queue, size_t qlen, int state, size_t max,
		     bool keys, struct done_item **out, size_t *n, bool *more, proto_error *err)
{
	uint8_t from[PROTO_MAX_QUEUE + 10], to[PROTO_MAX_QUEUE + 10];
	size_t fl = emb_done_key(from, queue, qlen, state, 0) - 8;
	memcpy(to, from, fl);
	to[fl - 1] = (uint8_t)(state + 1);

	*out = NULL;
	*n = 0;
	*more = false;
	if (emb_settle(e) != 0)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker's storage failed; try again");
	struct done_item *it = emb_oom(calloc(max ? max : 1, sizeof(*it)));
	struct store_iter *x = store_iter_new(e->st, CF_DONE, from, fl, to, fl);
	int rc = x == NULL ? -1 : 0;
	for (; rc == 0 && store_iter_valid(x); store_iter_next(x)) {
		size_t kl;
		const char *k = store_iter_key(x, &kl);
		if (kl != fl + 8)
			continue;
		if (*n == max) {
			*more = true;
			break;
		}
		struct done_item *d = &it[*n];
		d->id = store_get_be64((const uint8_t *)k + fl);
		int got = emb_read_rec(e, d->id, &d->rec, &d->up, &d->buf);
		if (got < 0) {
			rc = -1;
			emb_rec_release(&d->up, d->buf);
			break;
		}
		if (got == 0 || d->rec.state != state) { /* index ahead of a lost record */
			emb_rec_release(&d->up, d->buf);
			continue;
		}
		if (keys && (d->held = emb_unique_check(e, d->id, d->rec.flags, d->key, sizeof(d->key),
							&d->kl, &d->holder)) < 0) {
			rc = -1;
			emb_rec_release(&d->up, d->buf);
			break;
		}
		(*n)++;
	}
	if (rc == 0 && x != NULL)
		rc = store_iter_status(x);
	store_iter_free(x);
	if (rc != 0) {
		items_free(it, *n);
		*n = 0;
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE,
				  "the broker could not read the finished executions; try again");
	}
	*out = it;
	return CUEQ_OK;
}

/* ---- retry ---- */

/* Makes dead execution r ready again: same ID, payload and steps; its
 * attempts start over; it holds its unique key (key, kl) again. */
static void revive(struct engine *e, const struct exec_rec *r, const char *key, size_t kl,
		   int64_t now)
{
	struct queue *q = emb_queue(e, r->queue, r->queue_len, true);
	struct job *j = emb_oom(jobs_alloc(e->jobs));
	uint8_t k[8], done[PROTO_MAX_QUEUE + 10], exp[16];
	struct exec_rec rec;

	j->id = r->id;
	j->cue_id = r->cue_id ? r->cue_id : r->id;
	j->queue = q->idx;
	j->group = emb_group(e, q, r->group, r->group_len);
	j->group->n_jobs++;
	j->priority = (int16_t)r->priority;
	j->max_attempts = (uint16_t)r->max_attempts;
	j->max_expiries = (uint16_t)r->max_expiries;
	emb_job_backoff(j, r->backoff_ms, r->backoff_max_ms, r->backoff_factor);
	j->flags = r->flags;
	j->lease_ms = r->lease_ms;
	j->hist_seq = r->hist_seq;
	j->created_at = r->created_at;
	j->run_at = now;
	j->state = ST_NONE;
	/* ready by this write, which may not be synced when it is claimed:
	 * its first delivery again must not be answered early (lease.c) */
	j->flags |= JOB_F_UNSYNCED;
	emb_oom(jobs_insert(e->jobs, j) == 0 ? j : NULL);
	if (q->count[CUEQ_DEAD] > 0)
		q->count[CUEQ_DEAD]--;
	emb_counts_dirty(e, q);
	emb_set_state(e, j, CUEQ_READY);
	emb_unique_take(e, j, key, kl);
	emb_history(e, j, EV_RETRIED, 0, 0, NULL, 0, now);
	emb_rec_from_job(e, j, &rec);
	emb_put_rec(e, &rec);
	emb_key(k, j->id);
	store_put(e->st, CF_ACTIVE, k, 8, "", 0);
	store_del(e->st, CF_DONE, done, emb_done_key(done, q->name, q->len, CUEQ_DEAD, j->id));
	store_be64(exp, (uint64_t)r->finished_at);
	store_be64(exp + 8, j->id);
	store_del(e->st, CF_EXPIRY, exp, 16);
	e->durable = true;
}

int emb_retry(struct engine *e, uint64_t id, const char *queue, size_t qlen, size_t max,
	      size_t *n, bool *more, proto_error *err)
{
	int64_t now = emb_now(e);
	*n = 0;
	*more = false;
	if (id == 0) {
		struct done_item *it;
		size_t got;
		int rc = read_done(e, queue, qlen, CUEQ_DEAD, max, true, &it, &got, more, err);
		if (rc != CUEQ_OK)
			return rc;
		/* one whose unique key another holds now stays dead, and so
		 * does one whose key an earlier one of this page took back */
		for (size_t i = 0; i < got; i++) {
			for (size_t k = 0; k < i && !it[i].held && it[i].kl > 0; k++)
				it[i].held = !it[k].held && it[k].kl == it[i].kl &&
					     memcmp(it[k].key, it[i].key, it[i].kl) == 0;
			if (!it[i].held) {
				revive(e, &it[i].rec, it[i].key, it[i].kl, now);
				(*n)++;
			}
		}
		items_free(it, got);
		return CUEQ_OK;
	}
	char s[PROTO_ID_LEN + 1];
	struct job *j = jobs_find(e->jobs, id);
	proto_id_fmt(id, s);
	if (j != NULL)
		return proto_fail(err, CUEQ_ERR_CONFLICT,
				  "execution %s is %s, not dead: only dead executions are retried", s,
				  state_name(j->state));
	if (emb_settle(e) != 0)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker's storage failed; try again");
	struct exec_rec r;
	msgpack_unpacked up;
	char *buf;
	int rc = emb_read_rec(e, id, &r, &up, &buf);
	if (rc < 0)
		rc = proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read execution %s; try again", s);
	else if (rc == 0)
		rc = proto_fail(err, CUEQ_ERR_NOT_FOUND,
				"no execution %s (never pushed, or deleted after the retention window)", s);
	else if (r.state != CUEQ_DEAD)
		rc = proto_fail(err, CUEQ_ERR_CONFLICT,
				"execution %s is %s, not dead: only dead executions are retried", s,
				state_name(r.state));
	else {
		char key[UNIQUE_BUF], h[PROTO_ID_LEN + 1];
		size_t kl;
		uint64_t holder;
		int held = emb_unique_check(e, id, r.flags, key, sizeof(key), &kl, &holder);
		proto_id_fmt(holder, h);
		if (held < 0) {
			rc = proto_fail(err, CUEQ_ERR_UNAVAILABLE,
					"the broker could not read the execution's unique key; try again");
		} else if (held) {
			rc = proto_fail(err, CUEQ_ERR_CONFLICT,
					"execution %s's unique key is held by execution %s now; retry it when that one ends",
					s, h);
		} else {
			revive(e, &r, key, kl, now);
			*n = 1;
			rc = CUEQ_OK;
		}
	}
	emb_rec_release(&up, buf);
	return rc;
}

/* ---- purge ---- */

int emb_purge(struct engine *e, const char *queue, size_t qlen, int state, size_t max, size_t *n,
	      bool *more, proto_error *err)
{
	struct done_item *it;
	size_t got;
	*n = 0;
	int rc = read_done(e, queue, qlen, state, max, false, &it, &got, more, err);
	if (rc != CUEQ_OK)
		return rc;
	for (size_t i = 0; i < got; i++)
		emb_forget(e, it[i].id, queue, qlen, state, it[i].rec.finished_at);
	items_free(it, got);
	*n = got;
	if (got > 0)
		e->durable = true;
	return CUEQ_OK;
}

/* ---- pause ---- */

int emb_pause(struct engine *e, const char *queue, size_t qlen, bool paused, proto_error *err)
{
	struct queue *q = emb_queue_admit(e, queue, qlen, err);
	if (q == NULL)
		return err->code;
	if (q->paused != paused) {
		q->paused = paused;
		emb_counts_dirty(e, q);
		e->durable = true;
	}
	return CUEQ_OK;
}

/* ---- release ---- */

void emb_release(struct engine *e, const uint64_t *ids, const uint64_t *tokens, size_t n,
		 size_t *n_ended)
{
	int64_t now = emb_now(e);
	*n_ended = 0;
	for (size_t i = 0; i < n; i++) {
		struct job *j = jobs_find(e->jobs, ids[i]);
		if (j == NULL || j->state != CUEQ_LEASED || j->token != tokens[i])
			continue;
		if (emb_last_expiry(j) && emb_unique_load(e, j) != 0)
			continue; /* its lease runs out as it would have */
		emb_lease_ended(e, j, true, now);
		(*n_ended)++;
	}
}
