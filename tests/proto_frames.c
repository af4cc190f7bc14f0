/*
 * proto_frames.c - valid frames for the codec tests: requests and a reply
 * that together use every msgpack type and width the codec may meet, each
 * in a heap buffer of exactly its size so ASan sees any read past the end.
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

void frame_free(frame *f)
{
	free(f->buf);
	f->buf = NULL;
	f->len = 0;
}

/* Copies an sbuffer into an exactly sized heap frame. */
frame frame_take(msgpack_sbuffer *sb)
{
	frame f = { malloc(sb->size ? sb->size : 1), sb->size };
	assert_non_null(f.buf);
	memcpy(f.buf, sb->data, sb->size);
	msgpack_sbuffer_destroy(sb);
	return f;
}

void pack_kstr(msgpack_packer *pk, const char *k, const char *v)
{
	msgpack_pack_str(pk, strlen(k));
	msgpack_pack_str_body(pk, k, strlen(k));
	msgpack_pack_str(pk, strlen(v));
	msgpack_pack_str_body(pk, v, strlen(v));
}

void pack_key(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str(pk, strlen(k));
	msgpack_pack_str_body(pk, k, strlen(k));
}

frame frame_ping(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	pack_key(&pk, "v");
	msgpack_pack_uint8(&pk, 1);
	pack_kstr(&pk, "op", "ping");
	pack_key(&pk, "rid");
	msgpack_pack_bin(&pk, 8);
	msgpack_pack_bin_body(&pk, "rid-0001", 8);
	return frame_take(&sb);
}

frame frame_push(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	pack_key(&pk, "v");
	msgpack_pack_uint64(&pk, 1);
	pack_kstr(&pk, "op", "push");
	pack_kstr(&pk, "rid", "0123456789abcdef0123");
	pack_key(&pk, "jobs");
	msgpack_pack_array(&pk, 3);
	for (int i = 0; i < 3; i++) {
		msgpack_pack_map(&pk, 6);
		pack_kstr(&pk, "queue", "emails.send");
		pack_key(&pk, "payload");
		msgpack_pack_bin(&pk, 12);
		msgpack_pack_bin_body(&pk, "hello world!", 12);
		pack_key(&pk, "priority");
		msgpack_pack_int16(&pk, (int16_t)(-5 * i));
		pack_key(&pk, "max_attempts");
		msgpack_pack_uint16(&pk, 300);
		pack_key(&pk, "lease_ms");
		msgpack_pack_uint32(&pk, 30000);
		pack_key(&pk, "delay_ms");
		msgpack_pack_uint64(&pk, (uint64_t)i * 70000);
	}
	return frame_take(&sb);
}

frame frame_ack(void)
{
	static const char text[300] = "a result longer than a fixstr and a str8 would hold";
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	pack_key(&pk, "v");
	msgpack_pack_uint8(&pk, 1);
	pack_kstr(&pk, "op", "ack");
	pack_kstr(&pk, "rid", "r");
	pack_kstr(&pk, "auth", "secret-token");
	pack_key(&pk, "items");
	msgpack_pack_array(&pk, 2);
	for (int i = 0; i < 2; i++) {
		msgpack_pack_map(&pk, 3);
		pack_kstr(&pk, "execution_id", "00000a0000000001");
		pack_kstr(&pk, "lease_token", "0000010000000007");
		pack_key(&pk, "result");
		if (i == 0)
			msgpack_pack_nil(&pk);
		else
			msgpack_pack_str(&pk, sizeof(text)), msgpack_pack_str_body(&pk, text, sizeof(text));
	}
	return frame_take(&sb);
}

/* A reply as deep as real ones get (execution -> history -> event), with
 * every msgpack type the codec may meet. */
frame frame_reply(void)
{
	static const char big[70000];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	pack_key(&pk, "v");
	msgpack_pack_uint8(&pk, 1);
	pack_key(&pk, "ok");
	msgpack_pack_true(&pk);
	pack_key(&pk, "execution");
	msgpack_pack_map(&pk, 9);
	pack_kstr(&pk, "state", "leased");
	pack_key(&pk, "f32");
	msgpack_pack_float(&pk, 1.5f);
	pack_key(&pk, "f64");
	msgpack_pack_double(&pk, -2.25);
	pack_key(&pk, "neg");
	msgpack_pack_int64(&pk, INT64_MIN);
	pack_key(&pk, "u64");
	msgpack_pack_uint64(&pk, UINT64_MAX);
	pack_key(&pk, "ext");
	msgpack_pack_ext(&pk, 4, 7);
	msgpack_pack_ext_body(&pk, "abcd", 4);
	pack_key(&pk, "ext8");
	msgpack_pack_ext(&pk, 5, -1);
	msgpack_pack_ext_body(&pk, "abcde", 5);
	pack_key(&pk, "bin16");
	msgpack_pack_bin(&pk, 300);
	msgpack_pack_bin_body(&pk, big, 300);
	pack_key(&pk, "history");
	msgpack_pack_array(&pk, 2);
	for (int i = 0; i < 2; i++) {
		msgpack_pack_map(&pk, 3);
		pack_key(&pk, "at");
		msgpack_pack_uint64(&pk, 1764000000000ull + (uint64_t)i);
		pack_kstr(&pk, "event", i ? "claimed" : "pushed");
		pack_key(&pk, "detail");
		msgpack_pack_array(&pk, 2);
		msgpack_pack_false(&pk);
		msgpack_pack_map(&pk, 0);
	}
	pack_key(&pk, "str32");
	msgpack_pack_str(&pk, sizeof(big));
	msgpack_pack_str_body(&pk, big, sizeof(big));
	return frame_take(&sb);
}

frame frame_from_bytes(const void *b, size_t n)
{
	frame f = { malloc(n ? n : 1), n };
	assert_non_null(f.buf);
	memcpy(f.buf, b, n);
	return f;
}

/* Decodes f (scan and full decode) and checks the outcome. */

/* A map {"x": [[[... 1 ...]]]} with `arrays` nested arrays. */
frame frame_nested(unsigned arrays)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	pack_key(&pk, "x");
	for (unsigned i = 0; i < arrays; i++)
		msgpack_pack_array(&pk, 1);
	msgpack_pack_uint8(&pk, 1);
	return frame_take(&sb);
}
