/*
 * codec.c - safe decoding and typed access for cueq frames.
 *
 * msgpack-c trusts the container counts it reads: a few bytes declaring a
 * billion-element array make it reserve gigabytes before noticing the frame
 * is short.  proto_scan() therefore walks the bytes first, with an explicit
 * stack (no recursion on attacker-chosen depth), and accepts a frame only if
 * every declared size fits in the bytes that are really there.  After that
 * msgpack_unpack_next() can allocate at most a small multiple of the frame.
 */
#include "proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const err_names[] = {
	[CUEQ_ERR_BAD_REQUEST] = "BAD_REQUEST",
	[CUEQ_ERR_UNAUTHORIZED] = "UNAUTHORIZED",
	[CUEQ_ERR_NOT_FOUND] = "NOT_FOUND",
	[CUEQ_ERR_CONFLICT] = "CONFLICT",
	[CUEQ_ERR_STALE_LEASE] = "STALE_LEASE",
	[CUEQ_ERR_IDEMPOTENCY_MISMATCH] = "IDEMPOTENCY_MISMATCH",
	[CUEQ_ERR_TOO_LARGE] = "TOO_LARGE",
	[CUEQ_ERR_UNAVAILABLE] = "UNAVAILABLE",
	[CUEQ_ERR_INTERNAL] = "INTERNAL",
};
#define N_ERR_NAMES (sizeof(err_names) / sizeof(err_names[0]))

int proto_fail(proto_error *e, int code, const char *fmt, ...)
{
	if (e != NULL) {
		va_list ap;
		e->code = code;
		e->missing = NULL;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

const char *proto_err_name(int code)
{
	if (code <= 0 || (size_t)code >= N_ERR_NAMES)
		return NULL;
	return err_names[code];
}

int proto_err_code(const char *name, size_t len)
{
	for (size_t i = 1; i < N_ERR_NAMES; i++)
		if (strlen(err_names[i]) == len && memcmp(err_names[i], name, len) == 0)
			return (int)i;
	return CUEQ_ERR_PROTOCOL;
}

/* Reads a big-endian unsigned of w bytes; the caller checked the bounds. */
static uint64_t be(const uint8_t *p, size_t w)
{
	uint64_t v = 0;
	for (size_t i = 0; i < w; i++)
		v = (v << 8) | p[i];
	return v;
}

int proto_scan(const void *buf, size_t len, unsigned max_depth, proto_error *e)
{
	const uint8_t *p = buf, *end = p + len;
	uint64_t stack[PROTO_MAX_DEPTH + 1];
	unsigned depth = 0;
	uint64_t remaining = 1, objects = 0;

	if (max_depth > PROTO_MAX_DEPTH)
		max_depth = PROTO_MAX_DEPTH;
	if (len == 0)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "empty message: send one msgpack map");
	for (;;) {
		if (remaining == 0) {
			if (depth == 0)
				break;
			remaining = stack[--depth];
			continue;
		}
		remaining--;
		if (++objects > PROTO_MAX_OBJECTS)
			return proto_fail(e, CUEQ_ERR_BAD_REQUEST,
					  "message holds more than %u msgpack values", PROTO_MAX_OBJECTS);
		if (p >= end)
			return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "truncated msgpack: the message ends inside a value");
		uint8_t b = *p++;
		uint64_t n = 0;	/* container element count */
		int container = 0; /* 1 array, 2 map */
		size_t lenw = 0;   /* width of a length field to read */
		size_t fixed = 0;  /* bytes to skip */

		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
			fixed = 0;
		} else if (b >= 0x80 && b <= 0x8f) {
			container = 2, n = b & 0x0f;
		} else if (b >= 0x90 && b <= 0x9f) {
			container = 1, n = b & 0x0f;
		} else if (b >= 0xa0 && b <= 0xbf) {
			fixed = b & 0x1f;
		} else {
			switch (b) {
			case 0xc4: case 0xd9: lenw = 1; break;
			case 0xc5: case 0xda: lenw = 2; break;
			case 0xc6: case 0xdb: lenw = 4; break;
			case 0xc7: lenw = 1, fixed = 1; break; /* ext: length, then type */
			case 0xc8: lenw = 2, fixed = 1; break;
			case 0xc9: lenw = 4, fixed = 1; break;
			case 0xca: fixed = 4; break;
			case 0xcb: fixed = 8; break;
			case 0xcc: case 0xd0: fixed = 1; break;
			case 0xcd: case 0xd1: fixed = 2; break;
			case 0xce: case 0xd2: fixed = 4; break;
			case 0xcf: case 0xd3: fixed = 8; break;
			case 0xd4: fixed = 2; break;
			case 0xd5: fixed = 3; break;
			case 0xd6: fixed = 5; break;
			case 0xd7: fixed = 9; break;
			case 0xd8: fixed = 17; break;
			case 0xdc: container = 1, lenw = 2; break;
			case 0xdd: container = 1, lenw = 4; break;
			case 0xde: container = 2, lenw = 2; break;
			case 0xdf: container = 2, lenw = 4; break;
			default:
				return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "invalid msgpack byte 0x%02x", b);
			}
		}
		if (lenw != 0) {
			if ((size_t)(end - p) < lenw)
				return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "truncated msgpack: a length field is cut off");
			uint64_t l = be(p, lenw);
			p += lenw;
			if (container)
				n = l;
			else
				fixed += l;
		}
		if (container) {
			uint64_t items = container == 2 ? n * 2 : n;
			if (items > (uint64_t)(end - p))
				return proto_fail(e, CUEQ_ERR_BAD_REQUEST,
						  "msgpack %s declares %llu entries but only %zu bytes follow",
						  container == 2 ? "map" : "array", (unsigned long long)n,
						  (size_t)(end - p));
			if (items == 0)
				continue;
			if (depth >= max_depth)
				return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "msgpack nested deeper than %u levels",
						  max_depth);
			stack[depth++] = remaining;
			remaining = items;
		} else {
			if (fixed > (size_t)(end - p))
				return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "truncated msgpack: a value runs past the end");
			p += fixed;
		}
	}
	if (p != end)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "%zu stray bytes after the msgpack map",
				  (size_t)(end - p));
	return CUEQ_OK;
}

int proto_decode(const void *buf, size_t len, msgpack_unpacked *up, proto_error *e)
{
	size_t off = 0;
	int rc;

	msgpack_unpacked_init(up);
	if ((rc = proto_scan(buf, len, PROTO_MAX_DEPTH, e)) != CUEQ_OK)
		return rc;
	if (msgpack_unpack_next(up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "message is not one complete msgpack value");
	if (up->data.type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "message must be a msgpack map");
	return CUEQ_OK;
}

const msgpack_object *proto_get(const msgpack_object *map, const char *key)
{
	size_t kl = strlen(key);
	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
		    memcmp(k->via.str.ptr, key, kl) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

/* Looks key up; *v is NULL when absent (an error only if required).
 * A nil value counts as absent. */
static int field(const msgpack_object *map, const char *key, bool required,
		 const msgpack_object **v, proto_error *e)
{
	*v = proto_get(map, key);
	if (*v != NULL && (*v)->type == MSGPACK_OBJECT_NIL)
		*v = NULL;
	if (*v == NULL && required)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "missing field '%s'", key);
	return CUEQ_OK;
}

size_t proto_utf8_prefix(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (len == 0 || i + len > n || (len == 2 && c < 0xc2))
			return i;
		uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond Unicode */
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += len;
	}
	return i;
}

static int text(const msgpack_object *map, const char *key, bool required, size_t max,
		bool allow_bin, const char **s, size_t *n, proto_error *e)
{
	const msgpack_object *v;
	int rc = field(map, key, required, &v, e);
	if (rc != CUEQ_OK || v == NULL)
		return rc;
	if (v->type == MSGPACK_OBJECT_STR) {
		if (proto_utf8_prefix(v->via.str.ptr, v->via.str.size) != v->via.str.size)
			return proto_fail(e, CUEQ_ERR_BAD_REQUEST,
					  "field '%s' is a string that is not valid UTF-8: send bytes as bin", key);
		*s = v->via.str.ptr, *n = v->via.str.size;
	} else if (allow_bin && v->type == MSGPACK_OBJECT_BIN) {
		*s = v->via.bin.ptr, *n = v->via.bin.size;
	} else {
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' must be a %s", key,
				  allow_bin ? "string or binary" : "string");
	}
	if (*n > max)
		return proto_fail(e, CUEQ_ERR_TOO_LARGE, "field '%s' is %zu bytes; the limit is %zu", key,
				  *n, max);
	return CUEQ_OK;
}

int proto_str(const msgpack_object *map, const char *key, bool required, size_t max,
	      const char **s, size_t *n, proto_error *e)
{
	return text(map, key, required, max, false, s, n, e);
}

int proto_bytes(const msgpack_object *map, const char *key, bool required, size_t max,
		const char **s, size_t *n, proto_error *e)
{
	return text(map, key, required, max, true, s, n, e);
}

int proto_uint(const msgpack_object *map, const char *key, bool required, uint64_t min,
	       uint64_t max, uint64_t *out, proto_error *e)
{
	const msgpack_object *v;
	int rc = field(map, key, required, &v, e);
	if (rc != CUEQ_OK || v == NULL)
		return rc;
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 < min || v->via.u64 > max)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' must be an integer from %llu to %llu",
				  key, (unsigned long long)min, (unsigned long long)max);
	*out = v->via.u64;
	return CUEQ_OK;
}

int proto_int(const msgpack_object *map, const char *key, bool required, int64_t min, int64_t max,
	      int64_t *out, proto_error *e)
{
	const msgpack_object *v;
	int rc = field(map, key, required, &v, e);
	if (rc != CUEQ_OK || v == NULL)
		return rc;
	int64_t x = 0;
	bool is_int = true;
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
		x = (int64_t)v->via.u64;
	else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		x = v->via.i64;
	else
		is_int = false;
	if (!is_int || x < min || x > max)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' must be an integer from %lld to %lld",
				  key, (long long)min, (long long)max);
	*out = x;
	return CUEQ_OK;
}

int proto_bool(const msgpack_object *map, const char *key, bool required, bool *out,
	       proto_error *e)
{
	const msgpack_object *v;
	int rc = field(map, key, required, &v, e);
	if (rc != CUEQ_OK || v == NULL)
		return rc;
	if (v->type != MSGPACK_OBJECT_BOOLEAN)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' must be true or false", key);
	*out = v->via.boolean;
	return CUEQ_OK;
}

int proto_array(const msgpack_object *map, const char *key, bool required, size_t min,
		size_t max, const msgpack_object_array **out, proto_error *e)
{
	const msgpack_object *v;
	int rc = field(map, key, required, &v, e);
	if (rc != CUEQ_OK || v == NULL)
		return rc;
	if (v->type != MSGPACK_OBJECT_ARRAY)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' must be an array", key);
	if (v->via.array.size < min || v->via.array.size > max)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' must hold %zu to %zu entries, not %u",
				  key, min, max, v->via.array.size);
	*out = &v->via.array;
	return CUEQ_OK;
}

static const char *const state_names[] = {
	[CUEQ_SCHEDULED] = "scheduled", [CUEQ_READY] = "ready", [CUEQ_LEASED] = "leased",
	[CUEQ_SUCCEEDED] = "succeeded", [CUEQ_DEAD] = "dead",	[CUEQ_CANCELLED] = "cancelled",
};

const char *proto_state_name(int state)
{
	if (state < 0 || state > CUEQ_CANCELLED)
		return NULL;
	return state_names[state];
}

int proto_state_parse(const char *s, size_t n)
{
	for (int i = 0; i <= CUEQ_CANCELLED; i++)
		if (strlen(state_names[i]) == n && memcmp(state_names[i], s, n) == 0)
			return i;
	return -1;
}

bool proto_queue_ok(const char *s, size_t n)
{
	if (n == 0 || n > PROTO_MAX_QUEUE)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

void proto_id_fmt(uint64_t v, char out[PROTO_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = PROTO_ID_LEN - 1; i >= 0; i--, v >>= 4)
		out[i] = hex[v & 15];
	out[PROTO_ID_LEN] = '\0';
}

bool proto_id_parse(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n != PROTO_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		v = (v << 4) | (uint64_t)d;
	}
	*out = v;
	return true;
}

int proto_id(const msgpack_object *map, const char *key, bool required, uint64_t *out,
	     proto_error *e)
{
	const char *s = NULL;
	size_t n = 0;
	int rc = proto_str(map, key, required, 64, &s, &n, e);
	if (rc != CUEQ_OK || s == NULL)
		return rc;
	if (!proto_id_parse(s, n, out))
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' must be %d hex digits, got '%.*s'",
				  key, PROTO_ID_LEN, (int)(n > 40 ? 40 : n), s);
	return CUEQ_OK;
}

uint64_t proto_hash(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

int64_t proto_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t proto_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool proto_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	int64_t total = 0;

	if (s == NULL || *s == '\0')
		return false;
	if (strcmp(s, "0") == 0) { /* the one number that needs no unit */
		*ms = 0;
		return true;
	}
	while (*s != '\0') { /* one or more NUMBER UNIT terms: "1h30m" */
		int64_t v = 0, f = 0;
		size_t digits = 0, ulen = 0;
		for (; s[digits] >= '0' && s[digits] <= '9'; digits++) {
			if (v > (INT64_MAX - 9) / 10)
				return false;
			v = v * 10 + (s[digits] - '0');
		}
		if (digits == 0)
			return false;
		s += digits;
		while (s[ulen] >= 'a' && s[ulen] <= 'z')
			ulen++;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strlen(units[i].unit) == ulen && strncmp(units[i].unit, s, ulen) == 0)
				f = units[i].ms;
		if (f == 0 || v > (INT64_MAX - total) / f)
			return false;
		total += v * f;
		s += ulen;
	}
	*ms = total;
	return true;
}

int proto_envelope(const msgpack_object *root, struct proto_envelope *env, proto_error *err)
{
	uint64_t v = 0;
	*env = (struct proto_envelope){0};
	if (proto_bytes(root, "rid", true, PROTO_MAX_RID, &env->rid, &env->rid_len, err) != CUEQ_OK ||
	    env->rid_len == 0) {
		env->rid = NULL;
		env->rid_len = 0;
		if (err->code == CUEQ_OK)
			proto_fail(err, CUEQ_ERR_BAD_REQUEST, "field 'rid' must not be empty");
		err->code = CUEQ_ERR_BAD_REQUEST;
		return err->code;
	}
	env->rid_bin = proto_get(root, "rid")->type == MSGPACK_OBJECT_BIN;
	if (proto_bytes(root, "cid", false, PROTO_MAX_RID, &env->cid, &env->cid_len, err) != CUEQ_OK ||
	    (env->cid != NULL && env->cid_len == 0)) {
		if (err->code == CUEQ_OK)
			proto_fail(err, CUEQ_ERR_BAD_REQUEST, "field 'cid' must not be empty");
		err->code = CUEQ_ERR_BAD_REQUEST;
		return err->code;
	}
	if (proto_uint(root, "v", true, 0, UINT32_MAX, &v, err) != CUEQ_OK || v != PROTO_VERSION) {
		if (err->code == CUEQ_OK)
			proto_fail(err, CUEQ_ERR_BAD_REQUEST,
				   "protocol version %llu is not spoken here; this broker speaks %d",
				   (unsigned long long)v, PROTO_VERSION);
		return err->code;
	}
	if (proto_str(root, "op", true, 64, &env->op, &env->op_len, err) != CUEQ_OK) {
		err->code = CUEQ_ERR_BAD_REQUEST;
		return err->code;
	}
	return CUEQ_OK;
}
