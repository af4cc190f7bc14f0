/*
 * hostile_fields.c - well-formed frames with bad fields: wrong types and
 * ranges for push, claim, ack, nack, extend, get, list and stats, bad queue
 * names, bad tokens and IDs.  The finishing ops aim at the test's leased
 * job, so a broker that applied any of them would change it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostile.h"

/* ---- push fields ---------------------------------------------------- */

/* A push of one job whose map gets `extra` packed by the caller after
 * queue (when queue is not NULL). */
static msgpack_packer *push_job(th_req *q, const char *queue, size_t n_extra)
{
	hostile_begin(q, "push", 1);
	proto_key(th_pk(q), "jobs");
	msgpack_pack_array(th_pk(q), 1);
	msgpack_pack_map(th_pk(q), n_extra + (queue != NULL));
	if (queue != NULL)
		proto_kv_cstr(th_pk(q), "queue", queue);
	return th_pk(q);
}

static const char long_queue[] =
	"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
	"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"; /* 129 */

static const char *const bad_queues[] = { "", long_queue, "a b", "\xc3\xa9", "pre/x", "pre\n" };
#define N_BAD_QUEUES (sizeof(bad_queues) / sizeof(bad_queues[0]))

void hostile_push(ctx *x)
{
	th_req q;
	msgpack_packer *pk;

	hostile_begin(&q, "push", 1);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_map(th_pk(&q), 1);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	hostile_expect_req(x, "push: jobs as a map", &q, 0, "BAD_REQUEST", NULL);

	hostile_begin(&q, "push", 0);
	hostile_expect_req(x, "push: jobs missing", &q, 0, "BAD_REQUEST", NULL);

	hostile_begin(&q, "push", 1);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 0);
	hostile_expect_req(x, "push: jobs empty", &q, 0, "BAD_REQUEST", NULL);

	hostile_begin(&q, "push", 1);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1001);
	for (int i = 0; i < 1001; i++) {
		msgpack_pack_map(th_pk(&q), 1);
		proto_kv_cstr(th_pk(&q), "queue", "pre");
	}
	hostile_expect_req(x, "push: 1001 jobs", &q, 0, "BAD_REQUEST", NULL);

	hostile_begin(&q, "push", 1);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	proto_key(th_pk(&q), "pre");
	hostile_expect_req(x, "push: a job that is a string", &q, 0, "BAD_REQUEST", NULL);

	pk = push_job(&q, NULL, 1);
	proto_kv_uint(pk, "queue", 5);
	hostile_expect_req(x, "push: queue as an int", &q, 0, "BAD_REQUEST", NULL);

	pk = push_job(&q, NULL, 1);
	proto_kv_cstr(pk, "payload", "no queue");
	hostile_expect_req(x, "push: queue missing", &q, 0, "BAD_REQUEST", NULL);

	pk = push_job(&q, "pre", 1);
	proto_key(pk, "payload");
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint8(pk, 1);
	msgpack_pack_uint8(pk, 2);
	hostile_expect_req(x, "push: payload as an array", &q, 0, "BAD_REQUEST", NULL);

	pk = push_job(&q, "pre", 1);
	proto_kv_int(pk, "lease_ms", -5);
	hostile_expect_req(x, "push: lease_ms negative", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 1);
	proto_kv_cstr(pk, "lease_ms", "300");
	hostile_expect_req(x, "push: lease_ms as a string", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 1);
	proto_kv_uint(pk, "lease_ms", 99);
	hostile_expect_req(x, "push: lease_ms 99", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 1);
	proto_kv_uint(pk, "lease_ms", 86400001);
	hostile_expect_req(x, "push: lease_ms over a day", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 1);
	proto_kv_int(pk, "priority", 1001);
	hostile_expect_req(x, "push: priority 1001", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 1);
	proto_kv_int(pk, "priority", -1001);
	hostile_expect_req(x, "push: priority -1001", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 1);
	proto_kv_cstr(pk, "priority", "1");
	hostile_expect_req(x, "push: priority as a string", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 1);
	proto_kv_uint(pk, "max_attempts", 0);
	hostile_expect_req(x, "push: max_attempts 0", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 1);
	proto_kv_uint(pk, "max_attempts", 1001);
	hostile_expect_req(x, "push: max_attempts 1001", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 1);
	proto_kv_int(pk, "delay_ms", -1);
	hostile_expect_req(x, "push: delay_ms negative", &q, 0, "BAD_REQUEST", NULL);
	pk = push_job(&q, "pre", 2);
	proto_kv_uint(pk, "delay_ms", 1000);
	proto_kv_uint(pk, "run_at", (uint64_t)proto_now_ms() + 1000);
	hostile_expect_req(x, "push: delay_ms and run_at together", &q, 0, "BAD_REQUEST", NULL);

	for (size_t i = 0; i < N_BAD_QUEUES; i++) {
		char what[64];
		snprintf(what, sizeof(what), "push: bad queue name #%zu", i);
		push_job(&q, bad_queues[i], 0);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
	}

	/* One good job and one bad: all refused, nothing created. */
	hostile_begin(&q, "push", 1);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 2);
	msgpack_pack_map(th_pk(&q), 1);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	msgpack_pack_map(th_pk(&q), 1);
	proto_kv_cstr(th_pk(&q), "queue", "a b");
	hostile_expect_req(x, "push: a good job and a bad one", &q, 0, "BAD_REQUEST", NULL);
}

/* ---- claim, finishing, inspecting ----------------------------------- */

static void claim_case(ctx *x, const char *what, const char *queue, const char *key, int64_t v)
{
	th_req q;
	hostile_begin(&q, "claim", key ? 2 : 1);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	if (key != NULL)
		proto_kv_int(th_pk(&q), key, v);
	hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
}

void hostile_claim(ctx *x)
{
	th_req q;
	char worker[130];

	for (size_t i = 0; i < N_BAD_QUEUES; i++) {
		char what[64];
		snprintf(what, sizeof(what), "claim: bad queue name #%zu", i);
		claim_case(x, what, bad_queues[i], NULL, 0);
	}
	claim_case(x, "claim: max 0", "pre", "max", 0);
	claim_case(x, "claim: max 257", "pre", "max", 257);
	claim_case(x, "claim: max -1", "pre", "max", -1);
	claim_case(x, "claim: wait_ms 300001", "pre", "wait_ms", 300001);
	claim_case(x, "claim: lease_ms 99", "pre", "lease_ms", 99);
	claim_case(x, "claim: lease_ms negative", "pre", "lease_ms", -1000);

	hostile_begin(&q, "claim", 1);
	proto_kv_uint(th_pk(&q), "queue", 1);
	hostile_expect_req(x, "claim: queue as an int", &q, 0, "BAD_REQUEST", NULL);
	hostile_begin(&q, "claim", 0);
	hostile_expect_req(x, "claim: queue missing", &q, 0, "BAD_REQUEST", NULL);
	hostile_begin(&q, "claim", 2);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	proto_kv_cstr(th_pk(&q), "max", "1");
	hostile_expect_req(x, "claim: max as a string", &q, 0, "BAD_REQUEST", NULL);
	memset(worker, 'w', sizeof(worker));
	hostile_begin(&q, "claim", 2);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	proto_kv_str(th_pk(&q), "worker", worker, 129);
	hostile_expect_req(x, "claim: worker of 129 bytes", &q, 0, "BAD_REQUEST", "TOO_LARGE");
}

/* op with one item {execution_id: id, lease_token: tok} plus one extra
 * key/value of the caller (key NULL for none); a NULL id or tok packs an
 * int in its place. */
static void item_case(ctx *x, const char *what, const char *op, const char *id, const char *tok,
		      const char *key, int64_t v, const char *c1)
{
	th_req q;
	hostile_begin(&q, op, 1);
	proto_key(th_pk(&q), "items");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2 + (key != NULL));
	if (id != NULL)
		proto_kv_cstr(th_pk(&q), "execution_id", id);
	else
		proto_kv_uint(th_pk(&q), "execution_id", 12);
	if (tok != NULL)
		proto_kv_cstr(th_pk(&q), "lease_token", tok);
	else
		proto_kv_uint(th_pk(&q), "lease_token", 12);
	if (key != NULL) {
		if (strcmp(key, "terminal") == 0)
			proto_kv_cstr(th_pk(&q), key, "yes");
		else
			proto_kv_int(th_pk(&q), key, v);
	}
	hostile_expect_req(x, what, &q, F_ITEM, c1, NULL);
}

void hostile_finish(ctx *x)
{
	static const char *const ops[] = { "ack", "nack", "extend" };
	static const char *const bad_tokens[] = { "xyz", "0123456789abcde", "0123456789abcdef0",
		"zzzzzzzzzzzzzzzz", "" };
	char wrong[PROTO_ID_LEN + 1];
	th_req q;

	strcpy(wrong, x->pre_tok);
	wrong[PROTO_ID_LEN - 1] = wrong[PROTO_ID_LEN - 1] == '0' ? '1' : '0';
	for (size_t o = 0; o < 3; o++) {
		const char *op = ops[o];
		const char *key = strcmp(op, "extend") == 0 ? "lease_ms" : NULL;
		char what[96];
		for (size_t t = 0; t < sizeof(bad_tokens) / sizeof(bad_tokens[0]); t++) {
			snprintf(what, sizeof(what), "%s: bad token #%zu", op, t);
			item_case(x, what, op, x->pre_id, bad_tokens[t], key, 60000, "BAD_REQUEST");
		}
		snprintf(what, sizeof(what), "%s: token as an int", op);
		item_case(x, what, op, x->pre_id, NULL, key, 60000, "BAD_REQUEST");
		snprintf(what, sizeof(what), "%s: execution_id 'xyz'", op);
		item_case(x, what, op, "xyz", x->pre_tok, key, 60000, "BAD_REQUEST");
		snprintf(what, sizeof(what), "%s: execution_id as an int", op);
		item_case(x, what, op, NULL, x->pre_tok, key, 60000, "BAD_REQUEST");
		snprintf(what, sizeof(what), "%s: wrong token", op);
		item_case(x, what, op, x->pre_id, wrong, key, 60000, "STALE_LEASE");
		snprintf(what, sizeof(what), "%s: unknown execution", op);
		item_case(x, what, op, "00000000deadbeef", x->pre_tok, key, 60000, "NOT_FOUND");

		hostile_begin(&q, op, 1);
		proto_key(th_pk(&q), "items");
		msgpack_pack_map(th_pk(&q), 0);
		snprintf(what, sizeof(what), "%s: items as a map", op);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
		hostile_begin(&q, op, 1);
		proto_key(th_pk(&q), "items");
		msgpack_pack_array(th_pk(&q), 0);
		snprintf(what, sizeof(what), "%s: items empty", op);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
		hostile_begin(&q, op, 0);
		snprintf(what, sizeof(what), "%s: items missing", op);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
	}
	/* Bad values next to the live token: refused, the lease unchanged. */
	item_case(x, "nack: retry_in_ms negative (live token)", "nack", x->pre_id, x->pre_tok,
		  "retry_in_ms", -1, "BAD_REQUEST");
	item_case(x, "nack: terminal as a string (live token)", "nack", x->pre_id, x->pre_tok,
		  "terminal", 0, "BAD_REQUEST");
	item_case(x, "extend: lease_ms 50 (live token)", "extend", x->pre_id, x->pre_tok, "lease_ms",
		  50, "BAD_REQUEST");
	item_case(x, "extend: lease_ms negative (live token)", "extend", x->pre_id, x->pre_tok,
		  "lease_ms", -60000, "BAD_REQUEST");
}

void hostile_inspect(ctx *x)
{
	th_req q;

	hostile_begin(&q, "get", 1);
	proto_kv_cstr(th_pk(&q), "execution_id", "xyz");
	hostile_expect_req(x, "get: execution_id 'xyz'", &q, 0, "BAD_REQUEST", NULL);
	hostile_begin(&q, "get", 1);
	proto_kv_uint(th_pk(&q), "execution_id", 1);
	hostile_expect_req(x, "get: execution_id as an int", &q, 0, "BAD_REQUEST", NULL);
	hostile_begin(&q, "get", 0);
	hostile_expect_req(x, "get: execution_id missing", &q, 0, "BAD_REQUEST", NULL);
	hostile_begin(&q, "get", 1);
	proto_kv_cstr(th_pk(&q), "execution_id", "00000000deadbeef");
	hostile_expect_req(x, "get: unknown execution", &q, 0, "NOT_FOUND", NULL);

	for (size_t i = 0; i < N_BAD_QUEUES; i++) {
		char what[64];
		snprintf(what, sizeof(what), "list: bad queue name #%zu", i);
		hostile_begin(&q, "list", 1);
		proto_kv_cstr(th_pk(&q), "queue", bad_queues[i]);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
		snprintf(what, sizeof(what), "stats: bad queue name #%zu", i);
		hostile_begin(&q, "stats", 1);
		proto_kv_cstr(th_pk(&q), "queue", bad_queues[i]);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
	}
	hostile_begin(&q, "list", 2);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	proto_kv_uint(th_pk(&q), "limit", 0);
	hostile_expect_req(x, "list: limit 0", &q, 0, "BAD_REQUEST", NULL);
	hostile_begin(&q, "list", 2);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	proto_kv_uint(th_pk(&q), "limit", 1001);
	hostile_expect_req(x, "list: limit 1001", &q, 0, "BAD_REQUEST", NULL);
	hostile_begin(&q, "list", 2);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	proto_kv_cstr(th_pk(&q), "state", "bogus");
	hostile_expect_req(x, "list: unknown state", &q, 0, "BAD_REQUEST", NULL);
	hostile_begin(&q, "stats", 1);
	proto_kv_uint(th_pk(&q), "queue", 3);
	hostile_expect_req(x, "stats: queue as an int", &q, 0, "BAD_REQUEST", NULL);
}

