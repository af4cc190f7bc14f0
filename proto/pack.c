/*
 * pack.c - msgpack writing helpers that pack straight into an nng_msg
 * (no intermediate buffer), and the common frame headers.
 */
#include "proto.h"

#include <string.h>

static int append(void *data, const char *buf, size_t len)
{
	proto_writer *w = data;
	size_t need = nng_msg_len(w->msg) + len, cap = nng_msg_capacity(w->msg);
	if (w->failed)
		return -1;
	/* grow geometrically: nng 1.5 grows a message only to the size asked,
	 * which makes packing many small values quadratic */
	if (need > cap && nng_msg_reserve(w->msg, need > 2 * cap ? need + 256 : 2 * cap) != 0) {
		w->failed = 1;
		return -1;
	}
	if (nng_msg_append(w->msg, buf, len) != 0) {
		w->failed = 1;
		return -1;
	}
	return 0;
}

void proto_writer_init(proto_writer *w, nng_msg *msg)
{
	w->msg = msg;
	w->failed = 0;
	msgpack_packer_init(&w->pk, w, append);
}

void proto_key(msgpack_packer *pk, const char *key)
{
	size_t n = strlen(key);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, key, n);
}

void proto_kv_str(msgpack_packer *pk, const char *key, const char *s, size_t n)
{
	proto_key(pk, key);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void proto_kv_cstr(msgpack_packer *pk, const char *key, const char *s)
{
	proto_kv_str(pk, key, s, strlen(s));
}

void proto_kv_bin(msgpack_packer *pk, const char *key, const void *b, size_t n)
{
	proto_key(pk, key);
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, b, n);
}

void proto_kv_uint(msgpack_packer *pk, const char *key, uint64_t v)
{
	proto_key(pk, key);
	msgpack_pack_uint64(pk, v);
}

void proto_kv_int(msgpack_packer *pk, const char *key, int64_t v)
{
	proto_key(pk, key);
	msgpack_pack_int64(pk, v);
}

void proto_kv_bool(msgpack_packer *pk, const char *key, bool v)
{
	proto_key(pk, key);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void proto_kv_id(msgpack_packer *pk, const char *key, uint64_t id)
{
	char s[PROTO_ID_LEN + 1];
	proto_id_fmt(id, s);
	proto_kv_str(pk, key, s, PROTO_ID_LEN);
}

static void pack_rid(msgpack_packer *pk, const void *rid, size_t rid_len, bool rid_bin)
{
	proto_key(pk, "rid");
	if (rid_bin) {
		msgpack_pack_bin(pk, rid_len);
		msgpack_pack_bin_body(pk, rid, rid_len);
	} else {
		msgpack_pack_str(pk, rid_len);
		msgpack_pack_str_body(pk, rid, rid_len);
	}
}

void proto_reply_begin(msgpack_packer *pk, const void *rid, size_t rid_len, bool rid_bin,
		       size_t n_fields)
{
	msgpack_pack_map(pk, 2 + (rid ? 1 : 0) + n_fields);
	proto_kv_uint(pk, "v", PROTO_VERSION);
	if (rid)
		pack_rid(pk, rid, rid_len, rid_bin);
	proto_kv_bool(pk, "ok", true);
}

static void reply_error(msgpack_packer *pk, const void *rid, size_t rid_len, bool rid_bin,
			int code, const char *msg, const char *missing)
{
	const char *name = proto_err_name(code);
	msgpack_pack_map(pk, 4 + (rid ? 1 : 0) + (missing ? 1 : 0));
	proto_kv_uint(pk, "v", PROTO_VERSION);
	if (rid)
		pack_rid(pk, rid, rid_len, rid_bin);
	proto_kv_bool(pk, "ok", false);
	proto_kv_cstr(pk, "err", name ? name : "INTERNAL");
	proto_kv_text(pk, "msg", msg);
	if (missing)
		proto_kv_cstr(pk, "missing", missing);
}

void proto_reply_error(msgpack_packer *pk, const void *rid, size_t rid_len, bool rid_bin,
		       int code, const char *msg)
{
	reply_error(pk, rid, rid_len, rid_bin, code, msg, NULL);
}

void proto_reply_fail(msgpack_packer *pk, const void *rid, size_t rid_len, bool rid_bin,
		      const proto_error *e)
{
	reply_error(pk, rid, rid_len, rid_bin, e->code, e->msg,
		    e->code == CUEQ_ERR_NOT_FOUND ? e->missing : NULL);
}

void proto_kv_text_n(msgpack_packer *pk, const char *key, const char *s, size_t n)
{
	size_t ok = proto_utf8_prefix(s, n);
	proto_key(pk, key);
	if (ok == n) {
		msgpack_pack_str(pk, n);
		msgpack_pack_str_body(pk, s, n);
		return;
	}
	/* the length first: valid runs as they are, one '?' per bad byte */
	size_t len = 0;
	for (size_t i = 0; i < n;) {
		size_t good = proto_utf8_prefix(s + i, n - i);
		len += good + (i + good < n);
		i += good + (i + good < n);
	}
	msgpack_pack_str(pk, len);
	for (size_t i = 0; i < n;) {
		size_t good = proto_utf8_prefix(s + i, n - i);
		msgpack_pack_str_body(pk, s + i, good);
		i += good;
		if (i < n) {
			msgpack_pack_str_body(pk, "?", 1);
			i++;
		}
	}
}

void proto_kv_text(msgpack_packer *pk, const char *key, const char *s)
{
	proto_kv_text_n(pk, key, s, strlen(s));
}

void proto_request_begin(msgpack_packer *pk, const char *op, const void *rid, size_t rid_len,
			 const void *cid, size_t cid_len, const char *auth, size_t n_fields)
{
	msgpack_pack_map(pk, 3 + (cid ? 1 : 0) + (auth ? 1 : 0) + n_fields);
	proto_kv_uint(pk, "v", PROTO_VERSION);
	proto_kv_cstr(pk, "op", op);
	pack_rid(pk, rid, rid_len, true);
	if (cid)
		proto_kv_bin(pk, "cid", cid, cid_len);
	if (auth)
		proto_kv_cstr(pk, "auth", auth);
}
