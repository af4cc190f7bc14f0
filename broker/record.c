/*
 * record.c - encoding of stored execution records and history events.
 *
 * Records are rewritten on each state change, so they stay small: the
 * payload lives in its own column family and is written once.
 */
#include "record.h"

#include "proto.h"

#include <stdbool.h>
#include <string.h>

uint64_t record_hash(uint64_t h, const void *p, size_t n)
{
	return proto_hash(h, p, n);
}

void record_pack(msgpack_packer *pk, const struct exec_rec *r)
{
	size_t n = 14;
	n += r->deadline != 0;
	n += r->finished_at != 0;
	n += r->token != 0;
	n += r->result != NULL;
	n += r->error != NULL;
	n += r->out_kind != OUT_NONE ? 5 : 0;
	n += r->flags != 0;
	n += r->max_expiries != 0;
	n += r->backoff_ms != 0 || r->backoff_max_ms != 0 || r->backoff_factor != 0 ? 3 : 0;
	n += r->why != NULL;
	n += r->group_len > 0;

	msgpack_pack_map(pk, n);
	proto_kv_uint(pk, "v", RECORD_VERSION);
	proto_kv_uint(pk, "id", r->id);
	proto_kv_uint(pk, "cue", r->cue_id);
	proto_kv_str(pk, "q", r->queue, r->queue_len);
	proto_kv_int(pk, "pr", r->priority);
	proto_kv_uint(pk, "ma", r->max_attempts);
	proto_kv_uint(pk, "lm", r->lease_ms);
	proto_kv_uint(pk, "at", r->attempt);
	proto_kv_uint(pk, "ex", r->expiries);
	proto_kv_uint(pk, "fa", r->failures);
	proto_kv_uint(pk, "hs", r->hist_seq);
	proto_kv_uint(pk, "st", r->state);
	proto_kv_int(pk, "ca", r->created_at);
	proto_kv_int(pk, "ra", r->run_at);
	if (r->deadline != 0)
		proto_kv_int(pk, "dl", r->deadline);
	if (r->finished_at != 0)
		proto_kv_int(pk, "fi", r->finished_at);
	if (r->token != 0)
		proto_kv_uint(pk, "tk", r->token);
	if (r->result != NULL)
		proto_kv_str(pk, "res", r->result, r->result_len);
	if (r->error != NULL)
		proto_kv_str(pk, "err", r->error, r->error_len);
	if (r->flags != 0)
		proto_kv_uint(pk, "fl", r->flags);
	if (r->out_kind != OUT_NONE) {
		proto_kv_uint(pk, "ok", r->out_kind);
		proto_kv_uint(pk, "os", r->out_state);
		proto_kv_uint(pk, "ot", r->out_token);
		proto_kv_uint(pk, "oh", r->out_hash);
		proto_kv_int(pk, "or", r->out_run_at);
	}
	if (r->max_expiries != 0)
		proto_kv_uint(pk, "me", r->max_expiries);
	if (r->backoff_ms != 0 || r->backoff_max_ms != 0 || r->backoff_factor != 0) {
		proto_kv_uint(pk, "bb", r->backoff_ms);
		proto_kv_uint(pk, "bx", r->backoff_max_ms);
		proto_kv_uint(pk, "bf", r->backoff_factor);
	}
	if (r->why != NULL)
		proto_kv_str(pk, "why", r->why, r->why_len);
	if (r->group_len > 0)
		proto_kv_str(pk, "g", r->group, r->group_len);
}

/* A stored string, read as written: records of older brokers may hold text
 * that is not UTF-8 (what is sent is made UTF-8 by the packer). */
static int stored_str(const msgpack_object *m, const char *k, bool required, size_t max,
		      const char **s, size_t *n)
{
	const msgpack_object *v = proto_get(m, k);
	if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
		return required ? -1 : 0;
	if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > max)
		return -1;
	*s = v->via.str.ptr, *n = v->via.str.size;
	return 0;
}

/* Reads an optional unsigned field that must fit in max. */
static int u(const msgpack_object *m, const char *k, uint64_t max, uint64_t *out)
{
	*out = 0;
	return proto_uint(m, k, false, 0, max, out, NULL) == CUEQ_OK ? 0 : -1;
}

static int i64(const msgpack_object *m, const char *k, int64_t *out)
{
	*out = 0;
	return proto_int(m, k, false, INT64_MIN, INT64_MAX, out, NULL) == CUEQ_OK ? 0 : -1;
}

/* The fields of an execution record, in the order record_pack writes
 * them: record_unpack reads the map in one pass (start-up reads a million
 * records), looking each key up here, expected position first. */
enum { F_V, F_ID, F_CUE, F_Q, F_PR, F_MA, F_LM, F_AT, F_EX, F_FA, F_HS, F_ST, F_CA, F_RA,
       F_DL, F_FI, F_TK, F_RES, F_ERR, F_FL, F_OK, F_OS, F_OT, F_OH, F_OR, F_ME, F_BB, F_BX,
       F_BF, F_WHY, F_G, F_COUNT };
enum { K_U, K_I, K_S };
static const struct {
	char name[4];
	uint8_t len, kind;
	uint64_t max; /* K_U: the largest value; K_S: the longest string */
} FIELDS[F_COUNT] = {
	[F_V] = {"v", 1, K_U, UINT32_MAX},	 [F_ID] = {"id", 2, K_U, UINT64_MAX},
	[F_CUE] = {"cue", 3, K_U, UINT64_MAX},	 [F_Q] = {"q", 1, K_S, PROTO_MAX_QUEUE},
	[F_PR] = {"pr", 2, K_I, 0},		 [F_MA] = {"ma", 2, K_U, UINT32_MAX},
	[F_LM] = {"lm", 2, K_U, UINT32_MAX},	 [F_AT] = {"at", 2, K_U, UINT32_MAX},
	[F_EX] = {"ex", 2, K_U, UINT32_MAX},	 [F_FA] = {"fa", 2, K_U, UINT32_MAX},
	[F_HS] = {"hs", 2, K_U, UINT32_MAX},	 [F_ST] = {"st", 2, K_U, 5},
	[F_CA] = {"ca", 2, K_I, 0},		 [F_RA] = {"ra", 2, K_I, 0},
	[F_DL] = {"dl", 2, K_I, 0},		 [F_FI] = {"fi", 2, K_I, 0},
	[F_TK] = {"tk", 2, K_U, UINT64_MAX},	 [F_RES] = {"res", 3, K_S, SIZE_MAX},
	[F_ERR] = {"err", 3, K_S, SIZE_MAX},	 [F_FL] = {"fl", 2, K_U, 255},
	[F_OK] = {"ok", 2, K_U, 2},		 [F_OS] = {"os", 2, K_U, 5},
	[F_OT] = {"ot", 2, K_U, UINT64_MAX},	 [F_OH] = {"oh", 2, K_U, UINT64_MAX},
	[F_OR] = {"or", 2, K_I, 0},		 [F_ME] = {"me", 2, K_U, UINT16_MAX},
	[F_BB] = {"bb", 2, K_U, UINT32_MAX},	 [F_BX] = {"bx", 2, K_U, UINT32_MAX},
	[F_BF] = {"bf", 2, K_U, UINT32_MAX},	 [F_WHY] = {"why", 3, K_S, SIZE_MAX},
	[F_G] = {"g", 1, K_S, PROTO_MAX_GROUP},
};

static int field_of(const msgpack_object *k, int guess)
{
	if (k->type != MSGPACK_OBJECT_STR)
		return -1;
	for (int n = 0; n < F_COUNT; n++) {
		int f = (guess + n) % F_COUNT;
		if (k->via.str.size == FIELDS[f].len &&
		    memcmp(k->via.str.ptr, FIELDS[f].name, FIELDS[f].len) == 0)
			return f;
	}
	return -1;
}

static int from_object(const msgpack_object *o, struct exec_rec *r);

int record_unpack(const char *buf, size_t len, msgpack_unpacked *up, struct exec_rec *r)
{
	*r = (struct exec_rec){0};
	if (proto_decode(buf, len, up, NULL) != CUEQ_OK)
		return -1;
	return from_object(&up->data, r);
}

int record_unpack_zone(const char *buf, size_t len, msgpack_zone *z, struct exec_rec *r)
{
	msgpack_object o;
	size_t off = 0;
	*r = (struct exec_rec){0};
	msgpack_zone_clear(z);
	if (msgpack_unpack(buf, len, &off, z, &o) != MSGPACK_UNPACK_SUCCESS || off != len ||
	    o.type != MSGPACK_OBJECT_MAP)
		return -1;
	return from_object(&o, r);
}

static int from_object(const msgpack_object *o, struct exec_rec *r)
{
	union {
		uint64_t u;
		int64_t i;
		struct {
			const char *p;
			size_t n;
		} s;
	} val[F_COUNT] = {0};
	bool seen[F_COUNT] = {0};
	const msgpack_object_map *m = &o->via.map;
	for (uint32_t e = 0, guess = 0; e < m->size; e++) {
		const msgpack_object *v = &m->ptr[e].val;
		int f = field_of(&m->ptr[e].key, (int)guess);
		if (f < 0 || seen[f] || v->type == MSGPACK_OBJECT_NIL)
			continue; /* unknown (a newer field), or a repeat: the first counts */
		guess = (uint32_t)f + 1;
		seen[f] = true;
		switch (FIELDS[f].kind) {
		case K_U:
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > FIELDS[f].max)
				return -1;
			val[f].u = v->via.u64;
			break;
		case K_I:
			if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
				val[f].i = (int64_t)v->via.u64;
			else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
				val[f].i = v->via.i64;
			else
				return -1;
			break;
		default:
			if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > FIELDS[f].max)
				return -1;
			val[f].s.p = v->via.str.ptr, val[f].s.n = v->via.str.size;
		}
	}
	if (!seen[F_V] || val[F_V].u == 0 || val[F_V].u > RECORD_VERSION || !seen[F_Q] ||
	    val[F_Q].s.n == 0 ||
	    val[F_PR].i < INT32_MIN || val[F_PR].i > INT32_MAX)
		return -1;
	r->id = val[F_ID].u;
	r->cue_id = val[F_CUE].u;
	r->queue = val[F_Q].s.p, r->queue_len = val[F_Q].s.n;
	r->group = val[F_G].s.p, r->group_len = val[F_G].s.n;
	r->priority = (int32_t)val[F_PR].i;
	r->max_attempts = (uint32_t)val[F_MA].u;
	r->lease_ms = (uint32_t)val[F_LM].u;
	r->attempt = (uint32_t)val[F_AT].u;
	r->expiries = (uint32_t)val[F_EX].u;
	r->failures = (uint32_t)val[F_FA].u;
	r->hist_seq = (uint32_t)val[F_HS].u;
	r->state = (uint8_t)val[F_ST].u;
	r->flags = (uint8_t)val[F_FL].u;
	r->created_at = val[F_CA].i;
	r->run_at = val[F_RA].i;
	r->deadline = val[F_DL].i;
	r->finished_at = val[F_FI].i;
	r->token = val[F_TK].u;
	if (seen[F_RES])
		r->result = val[F_RES].s.p, r->result_len = val[F_RES].s.n;
	if (seen[F_ERR])
		r->error = val[F_ERR].s.p, r->error_len = val[F_ERR].s.n;
	r->out_kind = (uint8_t)val[F_OK].u;
	r->out_state = (uint8_t)val[F_OS].u;
	r->out_token = val[F_OT].u;
	r->out_hash = val[F_OH].u;
	r->out_run_at = val[F_OR].i;
	r->max_expiries = (uint32_t)val[F_ME].u;
	r->backoff_ms = (uint32_t)val[F_BB].u;
	r->backoff_max_ms = (uint32_t)val[F_BX].u;
	r->backoff_factor = (uint32_t)val[F_BF].u;
	if (seen[F_WHY])
		r->why = val[F_WHY].s.p, r->why_len = val[F_WHY].s.n;
	return 0;
}

void record_pack_event(msgpack_packer *pk, const struct hist_rec *h)
{
	msgpack_pack_map(pk, 3 + (h->attempt != 0) + (h->token != 0) + (h->detail != NULL));
	proto_kv_uint(pk, "v", RECORD_VERSION);
	proto_kv_int(pk, "at", h->at);
	proto_kv_uint(pk, "ev", h->event);
	if (h->attempt != 0)
		proto_kv_uint(pk, "att", h->attempt);
	if (h->token != 0)
		proto_kv_uint(pk, "tk", h->token);
	if (h->detail != NULL)
		proto_kv_str(pk, "d", h->detail, h->detail_len);
}

int record_unpack_event(const char *buf, size_t len, msgpack_unpacked *up, struct hist_rec *h)
{
	const msgpack_object *m;
	uint64_t v, x;
	int bad = 0;

	*h = (struct hist_rec){0};
	if (proto_decode(buf, len, up, NULL) != CUEQ_OK)
		return -1;
	m = &up->data;
	if (u(m, "v", UINT32_MAX, &v) != 0 || v == 0 || v > RECORD_VERSION)
		return -1;
	bad |= i64(m, "at", &h->at);
	bad |= u(m, "ev", 255, &x), h->event = (uint8_t)x;
	bad |= u(m, "att", UINT32_MAX, &x), h->attempt = (uint32_t)x;
	bad |= u(m, "tk", UINT64_MAX, &h->token);
	bad |= stored_str(m, "d", false, SIZE_MAX, &h->detail, &h->detail_len);
	return bad ? -1 : 0;
}

void record_pack_idem(msgpack_packer *pk, const struct idem_rec *r)
{
	msgpack_pack_map(pk, 8 + r->has_digest + r->has_fields);
	proto_kv_uint(pk, "v", RECORD_VERSION);
	proto_kv_uint(pk, "h", r->hash);
	if (r->has_digest)
		proto_kv_bin(pk, "d", r->digest, sizeof(r->digest));
	if (r->has_fields) {
		uint8_t b[sizeof(r->fields)];
		for (size_t i = 0; i < 8; i++)
			for (int k = 0; k < 4; k++)
				b[i * 4 + (size_t)k] = (uint8_t)(r->fields[i] >> (8 * k));
		proto_kv_bin(pk, "f", b, sizeof(b));
	}
	proto_kv_uint(pk, "id", r->id);
	proto_kv_uint(pk, "cue", r->cue_id);
	proto_kv_uint(pk, "st", r->state);
	proto_kv_int(pk, "ra", r->run_at);
	proto_kv_int(pk, "ca", r->created_at);
	proto_kv_int(pk, "ex", r->expires_at);
}

int record_unpack_idem(const char *buf, size_t len, struct idem_rec *r)
{
	msgpack_unpacked up;
	const msgpack_object *m;
	uint64_t v, x;
	int bad = -1;

	*r = (struct idem_rec){0};
	if (proto_decode(buf, len, &up, NULL) == CUEQ_OK) {
		m = &up.data;
		bad = u(m, "v", UINT32_MAX, &v) != 0 || v == 0 || v > RECORD_VERSION;
		bad |= u(m, "h", UINT64_MAX, &r->hash);
		bad |= u(m, "id", UINT64_MAX, &r->id);
		bad |= u(m, "cue", UINT64_MAX, &r->cue_id);
		bad |= u(m, "st", 5, &x), r->state = (uint8_t)x;
		bad |= i64(m, "ra", &r->run_at);
		bad |= i64(m, "ca", &r->created_at);
		bad |= i64(m, "ex", &r->expires_at);
		const msgpack_object *f = proto_get(m, "f");
		if (f != NULL && f->type == MSGPACK_OBJECT_BIN && f->via.bin.size == sizeof(r->fields)) {
			const uint8_t *b = (const uint8_t *)f->via.bin.ptr;
			for (size_t i = 0; i < 8; i++)
				r->fields[i] = (uint32_t)b[i * 4] | (uint32_t)b[i * 4 + 1] << 8 |
					       (uint32_t)b[i * 4 + 2] << 16 | (uint32_t)b[i * 4 + 3] << 24;
			r->has_fields = true;
		}
		const msgpack_object *d = proto_get(m, "d");
		if (d != NULL) {
			bad |= d->type != MSGPACK_OBJECT_BIN || d->via.bin.size != sizeof(r->digest);
			if (!bad) {
				memcpy(r->digest, d->via.bin.ptr, sizeof(r->digest));
				r->has_digest = true;
			}
		}
	}
	msgpack_unpacked_destroy(&up);
	return bad ? -1 : 0;
}

void record_pack_step(msgpack_packer *pk, const struct step_rec *s)
{
	msgpack_pack_map(pk, 3);
	proto_kv_uint(pk, "v", RECORD_VERSION);
	proto_kv_int(pk, "at", s->at);
	proto_kv_bin(pk, "val", s->value, s->value_len);
}

int record_unpack_step(const char *buf, size_t len, msgpack_unpacked *up, struct step_rec *s)
{
	uint64_t v;
	int bad;

	*s = (struct step_rec){0};
	if (proto_decode(buf, len, up, NULL) != CUEQ_OK)
		return -1;
	bad = u(&up->data, "v", UINT32_MAX, &v) != 0 || v == 0 || v > RECORD_VERSION;
	bad |= i64(&up->data, "at", &s->at);
	bad |= proto_bytes(&up->data, "val", true, SIZE_MAX, &s->value, &s->value_len, NULL);
	return bad ? -1 : 0;
}

void record_pack_cue(msgpack_packer *pk, const struct cue_rec *c)
{
	msgpack_pack_map(pk, 23 + (c->cron != NULL) + (c->tz != NULL));
	proto_kv_uint(pk, "v", RECORD_VERSION);
	proto_kv_uint(pk, "id", c->id);
	proto_kv_str(pk, "q", c->queue, c->queue_len);
	proto_kv_bin(pk, "pl", c->payload, c->payload_len);
	proto_kv_int(pk, "pr", c->priority);
	proto_kv_uint(pk, "ma", c->max_attempts);
	proto_kv_uint(pk, "me", c->max_expiries);
	proto_kv_uint(pk, "lm", c->lease_ms);
	proto_kv_uint(pk, "bb", c->backoff_ms);
	proto_kv_uint(pk, "bx", c->backoff_max_ms);
	proto_kv_uint(pk, "bf", c->backoff_factor);
	proto_kv_uint(pk, "fl", c->flags);
	proto_kv_int(pk, "ev", c->every_ms);
	if (c->cron != NULL)
		proto_kv_str(pk, "cr", c->cron, c->cron_len);
	if (c->tz != NULL)
		proto_kv_str(pk, "tz", c->tz, c->tz_len);
	proto_kv_uint(pk, "cu", c->catch_up);
	proto_kv_uint(pk, "ov", c->overlap);
	proto_kv_uint(pk, "cx", c->cancelled);
	proto_kv_int(pk, "ca", c->created_at);
	proto_kv_int(pk, "an", c->anchor);
	proto_kv_int(pk, "nf", c->next_fire);
	proto_kv_uint(pk, "fi", c->fires);
	proto_kv_uint(pk, "sk", c->skipped);
	proto_key(pk, "li");
	msgpack_pack_array(pk, c->n_last);
	for (uint32_t i = 0; i < c->n_last; i++)
		msgpack_pack_uint64(pk, c->last_id[i]);
	proto_key(pk, "la");
	msgpack_pack_array(pk, c->n_last);
	for (uint32_t i = 0; i < c->n_last; i++)
		msgpack_pack_int64(pk, c->last_at[i]);
}

int record_unpack_cue(const char *buf, size_t len, msgpack_unpacked *up, struct cue_rec *c)
{
	const msgpack_object *m;
	const msgpack_object_array *li = NULL, *la = NULL;
	uint64_t v, x;
	int bad;

	*c = (struct cue_rec){0};
	if (proto_decode(buf, len, up, NULL) != CUEQ_OK)
		return -1;
	m = &up->data;
	bad = u(m, "v", UINT32_MAX, &v) != 0 || v == 0 || v > RECORD_VERSION;
	bad |= u(m, "id", UINT64_MAX, &c->id);
	bad |= stored_str(m, "q", true, PROTO_MAX_QUEUE, &c->queue, &c->queue_len);
	bad |= proto_bytes(m, "pl", true, SIZE_MAX, &c->payload, &c->payload_len, NULL);
	int64_t pr = 0;
	bad |= proto_int(m, "pr", false, INT32_MIN, INT32_MAX, &pr, NULL);
	c->priority = (int32_t)pr;
	bad |= u(m, "ma", UINT32_MAX, &x), c->max_attempts = (uint32_t)x;
	bad |= u(m, "me", UINT32_MAX, &x), c->max_expiries = (uint32_t)x;
	bad |= u(m, "lm", UINT32_MAX, &x), c->lease_ms = (uint32_t)x;
	bad |= u(m, "bb", UINT32_MAX, &x), c->backoff_ms = (uint32_t)x;
	bad |= u(m, "bx", UINT32_MAX, &x), c->backoff_max_ms = (uint32_t)x;
	bad |= u(m, "bf", UINT32_MAX, &x), c->backoff_factor = (uint32_t)x;
	bad |= u(m, "fl", 255, &x), c->flags = (uint8_t)x;
	bad |= i64(m, "ev", &c->every_ms);
	bad |= stored_str(m, "cr", false, SIZE_MAX, &c->cron, &c->cron_len);
	bad |= stored_str(m, "tz", false, SIZE_MAX, &c->tz, &c->tz_len);
	bad |= u(m, "cu", 2, &x), c->catch_up = (uint8_t)x;
	bad |= u(m, "ov", 1, &x), c->overlap = (uint8_t)x;
	bad |= u(m, "cx", 1, &x), c->cancelled = (uint8_t)x;
	bad |= i64(m, "ca", &c->created_at);
	bad |= i64(m, "an", &c->anchor);
	bad |= i64(m, "nf", &c->next_fire);
	bad |= u(m, "fi", UINT64_MAX, &c->fires);
	bad |= u(m, "sk", UINT64_MAX, &c->skipped);
	bad |= proto_array(m, "li", false, 0, CUE_LAST, &li, NULL);
	bad |= proto_array(m, "la", false, 0, CUE_LAST, &la, NULL);
	if (bad || (c->every_ms <= 0 && c->cron == NULL))
		return -1;
	if (li != NULL && la != NULL && li->size == la->size) {
		for (uint32_t i = 0; i < li->size; i++) {
			const msgpack_object *a = &li->ptr[i], *b = &la->ptr[i];
			if (a->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
			    (b->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
			     b->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
				return -1;
			c->last_id[i] = a->via.u64;
			c->last_at[i] = b->via.i64;
		}
		c->n_last = li->size;
	}
	return 0;
}
