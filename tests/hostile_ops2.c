/*
 * hostile_ops2.c - a bad value at every field, table-driven, for the ops
 * hostile_fields.c leaves out: step_set, step_get, steps, cues, cancel,
 * retry, purge, pause and resume, and for the envelope every request
 * carries (v, op, rid, cid; auth against a broker started with --auth).
 *
 * Each op is written once as its good request, aimed at the test's leased
 * job with its live token (so a broker that applied any case would change
 * it: a step in its history, a cancel, a pause in stats); each case
 * replaces one field with a bad value, or leaves it out, and says the code
 * the broker must answer.  hostile_expect() checks the code, the msg (and
 * that every string of the reply is UTF-8) and the rid echoed.
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

/* ---- values ----------------------------------------------------------- */

enum vkind { V_NONE, V_UINT, V_INT, V_STR, V_BIN, V_ARRAY, V_MAP, V_BOOL, V_NIL, V_FLOAT, V_REF };

/* A value to pack: an int, bytes as str or bin (n 0: strlen(s)), or a
 * type of its own; V_REF is one of the test's IDs (s: "id", "tok",
 * "ready"); V_NONE leaves the field out. */
struct val {
	enum vkind kind;
	int64_t i;
	const char *s;
	size_t n;
};

#define U(x) {V_UINT, (x), NULL, 0}
#define I(x) {V_INT, (x), NULL, 0}
#define S(x) {V_STR, 0, (x), 0}
#define SN(x, len) {V_STR, 0, (x), (len)}
#define B(x) {V_BIN, 0, (x), 0}
#define BN(x, len) {V_BIN, 0, (x), (len)}
#define REF(x) {V_REF, 0, (x), 0}
#define NONE {V_NONE, 0, NULL, 0}
#define ARRAY {V_ARRAY, 0, NULL, 0}
#define MAP {V_MAP, 0, NULL, 0}
#define TRUE {V_BOOL, 1, NULL, 0}
#define NIL {V_NIL, 0, NULL, 0}
#define FLOAT {V_FLOAT, 0, NULL, 0}

/* Long strings, filled in at the first use: 'x' times 65, 129, 257 and
 * 4097 (and one of them as bin). */
static char x65[65], x129[129], x257[257], x4097[4097];

static void fill_long(void)
{
	memset(x65, 'x', sizeof(x65));
	memset(x129, 'q', sizeof(x129));
	memset(x257, 'a', sizeof(x257));
	memset(x4097, 'v', sizeof(x4097));
}

static void pack_val(ctx *x, msgpack_packer *pk, const struct val *v)
{
	const char *s = v->s;
	size_t n = v->n ? v->n : s ? strlen(s) : 0;
	switch (v->kind) {
	case V_NONE:
		break;
	case V_UINT:
		msgpack_pack_uint64(pk, (uint64_t)v->i);
		break;
	case V_INT:
		msgpack_pack_int64(pk, v->i);
		break;
	case V_REF:
		s = strcmp(s, "id") == 0 ? x->pre_id : strcmp(s, "tok") == 0 ? x->pre_tok : x->ready_id;
		n = strlen(s);
		/* fall through */
	case V_STR:
		msgpack_pack_str(pk, n);
		msgpack_pack_str_body(pk, s, n);
		break;
	case V_BIN:
		msgpack_pack_bin(pk, n);
		msgpack_pack_bin_body(pk, s, n);
		break;
	case V_ARRAY:
		msgpack_pack_array(pk, 1);
		msgpack_pack_uint8(pk, 1);
		break;
	case V_MAP:
		msgpack_pack_map(pk, 0);
		break;
	case V_BOOL:
		if (v->i)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		break;
	case V_NIL:
		msgpack_pack_nil(pk);
		break;
	case V_FLOAT:
		msgpack_pack_double(pk, 1.5);
		break;
	}
}

/* ---- ops, one field at a time ------------------------------------------ */

#define MAX_FIELDS 4

/* An op's good request: its fields and their good values. */
struct opdef {
	const char *op;
	size_t n;
	const char *key[MAX_FIELDS];
	struct val good[MAX_FIELDS];
};

/* A bad value for one field and what the broker must answer. */
struct bad {
	const char *what;
	struct val v;
	const char *c1, *c2;
};

#define BAD_ID_CASES(prefix)                                                                   \
	{prefix "missing", NONE, "BAD_REQUEST", NULL},                                         \
	{prefix "nil", NIL, "BAD_REQUEST", NULL},                                              \
	BAD_ID_VALUES(prefix)

/* Values that are no ID (an absent one aside). */
#define BAD_ID_VALUES(prefix)                                                                  \
	{prefix "an int", U(12), "BAD_REQUEST", NULL},                                         \
	{prefix "a negative int", I(-1), "BAD_REQUEST", NULL},                                 \
	{prefix "a bool", TRUE, "BAD_REQUEST", NULL},                                          \
	{prefix "a float", FLOAT, "BAD_REQUEST", NULL},                                        \
	{prefix "an array", ARRAY, "BAD_REQUEST", NULL},                                       \
	{prefix "a map", MAP, "BAD_REQUEST", NULL},                                            \
	{prefix "16 hex digits as bin", B("00000000deadbeef"), "BAD_REQUEST", NULL},           \
	{prefix "empty", S(""), "BAD_REQUEST", NULL},                                          \
	{prefix "'xyz'", S("xyz"), "BAD_REQUEST", NULL},                                       \
	{prefix "15 hex digits", S("0123456789abcde"), "BAD_REQUEST", NULL},                   \
	{prefix "17 hex digits", S("0123456789abcdef0"), "BAD_REQUEST", NULL},                 \
	{prefix "16 characters not hex", S("0123456789abcdeg"), "BAD_REQUEST", NULL},          \
	{prefix "16 bytes not UTF-8", S("\xff" "123456789abcdef"), "BAD_REQUEST", NULL},       \
	{prefix "a sign and 15 hex digits", S("-123456789abcdef"), "BAD_REQUEST", NULL},       \
	{prefix "65 bytes", SN(x65, 65), "BAD_REQUEST", "TOO_LARGE"}

static const struct bad bad_ids[] = {BAD_ID_CASES("")};

static const struct bad bad_queues[] = {
	{"missing", NONE, "BAD_REQUEST", NULL},
	{"nil", NIL, "BAD_REQUEST", NULL},
	{"an int", U(7), "BAD_REQUEST", NULL},
	{"a bool", TRUE, "BAD_REQUEST", NULL},
	{"an array", ARRAY, "BAD_REQUEST", NULL},
	{"a map", MAP, "BAD_REQUEST", NULL},
	{"bin", B("pre"), "BAD_REQUEST", NULL},
	{"empty", S(""), "BAD_REQUEST", NULL},
	{"129 bytes", SN(x129, 129), "BAD_REQUEST", NULL},
	{"with a space", S("a b"), "BAD_REQUEST", NULL},
	{"with a slash", S("pre/x"), "BAD_REQUEST", NULL},
	{"with a newline", S("pre\n"), "BAD_REQUEST", NULL},
	{"with a NUL", SN("pre\0x", 5), "BAD_REQUEST", NULL},
	{"UTF-8 beyond ASCII", S("\xc3\xa9"), "BAD_REQUEST", NULL},
	{"not UTF-8", S("pre\xff"), "BAD_REQUEST", NULL},
	{"a lone continuation byte", S("\x80"), "BAD_REQUEST", NULL},
};

/* Step names follow the queue names' rules. */
#define bad_names bad_queues

static const struct bad bad_values[] = {
	{"missing", NONE, "BAD_REQUEST", NULL},
	{"nil", NIL, "BAD_REQUEST", NULL},
	{"an int", U(3), "BAD_REQUEST", NULL},
	{"a bool", TRUE, "BAD_REQUEST", NULL},
	{"a float", FLOAT, "BAD_REQUEST", NULL},
	{"an array", ARRAY, "BAD_REQUEST", NULL},
	{"a map", MAP, "BAD_REQUEST", NULL},
	{"not UTF-8", S("v\xc3"), "BAD_REQUEST", NULL},
	{"a surrogate", S("\xed\xa0\x80"), "BAD_REQUEST", NULL},
	{"4097 bytes", SN(x4097, 4097), "TOO_LARGE", NULL},
	{"4097 bytes as bin", BN(x4097, 4097), "TOO_LARGE", NULL},
};

static const struct bad bad_states[] = {
	{"missing", NONE, "BAD_REQUEST", NULL},
	{"nil", NIL, "BAD_REQUEST", NULL},
	{"an int", U(4), "BAD_REQUEST", NULL},
	{"an array", ARRAY, "BAD_REQUEST", NULL},
	{"bin", B("dead"), "BAD_REQUEST", NULL},
	{"empty", S(""), "BAD_REQUEST", NULL},
	{"'DEAD'", S("DEAD"), "BAD_REQUEST", NULL},
	{"'dead ' (a space after)", S("dead "), "BAD_REQUEST", NULL},
	{"'ready'", S("ready"), "BAD_REQUEST", NULL},
	{"'leased'", S("leased"), "BAD_REQUEST", NULL},
	{"'scheduled'", S("scheduled"), "BAD_REQUEST", NULL},
	{"'bogus'", S("bogus"), "BAD_REQUEST", NULL},
	{"not UTF-8", S("dead\xff"), "BAD_REQUEST", NULL},
	{"17 bytes", S("succeededsucceede"), "BAD_REQUEST", "TOO_LARGE"},
};

static const struct bad bad_bools[] = {
	{"a string", S("true"), "BAD_REQUEST", NULL},
	{"an int", U(1), "BAD_REQUEST", NULL},
	{"an array", ARRAY, "BAD_REQUEST", NULL},
	{"false", {V_BOOL, 0, NULL, 0}, "BAD_REQUEST", NULL},
};

/* Sends op d with field f replaced by bad (every other field good). */
static void one_bad(ctx *x, const struct opdef *d, size_t f, const struct bad *bad)
{
	char what[160];
	th_req q;
	size_t n = d->n - (bad->v.kind == V_NONE);

	msgpack_packer *pk = hostile_begin(&q, d->op, n);
	for (size_t i = 0; i < d->n; i++) {
		const struct val *v = i == f ? &bad->v : &d->good[i];
		if (v->kind == V_NONE)
			continue;
		proto_key(pk, d->key[i]);
		pack_val(x, pk, v);
	}
	snprintf(what, sizeof(what), "%s: %s %s", d->op, d->key[f], bad->what);
	hostile_expect_req(x, what, &q, 0, bad->c1, bad->c2);
}

static size_t each_bad(ctx *x, const struct opdef *d, const char *key, const struct bad *bads,
		       size_t n)
{
	size_t f = 0;
	while (f < d->n && strcmp(d->key[f], key) != 0)
		f++;
	if (f == d->n)
		fail_msg("%s has no field %s", d->op, key);
	for (size_t i = 0; i < n; i++)
		one_bad(x, d, f, &bads[i]);
	return n;
}

#define EACH(x, d, key, bads) each_bad((x), (d), (key), (bads), sizeof(bads) / sizeof((bads)[0]))

/* Cases per op, for the tally printed with CUEQ_TEST_VERBOSE. */
static void tally(const char *op, size_t n)
{
	if (getenv("CUEQ_TEST_VERBOSE") != NULL)
		fprintf(stderr, "hostile_ops2: %zu cases for %s\n", n, op);
}

static void step_ops(ctx *x)
{
	/* a step the live lease would write: each case must leave it unwritten */
	static const struct opdef set = {"step_set", 4,
		{"execution_id", "lease_token", "name", "value"},
		{REF("id"), REF("tok"), S("hostile.step"), S("v")}};
	static const struct opdef get = {"step_get", 2, {"execution_id", "name"},
		{REF("id"), S("hostile.step")}};
	static const struct opdef steps = {"steps", 1, {"execution_id"}, {REF("id")}};
	static const struct bad stale[] = {
		{"of another lease", S("00000000deadbeef"), "STALE_LEASE", NULL},
	};
	static const struct bad unknown[] = {
		{"unknown", S("00000000deadbeef"), "NOT_FOUND", NULL},
		{"all zeros (no ID is)", S("0000000000000000"), "NOT_FOUND", NULL},
	};
	static const struct bad not_leased[] = {
		{"of the ready job (not leased)", REF("ready"), "STALE_LEASE", NULL},
	};
	static const struct bad no_step[] = {
		{"never written", S("never.written"), "NOT_FOUND", NULL},
	};
	size_t n;

	n = EACH(x, &set, "execution_id", bad_ids) + EACH(x, &set, "execution_id", unknown) +
	    EACH(x, &set, "execution_id", not_leased) + EACH(x, &set, "lease_token", bad_ids) +
	    EACH(x, &set, "lease_token", stale) + EACH(x, &set, "name", bad_names) +
	    EACH(x, &set, "value", bad_values);
	tally("step_set", n);
	/* the step is never written, so the good step_get is NOT_FOUND too:
	 * a bad field must be refused before that */
	n = EACH(x, &get, "execution_id", bad_ids) + EACH(x, &get, "execution_id", unknown) +
	    EACH(x, &get, "name", bad_names) + EACH(x, &get, "name", no_step);
	tally("step_get", n);
	n = EACH(x, &steps, "execution_id", bad_ids) + EACH(x, &steps, "execution_id", unknown);
	tally("steps", n);
}

static void operator_ops(ctx *x)
{
	/* each good request would change the leased job or the queue "pre" */
	static const struct opdef cancel = {"cancel", 1, {"id"}, {REF("id")}};
	static const struct opdef cues = {"cues", 1, {"queue"}, {S("pre")}};
	static const struct opdef pause = {"pause", 1, {"queue"}, {S("pre")}};
	static const struct opdef resume = {"resume", 1, {"queue"}, {S("pre.unpaused")}};
	static const struct opdef purge = {"purge", 2, {"queue", "state"}, {S("pre"), S("dead")}};
	static const struct opdef retry_one = {"retry", 1, {"execution_id"}, {REF("id")}};
	static const struct opdef retry_all = {"retry", 2, {"queue", "all"}, {S("pre"), TRUE}};
	/* both an execution and all: refused whatever the ID */
	static const struct opdef retry_both = {"retry", 3, {"execution_id", "queue", "all"},
		{REF("id"), S("pre"), TRUE}};
	static const struct bad unknown[] = {
		{"unknown", S("00000000deadbeef"), "NOT_FOUND", NULL},
		{"all zeros (no ID is)", S("0000000000000000"), "NOT_FOUND", NULL},
	};
	static const struct bad leased[] = {
		{"leased (not dead)", REF("id"), "CONFLICT", NULL},
		{"ready (not dead)", REF("ready"), "CONFLICT", NULL},
	};
	static const struct bad both_ids[] = {
		BAD_ID_VALUES("beside all: "),
		{"beside all: all zeros", S("0000000000000000"), "BAD_REQUEST", NULL},
		{"beside all: unknown", S("00000000deadbeef"), "BAD_REQUEST", NULL},
	};
	static const struct bad all_missing[] = {
		{"missing", NONE, "BAD_REQUEST", NULL},
		{"nil", NIL, "BAD_REQUEST", NULL},
	};
	size_t n;

	n = EACH(x, &cancel, "id", bad_ids) + EACH(x, &cancel, "id", unknown);
	tally("cancel", n);
	n = EACH(x, &cues, "queue", bad_queues);
	tally("cues", n);
	n = EACH(x, &pause, "queue", bad_queues);
	tally("pause", n);
	n = EACH(x, &resume, "queue", bad_queues);
	tally("resume", n);
	n = EACH(x, &purge, "queue", bad_queues) + EACH(x, &purge, "state", bad_states);
	tally("purge", n);
	n = EACH(x, &retry_one, "execution_id", bad_ids) +
	    EACH(x, &retry_one, "execution_id", unknown) +
	    EACH(x, &retry_one, "execution_id", leased) +
	    EACH(x, &retry_all, "queue", bad_queues) + EACH(x, &retry_all, "all", bad_bools) +
	    EACH(x, &retry_all, "all", all_missing) + EACH(x, &retry_both, "execution_id", both_ids);
	tally("retry", n);
}

/* ---- the envelope -------------------------------------------------------- */

/* A push of one job to "pre" (so an envelope let through would create a
 * job, and stats would show it) with v, op, rid and cid as given. */
struct env {
	struct val v, op, rid, cid, auth;
};

static void env_case(ctx *x, const char *what, const struct env *e, const char *echo,
		     const char *c1, const char *c2)
{
	const struct val *field[] = {&e->v, &e->op, &e->rid, &e->cid, &e->auth};
	static const char *const key[] = {"v", "op", "rid", "cid", "auth"};
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n = 1;

	for (size_t i = 0; i < 5; i++)
		n += field[i]->kind != V_NONE;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (size_t i = 0; i < 5; i++)
		if (field[i]->kind != V_NONE) {
			proto_key(&pk, key[i]);
			pack_val(x, &pk, field[i]);
		}
	proto_key(&pk, "jobs");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 1);
	proto_kv_cstr(&pk, "queue", "pre");
	hostile_expect(x, what, sb.data, sb.size, echo, 0, c1, c2);
	msgpack_sbuffer_destroy(&sb);
}

/* One envelope field bad, the others good (each case its own rid). */
static size_t env_field(ctx *x, const char *key, const struct bad *bads, size_t n_bad)
{
	static unsigned serial;
	for (size_t i = 0; i < n_bad; i++) {
		char rid[32], what[160];
		snprintf(rid, sizeof(rid), "env-%u", serial++);
		struct env e = {U(1), S("push"), S(rid), S("hostile-cid"), NONE};
		struct val *slot = strcmp(key, "v") == 0    ? &e.v
				   : strcmp(key, "op") == 0 ? &e.op
				   : strcmp(key, "rid") == 0 ? &e.rid
				   : strcmp(key, "cid") == 0 ? &e.cid
							     : &e.auth;
		*slot = bads[i].v;
		snprintf(what, sizeof(what), "envelope: %s %s", key, bads[i].what);
		/* a bad rid cannot be echoed; every other answer carries it */
		env_case(x, what, &e, strcmp(key, "rid") == 0 ? NULL : rid, bads[i].c1, bads[i].c2);
	}
	return n_bad;
}

#define ENV(x, key, bads) env_field((x), (key), (bads), sizeof(bads) / sizeof((bads)[0]))

static void envelope(ctx *x)
{
	static const struct bad v[] = {
		{"missing", NONE, "BAD_REQUEST", NULL},
		{"nil", NIL, "BAD_REQUEST", NULL},
		{"0", U(0), "BAD_REQUEST", NULL},
		{"2", U(2), "BAD_REQUEST", NULL},
		{"2^32 + 1", U(4294967297ll), "BAD_REQUEST", NULL},
		{"2^63", {V_UINT, INT64_MIN, NULL, 0}, "BAD_REQUEST", NULL},
		{"-1", I(-1), "BAD_REQUEST", NULL},
		{"1.0 as a float", FLOAT, "BAD_REQUEST", NULL},
		{"'1'", S("1"), "BAD_REQUEST", NULL},
		{"true", TRUE, "BAD_REQUEST", NULL},
		{"an array", ARRAY, "BAD_REQUEST", NULL},
		{"bin", B("\x01"), "BAD_REQUEST", NULL},
	};
	static const struct bad op[] = {
		{"missing", NONE, "BAD_REQUEST", NULL},
		{"nil", NIL, "BAD_REQUEST", NULL},
		{"an int", U(1), "BAD_REQUEST", NULL},
		{"an array", ARRAY, "BAD_REQUEST", NULL},
		{"bin 'push'", B("push"), "BAD_REQUEST", NULL},
		{"empty", S(""), "BAD_REQUEST", NULL},
		{"'PUSH'", S("PUSH"), "BAD_REQUEST", NULL},
		{"'push ' (a space after)", S("push "), "BAD_REQUEST", NULL},
		{"'push' and a NUL", SN("push\0", 5), "BAD_REQUEST", NULL},
		{"'pushx'", S("pushx"), "BAD_REQUEST", NULL},
		{"not UTF-8", S("push\xff"), "BAD_REQUEST", NULL},
		{"UTF-8 beyond ASCII", S("p\xc3\xbcsh"), "BAD_REQUEST", NULL},
		{"control characters", S("\x1b[2Jpush"), "BAD_REQUEST", NULL},
		{"65 bytes", SN(x65, 65), "BAD_REQUEST", NULL},
		/* the broker quotes 32 bytes of an unknown op: here half an 'é' */
		{"31 bytes and an e-acute", S("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xc3\xa9"), "BAD_REQUEST", NULL},
	};
	static const struct bad rid[] = {
		{"missing", NONE, "BAD_REQUEST", NULL},
		{"nil", NIL, "BAD_REQUEST", NULL},
		{"an int", U(42), "BAD_REQUEST", NULL},
		{"a bool", TRUE, "BAD_REQUEST", NULL},
		{"an array", ARRAY, "BAD_REQUEST", NULL},
		{"a map", MAP, "BAD_REQUEST", NULL},
		{"empty", S(""), "BAD_REQUEST", NULL},
		{"empty bin", BN("", 0), "BAD_REQUEST", NULL},
		{"not UTF-8", S("rid\xff"), "BAD_REQUEST", NULL},
		{"65 bytes", SN(x65, 65), "BAD_REQUEST", NULL},
		{"65 bytes of bin", BN(x65, 65), "BAD_REQUEST", NULL},
	};
	static const struct bad cid[] = {
		{"an int", U(42), "BAD_REQUEST", NULL},
		{"a bool", TRUE, "BAD_REQUEST", NULL},
		{"an array", ARRAY, "BAD_REQUEST", NULL},
		{"a map", MAP, "BAD_REQUEST", NULL},
		{"empty", S(""), "BAD_REQUEST", NULL},
		{"empty bin", BN("", 0), "BAD_REQUEST", NULL},
		{"not UTF-8", S("cid\xff"), "BAD_REQUEST", NULL},
		{"65 bytes", SN(x65, 65), "BAD_REQUEST", NULL},
		{"65 bytes of bin", BN(x65, 65), "BAD_REQUEST", NULL},
	};

	tally("envelope v", ENV(x, "v", v));
	tally("envelope op", ENV(x, "op", op));
	tally("envelope rid", ENV(x, "rid", rid));
	tally("envelope cid", ENV(x, "cid", cid));
}

void hostile_ops2(ctx *x)
{
	fill_long();
	step_ops(x);
	operator_ops(x);
	envelope(x);
}

/* ---- auth, against a broker started with --auth -------------------------- */

/* op (a push to "auth.q", or a cancel of x->pre_id, an admin's op) with
 * auth as given. */
static void auth_case(ctx *x, const char *what, const char *op, const struct val *auth,
		      const char *c1, const char *c2)
{
	static unsigned serial;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char rid[32];

	snprintf(rid, sizeof(rid), "auth-%u", serial++);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5 + (auth->kind != V_NONE));
	proto_kv_uint(&pk, "v", 1);
	proto_kv_cstr(&pk, "op", op);
	proto_kv_cstr(&pk, "rid", rid);
	proto_kv_cstr(&pk, "cid", "hostile-cid");
	if (auth->kind != V_NONE) {
		proto_key(&pk, "auth");
		pack_val(x, &pk, auth);
	}
	if (strcmp(op, "push") == 0) {
		proto_key(&pk, "jobs");
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 1);
		proto_kv_cstr(&pk, "queue", "auth.q");
	} else {
		proto_kv_cstr(&pk, "id", x->pre_id);
	}
	hostile_expect(x, what, sb.data, sb.size, rid, 0, c1, c2);
	msgpack_sbuffer_destroy(&sb);
}

void hostile_auth(ctx *x, const char *producer)
{
	static const struct bad auth[] = {
		{"missing", NONE, "UNAUTHORIZED", NULL},
		{"nil", NIL, "UNAUTHORIZED", NULL},
		{"an int", U(7), "BAD_REQUEST", NULL},
		{"a bool", TRUE, "BAD_REQUEST", NULL},
		{"an array", ARRAY, "BAD_REQUEST", NULL},
		{"a map", MAP, "BAD_REQUEST", NULL},
		{"bin", B("admin-token-4f1c9a7e0b2d"), "BAD_REQUEST", NULL},
		{"empty", S(""), "UNAUTHORIZED", NULL},
		{"15 bytes", S("abcdefghijklmno"), "UNAUTHORIZED", NULL},
		{"unknown", S("no-such-token-0123456789"), "UNAUTHORIZED", NULL},
		{"a known one with a byte more", S("admin-token-4f1c9a7e0b2dX"), "UNAUTHORIZED", NULL},
		{"a known one's prefix", S("admin-token-4f1c9a7e0b2"), "UNAUTHORIZED", NULL},
		{"not UTF-8", S("admin-token-4f1c9a7e0b2\xff"), "BAD_REQUEST", NULL},
		{"257 bytes", SN(x257, 257), "BAD_REQUEST", "TOO_LARGE"},
	};
	static const struct val producer_token = {V_STR, 0, NULL, 0};
	size_t n = 0;
	char what[160];

	fill_long();
	for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++) {
		snprintf(what, sizeof(what), "envelope: auth %s (push)", auth[i].what);
		auth_case(x, what, "push", &auth[i].v, auth[i].c1, auth[i].c2);
		snprintf(what, sizeof(what), "envelope: auth %s (cancel)", auth[i].what);
		auth_case(x, what, "cancel", &auth[i].v, auth[i].c1, auth[i].c2);
		n += 2;
	}
	struct val p = producer_token;
	p.s = producer;
	auth_case(x, "cancel with a producer's token", "cancel", &p, "UNAUTHORIZED", NULL);
	tally("envelope auth", n + 1);
}
