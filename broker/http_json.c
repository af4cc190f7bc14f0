/*
 * http_json.c - msgpack <-> JSON for the HTTP face (http_json.h).
 */
#include "http_json.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *bytes_text(const char *p, size_t n)
{
	return json_stringn(p, n); /* NULL when not valid UTF-8 */
}

static json_t *base64_of(const void *p, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *b = malloc(cap);
	if (b == NULL)
		return NULL;
	sodium_bin2base64(b, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
	json_t *s = json_string(b);
	free(b);
	return s;
}

json_t *hj_value(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR: {
		json_t *s = bytes_text(o->via.str.ptr, o->via.str.size);
		return s != NULL ? s : base64_of(o->via.str.ptr, o->via.str.size);
	}
	case MSGPACK_OBJECT_BIN: { /* in an array there is no key to rename */
		json_t *s = bytes_text(o->via.bin.ptr, o->via.bin.size);
		return s != NULL ? s : base64_of(o->via.bin.ptr, o->via.bin.size);
	}
	case MSGPACK_OBJECT_ARRAY: {
		json_t *a = json_array();
		for (uint32_t i = 0; a != NULL && i < o->via.array.size; i++)
			if (json_array_append_new(a, hj_value(&o->via.array.ptr[i])) != 0) {
				json_decref(a);
				a = NULL;
			}
		return a;
	}
	case MSGPACK_OBJECT_MAP: {
		json_t *m = json_object();
		for (uint32_t i = 0; m != NULL && i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR)
				continue;
			if (hj_set(m, kv->key.via.str.ptr, kv->key.via.str.size, &kv->val) != 0) {
				json_decref(m);
				m = NULL;
			}
		}
		return m;
	}
	default:
		return json_null();
	}
}

int hj_set(json_t *obj, const char *key, size_t klen, const msgpack_object *v)
{
	char k[160];
	if (klen + sizeof("_base64") > sizeof(k) || memchr(key, '\0', klen) != NULL)
		return 0; /* no key of the protocol is so long: not ours to show */
	memcpy(k, key, klen);
	k[klen] = '\0';
	json_t *j;
	if (v->type == MSGPACK_OBJECT_BIN &&
	    (j = bytes_text(v->via.bin.ptr, v->via.bin.size)) == NULL) {
		memcpy(k + klen, "_base64", sizeof("_base64"));
		j = base64_of(v->via.bin.ptr, v->via.bin.size);
	} else if (v->type != MSGPACK_OBJECT_BIN) {
		j = hj_value(v);
	}
	return j != NULL && json_object_set_new(obj, k, j) == 0 ? 0 : -1;
}

json_t *hj_reply(const msgpack_object *map)
{
	static const char *const envelope[] = {"v", "rid", "ok", "err", "msg"};
	json_t *m = json_object();
	if (m == NULL || map->type != MSGPACK_OBJECT_MAP)
		return m;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue;
		bool skip = false;
		for (size_t e = 0; e < sizeof(envelope) / sizeof(*envelope) && !skip; e++)
			skip = kv->key.via.str.size == strlen(envelope[e]) &&
			       memcmp(kv->key.via.str.ptr, envelope[e], kv->key.via.str.size) == 0;
		if (!skip && hj_set(m, kv->key.via.str.ptr, kv->key.via.str.size, &kv->val) != 0) {
			json_decref(m);
			return NULL;
		}
	}
	return m;
}

static int pack_pair(msgpack_packer *pk, const char *key, const json_t *v, char *err,
		     size_t errlen)
{
	size_t kl = strlen(key);
	static const char sfx[] = "_base64";
	if (kl > sizeof(sfx) - 1 && strcmp(key + kl - (sizeof(sfx) - 1), sfx) == 0) {
		if (!json_is_string(v)) {
			snprintf(err, errlen, "'%s' must be a string of base64", key);
			return -1;
		}
		const char *b = json_string_value(v);
		size_t bl = json_string_length(v), n = 0;
		unsigned char *bin = malloc(bl / 4 * 3 + 3);
		if (bin == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (sodium_base642bin(bin, bl / 4 * 3 + 3, b, bl, "\r\n", &n, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0) {
			free(bin);
			snprintf(err, errlen, "'%s' is not base64 (RFC 4648, with padding)", key);
			return -1;
		}
		msgpack_pack_str(pk, kl - (sizeof(sfx) - 1));
		msgpack_pack_str_body(pk, key, kl - (sizeof(sfx) - 1));
		msgpack_pack_bin(pk, n);
		msgpack_pack_bin_body(pk, bin, n);
		free(bin);
		return 0;
	}
	msgpack_pack_str(pk, kl);
	msgpack_pack_str_body(pk, key, kl);
	return hj_pack(pk, v, err, errlen);
}

int hj_pack_pairs(msgpack_packer *pk, const json_t *obj, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v)
		if (pack_pair(pk, key, v, err, errlen) != 0)
			return -1;
	return 0;
}

int hj_pack(msgpack_packer *pk, const json_t *v, char *err, size_t errlen)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, json_object_size(v));
		return hj_pack_pairs(pk, v, err, errlen);
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(v));
		for (size_t i = 0; i < json_array_size(v); i++)
			if (hj_pack(pk, json_array_get(v, i), err, errlen) != 0)
				return -1;
		return 0;
	case JSON_STRING:
		msgpack_pack_str(pk, json_string_length(v));
		msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER:
		if (json_integer_value(v) >= 0)
			msgpack_pack_uint64(pk, (uint64_t)json_integer_value(v));
		else
			msgpack_pack_int64(pk, json_integer_value(v));
		return 0;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(v));
		return 0;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		return 0;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		return 0;
	case JSON_NULL:
	default:
		msgpack_pack_nil(pk);
		return 0;
	}
}

char *hj_dump(const json_t *v, size_t *len)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s == NULL)
		return NULL;
	size_t n = strlen(s);
	char *out = realloc(s, n + 2);
	if (out == NULL) {
		free(s);
		return NULL;
	}
	out[n] = '\n';
	out[n + 1] = '\0';
	*len = n + 1;
	return out;
}
