/*
 * record.c - encoding of stored execution records and history events.
 *
 * Records are rewritten on each state change, so they stay small: the
 * payload lives in its own column family and is written once.
 */
#include "record.h"

#include "proto.h"

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

int record_unpack(const char *buf, size_t len, msgpack_unpacked *up, struct exec_rec *r)
{
	const msgpack_object *m;
	uint64_t v, x;
	int64_t pr;
	int bad = 0;

	*r = (struct exec_rec){0};
	if (proto_decode(buf, len, up, NULL) != CUEQ_OK)
		return -1;
	m = &up->data;
	if (u(m, "v", UINT32_MAX, &v) != 0 || v == 0 || v > RECORD_VERSION)
		return -1;
	bad |= u(m, "id", UINT64_MAX, &r->id);
	bad |= u(m, "cue", UINT64_MAX, &r->cue_id);
	bad |= proto_str(m, "q", true, PROTO_MAX_QUEUE, &r->queue, &r->queue_len, NULL);
	bad |= i64(m, "pr", &pr);
	r->priority = (int32_t)pr;
	bad |= u(m, "ma", UINT32_MAX, &x), r->max_attempts = (uint32_t)x;
	bad |= u(m, "lm", UINT32_MAX, &x), r->lease_ms = (uint32_t)x;
	bad |= u(m, "at", UINT32_MAX, &x), r->attempt = (uint32_t)x;
	bad |= u(m, "ex", UINT32_MAX, &x), r->expiries = (uint32_t)x;
	bad |= u(m, "fa", UINT32_MAX, &x), r->failures = (uint32_t)x;
	bad |= u(m, "hs", UINT32_MAX, &x), r->hist_seq = (uint32_t)x;
	bad |= u(m, "st", 5, &x), r->state = (uint8_t)x;
	bad |= u(m, "fl", 255, &x), r->flags = (uint8_t)x;
	bad |= i64(m, "ca", &r->created_at);
	bad |= i64(m, "ra", &r->run_at);
	bad |= i64(m, "dl", &r->deadline);
	bad |= i64(m, "fi", &r->finished_at);
	bad |= u(m, "tk", UINT64_MAX, &r->token);
	bad |= proto_str(m, "res", false, SIZE_MAX, &r->result, &r->result_len, NULL);
	bad |= proto_str(m, "err", false, SIZE_MAX, &r->error, &r->error_len, NULL);
	bad |= u(m, "ok", 2, &x), r->out_kind = (uint8_t)x;
	bad |= u(m, "os", 5, &x), r->out_state = (uint8_t)x;
	bad |= u(m, "ot", UINT64_MAX, &r->out_token);
	bad |= u(m, "oh", UINT64_MAX, &r->out_hash);
	bad |= i64(m, "or", &r->out_run_at);
	return bad ? -1 : 0;
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
	bad |= proto_str(m, "d", false, SIZE_MAX, &h->detail, &h->detail_len, NULL);
	return bad ? -1 : 0;
}

void record_pack_idem(msgpack_packer *pk, const struct idem_rec *r)
{
	msgpack_pack_map(pk, 8);
	proto_kv_uint(pk, "v", RECORD_VERSION);
	proto_kv_uint(pk, "h", r->hash);
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
