/*
 * hostile_frames.c - hostile frames whose body is broken: empty, truncated,
 * random, nested too deep, declaring absurd counts, oversized (under and
 * over the transport limit), and with a bad header (v, op, rid).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostile.h"

/* ---- frames with a broken body ------------------------------------ */

void hostile_framing(ctx *x)
{
	static const unsigned char arr32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	static const unsigned char map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };
	static const unsigned char map32b[] = { 0xdf, 0x00, 0x00, 0x00, 0x03, 0xa1, 'v', 0x01 };
	static const unsigned char not_map[] = { 0x92, 0x01, 0x02 };
	static const unsigned char c1[] = { 0x81, 0xa1, 'v', 0xc1 };
	unsigned char deep[101];
	th_req q;

	hostile_expect(x, "empty message", "", 0, NULL, 0, "BAD_REQUEST", NULL);
	hostile_expect(x, "array32 of 4G with nothing after", arr32, sizeof(arr32), NULL, 0, "BAD_REQUEST", NULL);
	hostile_expect(x, "map32 of 4G with nothing after", map32, sizeof(map32), NULL, 0, "BAD_REQUEST", NULL);
	hostile_expect(x, "map32 of 3 with one entry", map32b, sizeof(map32b), NULL, 0, "BAD_REQUEST", NULL);
	hostile_expect(x, "array as the root", not_map, sizeof(not_map), NULL, 0, "BAD_REQUEST", NULL);
	hostile_expect(x, "byte 0xc1", c1, sizeof(c1), NULL, 0, "BAD_REQUEST", NULL);
	memset(deep, 0x91, 100);
	deep[100] = 0x01;
	hostile_expect(x, "100 nested arrays", deep, sizeof(deep), NULL, 0, "BAD_REQUEST", NULL);

	/* A valid header, then a field nested 100 deep. */
	hostile_begin(&q, "ping", 1);
	proto_key(th_pk(&q), "x");
	for (int i = 0; i < 100; i++)
		msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_nil(th_pk(&q));
	hostile_expect_req(x, "ping with a field nested 100 deep", &q, F_NO_RID, "BAD_REQUEST", NULL);

	/* A valid header, then jobs declared as 4G entries. */
	hostile_begin(&q, "push", 1);
	proto_key(th_pk(&q), "jobs");
	nng_msg_append(q.msg, arr32, sizeof(arr32));
	hostile_expect_req(x, "push with jobs array32 of 4G", &q, F_NO_RID, "BAD_REQUEST", NULL);
	hostile_begin(&q, "push", 1);
	proto_key(th_pk(&q), "jobs");
	nng_msg_append(q.msg, map32, sizeof(map32));
	hostile_expect_req(x, "push with jobs map32 of 4G", &q, F_NO_RID, "BAD_REQUEST", NULL);

	/* Truncations of a valid push. */
	hostile_begin(&q, "push", 1);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	proto_kv_cstr(th_pk(&q), "payload", "truncated");
	size_t len = nng_msg_len(q.msg);
	size_t cuts[] = { 1, 2, len / 3, len / 2, len - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		char what[64];
		snprintf(what, sizeof(what), "push truncated to %zu of %zu bytes", cuts[i], len);
		hostile_expect(x, what, nng_msg_body(q.msg), cuts[i], NULL, 0, "BAD_REQUEST", NULL);
	}
	th_req_free(&q);

	/* A valid ping with a byte after it. */
	hostile_begin(&q, "ping", 0);
	msgpack_pack_nil(th_pk(&q));
	hostile_expect_req(x, "ping with a trailing byte", &q, F_NO_RID, "BAD_REQUEST", NULL);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

void hostile_random(ctx *x)
{
	unsigned char buf[512];
	for (int i = 0; i < 300; i++) {
		size_t len = 1 + (size_t)(rnd() % sizeof(buf));
		char what[64];
		for (size_t k = 0; k < len; k++)
			buf[k] = (unsigned char)rnd();
		/* Half of them look like a map at first, to get further in. */
		if (i % 2)
			buf[0] = (unsigned char)(0x81 + rnd() % 15);
		snprintf(what, sizeof(what), "random frame #%d (%zu bytes)", i, len);
		hostile_expect(x, what, buf, len, NULL, 0, "BAD_REQUEST", NULL);
	}
}

/* ---- oversized ------------------------------------------------------ */

static void push_with_payload(th_req *q, size_t n)
{
	char *p = calloc(1, n);
	if (p == NULL)
		fail_msg("out of memory");
	memset(p, 'z', n);
	hostile_begin(q, "push", 1);
	proto_key(th_pk(q), "jobs");
	msgpack_pack_array(th_pk(q), 1);
	msgpack_pack_map(th_pk(q), 2);
	proto_kv_cstr(th_pk(q), "queue", "pre");
	proto_kv_bin(th_pk(q), "payload", p, n);
	free(p);
}

/* Sends one SP/TCP REQ message with body buf on a raw socket (handshake:
 * "\0SP\0", protocol 0x30 REQ; frame: 64-bit big-endian length, 32-bit
 * request ID, body) and reports whether the peer then closed the
 * connection without a reply within 10 s. */
static bool oversized_frame_closes(int port, const void *buf, size_t len)
{
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 10};
	uint8_t head[12], peer[8], c;
	bool closed = false;
	uint64_t n = len + 4;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return false;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)(n >> (56 - 8 * i));
	head[8] = 0x80, head[9] = 0, head[10] = 0, head[11] = 1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    send(fd, hello, 8, MSG_NOSIGNAL) != 8 || recv(fd, peer, 8, MSG_WAITALL) != 8)
		goto out;
	/* the broker may close while the body is still being written */
	if (send(fd, head, sizeof(head), MSG_NOSIGNAL) == (ssize_t)sizeof(head)) {
		const uint8_t *p = buf;
		size_t left = len;
		while (left > 0) {
			ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
			if (w <= 0)
				break;
			p += w, left -= (size_t)w;
		}
	}
	ssize_t r = recv(fd, &c, 1, 0);
	closed = r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE));
out:
	close(fd);
	return closed;
}

void hostile_sizes(ctx *x)
{
	th_req q;
	char *big = malloc(70000);

	push_with_payload(&q, (1u << 20) + 1);
	hostile_expect_req(x, "payload of 1 MiB + 1", &q, 0, "TOO_LARGE", NULL);
	push_with_payload(&q, 5u << 20);
	hostile_expect_req(x, "5 MiB frame", &q, F_NO_RID, "TOO_LARGE", NULL);

	if (big == NULL)
		fail_msg("out of memory");
	memset(big, 'r', 70000);
	hostile_begin(&q, "ack", 1);
	proto_key(th_pk(&q), "items");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 3);
	proto_kv_cstr(th_pk(&q), "execution_id", x->pre_id);
	proto_kv_cstr(th_pk(&q), "lease_token", x->pre_tok);
	proto_kv_str(th_pk(&q), "result", big, 70000);
	hostile_expect_req(x, "ack with a 70000-byte result (live token)", &q, F_ITEM, "TOO_LARGE", NULL);
	free(big);

	/* Over the transport limit (8 MiB): the broker must close the
	 * connection without answering.  Sent over a plain TCP socket speaking
	 * the SP framing, because nng 1.5.2's REQ socket can hang in nng_close
	 * after its peer dropped it in the middle of a large send. */
	push_with_payload(&q, 9u << 20);
	x->cases++;
	if (!oversized_frame_closes(x->b->port, nng_msg_body(q.msg), nng_msg_len(q.msg)))
		hostile_failed(x, "9 MiB frame: the broker neither closed the connection nor refused it");
	th_req_free(&q);
}

/* ---- bad headers ---------------------------------------------------- */

/* A ping frame with a chosen header: v_kind 0 none, 1 uint 1, 2 uint 2,
 * 3 str "1", 4 int -1; op_kind 0 none, 1 "ping", 2 int 7, 3 "", 4
 * "frobnicate"; rid_kind 0 none, 1 "hrid-N", 2 "", 3 65 bytes, 4 int. */
static void header_case(ctx *x, const char *what, int v_kind, int op_kind, int rid_kind,
			const char *c1, const char *c2)
{
	static int serial;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char rid[80];
	const char *echo = NULL;

	snprintf(rid, sizeof(rid), "hrid-%d", serial++);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, (v_kind != 0) + (op_kind != 0) + (rid_kind != 0));
	if (v_kind != 0) {
		proto_key(&pk, "v");
		if (v_kind == 1)
			msgpack_pack_uint8(&pk, 1);
		else if (v_kind == 2)
			msgpack_pack_uint8(&pk, 2);
		else if (v_kind == 3)
			msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "1", 1);
		else
			msgpack_pack_int8(&pk, -1);
	}
	if (op_kind != 0) {
		static const char *const ops[] = { NULL, "ping", NULL, "", "frobnicate" };
		proto_key(&pk, "op");
		if (op_kind == 2)
			msgpack_pack_uint8(&pk, 7);
		else
			msgpack_pack_str(&pk, strlen(ops[op_kind])),
				msgpack_pack_str_body(&pk, ops[op_kind], strlen(ops[op_kind]));
	}
	if (rid_kind != 0) {
		proto_key(&pk, "rid");
		if (rid_kind == 1) {
			msgpack_pack_str(&pk, strlen(rid));
			msgpack_pack_str_body(&pk, rid, strlen(rid));
			echo = rid;
		} else if (rid_kind == 2) {
			msgpack_pack_str(&pk, 0);
		} else if (rid_kind == 3) {
			char long_rid[65];
			memset(long_rid, 'r', sizeof(long_rid));
			msgpack_pack_str(&pk, sizeof(long_rid));
			msgpack_pack_str_body(&pk, long_rid, sizeof(long_rid));
		} else {
			msgpack_pack_uint16(&pk, 4242);
		}
	}
	hostile_expect(x, what, sb.data, sb.size, echo, 0, c1, c2);
	msgpack_sbuffer_destroy(&sb);
}

void hostile_headers(ctx *x)
{
	header_case(x, "v = 2", 2, 1, 1, "BAD_REQUEST", NULL);
	header_case(x, "v missing", 0, 1, 1, "BAD_REQUEST", NULL);
	header_case(x, "v as a string", 3, 1, 1, "BAD_REQUEST", NULL);
	header_case(x, "v = -1", 4, 1, 1, "BAD_REQUEST", NULL);
	header_case(x, "op as an int", 1, 2, 1, "BAD_REQUEST", NULL);
	header_case(x, "op missing", 1, 0, 1, "BAD_REQUEST", NULL);
	header_case(x, "op empty", 1, 3, 1, "BAD_REQUEST", NULL);
	header_case(x, "unknown op", 1, 4, 1, "BAD_REQUEST", NULL);
	header_case(x, "rid missing", 1, 1, 0, "BAD_REQUEST", NULL);
	header_case(x, "rid empty", 1, 1, 2, "BAD_REQUEST", NULL);
	header_case(x, "rid of 65 bytes", 1, 1, 3, "BAD_REQUEST", "TOO_LARGE");
	header_case(x, "rid as an int", 1, 1, 4, "BAD_REQUEST", NULL);
}

