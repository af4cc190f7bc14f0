/*
 * push.c - creating executions, with idempotency keys and unique keys.
 *
 * An idempotency key remembers, per queue, the SHA-256 digest of the job's
 * canonical request and the answer it got, in the same batch as the execution, for
 * the key's time to live; a push with the key replays that answer or, for
 * another request, is refused.  A unique key names the one unfinished
 * execution that holds it; emb_retire frees it when that execution ends.
 * Both are read from the store rather than held in memory, so only jobs
 * that carry keys pay; reads see the writes of earlier requests of the
 * turn (the store's batch is readable), and jobs of the same request are
 * compared with each other directly.
 */
#include "embedded.h"

#include <sodium.h>
#include <string.h>

#include "log.h"

#define KEYBUF (PROTO_MAX_QUEUE + 2 + CUEQ_MAX_KEY)

/* queue 0 key; returns the length. */
static size_t scoped(uint8_t *out, const char *prefix, const char *queue, size_t qlen,
		     const char *key, size_t klen)
{
	size_t n = 0;
	if (prefix)
		out[n++] = (uint8_t)prefix[0];
	memcpy(out + n, queue, qlen);
	n += qlen;
	out[n++] = 0;
	memcpy(out + n, key, klen);
	return n + klen;
}

static const char *const FIELD_NAMES[ENG_REQ_FIELDS] = {
	"payload", "priority", "max_attempts", "lease_ms", "delay_ms/run_at", "unique or group",
	"retry policy (max_expiries, backoff)", "schedule",
};

/* "payload and max_attempts" for the parts where first (NULL: unknown, a
 * key stored by an older broker) and p differ, into out. */
static const char *differing(const uint32_t *first, const struct eng_push *p, char *out,
			     size_t size)
{
	size_t n = 0, k = 0, count = 0;
	out[0] = '\0';
	for (int i = 0; first != NULL && i < ENG_REQ_FIELDS; i++)
		count += first[i] != p->req_fields[i];
	for (int i = 0; first != NULL && i < ENG_REQ_FIELDS && n < size; i++)
		if (first[i] != p->req_fields[i]) {
			k++;
			n += (size_t)snprintf(out + n, size - n, "%s%s", k == 1 ? "" : k == count ? " and " : ", ",
					      FIELD_NAMES[i]);
		}
	return out;
}

static int mismatch(const struct eng_push *p, const uint32_t *first, struct eng_pushed *out)
{
	char what[192];
	differing(first, p, what, sizeof(what));
	proto_fail(&out->err, CUEQ_ERR_IDEMPOTENCY_MISMATCH,
		   "idempotency key '%.*s' of queue %.*s was used for a different request (%s%s); a request is its payload and all its options: send the same one again, or use a new key for a new one",
		   (int)(p->key_len > 64 ? 64 : p->key_len), p->key, (int)p->queue_len, p->queue,
		   what[0] ? what : "what differs is not recorded with this key",
		   what[0] ? (strstr(what, " and ") ? " differ" : " differs") : "");
	return 1;
}

static int conflict(const struct eng_push *p, struct eng_pushed *out)
{
	char id[PROTO_ID_LEN + 1];
	proto_id_fmt(out->holder, id);
	proto_fail(&out->err, CUEQ_ERR_CONFLICT,
		   "unique key '%.*s' of queue %.*s is held by execution %s, which has not finished; push again once it has",
		   (int)(p->unique_len > 64 ? 64 : p->unique_len), p->unique, (int)p->queue_len, p->queue, id);
	return 1;
}

/* Answers p from its idempotency key when the key is live: 1 answered
 * (duplicate or mismatch), 0 go on and create. */
static int by_key(struct engine *e, const struct eng_push *p, int64_t now, struct eng_pushed *out)
{
	uint8_t k[KEYBUF];
	size_t kl = scoped(k, NULL, p->queue, p->queue_len, p->key, p->key_len), vl;
	char *v;
	struct idem_rec r;
	int rc;

	if ((rc = store_get(e->st, CF_IDEM, k, kl, &v, &vl)) < 0) {
		proto_fail(&out->err, CUEQ_ERR_UNAVAILABLE, "the broker could not read its idempotency keys; try again");
		return 1;
	}
	if (rc == 0)
		return 0;
	rc = record_unpack_idem(v, vl, &r);
	store_free(v);
	if (rc != 0 || r.expires_at <= now)
		return 0; /* expired: the key is free again */
	if (r.has_digest ? sodium_memcmp(r.digest, p->req_digest, sizeof(r.digest)) != 0
			 : r.hash != p->req_hash)
		return mismatch(p, r.has_fields ? r.fields : NULL, out);
	out->id = r.id;
	out->cue_id = r.cue_id;
	out->state = r.state;
	out->run_at = r.run_at;
	out->created_at = r.created_at;
	out->recurring = r.id == 0; /* a recurring cue has no execution of its own */
	out->duplicate = true;
	return 1;
}

/* Refuses p when its unique key is held: 1 refused, 0 free. */
static int held(struct engine *e, const struct eng_push *p, struct eng_pushed *out)
{
	uint8_t k[KEYBUF + 1];
	size_t kl = scoped(k, "k", p->queue, p->queue_len, p->unique, p->unique_len), vl;
	char *v;
	int rc;

	if ((rc = store_get(e->st, CF_UNIQUE, k, kl, &v, &vl)) < 0) {
		proto_fail(&out->err, CUEQ_ERR_UNAVAILABLE, "the broker could not read its unique keys; try again");
		return 1;
	}
	if (rc == 0)
		return 0;
	out->holder = vl == 8 ? store_get_be64((const uint8_t *)v) : 0;
	store_free(v);
	return conflict(p, out);
}

static bool same(const char *a, size_t al, const char *b, size_t bl)
{
	return a != NULL && b != NULL && al == bl && memcmp(a, b, al) == 0;
}

/* Answers jobs[i] from an earlier job of the same request with its key or
 * unique key (the store does not see those yet): 1 answered, 0 go on. */
static int earlier(const struct eng_push *jobs, struct eng_pushed *out, size_t i)
{
	const struct eng_push *p = &jobs[i];
	for (size_t j = 0; j < i; j++) {
		const struct eng_push *q = &jobs[j];
		if (out[j].err.code != CUEQ_OK || out[j].duplicate ||
		    !same(p->queue, p->queue_len, q->queue, q->queue_len))
			continue;
		if (same(p->key, p->key_len, q->key, q->key_len)) {
			if (memcmp(p->req_digest, q->req_digest, sizeof(p->req_digest)) != 0)
				return mismatch(p, q->req_fields, &out[i]);
			out[i] = out[j];
			out[i].duplicate = true;
			return 1;
		}
		if (same(p->unique, p->unique_len, q->unique, q->unique_len)) {
			out[i].holder = out[j].id;
			return conflict(p, &out[i]);
		}
	}
	return 0;
}

static void remember(struct engine *e, const struct eng_push *p, const struct eng_pushed *o,
		     int64_t now)
{
	uint8_t k[KEYBUF], x[8 + KEYBUF];
	size_t kl = scoped(k, NULL, p->queue, p->queue_len, p->key, p->key_len);
	struct idem_rec r = {
		.hash = p->req_hash,
		.has_digest = true,
		.id = o->id,
		.cue_id = o->cue_id,
		.state = (uint8_t)o->state,
		.run_at = o->run_at,
		.created_at = o->created_at,
		.expires_at = now + (p->key_ttl_ms > 0 ? p->key_ttl_ms : e->idem_window_ms),
	};
	memcpy(r.digest, p->req_digest, sizeof(r.digest));
	r.has_fields = true;
	memcpy(r.fields, p->req_fields, sizeof(r.fields));
	msgpack_sbuffer_clear(&e->sbuf);
	record_pack_idem(&e->pk, &r);
	store_put(e->st, CF_IDEM, k, kl, e->sbuf.data, e->sbuf.size);
	store_be64(x, (uint64_t)r.expires_at);
	memcpy(x + 8, k, kl);
	store_put(e->st, CF_IDEMEXP, x, 8 + kl, "", 0);
}

static void take_unique(struct engine *e, const struct eng_push *p, struct job *j)
{
	uint8_t k[KEYBUF + 1], r[9], id[8];
	size_t kl = scoped(k, "k", p->queue, p->queue_len, p->unique, p->unique_len);
	store_be64(id, j->id);
	r[0] = 'r';
	memcpy(r + 1, id, 8);
	store_put(e->st, CF_UNIQUE, k, kl, id, 8);
	store_put(e->st, CF_UNIQUE, r, 9, k + 1, kl - 1);
	j->flags |= REC_F_UNIQUE;
}

int emb_unique_of(struct engine *e, uint64_t id, char *buf, size_t size, size_t *len)
{
	uint8_t r[9];
	char *v;
	size_t vl = 0;
	int rc;
	*len = 0;
	r[0] = 'r';
	store_be64(r + 1, id);
	if ((rc = store_get(e->st, CF_UNIQUE, r, 9, &v, &vl)) <= 0)
		return rc;
	if (vl <= size) {
		memcpy(buf, v, vl);
		*len = vl;
	}
	store_free(v);
	return 0;
}

int emb_unique_load(struct engine *e, const struct job *j)
{
	e->uk_id = 0;
	if (!(j->flags & REC_F_UNIQUE))
		return 0;
	if (emb_unique_of(e, j->id, e->uk, sizeof(e->uk), &e->uk_len) != 0)
		return -1;
	e->uk_id = j->id;
	return 0;
}

int emb_unique_check(struct engine *e, uint64_t id, uint8_t flags, char *key, size_t size,
		      size_t *kl, uint64_t *holder)
{
	uint8_t k[KEYBUF + 1];
	char *v;
	size_t vl;
	*kl = 0;
	*holder = 0;
	if (!(flags & REC_F_UNIQUE))
		return 0;
	if (emb_unique_of(e, id, (char *)k + 1, sizeof(k) - 1, kl) != 0)
		return -1;
	if (*kl == 0 || *kl > size)
		return *kl = 0, 0; /* not stored: it runs without it */
	memcpy(key, k + 1, *kl);
	k[0] = 'k';
	int rc = store_get(e->st, CF_UNIQUE, k, *kl + 1, &v, &vl);
	if (rc <= 0)
		return rc;
	*holder = vl == 8 ? store_get_be64((const uint8_t *)v) : 0;
	store_free(v);
	return *holder != id;
}

void emb_unique_take(struct engine *e, struct job *j, const char *key, size_t kl)
{
	uint8_t k[KEYBUF + 1], id[8];
	j->flags &= (uint8_t)~REC_F_UNIQUE;
	if (kl == 0 || kl > KEYBUF)
		return;
	k[0] = 'k';
	memcpy(k + 1, key, kl);
	store_be64(id, j->id);
	store_put(e->st, CF_UNIQUE, k, kl + 1, id, 8);
	j->flags |= REC_F_UNIQUE;
}

void emb_unique_release(struct engine *e, const struct job *j)
{
	uint8_t r[9], k[KEYBUF + 1];
	size_t kl = 0;
	if (!(j->flags & REC_F_UNIQUE))
		return;
	if (e->uk_id == j->id) {
		kl = e->uk_len;
		memcpy(k + 1, e->uk, kl);
	} else {
		log_error("execution %016llx ends without its unique key read first; reading it now",
			  (unsigned long long)j->id);
		emb_unique_of(e, j->id, (char *)k + 1, sizeof(k) - 1, &kl);
	}
	e->uk_id = 0;
	/* 'r' id stays while the execution is retained (get shows the key,
	 * an operator's retry takes it again); emb_forget deletes it */
	(void)r;
	if (kl == 0) {
		log_warn("execution %016llx held a unique key that is not stored",
			 (unsigned long long)j->id);
		return;
	}
	k[0] = 'k';
	store_del(e->st, CF_UNIQUE, k, kl + 1);
}

int emb_push(struct engine *e, const struct eng_push *jobs, size_t n, struct eng_pushed *out,
	     proto_error *err)
{
	int64_t now = emb_now(e);
	uint8_t k[8];
	bool keys = false;

	(void)err; /* refusals are per job (out[i].err) */
	for (size_t i = 0; i < n; i++)
		keys |= jobs[i].key != NULL || jobs[i].unique != NULL;
	for (size_t i = 0; i < n; i++) {
		const struct eng_push *p = &jobs[i];
		struct eng_pushed *o = &out[i];
		struct exec_rec rec;

		*o = (struct eng_pushed){0};
		if (keys && (earlier(jobs, out, i) || (p->key && by_key(e, p, now, o)) ||
			     (p->unique && held(e, p, o))))
			continue;
		struct queue *q = emb_queue_admit(e, p->queue, p->queue_len, &o->err);
		if (q == NULL)
			continue;
		if (p->every_ms > 0 || p->cron != NULL) {
			emb_cue_new(e, p, now, o);
			if (p->key)
				remember(e, p, o, now);
			e->durable = true;
			continue;
		}
		struct job *j = emb_oom(jobs_alloc(e->jobs));
		j->id = emb_next_id(e);
		j->cue_id = j->id;
		j->queue = q->idx;
		j->group = emb_group(e, q, p->group, p->group_len);
		j->group->n_jobs++;
		j->priority = (int16_t)p->priority;
		j->max_attempts = (uint16_t)p->max_attempts;
		j->max_expiries = (uint16_t)p->max_expiries;
		emb_job_backoff(j, p->backoff.base_ms, p->backoff.max_ms, p->backoff.factor_milli);
		if (p->backoff.no_jitter)
			j->flags |= REC_F_NO_JITTER;
		j->lease_ms = p->lease_ms;
		j->created_at = now;
		j->run_at = p->run_at > now ? p->run_at : now;
		j->state = ST_NONE;
		emb_oom(jobs_insert(e->jobs, j) == 0 ? j : NULL);
		emb_set_state(e, j, j->run_at > now ? CUEQ_SCHEDULED : CUEQ_READY);
		if (p->unique)
			take_unique(e, p, j);

		emb_key(k, j->id);
		emb_rec_from_job(e, j, &rec);
		emb_put_rec(e, &rec);
		store_put(e->st, CF_PAYLOAD, k, 8, p->payload, p->payload_len);
		store_put(e->st, CF_ACTIVE, k, 8, "", 0);
		o->id = j->id;
		o->cue_id = j->id;
		o->state = j->state;
		o->run_at = j->run_at;
		o->created_at = now;
		if (p->key)
			remember(e, p, o, now);
		e->durable = true;
	}
	return CUEQ_OK;
}
