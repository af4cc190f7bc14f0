/*
 * fuzz_util.c - what both fuzz targets use: failing loudly, and walking a
 * decoded msgpack value.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "proto.h"

void fuzz_fail(const char *what, ...)
{
	va_list ap;
	va_start(ap, what);
	fputs("fuzz: ", stderr);
	vfprintf(stderr, what, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

static uint64_t sum_bytes(const char *p, uint32_t n)
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < n; i++)
		sum += (unsigned char)p[i];
	return sum;
}

uint64_t fuzz_walk(const msgpack_object *o, unsigned depth, int utf8)
{
	uint64_t sum = 0;
	if (depth > PROTO_MAX_DEPTH + 1)
		fuzz_fail("a decoded value is nested %u deep, past the scanner's bound", depth);
	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		if (utf8 && proto_utf8_prefix(o->via.str.ptr, o->via.str.size) != o->via.str.size)
			fuzz_fail("a str of %u bytes is not valid UTF-8: '%.*s'", o->via.str.size,
				  (int)(o->via.str.size > 64 ? 64 : o->via.str.size), o->via.str.ptr);
		return sum_bytes(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return sum_bytes(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_EXT:
		return sum_bytes(o->via.ext.ptr, o->via.ext.size);
	case MSGPACK_OBJECT_ARRAY:
		for (uint32_t i = 0; i < o->via.array.size; i++)
			sum += fuzz_walk(&o->via.array.ptr[i], depth + 1, utf8);
		return sum;
	case MSGPACK_OBJECT_MAP:
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			sum += fuzz_walk(&o->via.map.ptr[i].key, depth + 1, utf8);
			sum += fuzz_walk(&o->via.map.ptr[i].val, depth + 1, utf8);
		}
		return sum;
	default:
		return o->via.u64;
	}
}
