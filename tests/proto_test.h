/*
 * proto_test.h - what the codec test files share: valid frames to start
 * from (proto_frames.c) and the mutation loop (proto_fuzz.c).
 */
#ifndef CUEQ_PROTO_TEST_H
#define CUEQ_PROTO_TEST_H

#include <stddef.h>

#include "proto.h"

/* A frame in a heap buffer of exactly len bytes. */
typedef struct frame {
	unsigned char *buf;
	size_t len;
} frame;

void frame_free(frame *f);
/* Moves an sbuffer's bytes into an exactly sized frame (destroys sb). */
frame frame_take(msgpack_sbuffer *sb);
frame frame_from_bytes(const void *b, size_t n);

/* Packs a str key, and a str key with a str value. */
void pack_key(msgpack_packer *pk, const char *k);
void pack_kstr(msgpack_packer *pk, const char *k, const char *v);

/* Valid frames: a ping, a push of three jobs, an ack of two items, a get
 * reply with every msgpack type, and {"x": [[...1...]]} with `arrays`
 * nested arrays (root map included, arrays + 1 levels). */
frame frame_ping(void);
frame frame_push(void);
frame frame_ack(void);
frame frame_reply(void);
frame frame_nested(unsigned arrays);

/* The cmocka test of proto_fuzz.c. */
void test_mutation_fuzz(void **state);

#endif /* CUEQ_PROTO_TEST_H */
