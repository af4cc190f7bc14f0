/*
 * test_replay.c - request IDs make retries safe (PROTOCOL.md, "Request
 * IDs").  Over the raw protocol, the very same request bytes are sent
 * twice, as a client does after a lost reply: the broker must answer with
 * the remembered reply and apply nothing twice.  A new request ID with the
 * same body is a new request (IDs, not bodies, dedupe).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static th_bytes push_req(const char *queue, const char *payload)
{
	th_req q;
	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_bin(th_pk(&q), "payload", payload, strlen(payload));
	return th_req_keep(&q);
}

/* Sends b, expects ok, returns the first result's (or job's) field. */
static void call_ok(th_raw *r, const th_bytes *b, th_reply *rep)
{
	int rv = th_raw_call(r, b->p, b->n, rep);
	if (rv != 0)
		fail_msg("no reply (%d)", rv);
	if (!rep->ok)
		fail_msg("refused: %s %s", rep->err, rep->msg);
}

/* A copy of rep's bytes (free its p), to compare a repeat's answer with. */
static th_bytes kept(const th_reply *rep)
{
	th_bytes k = { malloc(rep->len ? rep->len : 1), rep->len };
	assert_non_null(k.p);
	memcpy(k.p, rep->buf, rep->len);
	return k;
}

static void expect_same_bytes(const th_reply *rep, const th_bytes *first)
{
	assert_int_equal(rep->len, first->n);
	assert_memory_equal(rep->buf, first->p, first->n);
}

/* Claims from queue until a job comes back (10 s at most): its backoff or
 * lease is running out. */
static void claim_when_back(th_raw *r, const char *queue, char id[PROTO_ID_LEN + 1],
			    char tok[PROTO_ID_LEN + 1], uint64_t *attempt)
{
	int64_t deadline = th_now_ms() + 10000;
	int rc;
	while ((rc = th_raw_claim(r, queue, 0, 1000, id, tok, attempt)) == 1 &&
	       th_now_ms() < deadline)
		;
	assert_int_equal(rc, 0);
}

static void result_id(const th_reply *rep, const char *array, char id[PROTO_ID_LEN + 1])
{
	const msgpack_object *m = th_item(rep->root, array, 0);
	if (m == NULL || !th_str(m, "execution_id", id, PROTO_ID_LEN + 1))
		fail_msg("reply has no %s[0].execution_id", array);
}

static void open_raw(th_broker *b, th_raw *r)
{
	assert_int_equal(th_raw_open(r, b->url, 10000), 0);
}

static void test_push_replay(void **state)
{
	th_broker *b = *state;
	th_raw r, r2;
	th_reply rep;
	char id1[PROTO_ID_LEN + 1], id2[PROTO_ID_LEN + 1], id3[PROTO_ID_LEN + 1],
		id4[PROTO_ID_LEN + 1];
	th_counts c;
	th_bytes req = push_req("rp", "hello");

	open_raw(b, &r);
	call_ok(&r, &req, &rep);
	result_id(&rep, "results", id1);
	th_reply_free(&rep);
	call_ok(&r, &req, &rep);
	result_id(&rep, "results", id2);
	th_reply_free(&rep);
	assert_string_equal(id1, id2);
	assert_int_equal(th_raw_counts(&r, "rp", &c), 0);
	assert_int_equal(c.ready, 1);

	/* A retry arrives on a new connection after a reconnect: same answer. */
	open_raw(b, &r2);
	call_ok(&r2, &req, &rep);
	result_id(&rep, "results", id3);
	th_reply_free(&rep);
	assert_string_equal(id1, id3);
	assert_int_equal(th_raw_counts(&r2, "rp", &c), 0);
	assert_int_equal(c.ready, 1);
	th_raw_close(&r2);

	/* A new request ID with the same body is a second push. */
	th_bytes again = push_req("rp", "hello");
	call_ok(&r, &again, &rep);
	result_id(&rep, "results", id4);
	th_reply_free(&rep);
	assert_string_not_equal(id1, id4);
	assert_int_equal(th_raw_counts(&r, "rp", &c), 0);
	assert_int_equal(c.ready, 2);

	free(req.p);
	free(again.p);
	th_raw_close(&r);
}

static th_bytes finish_req(const char *op, const char *id, const char *token, const char *text)
{
	th_req q;
	assert_int_equal(th_req_begin(&q, op, 1), 0);
	proto_key(th_pk(&q), "items");
	msgpack_pack_array(th_pk(&q), 1);
	bool ack = strcmp(op, "ack") == 0;
	msgpack_pack_map(th_pk(&q), ack ? 3 : 4);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "lease_token", token);
	if (ack) {
		proto_kv_cstr(th_pk(&q), "result", text);
	} else {
		proto_kv_cstr(th_pk(&q), "error", text);
		proto_kv_uint(th_pk(&q), "retry_in_ms", 0);
	}
	return th_req_keep(&q);
}

static void expect_item_ok(const th_reply *rep)
{
	const msgpack_object *m = th_item(rep->root, "results", 0);
	bool ok = false;
	char err[32] = "";
	if (m == NULL || !th_bool(m, "ok", &ok))
		fail_msg("reply without results[0].ok");
	th_str(m, "err", err, sizeof(err));
	if (!ok)
		fail_msg("item refused: %s", err);
}

static size_t count_events(const msgpack_object *exe, const char *event)
{
	size_t n = 0;
	for (size_t i = 0; i < th_count(exe, "history"); i++) {
		char ev[32];
		const msgpack_object *h = th_item(exe, "history", i);
		if (h != NULL && th_str(h, "event", ev, sizeof(ev)) && strcmp(ev, event) == 0)
			n++;
	}
	return n;
}

static void test_ack_and_nack_replay(void **state)
{
	th_broker *b = *state;
	th_raw r;
	th_reply rep;
	const msgpack_object *exe;
	char id[PROTO_ID_LEN + 1], tok[PROTO_ID_LEN + 1], st[16];
	uint64_t attempt = 0, failures = 0;

	open_raw(b, &r);
	assert_int_equal(th_raw_push(&r, "ra", "x", 0, 5, id), 0);

	/* nack twice with one request ID: one failure. */
	assert_int_equal(th_raw_claim(&r, "ra", 0, 1000, id, tok, &attempt), 0);
	th_bytes nack = finish_req("nack", id, tok, "boom");
	call_ok(&r, &nack, &rep);
	expect_item_ok(&rep);
	th_reply_free(&rep);
	call_ok(&r, &nack, &rep);
	expect_item_ok(&rep);
	th_reply_free(&rep);
	assert_int_equal(th_raw_get(&r, id, &rep, &exe), 0);
	assert_true(th_uint(exe, "failures", &failures));
	assert_int_equal(failures, 1);
	assert_int_equal(count_events(exe, "nacked"), 1);
	th_reply_free(&rep);

	/* ack twice with one request ID: one success. */
	claim_when_back(&r, "ra", id, tok, &attempt);
	assert_int_equal(attempt, 2);
	th_bytes ack = finish_req("ack", id, tok, "fine");
	call_ok(&r, &ack, &rep);
	expect_item_ok(&rep);
	th_reply_free(&rep);
	call_ok(&r, &ack, &rep);
	expect_item_ok(&rep);
	th_reply_free(&rep);
	assert_int_equal(th_raw_get(&r, id, &rep, &exe), 0);
	assert_true(th_str(exe, "state", st, sizeof(st)));
	assert_string_equal(st, "succeeded");
	assert_int_equal(count_events(exe, "succeeded"), 1);
	assert_true(th_uint(exe, "failures", &failures));
	assert_int_equal(failures, 1);
	th_reply_free(&rep);

	free(nack.p);
	free(ack.p);
	th_raw_close(&r);
}

static void test_claim_replay(void **state)
{
	th_broker *b = *state;
	th_raw r;
	th_reply rep;
	th_req q;
	th_counts c;
	char id1[PROTO_ID_LEN + 1], id2[PROTO_ID_LEN + 1], t1[PROTO_ID_LEN + 1],
		t2[PROTO_ID_LEN + 1];

	open_raw(b, &r);
	assert_int_equal(th_raw_push(&r, "rc", "one", 0, 0, id1), 0);
	assert_int_equal(th_raw_push(&r, "rc", "two", 0, 0, id2), 0);
	assert_int_equal(th_req_begin(&q, "claim", 3), 0);
	proto_kv_cstr(th_pk(&q), "queue", "rc");
	proto_kv_uint(th_pk(&q), "max", 1);
	proto_kv_uint(th_pk(&q), "lease_ms", 60000);
	th_bytes claim = th_req_keep(&q);

	call_ok(&r, &claim, &rep);
	result_id(&rep, "jobs", id1);
	assert_true(th_str(th_item(rep.root, "jobs", 0), "lease_token", t1, sizeof(t1)));
	th_bytes first = kept(&rep);
	th_reply_free(&rep);
	call_ok(&r, &claim, &rep);
	result_id(&rep, "jobs", id2);
	assert_true(th_str(th_item(rep.root, "jobs", 0), "lease_token", t2, sizeof(t2)));
	/* The replayed claim returns the same lease, it does not take another,
	 * byte for byte (the broker keeps the leases it gave, not the reply) */
	assert_string_equal(id1, id2);
	assert_string_equal(t1, t2);
	expect_same_bytes(&rep, &first);
	th_reply_free(&rep);
	free(first.p);
	assert_int_equal(th_raw_counts(&r, "rc", &c), 0);
	assert_int_equal(c.leased, 1);
	assert_int_equal(c.ready, 1);

	/* once the lease ended, the repeat gives it no more (and takes none) */
	th_bytes ack = finish_req("ack", id1, t1, "done");
	call_ok(&r, &ack, &rep);
	expect_item_ok(&rep);
	th_reply_free(&rep);
	call_ok(&r, &claim, &rep);
	const msgpack_object *jobs = th_get(rep.root, "jobs");
	assert_non_null(jobs);
	assert_int_equal(jobs->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(jobs->via.array.size, 0);
	th_reply_free(&rep);
	assert_int_equal(th_raw_counts(&r, "rc", &c), 0);
	assert_int_equal(c.leased, 0);
	assert_int_equal(c.ready, 1);
	free(ack.p);
	free(claim.p);
	th_raw_close(&r);
}

/* A batch reply is remembered compressed: its replay must come back byte
 * for byte, and the request ID cannot be reused for another request. */
static void test_batch_replay_and_reused_id(void **state)
{
	th_broker *b = *state;
	th_raw r;
	th_reply rep1, rep2, rep3;
	th_counts c;
	th_req q;

	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 200);
	for (int i = 0; i < 200; i++) {
		char payload[32];
		snprintf(payload, sizeof(payload), "job %d", i);
		msgpack_pack_map(th_pk(&q), 2);
		proto_kv_cstr(th_pk(&q), "queue", "rb");
		proto_kv_bin(th_pk(&q), "payload", payload, strlen(payload));
	}
	th_bytes req = th_req_keep(&q);

	open_raw(b, &r);
	call_ok(&r, &req, &rep1);
	call_ok(&r, &req, &rep2);
	assert_int_equal(rep1.len, rep2.len);
	assert_memory_equal(rep1.buf, rep2.buf, rep1.len);
	assert_int_equal(th_count(rep1.root, "results"), 200);
	assert_int_equal(th_raw_counts(&r, "rb", &c), 0);
	assert_int_equal(c.ready, 200);

	/* Same request ID, other bytes: refused, nothing created. */
	((unsigned char *)req.p)[req.n - 1] ^= 1; /* last payload byte */
	assert_int_equal(th_raw_call(&r, req.p, req.n, &rep3), 0);
	assert_false(rep3.ok);
	assert_string_equal(rep3.err, "BAD_REQUEST");
	assert_non_null(strstr(rep3.msg, "request ID"));
	assert_int_equal(th_raw_counts(&r, "rb", &c), 0);
	assert_int_equal(c.ready, 200);

	th_reply_free(&rep1);
	th_reply_free(&rep2);
	th_reply_free(&rep3);
	free(req.p);
	th_raw_close(&r);
}

/* A nack resent after its execution was claimed again (the first reply
 * was lost) gets the first answer, not STALE_LEASE. */
static void test_nack_replay_after_reclaim(void **state)
{
	th_broker *b = *state;
	th_raw r;
	th_reply rep;
	char id[PROTO_ID_LEN + 1], tok[PROTO_ID_LEN + 1], id2[PROTO_ID_LEN + 1],
		tok2[PROTO_ID_LEN + 1];
	uint64_t attempt = 0;

	open_raw(b, &r);
	assert_int_equal(th_raw_push(&r, "rz", "x", 0, 5, id), 0);
	assert_int_equal(th_raw_claim(&r, "rz", 0, 1000, id, tok, &attempt), 0);
	th_bytes nack = finish_req("nack", id, tok, "boom");
	call_ok(&r, &nack, &rep);
	expect_item_ok(&rep);
	th_bytes first = kept(&rep);
	th_reply_free(&rep);
	claim_when_back(&r, "rz", id2, tok2, &attempt);
	assert_string_equal(id2, id);
	call_ok(&r, &nack, &rep);
	expect_item_ok(&rep);
	expect_same_bytes(&rep, &first);
	th_reply_free(&rep);
	free(first.p);
	free(nack.p);
	th_raw_close(&r);
}

/* A push of one job to queue under request ID rid; with retry_ttl_ms
 * when ttl is set. */
static th_bytes push_with_rid(const char *rid, const char *queue, const char *payload, bool ttl)
{
	th_req q;
	assert_int_equal(th_req_begin_rid(&q, "push", 1 + ttl, rid), 0);
	if (ttl)
		proto_kv_uint(th_pk(&q), "retry_ttl_ms", 60000);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_cstr(th_pk(&q), "payload", payload);
	return th_req_keep(&q);
}

/* A push remembered by its request ID (retry_ttl_ms) answers its repeat
 * byte for byte; the ID with other bytes is refused, with or without
 * retry_ttl_ms, and creates nothing. */
static void test_remembered_push_and_reused_id(void **state)
{
	th_broker *b = *state;
	th_raw r;
	th_reply rep;
	th_counts c;
	th_bytes first = push_with_rid("remembered-1", "rm", "a", true);
	th_bytes other = push_with_rid("remembered-1", "rm", "b", true);
	th_bytes plain = push_with_rid("remembered-1", "rm", "c", false);

	open_raw(b, &r);
	call_ok(&r, &first, &rep);
	th_bytes answer = kept(&rep);
	th_reply_free(&rep);
	call_ok(&r, &first, &rep);
	expect_same_bytes(&rep, &answer);
	th_reply_free(&rep);
	const th_bytes *bad[2] = { &other, &plain };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(th_raw_call(&r, bad[i]->p, bad[i]->n, &rep), 0);
		assert_false(rep.ok);
		assert_string_equal(rep.err, "BAD_REQUEST");
		th_reply_free(&rep);
	}
	/* and the first one's retry still gets its answer */
	call_ok(&r, &first, &rep);
	expect_same_bytes(&rep, &answer);
	th_reply_free(&rep);
	assert_int_equal(th_raw_counts(&r, "rm", &c), 0);
	assert_int_equal(c.ready, 1);
	free(answer.p);
	free(first.p);
	free(other.p);
	free(plain.p);
	th_raw_close(&r);
}

/* A claim "rid 1" of one client ID on connection r: the execution it got
 * ("" for none). */
static void claim_as(th_raw *r, const char *cid, char id[PROTO_ID_LEN + 1])
{
	th_req q;
	th_reply rep;
	assert_int_equal(th_req_begin_cid(&q, "claim", 3, "1", cid), 0);
	proto_kv_bool(th_pk(&q), "detach", true);
	proto_kv_cstr(th_pk(&q), "queue", "scoped");
	proto_kv_uint(th_pk(&q), "max", 1);
	assert_int_equal(th_req_call(r, &q, &rep), 0);
	assert_true(rep.ok);
	id[0] = '\0';
	if (th_count(rep.root, "jobs") == 1)
		assert_true(th_str(th_item(rep.root, "jobs", 0), "execution_id", id, PROTO_ID_LEN + 1));
	th_reply_free(&rep);
}

/* Request IDs are the client's own: two clients (by client ID, or by
 * connection when they send none) that both number a claim "1" get two
 * executions, never each other's answer; one client sending it again from
 * a new connection gets its first answer. */
static void test_request_ids_are_per_client(void **state)
{
	th_broker *b = *state;
	th_raw r1, r2, r3;
	char ids[4][PROTO_ID_LEN + 1], a[PROTO_ID_LEN + 1], c[PROTO_ID_LEN + 1], d[PROTO_ID_LEN + 1];
	char again[PROTO_ID_LEN + 1], e[PROTO_ID_LEN + 1];

	assert_int_equal(th_raw_open(&r1, b->url, 5000), 0);
	assert_int_equal(th_raw_open(&r2, b->url, 5000), 0);
	assert_int_equal(th_raw_open(&r3, b->url, 5000), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(th_raw_push(&r1, "scoped", "job", 0, 0, ids[i]), 0);
	claim_as(&r1, "client-a", a);
	claim_as(&r2, "client-b", c);
	assert_true(a[0] != '\0' && c[0] != '\0');
	assert_string_not_equal(a, c);
	/* no client ID: each connection is its own client */
	claim_as(&r1, NULL, d);
	claim_as(&r2, NULL, e);
	assert_true(d[0] != '\0' && e[0] != '\0');
	assert_string_not_equal(d, e);
	assert_string_not_equal(d, a);
	assert_string_not_equal(d, c);
	/* the same client ID from another connection: its own first answer */
	claim_as(&r3, "client-a", again);
	assert_string_equal(again, a);

	/* a push remembered on disk needs a client ID */
	th_req q;
	th_reply rep;
	assert_int_equal(th_req_begin_cid(&q, "push", 2, "p1", NULL), 0);
	proto_kv_uint(th_pk(&q), "retry_ttl_ms", 60000);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 1);
	proto_kv_cstr(th_pk(&q), "queue", "scoped");
	assert_int_equal(th_req_call(&r1, &q, &rep), 0);
	assert_false(rep.ok);
	assert_string_equal(rep.err, "BAD_REQUEST");
	assert_non_null(strstr(rep.msg, "cid"));
	th_reply_free(&rep);
	th_raw_close(&r1);
	th_raw_close(&r2);
	th_raw_close(&r3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_push_replay, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_request_ids_are_per_client, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_ack_and_nack_replay, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_claim_replay, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_nack_replay_after_reclaim, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_remembered_push_and_reused_id, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_batch_replay_and_reused_id, th_fixture_start,
						th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
