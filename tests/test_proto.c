/*
 * test_proto.c - unit tests of the wire codec (proto/), no broker.
 *
 * The decoder is the broker's first line against hostile bytes, so each
 * class of malformed frame is checked to be refused with BAD_REQUEST and a
 * sentence; the typed getters, names, IDs and packing helpers are checked
 * too, as is the stored hash, and the seeded mutation loop of proto_fuzz.c
 * runs last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto_test.h"

/* Decodes f (scan and full decode) and checks the outcome. */
static void expect_decode(const frame *f, int want)
{
	msgpack_unpacked up;
	proto_error e = { 0 };
	int rc = proto_decode(f->buf, f->len, &up, &e);
	msgpack_unpacked_destroy(&up);
	if (rc != want)
		fail_msg("proto_decode of %zu bytes returned %d, expected %d (%s)", f->len, rc, want,
			 e.msg);
	if (want != CUEQ_OK) {
		assert_int_equal(e.code, want);
		assert_true(strlen(e.msg) > 0);
	}
}

static void expect_scan(const void *buf, size_t len, int want)
{
	proto_error e = { 0 };
	frame f = frame_from_bytes(buf, len);
	int rc = proto_scan(f.buf, f.len, PROTO_MAX_DEPTH, &e);
	if (rc != want)
		fail_msg("proto_scan of %zu bytes returned %d, expected %d (%s)", len, rc, want, e.msg);
	if (want != CUEQ_OK)
		assert_true(strlen(e.msg) > 0);
	frame_free(&f);
}

/* ---- tests ----------------------------------------------------------- */

static void test_valid_frames(void **state)
{
	frame fs[4] = { frame_ping(), frame_push(), frame_ack(), frame_reply() };
	(void)state;
	for (int i = 0; i < 4; i++) {
		msgpack_unpacked up;
		proto_error e;
		assert_int_equal(proto_scan(fs[i].buf, fs[i].len, PROTO_MAX_DEPTH, &e), CUEQ_OK);
		assert_int_equal(proto_decode(fs[i].buf, fs[i].len, &up, &e), CUEQ_OK);
		assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
		uint64_t v = 0;
		assert_int_equal(proto_uint(&up.data, "v", true, 1, 1, &v, &e), CUEQ_OK);
		assert_int_equal(v, 1);
		msgpack_unpacked_destroy(&up);
	}
	/* Typed reads of the push frame. */
	msgpack_unpacked up;
	proto_error e;
	const msgpack_object_array *jobs = NULL;
	const char *s = NULL;
	size_t n = 0;
	int64_t prio = 1;
	uint64_t u = 0;
	assert_int_equal(proto_decode(fs[1].buf, fs[1].len, &up, &e), CUEQ_OK);
	assert_int_equal(proto_str(&up.data, "op", true, 32, &s, &n, &e), CUEQ_OK);
	assert_int_equal(n, 4);
	assert_memory_equal(s, "push", 4);
	assert_int_equal(proto_bytes(&up.data, "rid", true, PROTO_MAX_RID, &s, &n, &e), CUEQ_OK);
	assert_int_equal(n, 20);
	assert_int_equal(proto_array(&up.data, "jobs", true, 1, 1000, &jobs, &e), CUEQ_OK);
	assert_int_equal(jobs->size, 3);
	assert_int_equal(proto_bytes(&jobs->ptr[0], "payload", false, 1 << 20, &s, &n, &e), CUEQ_OK);
	assert_int_equal(n, 12);
	assert_memory_equal(s, "hello world!", 12);
	assert_int_equal(proto_int(&jobs->ptr[2], "priority", false, -1000, 1000, &prio, &e), CUEQ_OK);
	assert_int_equal(prio, -10);
	assert_int_equal(proto_uint(&jobs->ptr[2], "delay_ms", false, 0, UINT64_MAX, &u, &e), CUEQ_OK);
	assert_int_equal(u, 140000);
	msgpack_unpacked_destroy(&up);
	for (int i = 0; i < 4; i++)
		frame_free(&fs[i]);
}

static void test_empty_and_truncated(void **state)
{
	frame fs[4] = { frame_ping(), frame_push(), frame_ack(), frame_reply() };
	(void)state;
	frame empty = { malloc(1), 0 };
	expect_decode(&empty, CUEQ_ERR_BAD_REQUEST);
	frame_free(&empty);
	/* Every strict prefix of a valid frame is refused. */
	for (int i = 0; i < 4; i++) {
		for (size_t cut = 0; cut < fs[i].len; cut += (cut < 400 ? 1 : 997)) {
			frame p = frame_from_bytes(fs[i].buf, cut);
			expect_decode(&p, CUEQ_ERR_BAD_REQUEST);
			frame_free(&p);
		}
		frame_free(&fs[i]);
	}
}

static void test_trailing_bytes(void **state)
{
	frame f = frame_ping();
	unsigned char *two = malloc(2 * f.len);
	(void)state;
	assert_non_null(two);
	memcpy(two, f.buf, f.len);
	memcpy(two + f.len, f.buf, f.len);
	frame t = frame_from_bytes(two, f.len + 1);
	expect_decode(&t, CUEQ_ERR_BAD_REQUEST);
	frame_free(&t);
	t = frame_from_bytes(two, 2 * f.len); /* two maps back to back */
	expect_decode(&t, CUEQ_ERR_BAD_REQUEST);
	frame_free(&t);
	free(two);
	frame_free(&f);
}

static void test_invalid_bytes(void **state)
{
	/* 0xc1 is never used in msgpack: as the root, as a key, as a value. */
	static const unsigned char root[] = { 0xc1 };
	static const unsigned char as_key[] = { 0x81, 0xc1, 0x01 };
	static const unsigned char as_val[] = { 0x81, 0xa1, 'v', 0xc1 };
	(void)state;
	expect_scan(root, sizeof(root), CUEQ_ERR_BAD_REQUEST);
	expect_scan(as_key, sizeof(as_key), CUEQ_ERR_BAD_REQUEST);
	expect_scan(as_val, sizeof(as_val), CUEQ_ERR_BAD_REQUEST);
	frame f = frame_from_bytes(as_val, sizeof(as_val));
	expect_decode(&f, CUEQ_ERR_BAD_REQUEST);
	frame_free(&f);
}


static void test_depth(void **state)
{
	(void)state;
	/* The root map is level 1: seven arrays inside make 8 levels. */
	frame ok = frame_nested(PROTO_MAX_DEPTH - 1);
	expect_decode(&ok, CUEQ_OK);
	frame_free(&ok);
	frame deep = frame_nested(PROTO_MAX_DEPTH);
	expect_decode(&deep, CUEQ_ERR_BAD_REQUEST);
	frame_free(&deep);
	deep = frame_nested(100);
	expect_decode(&deep, CUEQ_ERR_BAD_REQUEST);
	frame_free(&deep);
	/* 100 bare nested array headers (the ~80 GB reservation of msgpack-c). */
	unsigned char bare[101];
	memset(bare, 0x91, 100);
	bare[100] = 0x01;
	expect_scan(bare, sizeof(bare), CUEQ_ERR_BAD_REQUEST);
	frame b = frame_from_bytes(bare, sizeof(bare));
	expect_decode(&b, CUEQ_ERR_BAD_REQUEST);
	frame_free(&b);
}

static void test_huge_counts(void **state)
{
	static const struct {
		const char *what;
		unsigned char b[16];
		size_t n;
	} cases[] = {
		{ "array32 of 4G, nothing after", { 0xdd, 0xff, 0xff, 0xff, 0xff }, 5 },
		{ "map32 of 4G, nothing after", { 0xdf, 0xff, 0xff, 0xff, 0xff }, 5 },
		{ "array16 of 65535", { 0xdc, 0xff, 0xff, 0x01, 0x02 }, 5 },
		{ "map16 of 65535", { 0xde, 0xff, 0xff, 0x01, 0x02 }, 5 },
		{ "fixarray of 3 with 2 bytes", { 0x93, 0x01, 0x02 }, 3 },
		{ "fixmap of 2 with 3 bytes", { 0x82, 0x01, 0x02, 0x03 }, 4 },
		{ "str32 of 4G", { 0x81, 0xa1, 'v', 0xdb, 0xff, 0xff, 0xff, 0xff, 'a' }, 9 },
		{ "bin32 of 4G", { 0x81, 0xa1, 'v', 0xc6, 0xff, 0xff, 0xff, 0xff, 'a' }, 9 },
		{ "ext32 of 4G", { 0x81, 0xa1, 'v', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'a' }, 10 },
		{ "str8 past the end", { 0x81, 0xa1, 'v', 0xd9, 0x10, 'a' }, 6 },
		{ "cut length field", { 0x81, 0xa1, 'v', 0xdb, 0xff }, 5 },
		{ "array32 in a field", { 0x81, 0xa4, 'j', 'o', 'b', 's', 0xdd, 0xff, 0xff, 0xff, 0xff }, 11 },
		{ "map32 in a field", { 0x81, 0xa4, 'j', 'o', 'b', 's', 0xdf, 0x7f, 0xff, 0xff, 0xff, 0x80 }, 12 },
		{ "map32 root of 4G", { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01 }, 8 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		frame f = frame_from_bytes(cases[i].b, cases[i].n);
		msgpack_unpacked up;
		proto_error e = { 0 };
		int rc = proto_decode(f.buf, f.len, &up, &e);
		msgpack_unpacked_destroy(&up);
		if (rc != CUEQ_ERR_BAD_REQUEST || strlen(e.msg) == 0)
			fail_msg("%s: proto_decode returned %d (%s), expected BAD_REQUEST", cases[i].what,
				 rc, e.msg);
		frame_free(&f);
	}
}

static void test_root_must_be_map(void **state)
{
	static const unsigned char arr[] = { 0x92, 0x01, 0x02 };
	static const unsigned char num[] = { 0x05 };
	static const unsigned char str[] = { 0xa2, 'h', 'i' };
	static const unsigned char nil[] = { 0xc0 };
	const struct {
		const unsigned char *b;
		size_t n;
	} cases[] = { { arr, 3 }, { num, 1 }, { str, 3 }, { nil, 1 } };
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		expect_scan(cases[i].b, cases[i].n, CUEQ_OK);
		frame f = frame_from_bytes(cases[i].b, cases[i].n);
		expect_decode(&f, CUEQ_ERR_BAD_REQUEST);
		frame_free(&f);
	}
}

/* {"s": "abc", "i": 7, "n": -3, "b": true, "z": nil, "a": [1,2], "bin": b"xy",
 *  "id": "00000000000000ff", "big": 2^64-1} */
static frame typed(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 9);
	pack_kstr(&pk, "s", "abc");
	pack_key(&pk, "i");
	msgpack_pack_uint8(&pk, 7);
	pack_key(&pk, "n");
	msgpack_pack_int8(&pk, -3);
	pack_key(&pk, "b");
	msgpack_pack_true(&pk);
	pack_key(&pk, "z");
	msgpack_pack_nil(&pk);
	pack_key(&pk, "a");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_uint8(&pk, 2);
	pack_key(&pk, "bin");
	msgpack_pack_bin(&pk, 2);
	msgpack_pack_bin_body(&pk, "xy", 2);
	pack_kstr(&pk, "id", "00000000000000ff");
	pack_key(&pk, "big");
	msgpack_pack_uint64(&pk, UINT64_MAX);
	return frame_take(&sb);
}

/* call must refuse with BAD_REQUEST and a sentence in e. */
#define BAD(call) \
	do { \
		e.code = 0; \
		e.msg[0] = '\0'; \
		int rc_ = (call); \
		if (rc_ != CUEQ_ERR_BAD_REQUEST || e.code != CUEQ_ERR_BAD_REQUEST || e.msg[0] == '\0') \
			fail_msg("%s: returned %d (%s), expected BAD_REQUEST", #call, rc_, e.msg); \
	} while (0)

static void test_getters(void **state)
{
	frame f = typed();
	msgpack_unpacked up;
	proto_error e = { 0 };
	const msgpack_object *m;
	const msgpack_object_array *arr = NULL;
	const char *s = NULL;
	size_t n = 0;
	uint64_t u = 42;
	int64_t i = 42;
	bool b = false;
	(void)state;

	assert_int_equal(proto_decode(f.buf, f.len, &up, &e), CUEQ_OK);
	m = &up.data;
	/* Right types. */
	assert_int_equal(proto_str(m, "s", true, 3, &s, &n, &e), CUEQ_OK);
	assert_int_equal(n, 3);
	assert_int_equal(proto_uint(m, "i", true, 7, 7, &u, &e), CUEQ_OK);
	assert_int_equal(u, 7);
	assert_int_equal(proto_int(m, "n", true, -3, 0, &i, &e), CUEQ_OK);
	assert_int_equal(i, -3);
	assert_int_equal(proto_int(m, "i", true, 0, 10, &i, &e), CUEQ_OK);
	assert_int_equal(i, 7);
	assert_int_equal(proto_bool(m, "b", true, &b, &e), CUEQ_OK);
	assert_true(b);
	assert_int_equal(proto_array(m, "a", true, 1, 2, &arr, &e), CUEQ_OK);
	assert_int_equal(arr->size, 2);
	assert_int_equal(proto_bytes(m, "bin", true, 2, &s, &n, &e), CUEQ_OK);
	assert_int_equal(proto_bytes(m, "s", true, 3, &s, &n, &e), CUEQ_OK);
	assert_int_equal(proto_id(m, "id", true, &u, &e), CUEQ_OK);
	assert_int_equal(u, 255);
	assert_int_equal(proto_uint(m, "big", true, 0, UINT64_MAX, &u, &e), CUEQ_OK);
	assert_true(u == UINT64_MAX);
	/* Absent and nil: fine when optional (out untouched), refused when required. */
	u = 42;
	assert_int_equal(proto_uint(m, "missing", false, 0, 10, &u, &e), CUEQ_OK);
	assert_int_equal(u, 42);
	assert_int_equal(proto_uint(m, "z", false, 0, 10, &u, &e), CUEQ_OK);
	assert_int_equal(u, 42);
	BAD(proto_uint(m, "missing", true, 0, 10, &u, &e));
	BAD(proto_str(m, "z", true, 10, &s, &n, &e));
	/* Wrong types and ranges. */
	BAD(proto_str(m, "i", true, 10, &s, &n, &e));
	BAD(proto_str(m, "bin", true, 10, &s, &n, &e));
	BAD(proto_bytes(m, "a", true, 10, &s, &n, &e));
	BAD(proto_uint(m, "n", true, 0, 10, &u, &e));
	BAD(proto_uint(m, "s", true, 0, 10, &u, &e));
	BAD(proto_uint(m, "b", true, 0, 10, &u, &e));
	BAD(proto_uint(m, "i", true, 8, 10, &u, &e));
	BAD(proto_uint(m, "i", true, 0, 6, &u, &e));
	BAD(proto_int(m, "n", true, -2, 10, &i, &e));
	BAD(proto_int(m, "big", true, INT64_MIN, INT64_MAX, &i, &e));
	BAD(proto_int(m, "s", true, -10, 10, &i, &e));
	BAD(proto_bool(m, "i", true, &b, &e));
	BAD(proto_array(m, "s", true, 0, 10, &arr, &e));
	BAD(proto_array(m, "a", true, 3, 10, &arr, &e));
	BAD(proto_array(m, "a", true, 0, 1, &arr, &e));
	BAD(proto_id(m, "s", true, &u, &e));
	BAD(proto_id(m, "i", true, &u, &e));
	/* Over the length limit: TOO_LARGE. */
	assert_int_equal(proto_str(m, "s", true, 2, &s, &n, &e), CUEQ_ERR_TOO_LARGE);
	assert_int_equal(e.code, CUEQ_ERR_TOO_LARGE);
	assert_true(strlen(e.msg) > 0);
	/* Getters on a non-map find nothing. */
	assert_null(proto_get(&arr->ptr[0], "s"));
	assert_null(proto_get(NULL, "s"));
	msgpack_unpacked_destroy(&up);
	frame_free(&f);
}

static void test_queue_names(void **state)
{
	char long_ok[PROTO_MAX_QUEUE + 2];
	(void)state;
	memset(long_ok, 'q', sizeof(long_ok));
	assert_true(proto_queue_ok("a", 1));
	assert_true(proto_queue_ok("Az09._:-", 8));
	assert_true(proto_queue_ok(long_ok, PROTO_MAX_QUEUE));
	assert_false(proto_queue_ok("", 0));
	assert_false(proto_queue_ok(long_ok, PROTO_MAX_QUEUE + 1));
	assert_false(proto_queue_ok("a b", 3));
	assert_false(proto_queue_ok("\xc3\xa9", 2));
	assert_false(proto_queue_ok("a/b", 3));
	assert_false(proto_queue_ok("a\0b", 3));
	assert_false(proto_queue_ok("a\n", 2));
}

static void test_ids(void **state)
{
	static const uint64_t vals[] = { 0, 1, 0xff, 0x0123456789abcdefull, UINT64_MAX };
	char s[PROTO_ID_LEN + 1];
	uint64_t v;
	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		proto_id_fmt(vals[i], s);
		assert_int_equal(strlen(s), PROTO_ID_LEN);
		for (int k = 0; k < PROTO_ID_LEN; k++)
			assert_true((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f'));
		assert_true(proto_id_parse(s, PROTO_ID_LEN, &v));
		assert_true(v == vals[i]);
	}
	assert_false(proto_id_parse("xyz", 3, &v));
	assert_false(proto_id_parse("0123456789abcde", 15, &v));
	assert_false(proto_id_parse("0123456789abcdef0", 17, &v));
	assert_false(proto_id_parse("0123456789abcdeg", 16, &v));
	assert_false(proto_id_parse("0123456789abcd f", 16, &v));
	assert_false(proto_id_parse("", 0, &v));
}

static void test_err_names(void **state)
{
	static const char *const names[] = { NULL, "BAD_REQUEST", "UNAUTHORIZED", "NOT_FOUND",
		"CONFLICT", "STALE_LEASE", "IDEMPOTENCY_MISMATCH", "TOO_LARGE", "UNAVAILABLE",
		"INTERNAL" };
	(void)state;
	for (int c = 1; c <= 9; c++) {
		assert_string_equal(proto_err_name(c), names[c]);
		assert_int_equal(proto_err_code(names[c], strlen(names[c])), c);
	}
	assert_null(proto_err_name(0));
	assert_null(proto_err_name(10));
	assert_null(proto_err_name(-1));
	assert_int_equal(proto_err_code("NOPE", 4), CUEQ_ERR_PROTOCOL);
	assert_int_equal(proto_err_code("BAD_REQUESTX", 12), CUEQ_ERR_PROTOCOL);
	assert_int_equal(proto_err_code("BAD_REQUEST", 3), CUEQ_ERR_PROTOCOL);
}

/* The broker stores these hashes (outcomes, idempotent requests): the
 * published FNV-1a 64 values pin the algorithm and its constant. */
static void test_hash(void **state)
{
	(void)state;
	assert_true(proto_hash(PROTO_HASH_INIT, "", 0) == 0xcbf29ce484222325ull);
	assert_true(proto_hash(PROTO_HASH_INIT, "a", 1) == 0xaf63dc4c8601ec8cull);
	assert_true(proto_hash(PROTO_HASH_INIT, "cueq", 4) == 0x4c486d90aca11203ull);
	assert_true(proto_hash(proto_hash(PROTO_HASH_INIT, "cu", 2), "eq", 2) ==
		    0x4c486d90aca11203ull);
}

static void test_pack_helpers(void **state)
{
	nng_msg *m;
	proto_writer w;
	msgpack_unpacked up;
	proto_error e;
	const char *s;
	size_t n;
	uint64_t u;
	bool b = true;
	(void)state;

	/* A request: v, op, rid (bin), auth, then one field. */
	assert_int_equal(nng_msg_alloc(&m, 0), 0);
	proto_writer_init(&w, m);
	proto_request_begin(&w.pk, "claim", "abc", 3, NULL, 0, "tok", 1);
	proto_kv_id(&w.pk, "execution_id", 0xabcull);
	assert_int_equal(w.failed, 0);
	assert_int_equal(proto_decode(nng_msg_body(m), nng_msg_len(m), &up, &e), CUEQ_OK);
	assert_int_equal(up.data.via.map.size, 5);
	assert_int_equal(proto_uint(&up.data, "v", true, 1, 1, &u, &e), CUEQ_OK);
	assert_int_equal(proto_str(&up.data, "op", true, 16, &s, &n, &e), CUEQ_OK);
	assert_memory_equal(s, "claim", 5);
	assert_int_equal(proto_get(&up.data, "rid")->type, MSGPACK_OBJECT_BIN);
	assert_int_equal(proto_id(&up.data, "execution_id", true, &u, &e), CUEQ_OK);
	assert_int_equal(u, 0xabc);
	msgpack_unpacked_destroy(&up);
	nng_msg_free(m);

	/* An error reply. */
	assert_int_equal(nng_msg_alloc(&m, 0), 0);
	proto_writer_init(&w, m);
	proto_reply_error(&w.pk, "r1", 2, false, CUEQ_ERR_STALE_LEASE, "the lease moved on");
	assert_int_equal(proto_decode(nng_msg_body(m), nng_msg_len(m), &up, &e), CUEQ_OK);
	assert_int_equal(proto_bool(&up.data, "ok", true, &b, &e), CUEQ_OK);
	assert_false(b);
	assert_int_equal(proto_str(&up.data, "err", true, 32, &s, &n, &e), CUEQ_OK);
	assert_int_equal(proto_err_code(s, n), CUEQ_ERR_STALE_LEASE);
	assert_int_equal(proto_str(&up.data, "rid", true, 64, &s, &n, &e), CUEQ_OK);
	assert_memory_equal(s, "r1", 2);
	msgpack_unpacked_destroy(&up);
	nng_msg_free(m);

	/* A reply without rid and with fields. */
	assert_int_equal(nng_msg_alloc(&m, 0), 0);
	proto_writer_init(&w, m);
	proto_reply_begin(&w.pk, NULL, 0, false, 2);
	proto_kv_int(&w.pk, "neg", -5);
	proto_kv_bin(&w.pk, "payload", "\0\1", 2);
	assert_int_equal(proto_decode(nng_msg_body(m), nng_msg_len(m), &up, &e), CUEQ_OK);
	assert_int_equal(up.data.via.map.size, 4);
	assert_null(proto_get(&up.data, "rid"));
	msgpack_unpacked_destroy(&up);
	nng_msg_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_frames),
		cmocka_unit_test(test_empty_and_truncated),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_invalid_bytes),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_huge_counts),
		cmocka_unit_test(test_root_must_be_map),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_queue_names),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_err_names),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_pack_helpers),
		cmocka_unit_test(test_mutation_fuzz),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

