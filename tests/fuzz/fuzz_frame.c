/*
 * fuzz_frame.c - the frame decoder under a fuzzer: one input is one frame.
 *
 * The bytes go, from a buffer of exactly their size, through proto_scan
 * and proto_decode (whatever the scanner accepts msgpack-c must read as one
 * complete value), then proto_envelope and every typed getter over every
 * key of the map and of the maps in its arrays, each answer checked
 * against what proto.h promises.  The texts of the frame go through the
 * packers that quote clients' bytes, and the error reply the broker would
 * send is packed and must decode with every string valid UTF-8.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto.h"

/* Keys probed besides those the map has. */
static const char *const KEYS[] = {"v",	    "op",	    "rid",   "cid",	 "auth",
				   "jobs",  "items",	    "queue", "payload",	 "execution_id",
				   "lease_token", "max",    "state", "retry_ttl_ms", "x"};

static void expect_error(int rc, const proto_error *e, const char *getter, const char *key)
{
	if (rc != CUEQ_ERR_BAD_REQUEST && rc != CUEQ_ERR_TOO_LARGE)
		fuzz_fail("%s('%s') returned %d", getter, key, rc);
	if (e->code != rc || e->msg[0] == '\0')
		fuzz_fail("%s('%s') failed with code %d and message '%s'", getter, key, e->code,
			  e->msg);
}

static void probe_text(const msgpack_object *m, const char *key, bool bin)
{
	proto_error e = {0};
	const char *s = NULL;
	size_t n = 0, max = 40;
	int rc = bin ? proto_bytes(m, key, false, max, &s, &n, &e)
		     : proto_str(m, key, false, max, &s, &n, &e);
	if (rc != CUEQ_OK)
		return expect_error(rc, &e, bin ? "proto_bytes" : "proto_str", key);
	const msgpack_object *v = proto_get(m, key);
	if (s == NULL && v != NULL && v->type != MSGPACK_OBJECT_NIL)
		fuzz_fail("proto_str('%s') took a value of type %d for none", key, v->type);
	if (s != NULL && n > max)
		fuzz_fail("proto_str('%s') gave %zu bytes past its limit %zu", key, n, max);
	if (s != NULL && v->type == MSGPACK_OBJECT_STR && proto_utf8_prefix(s, n) != n)
		fuzz_fail("proto_str('%s') gave a string that is not UTF-8", key);
}

static void probe_numbers(const msgpack_object *m, const char *key)
{
	proto_error e = {0};
	uint64_t u = 7, lo = 3, hi = 1000;
	int64_t i = 7;
	bool b;
	int rc = proto_uint(m, key, false, lo, hi, &u, &e);
	if (rc != CUEQ_OK)
		expect_error(rc, &e, "proto_uint", key);
	else if (u < lo || u > hi)
		fuzz_fail("proto_uint('%s') gave %llu outside %llu..%llu", key,
			  (unsigned long long)u, (unsigned long long)lo, (unsigned long long)hi);
	e = (proto_error){0};
	if ((rc = proto_int(m, key, false, -1000, 1000, &i, &e)) != CUEQ_OK)
		expect_error(rc, &e, "proto_int", key);
	else if (i < -1000 || i > 1000)
		fuzz_fail("proto_int('%s') gave %lld outside -1000..1000", key, (long long)i);
	e = (proto_error){0};
	if ((rc = proto_bool(m, key, false, &b, &e)) != CUEQ_OK)
		expect_error(rc, &e, "proto_bool", key);
}

static void probe_id(const msgpack_object *m, const char *key)
{
	proto_error e = {0};
	uint64_t id = 0;
	char s[PROTO_ID_LEN + 1];
	int rc = proto_id(m, key, true, &id, &e);
	if (rc != CUEQ_OK)
		return expect_error(rc, &e, "proto_id", key);
	uint64_t again = ~id;
	proto_id_fmt(id, s);
	if (!proto_id_parse(s, PROTO_ID_LEN, &again) || again != id)
		fuzz_fail("proto_id('%s'): %s does not parse back", key, s);
}

static void probe_map(const msgpack_object *m, unsigned depth);

static void probe_key(const msgpack_object *m, const char *key, unsigned depth)
{
	const msgpack_object_array *a = NULL;
	proto_error e = {0};
	probe_text(m, key, false);
	probe_text(m, key, true);
	probe_numbers(m, key);
	probe_id(m, key);
	int rc = proto_array(m, key, false, 1, 1000, &a, &e);
	if (rc != CUEQ_OK)
		return expect_error(rc, &e, "proto_array", key);
	if (a != NULL && (a->size < 1 || a->size > 1000))
		fuzz_fail("proto_array('%s') gave %u entries outside 1..1000", key, a->size);
	for (uint32_t i = 0; a != NULL && i < a->size; i++)
		if (a->ptr[i].type == MSGPACK_OBJECT_MAP)
			probe_map(&a->ptr[i], depth + 1);
}

/* Every getter on the fixed keys and on each str key of m (keys are
 * copied to C strings: those with a NUL inside are probed cut short). */
static void probe_map(const msgpack_object *m, unsigned depth)
{
	char key[65];
	if (depth > 3)
		return;
	for (size_t k = 0; k < sizeof(KEYS) / sizeof(KEYS[0]); k++)
		probe_key(m, KEYS[k], depth);
	for (uint32_t i = 0; i < m->via.map.size && i < 64; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		/* the broker looks up no empty key (msgpack-c may point an empty
		 * str at NULL, which proto_get would pass to memcmp) */
		if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 ||
		    k->via.str.size >= sizeof(key))
			continue;
		memcpy(key, k->via.str.ptr, k->via.str.size);
		key[k->via.str.size] = '\0';
		if (key[0] != '\0')
			probe_key(m, key, depth);
	}
}

/* Packs s as the broker packs a text it quotes, which must come out as one
 * str of valid UTF-8 with one '?' for each bad byte. */
static void check_text(const char *s, size_t n)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	proto_error e = {0};
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	proto_kv_text_n(&pk, "t", s, n);
	if (proto_decode(sb.data, sb.size, &up, &e) != CUEQ_OK)
		fuzz_fail("proto_kv_text_n of %zu bytes packed no map: %s", n, e.msg);
	const msgpack_object *t = proto_get(&up.data, "t");
	if (t == NULL || t->type != MSGPACK_OBJECT_STR || t->via.str.size > n)
		fuzz_fail("proto_kv_text_n of %zu bytes packed no str of at most as many", n);
	fuzz_walk(&up.data, 1, 1);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* The names a str of a request may be read as. */
static void check_names(const char *s, size_t n)
{
	char c[80];
	int64_t ms;
	int st = proto_state_parse(s, n);
	if (st >= 0 && strlen(proto_state_name(st)) != n)
		fuzz_fail("proto_state_parse took '%.*s' for %s", (int)n, s, proto_state_name(st));
	int code = proto_err_code(s, n);
	if (code != CUEQ_ERR_PROTOCOL && strlen(proto_err_name(code)) != n)
		fuzz_fail("proto_err_code took '%.*s' for %s", (int)n, s, proto_err_name(code));
	(void)proto_queue_ok(s, n);
	if (n > 0 && n < sizeof(c)) {
		memcpy(c, s, n);
		c[n] = '\0';
		if (proto_parse_duration(c, &ms) && ms < 0)
			fuzz_fail("proto_parse_duration('%s') gave %lld", c, (long long)ms);
	}
}

static void check_values(const msgpack_object *m)
{
	for (uint32_t i = 0; i < m->via.map.size && i < 64; i++) {
		const msgpack_object *v = &m->via.map.ptr[i].val;
		if (v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_BIN) {
			check_text(v->via.str.ptr, v->via.str.size);
			check_names(v->via.str.ptr, v->via.str.size);
		}
	}
}

/* The reply the broker sends to a frame it cannot run. */
static void check_error_reply(const struct proto_envelope *env, const proto_error *e)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	proto_error e2 = {0};
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	proto_reply_error(&pk, env ? env->rid : NULL, env ? env->rid_len : 0,
			  env ? env->rid_bin : false, e->code, e->msg);
	if (proto_decode(sb.data, sb.size, &up, &e2) != CUEQ_OK)
		fuzz_fail("the error reply does not decode: %s", e2.msg);
	fuzz_walk(&up.data, 1, 1);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* Whatever the scanner accepts, msgpack-c must read as one whole value. */
static void check_scan_agrees(const uint8_t *buf, size_t len)
{
	proto_error e = {0};
	if (proto_scan(buf, len, PROTO_MAX_DEPTH, &e) != CUEQ_OK)
		return;
	msgpack_unpacked up;
	size_t off = 0;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    off != len)
		fuzz_fail("proto_scan accepted %zu bytes that msgpack-c does not read as one value",
			  len);
	msgpack_unpacked_destroy(&up);
}

static void check_envelope(const msgpack_object *root)
{
	struct proto_envelope env;
	proto_error e = {0};
	if (proto_envelope(root, &env, &e) != CUEQ_OK) {
		if (e.code != CUEQ_ERR_BAD_REQUEST || e.msg[0] == '\0')
			fuzz_fail("proto_envelope failed with code %d and '%s'", e.code, e.msg);
		if (env.rid != NULL && (env.rid_len == 0 || env.rid_len > PROTO_MAX_RID))
			fuzz_fail("a refused envelope kept a rid of %zu bytes", env.rid_len);
		check_error_reply(&env, &e);
		return;
	}
	if (env.rid == NULL || env.rid_len == 0 || env.rid_len > PROTO_MAX_RID || env.op == NULL ||
	    env.op_len > 64 || (env.cid != NULL && (env.cid_len == 0 || env.cid_len > PROTO_MAX_RID)))
		fuzz_fail("proto_envelope accepted a rid of %zu, an op of %zu, a cid of %zu bytes",
			  env.rid_len, env.op_len, env.cid_len);
	check_error_reply(&env, &(proto_error){.code = CUEQ_ERR_BAD_REQUEST, .msg = "x"});
}

int FUZZ_FRAME(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	msgpack_unpacked up;
	proto_error e = {0};
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	check_scan_agrees(buf, size);
	if (proto_decode(buf, size, &up, &e) != CUEQ_OK) {
		if (e.code != CUEQ_ERR_BAD_REQUEST || e.msg[0] == '\0')
			fuzz_fail("proto_decode failed with code %d and '%s'", e.code, e.msg);
		check_error_reply(NULL, &e);
	} else {
		if (up.data.type != MSGPACK_OBJECT_MAP)
			fuzz_fail("proto_decode accepted a root of type %d", up.data.type);
		fuzz_walk(&up.data, 1, 0);
		check_envelope(&up.data);
		probe_map(&up.data, 0);
		check_values(&up.data);
	}
	msgpack_unpacked_destroy(&up);
	free(buf);
	return 0;
}
