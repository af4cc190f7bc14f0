/*
 * proto_fuzz.c - the seeded mutation loop over the codec.
 *
 * Valid frames are damaged (bit flips, truncations, inserted and deleted
 * bytes, header bytes that declare huge sizes) and decoded, each from a
 * buffer of exactly its size, so ASan catches any out-of-bounds read.
 * Whatever decodes is walked byte by byte and probed with every getter.
 * Whenever proto_scan accepts a frame, msgpack-c must agree that it is one
 * complete value: the scanner is what makes msgpack-c's up-front
 * allocations safe, so the two must never disagree.  CUEQ_FUZZ_ITERATIONS
 * overrides the default of 200,000 frames.
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

/* ---- the mutation loop ---------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Touches every byte a decoded object points to, so a dangling or
 * out-of-bounds str/bin pointer shows under ASan. */
static uint64_t walk(const msgpack_object *o, unsigned depth)
{
	uint64_t sum = 0;
	if (depth > PROTO_MAX_DEPTH + 1)
		fail_msg("decoded object deeper than the scanner allows");
	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		for (uint32_t i = 0; i < o->via.str.size; i++)
			sum += (unsigned char)o->via.str.ptr[i];
		break;
	case MSGPACK_OBJECT_BIN:
		for (uint32_t i = 0; i < o->via.bin.size; i++)
			sum += (unsigned char)o->via.bin.ptr[i];
		break;
	case MSGPACK_OBJECT_EXT:
		for (uint32_t i = 0; i < o->via.ext.size; i++)
			sum += (unsigned char)o->via.ext.ptr[i];
		break;
	case MSGPACK_OBJECT_ARRAY:
		for (uint32_t i = 0; i < o->via.array.size; i++)
			sum += walk(&o->via.array.ptr[i], depth + 1);
		break;
	case MSGPACK_OBJECT_MAP:
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			sum += walk(&o->via.map.ptr[i].key, depth + 1);
			sum += walk(&o->via.map.ptr[i].val, depth + 1);
		}
		break;
	default:
		sum += o->via.u64;
		break;
	}
	return sum;
}

/* Exercises the getters the broker uses on a decoded map. */
static void probe_fields(const msgpack_object *m)
{
	static const char *const keys[] = { "v", "op", "rid", "auth", "jobs", "items", "queue",
		"payload", "lease_ms", "execution_id", "lease_token", "result", "execution",
		"history", "s", "x" };
	proto_error e;
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const char *s;
		size_t n;
		uint64_t u;
		int64_t i;
		bool b;
		const msgpack_object_array *a = NULL;
		proto_str(m, keys[k], false, 64, &s, &n, &e);
		proto_bytes(m, keys[k], false, 1 << 20, &s, &n, &e);
		proto_uint(m, keys[k], false, 0, UINT64_MAX, &u, &e);
		proto_int(m, keys[k], false, INT64_MIN, INT64_MAX, &i, &e);
		proto_bool(m, keys[k], false, &b, &e);
		proto_id(m, keys[k], false, &u, &e);
		if (proto_array(m, keys[k], false, 0, 1000, &a, &e) == CUEQ_OK && a != NULL)
			for (uint32_t j = 0; j < a->size; j++)
				probe_fields(&a->ptr[j]);
	}
}

static size_t mutate(const frame *src, unsigned char *out, size_t cap)
{
	static const unsigned char special[] = { 0xc1, 0xdd, 0xdf, 0xdc, 0xde, 0xdb, 0xc6, 0xc9,
		0xd9, 0xc4, 0xff, 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xc0, 0xd8, 0xcf };
	size_t len = src->len < cap ? src->len : cap;
	unsigned rounds = 1 + (unsigned)(rnd() % 4);

	memcpy(out, src->buf, len);
	for (unsigned r = 0; r < rounds; r++) {
		size_t pos = len ? (size_t)(rnd() % len) : 0;
		switch (rnd() % 7) {
		case 0: /* bit flip */
			if (len)
				out[pos] ^= (unsigned char)(1u << (rnd() % 8));
			break;
		case 1: /* truncation */
			len = len ? (size_t)(rnd() % len) : 0;
			break;
		case 2: /* insert a random byte */
		case 3: /* insert a byte from the message itself */
			if (len < cap) {
				unsigned char c = (rnd() & 1) || len == 0 ? (unsigned char)rnd() : out[rnd() % len];
				memmove(out + pos + 1, out + pos, len - pos);
				out[pos] = c;
				len++;
			}
			break;
		case 4: /* overwrite with a dangerous header byte */
			if (len)
				out[pos] = special[rnd() % sizeof(special)];
			break;
		case 5: /* delete a run */
			if (len) {
				size_t k = 1 + (size_t)(rnd() % 8);
				if (k > len - pos)
					k = len - pos;
				memmove(out + pos, out + pos + k, len - pos - k);
				len -= k;
			}
			break;
		default: /* overwrite four bytes with 0xff (huge lengths) */
			for (size_t k = 0; k < 4 && pos + k < len; k++)
				out[pos + k] = 0xff;
			break;
		}
	}
	return len;
}

void test_mutation_fuzz(void **state)
{
	frame corpus[5] = { frame_ping(), frame_push(), frame_ack(), frame_reply(), frame_nested(7) };
	const char *env = getenv("CUEQ_FUZZ_ITERATIONS");
	unsigned long iters = env ? strtoul(env, NULL, 10) : 200000;
	size_t cap = 0, accepted = 0, disagreements = 0;
	unsigned char *work;
	(void)state;

	for (int i = 0; i < 5; i++)
		if (corpus[i].len + 64 > cap)
			cap = corpus[i].len + 64;
	work = malloc(cap);
	assert_non_null(work);
	rng_state = 0x9e3779b97f4a7c15ull;
	for (unsigned long it = 0; it < iters; it++) {
		/* Small frames most of the time: the large reply is slow to copy. */
		const frame *src = &corpus[rnd() % 100 < 1 ? 3 : (rnd() % 2 ? rnd() % 3 : 4)];
		size_t len = mutate(src, work, cap);
		frame f = frame_from_bytes(work, len);
		msgpack_unpacked up;
		proto_error e = { 0 };
		int sc = proto_scan(f.buf, f.len, PROTO_MAX_DEPTH, &e);
		int rc = proto_decode(f.buf, f.len, &up, &e);

		if (rc == CUEQ_OK) {
			accepted++;
			(void)walk(&up.data, 1);
			probe_fields(&up.data);
		} else if (rc != CUEQ_ERR_BAD_REQUEST || e.msg[0] == '\0') {
			fail_msg("iteration %lu: proto_decode returned %d (%s)", it, rc, e.msg);
		}
		msgpack_unpacked_destroy(&up);
		if (sc == CUEQ_OK) {
			/* The scanner accepted: msgpack-c must read one complete value. */
			msgpack_unpacked u2;
			size_t off = 0;
			msgpack_unpacked_init(&u2);
			if (msgpack_unpack_next(&u2, (const char *)f.buf, f.len, &off) !=
				    MSGPACK_UNPACK_SUCCESS ||
			    off != f.len) {
				if (disagreements++ == 0) {
					fprintf(stderr, "scanner accepted but msgpack-c did not (iteration %lu):", it);
					for (size_t k = 0; k < f.len && k < 64; k++)
						fprintf(stderr, " %02x", f.buf[k]);
					fprintf(stderr, "\n");
				}
			}
			msgpack_unpacked_destroy(&u2);
		}
		frame_free(&f);
	}
	free(work);
	for (int i = 0; i < 5; i++)
		frame_free(&corpus[i]);
	if (disagreements != 0)
		fail_msg("%zu frames accepted by proto_scan were refused by msgpack-c", disagreements);
	/* Some mutations leave the frame valid: the loop must have seen both kinds. */
	assert_true(accepted > 0);
	assert_true(accepted < iters);
}

