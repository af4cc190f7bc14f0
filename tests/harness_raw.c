/*
 * harness_raw.c - a raw protocol client for tests: an nng REQ socket that
 * sends whatever bytes a test gives it and decodes the reply with the
 * proto/ codec, plus the few common operations tests need to set up and
 * check state without going through the SDK.
 *
 * Automatic resend is off (a replayed request must be the test's choice),
 * and every receive is bounded by the socket's receive timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <nng/protocol/reqrep0/req.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int th_raw_open(th_raw *r, const char *url, int recv_timeout_ms)
{
	int rv;

	memset(r, 0, sizeof(*r));
	if ((rv = nng_req0_open(&r->s)) != 0) {
		fprintf(stderr, "harness: nng_req0_open: %s\n", nng_strerror(rv));
		return rv;
	}
	r->open = true;
	nng_socket_set_ms(r->s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(r->s, NNG_OPT_RECVTIMEO, recv_timeout_ms);
	nng_socket_set_ms(r->s, NNG_OPT_SENDTIMEO, recv_timeout_ms);
	nng_socket_set_ms(r->s, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(r->s, NNG_OPT_RECONNMAXT, 200);
	nng_socket_set_size(r->s, NNG_OPT_RECVMAXSZ, 0);
	if ((rv = nng_dial(r->s, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		fprintf(stderr, "harness: nng_dial %s: %s\n", url, nng_strerror(rv));
		th_raw_close(r);
		return rv;
	}
	return 0;
}

void th_raw_close(th_raw *r)
{
	if (r->open)
		nng_close(r->s);
	r->open = false;
}

static void copy_text(const msgpack_object *o, char *out, size_t size)
{
	size_t n = 0;
	if (o != NULL && o->type == MSGPACK_OBJECT_STR) {
		n = o->via.str.size < size - 1 ? o->via.str.size : size - 1;
		memcpy(out, o->via.str.ptr, n);
	}
	out[n] = '\0';
}

int th_raw_call(th_raw *r, const void *buf, size_t len, th_reply *rep)
{
	nng_msg *m;
	int rv;

	memset(rep, 0, sizeof(*rep));
	msgpack_unpacked_init(&rep->up);
	if ((rv = nng_msg_alloc(&m, len)) != 0)
		return rv;
	if (len > 0)
		memcpy(nng_msg_body(m), buf, len);
	if ((rv = nng_sendmsg(r->s, m, 0)) != 0) {
		nng_msg_free(m);
		return rv;
	}
	if ((rv = nng_recvmsg(r->s, &m, 0)) != 0)
		return rv;
	return th_reply_decode(m, rep);
}

int th_reply_decode(nng_msg *m, th_reply *rep)
{
	proto_error e;

	rep->len = nng_msg_len(m);
	rep->buf = malloc(rep->len ? rep->len : 1);
	if (rep->buf == NULL) {
		nng_msg_free(m);
		return NNG_ENOMEM;
	}
	memcpy(rep->buf, nng_msg_body(m), rep->len);
	nng_msg_free(m);
	msgpack_unpacked_destroy(&rep->up);
	if (proto_decode(rep->buf, rep->len, &rep->up, &e) != CUEQ_OK) {
		fprintf(stderr, "harness: undecodable reply (%zu bytes): %s\n", rep->len, e.msg);
		return -1;
	}
	rep->root = &rep->up.data;
	if (!th_bool(rep->root, "ok", &rep->ok)) {
		fprintf(stderr, "harness: reply without a boolean 'ok'\n");
		return -1;
	}
	copy_text(th_get(rep->root, "err"), rep->err, sizeof(rep->err));
	copy_text(th_get(rep->root, "msg"), rep->msg, sizeof(rep->msg));
	return 0;
}

void th_reply_free(th_reply *rep)
{
	msgpack_unpacked_destroy(&rep->up);
	free(rep->buf);
	rep->buf = NULL;
	rep->root = NULL;
}

int th_req_begin_auth(th_req *q, const char *op, size_t n_fields, const char *rid, const char *cid,
		      const char *auth)
{
	int rv;

	memset(q, 0, sizeof(*q));
	if ((rv = nng_msg_alloc(&q->msg, 0)) != 0)
		return rv;
	snprintf(q->rid, sizeof(q->rid), "%s", rid);
	proto_writer_init(&q->w, q->msg);
	proto_request_begin(&q->w.pk, op, q->rid, strlen(q->rid), cid, cid ? strlen(cid) : 0, auth,
			    n_fields);
	return 0;
}

int th_req_begin_cid(th_req *q, const char *op, size_t n_fields, const char *rid, const char *cid)
{
	return th_req_begin_auth(q, op, n_fields, rid, cid, NULL);
}

/* One client ID per test process: its request IDs are its own.  Made once
 * for all threads (the first requests may begin on several at once). */
static char test_cid[32];
static pthread_once_t test_cid_once = PTHREAD_ONCE_INIT;

static void make_test_cid(void)
{
	snprintf(test_cid, sizeof(test_cid), "test-%ld", (long)getpid());
}

int th_req_begin_rid(th_req *q, const char *op, size_t n_fields, const char *rid)
{
	pthread_once(&test_cid_once, make_test_cid);
	return th_req_begin_cid(q, op, n_fields, rid, test_cid);
}

int th_req_begin(th_req *q, const char *op, size_t n_fields)
{
	static atomic_uint counter;
	char rid[sizeof(q->rid)];

	snprintf(rid, sizeof(rid), "t%ld-%u", (long)getpid(), atomic_fetch_add(&counter, 1));
	return th_req_begin_rid(q, op, n_fields, rid);
}

msgpack_packer *th_pk(th_req *q)
{
	return &q->w.pk;
}

int th_req_call(th_raw *r, th_req *q, th_reply *rep)
{
	int rv;

	if (q->w.failed) {
		memset(rep, 0, sizeof(*rep));
		msgpack_unpacked_init(&rep->up);
		th_req_free(q);
		return NNG_ENOMEM;
	}
	rv = th_raw_call(r, nng_msg_body(q->msg), nng_msg_len(q->msg), rep);
	th_req_free(q);
	return rv;
}

void th_req_free(th_req *q)
{
	if (q->msg != NULL)
		nng_msg_free(q->msg);
	q->msg = NULL;
}

/* ---- field access -------------------------------------------------- */

const msgpack_object *th_get(const msgpack_object *map, const char *key)
{
	return proto_get(map, key);
}

bool th_token_shown(const char *shown, const char *token)
{
	size_t n = strlen(token);
	if (strlen(shown) != n || n < 4)
		return false;
	for (size_t i = 0; i + 4 < n; i++)
		if (shown[i] != '*')
			return false;
	return strcmp(shown + n - 4, token + n - 4) == 0;
}

bool th_str(const msgpack_object *map, const char *key, char *out, size_t size)
{
	const msgpack_object *v = th_get(map, key);
	const char *p;
	size_t n;

	if (v == NULL)
		return false;
	if (v->type == MSGPACK_OBJECT_STR)
		p = v->via.str.ptr, n = v->via.str.size;
	else if (v->type == MSGPACK_OBJECT_BIN)
		p = v->via.bin.ptr, n = v->via.bin.size;
	else
		return false;
	if (n >= size)
		n = size - 1;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

bool th_uint(const msgpack_object *map, const char *key, uint64_t *out)
{
	const msgpack_object *v = th_get(map, key);
	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return false;
	*out = v->via.u64;
	return true;
}

bool th_bool(const msgpack_object *map, const char *key, bool *out)
{
	const msgpack_object *v = th_get(map, key);
	if (v == NULL || v->type != MSGPACK_OBJECT_BOOLEAN)
		return false;
	*out = v->via.boolean;
	return true;
}

size_t th_count(const msgpack_object *map, const char *key)
{
	const msgpack_object *v = th_get(map, key);
	if (v == NULL || v->type != MSGPACK_OBJECT_ARRAY)
		return 0;
	return v->via.array.size;
}

const msgpack_object *th_item(const msgpack_object *map, const char *key, size_t i)
{
	const msgpack_object *v = th_get(map, key);
	if (v == NULL || v->type != MSGPACK_OBJECT_ARRAY || i >= v->via.array.size ||
	    v->via.array.ptr[i].type != MSGPACK_OBJECT_MAP)
		return NULL;
	return &v->via.array.ptr[i];
}

/* ---- common operations --------------------------------------------- */

static int report(const char *op, int rv, const th_reply *rep)
{
	if (rv != 0)
		fprintf(stderr, "harness: %s: no reply (%s)\n", op,
			rv > 0 ? nng_strerror(rv) : "undecodable");
	else
		fprintf(stderr, "harness: %s refused: %s %s\n", op, rep->err, rep->msg);
	return -1;
}

int th_raw_ping(th_raw *r)
{
	th_req q;
	th_reply rep;
	int rv;

	if (th_req_begin(&q, "ping", 0) != 0)
		return -1;
	rv = th_req_call(r, &q, &rep);
	if (rv != 0 || !rep.ok)
		rv = report("ping", rv, &rep);
	th_reply_free(&rep);
	return rv;
}

int th_raw_push(th_raw *r, const char *queue, const char *payload, uint64_t lease_ms,
		uint64_t max_attempts, char id[PROTO_ID_LEN + 1])
{
	th_req q;
	th_reply rep;
	const msgpack_object *res;
	int rv;

	if (th_req_begin(&q, "push", 1) != 0)
		return -1;
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2 + (lease_ms ? 1 : 0) + (max_attempts ? 1 : 0));
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_bin(th_pk(&q), "payload", payload, strlen(payload));
	if (lease_ms)
		proto_kv_uint(th_pk(&q), "lease_ms", lease_ms);
	if (max_attempts)
		proto_kv_uint(th_pk(&q), "max_attempts", max_attempts);
	rv = th_req_call(r, &q, &rep);
	if (rv != 0 || !rep.ok) {
		rv = report("push", rv, &rep);
	} else if ((res = th_item(rep.root, "results", 0)) == NULL ||
		   !th_str(res, "execution_id", id, PROTO_ID_LEN + 1)) {
		fprintf(stderr, "harness: push reply without results[0].execution_id\n");
		rv = -1;
	}
	th_reply_free(&rep);
	return rv;
}

int th_raw_claim(th_raw *r, const char *queue, uint64_t lease_ms, uint64_t wait_ms,
		 char id[PROTO_ID_LEN + 1], char token[PROTO_ID_LEN + 1], uint64_t *attempt)
{
	th_req q;
	th_reply rep;
	const msgpack_object *job;
	int rv;

	if (th_req_begin(&q, "claim", 4 + (lease_ms ? 1 : 0)) != 0)
		return -1;
	/* the tests finish their leases from other connections too (and
	 * across broker restarts): a closed connection must not end them */
	proto_kv_bool(th_pk(&q), "detach", true);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_uint(th_pk(&q), "max", 1);
	proto_kv_uint(th_pk(&q), "wait_ms", wait_ms);
	if (lease_ms)
		proto_kv_uint(th_pk(&q), "lease_ms", lease_ms);
	rv = th_req_call(r, &q, &rep);
	if (rv != 0 || !rep.ok) {
		rv = report("claim", rv, &rep);
	} else if (th_count(rep.root, "jobs") == 0) {
		rv = 1;
	} else if ((job = th_item(rep.root, "jobs", 0)) == NULL ||
		   !th_str(job, "execution_id", id, PROTO_ID_LEN + 1) ||
		   !th_str(job, "lease_token", token, PROTO_ID_LEN + 1) ||
		   !th_uint(job, "attempt", attempt)) {
		fprintf(stderr, "harness: claim reply without execution_id/lease_token/attempt\n");
		rv = -1;
	}
	th_reply_free(&rep);
	return rv;
}

int th_raw_get(th_raw *r, const char *id, th_reply *rep, const msgpack_object **exe)
{
	th_req q;
	int rv;

	*exe = NULL;
	if (th_req_begin(&q, "get", 1) != 0) {
		memset(rep, 0, sizeof(*rep));
		msgpack_unpacked_init(&rep->up);
		return -1;
	}
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	rv = th_req_call(r, &q, rep);
	if (rv != 0 || !rep->ok)
		return report("get", rv, rep);
	*exe = th_get(rep->root, "execution");
	if (*exe == NULL || (*exe)->type != MSGPACK_OBJECT_MAP) {
		fprintf(stderr, "harness: get reply without an execution map\n");
		return -1;
	}
	return 0;
}

static void fill_counts(const msgpack_object *m, th_counts *c)
{
	th_uint(m, "scheduled", &c->scheduled);
	th_uint(m, "ready", &c->ready);
	th_uint(m, "leased", &c->leased);
	th_uint(m, "succeeded", &c->succeeded);
	th_uint(m, "dead", &c->dead);
	th_uint(m, "cancelled", &c->cancelled);
}

int th_raw_counts(th_raw *r, const char *queue, th_counts *c)
{
	th_req q;
	th_reply rep;
	int rv;

	memset(c, 0, sizeof(*c));
	if (th_req_begin(&q, "stats", 1) != 0)
		return -1;
	proto_kv_cstr(th_pk(&q), "queue", queue);
	rv = th_req_call(r, &q, &rep);
	if (rv != 0 || !rep.ok) {
		rv = report("stats", rv, &rep);
	} else {
		for (size_t i = 0; i < th_count(rep.root, "queues"); i++) {
			const msgpack_object *m = th_item(rep.root, "queues", i);
			char name[PROTO_MAX_QUEUE + 1];
			if (m != NULL && th_str(m, "queue", name, sizeof(name)) &&
			    strcmp(name, queue) == 0)
				fill_counts(m, c);
		}
	}
	th_reply_free(&rep);
	return rv;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *th_raw_stats_text(th_raw *r)
{
	th_req q;
	th_reply rep;
	char **lines = NULL, *out = NULL;
	size_t n = 0, total = 1;

	if (th_req_begin(&q, "stats", 0) != 0)
		return NULL;
	if (th_req_call(r, &q, &rep) != 0 || !rep.ok) {
		report("stats", 0, &rep);
		goto out;
	}
	n = th_count(rep.root, "queues");
	lines = calloc(n ? n : 1, sizeof(*lines));
	if (lines == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *m = th_item(rep.root, "queues", i);
		char name[PROTO_MAX_QUEUE + 1] = "?";
		th_counts c = { 0 };
		if (m != NULL) {
			th_str(m, "queue", name, sizeof(name));
			fill_counts(m, &c);
		}
		lines[i] = malloc(PROTO_MAX_QUEUE + 160);
		if (lines[i] == NULL)
			goto out;
		snprintf(lines[i], PROTO_MAX_QUEUE + 160,
			 "%s: scheduled %llu ready %llu leased %llu succeeded %llu dead %llu cancelled %llu; ",
			 name, (unsigned long long)c.scheduled, (unsigned long long)c.ready,
			 (unsigned long long)c.leased, (unsigned long long)c.succeeded,
			 (unsigned long long)c.dead, (unsigned long long)c.cancelled);
		total += strlen(lines[i]);
	}
	qsort(lines, n, sizeof(*lines), cmp_str);
	out = malloc(total);
	if (out != NULL) {
		out[0] = '\0';
		for (size_t i = 0; i < n; i++)
			strcat(out, lines[i]);
	}
out:
	for (size_t i = 0; lines != NULL && i < n; i++)
		free(lines[i]);
	free(lines);
	th_reply_free(&rep);
	return out;
}

th_bytes th_req_keep(th_req *q)
{
	th_bytes b = {malloc(nng_msg_len(q->msg)), nng_msg_len(q->msg)};
	assert_non_null(b.p);
	assert_int_equal(q->w.failed, 0);
	memcpy(b.p, nng_msg_body(q->msg), b.n);
	th_req_free(q);
	return b;
}
