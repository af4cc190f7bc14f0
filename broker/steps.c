/*
 * steps.c - the step ledger: named values an execution's handlers record
 * under their lease, kept across redeliveries, so a retried handler can
 * skip side effects it already made.
 *
 * Steps are keyed id(8) name in their own column family, so reading them is
 * one prefix scan and deleting them (retention) one range delete.  A write
 * is fenced like an ack: only the live lease token may write.
 */
#include "embedded.h"

#include <stdlib.h>
#include <string.h>

#define STEP_KEY (8 + CUEQ_MAX_STEP_NAME)

static size_t step_key(uint8_t *k, uint64_t id, const char *name, size_t len)
{
	store_be64(k, id);
	memcpy(k + 8, name, len);
	return 8 + len;
}

/* Counts the steps of id, stopping at limit; -1 when the read failed. */
static long count_steps(struct engine *e, uint64_t id, size_t limit)
{
	uint8_t from[8], to[8];
	long n = 0;
	store_be64(from, id);
	store_be64(to, id + 1);
	struct store_iter *it = store_iter_new(e->st, CF_STEPS, from, 8, to, 8);
	if (it == NULL)
		return -1;
	for (; store_iter_valid(it) && (size_t)n < limit; store_iter_next(it))
		n++;
	if (store_iter_status(it) != 0)
		n = -1;
	store_iter_free(it);
	return n;
}

int emb_step_set(struct engine *e, uint64_t id, uint64_t token, const char *name,
		 size_t name_len, const char *value, size_t value_len, int64_t *at,
		 proto_error *err)
{
	struct job *j = jobs_find(e->jobs, id);
	uint8_t k[STEP_KEY];
	size_t kl = step_key(k, id, name, name_len), vl;
	int64_t now = emb_now(e);
	char *v, sid[PROTO_ID_LEN + 1];
	struct exec_rec rec;
	int rc;

	if (j == NULL || j->state != CUEQ_LEASED || j->token != token) {
		struct eng_outcome probe = {.id = id, .token = token, .kind = OUT_NONE};
		if (emb_settle(e) != 0) /* the record holds this turn's changes */
			return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker's storage failed; try again");
		emb_not_live(e, &probe);
		*err = probe.err;
		return err->code;
	}
	if ((rc = store_get(e->st, CF_STEPS, k, kl, &v, &vl)) < 0)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read the steps; try again");
	long have = rc == 1 ? 0 : count_steps(e, id, CUEQ_MAX_STEPS);
	if (rc == 1)
		store_free(v);
	if (have < 0)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read the steps; try again");
	if (have >= CUEQ_MAX_STEPS) {
		proto_id_fmt(id, sid);
		return proto_fail(err, CUEQ_ERR_TOO_LARGE,
				  "execution %s already has %u steps, the limit; reuse step names", sid,
				  CUEQ_MAX_STEPS);
	}
	struct step_rec s = {.at = now, .value = value, .value_len = value_len};
	msgpack_sbuffer_clear(&e->sbuf);
	record_pack_step(&e->pk, &s);
	store_put(e->st, CF_STEPS, k, kl, e->sbuf.data, e->sbuf.size);
	emb_history(e, j, EV_STEP, j->attempt, token, name, name_len, now);
	emb_rec_from_job(e, j, &rec);
	emb_put_rec(e, &rec);
	e->durable = true;
	*at = now;
	return CUEQ_OK;
}

static void add_step(struct eng_view *out, size_t *cap, const char *name, size_t nlen,
		     const struct step_rec *s)
{
	if (out->n_steps == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		out->steps = emb_oom(realloc(out->steps, *cap * sizeof(*out->steps)));
	}
	char *n = emb_oom(malloc(nlen + 1)), *v = emb_oom(malloc(s->value_len + 1));
	memcpy(n, name, nlen);
	n[nlen] = '\0';
	memcpy(v, s->value, s->value_len);
	v[s->value_len] = '\0';
	out->steps[out->n_steps++] = (struct eng_step){
		.name = n, .name_len = nlen, .value = v, .value_len = s->value_len, .at = s->at};
}

int emb_steps(struct engine *e, uint64_t id, const char *name, size_t name_len,
	      struct eng_view *out, proto_error *err)
{
	uint8_t k[STEP_KEY], to[8];
	size_t kl, cap = 0;
	char sid[PROTO_ID_LEN + 1];
	struct exec_rec rec;
	msgpack_unpacked up;
	char *buf;
	int rc = emb_settle(e); /* the record holds this turn's changes */
	if (rc == 0)
		rc = emb_read_rec(e, id, &rec, &up, &buf);
	else
		msgpack_unpacked_init(&up), buf = NULL;

	emb_rec_release(&up, buf);
	proto_id_fmt(id, sid);
	if (rc < 0)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read execution %s", sid);
	if (rc == 0)
		return proto_fail(err, CUEQ_ERR_NOT_FOUND,
				  "no execution %s (never pushed, or deleted after the retention window)", sid);
	if (name != NULL) {
		struct step_rec s;
		char *v;
		size_t vl;
		kl = step_key(k, id, name, name_len);
		rc = store_get(e->st, CF_STEPS, k, kl, &v, &vl);
		if (rc < 0)
			return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read the steps");
		if (rc == 0) {
			proto_fail(err, CUEQ_ERR_NOT_FOUND, "execution %s has no step '%.*s'", sid,
				   (int)name_len, name);
			err->missing = "step";
			return CUEQ_ERR_NOT_FOUND;
		}
		if (record_unpack_step(v, vl, &up, &s) == 0)
			add_step(out, &cap, name, name_len, &s);
		msgpack_unpacked_destroy(&up);
		store_free(v);
		if (out->n_steps == 0)
			return proto_fail(err, CUEQ_ERR_INTERNAL, "step '%.*s' of %s is corrupt",
					  (int)name_len, name, sid);
		return CUEQ_OK;
	}
	store_be64(k, id);
	store_be64(to, id + 1);
	struct store_iter *it = store_iter_new(e->st, CF_STEPS, k, 8, to, 8);
	for (; it && store_iter_valid(it); store_iter_next(it)) {
		size_t skl, vl;
		const char *sk = store_iter_key(it, &skl), *v = store_iter_value(it, &vl);
		struct step_rec s;
		if (skl > 8 && record_unpack_step(v, vl, &up, &s) == 0)
			add_step(out, &cap, sk + 8, skl - 8, &s);
		msgpack_unpacked_destroy(&up);
	}
	bool failed = it == NULL || store_iter_status(it) != 0;
	store_iter_free(it);
	if (failed)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read the steps of %s; try again", sid);
	return CUEQ_OK;
}
