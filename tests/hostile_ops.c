/*
 * hostile_ops.c - well-formed frames with bad fields for what recurring
 * cues, retry policies and the operator add: push's schedule and backoff
 * fields, claim's detach, and cancel, retry, purge, pause, resume and
 * cues.  None may change the test's jobs: those that name one aim at its
 * leased job, which an applied request would change.
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

/* A push to "pre" whose one job gets the n fields the caller packs. */
static msgpack_packer *job(th_req *q, size_t n)
{
	hostile_begin(q, "push", 1);
	proto_key(th_pk(q), "jobs");
	msgpack_pack_array(th_pk(q), 1);
	msgpack_pack_map(th_pk(q), n + 1);
	proto_kv_cstr(th_pk(q), "queue", "pre.sched");
	return th_pk(q);
}

static void bad_schedules(ctx *x)
{
	th_req q;
	msgpack_packer *pk;
	static const char *const crons[] = {
		"", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
		"5-1 * * * *", "*/0 * * * *", "0 0 30 2 *", "@sometimes", "a b c d e", "* * * * * *",
	};

	for (size_t i = 0; i < sizeof(crons) / sizeof(crons[0]); i++) {
		char what[96];
		pk = job(&q, 1);
		proto_kv_cstr(pk, "cron", crons[i]);
		snprintf(what, sizeof(what), "push: cron '%s'", crons[i]);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
	}
	pk = job(&q, 1);
	proto_kv_uint(pk, "every_ms", 999);
	hostile_expect_req(x, "push: every_ms 999", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_kv_cstr(pk, "every_ms", "1m");
	hostile_expect_req(x, "push: every_ms as a string", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 2);
	proto_kv_uint(pk, "every_ms", 60000);
	proto_kv_cstr(pk, "cron", "* * * * *");
	hostile_expect_req(x, "push: every_ms and cron", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_kv_cstr(pk, "tz", "Europe/Berlin");
	hostile_expect_req(x, "push: tz without cron", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 2);
	proto_kv_cstr(pk, "cron", "* * * * *");
	proto_kv_cstr(pk, "tz", "Mars/Olympus_Mons");
	hostile_expect_req(x, "push: unknown tz", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 2);
	proto_kv_cstr(pk, "cron", "* * * * *");
	proto_kv_cstr(pk, "tz", "../../etc/passwd");
	hostile_expect_req(x, "push: tz as a path", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 2);
	proto_kv_uint(pk, "every_ms", 60000);
	proto_kv_cstr(pk, "catch_up", "some");
	hostile_expect_req(x, "push: catch_up 'some'", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 2);
	proto_kv_uint(pk, "every_ms", 60000);
	proto_kv_uint(pk, "overlap", 1);
	hostile_expect_req(x, "push: overlap as an int", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_kv_cstr(pk, "overlap", "skip");
	hostile_expect_req(x, "push: overlap without a schedule", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 2);
	proto_kv_uint(pk, "every_ms", 60000);
	proto_kv_cstr(pk, "unique", "u");
	hostile_expect_req(x, "push: unique on a recurring cue", &q, 0, "BAD_REQUEST", NULL);
}

static void bad_policies(ctx *x)
{
	th_req q;
	msgpack_packer *pk;

	pk = job(&q, 1);
	proto_key(pk, "backoff_factor");
	msgpack_pack_double(pk, 0.5);
	hostile_expect_req(x, "push: backoff_factor 0.5", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_key(pk, "backoff_factor");
	msgpack_pack_double(pk, 1e300);
	hostile_expect_req(x, "push: backoff_factor 1e300", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_kv_cstr(pk, "backoff_factor", "2");
	hostile_expect_req(x, "push: backoff_factor as a string", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_kv_int(pk, "backoff_ms", -1);
	hostile_expect_req(x, "push: backoff_ms negative", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_kv_uint(pk, "backoff_max_ms", 86400001);
	hostile_expect_req(x, "push: backoff_max_ms over a day", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_kv_cstr(pk, "jitter", "yes");
	hostile_expect_req(x, "push: jitter as a string", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_kv_uint(pk, "max_expiries", 0);
	hostile_expect_req(x, "push: max_expiries 0", &q, 0, "BAD_REQUEST", NULL);
	pk = job(&q, 1);
	proto_kv_uint(pk, "max_expiries", 1001);
	hostile_expect_req(x, "push: max_expiries 1001", &q, 0, "BAD_REQUEST", NULL);

	hostile_begin(&q, "claim", 2);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	proto_kv_cstr(th_pk(&q), "detach", "true");
	hostile_expect_req(x, "claim: detach as a string", &q, 0, "BAD_REQUEST", NULL);
}

static void one_field(ctx *x, const char *op, const char *what, const char *key, const char *v,
		      const char *code)
{
	th_req q;
	hostile_begin(&q, op, key ? 1 : 0);
	if (key)
		proto_kv_cstr(th_pk(&q), key, v);
	hostile_expect_req(x, what, &q, 0, code, NULL);
}

/* Strings that are not UTF-8 are refused (bytes go as bin), and what the
 * broker says about them is UTF-8 again (hostile_expect checks every
 * reply's strings). */
static void bad_text(ctx *x)
{
	static const char *const bad[] = {"\xc3", "ok\xff", "\xed\xa0\x80", "\xc0\xaf",
					  "\xf4\x90\x80\x80", "cut \xe2\x82"};
	th_req q;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[64];
		msgpack_packer *pk = job(&q, 1);
		proto_kv_cstr(pk, "key", bad[i]);
		snprintf(what, sizeof(what), "push: key not UTF-8 (%zu)", i);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);

		hostile_begin(&q, "ack", 1);
		proto_key(th_pk(&q), "items");
		msgpack_pack_array(th_pk(&q), 1);
		msgpack_pack_map(th_pk(&q), 3);
		proto_kv_cstr(th_pk(&q), "execution_id", x->pre_id);
		proto_kv_cstr(th_pk(&q), "lease_token", x->pre_tok);
		proto_kv_cstr(th_pk(&q), "result", bad[i]);
		snprintf(what, sizeof(what), "ack: result not UTF-8 (%zu)", i);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);

		hostile_begin(&q, "claim", 1);
		proto_kv_cstr(th_pk(&q), "queue", bad[i]);
		snprintf(what, sizeof(what), "claim: queue not UTF-8 (%zu)", i);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
	}
}

void hostile_operate(ctx *x)
{
	th_req q;

	bad_schedules(x);
	bad_policies(x);
	bad_text(x);

	one_field(x, "cancel", "cancel: id missing", NULL, NULL, "BAD_REQUEST");
	one_field(x, "cancel", "cancel: id 'xyz'", "id", "xyz", "BAD_REQUEST");
	one_field(x, "cancel", "cancel: unknown id", "id", "00000000000000ff", "NOT_FOUND");

	one_field(x, "retry", "retry: nothing named", NULL, NULL, "BAD_REQUEST");
	one_field(x, "retry", "retry: the leased job", "execution_id", x->pre_id, "CONFLICT");
	one_field(x, "retry", "retry: the ready job", "execution_id", x->ready_id, "CONFLICT");
	one_field(x, "retry", "retry: a queue without all", "queue", "pre", "BAD_REQUEST");
	hostile_begin(&q, "retry", 3);
	proto_kv_cstr(th_pk(&q), "execution_id", x->pre_id);
	proto_kv_cstr(th_pk(&q), "queue", "pre");
	proto_kv_bool(th_pk(&q), "all", true);
	hostile_expect_req(x, "retry: an ID and all", &q, 0, "BAD_REQUEST", NULL);
	hostile_begin(&q, "retry", 2);
	proto_kv_cstr(th_pk(&q), "queue", "a b");
	proto_kv_bool(th_pk(&q), "all", true);
	hostile_expect_req(x, "retry: a bad queue name", &q, 0, "BAD_REQUEST", NULL);

	static const char *const states[] = {"ready", "leased", "scheduled", "gone"};
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		char what[64];
		hostile_begin(&q, "purge", 2);
		proto_kv_cstr(th_pk(&q), "queue", "pre");
		proto_kv_cstr(th_pk(&q), "state", states[i]);
		snprintf(what, sizeof(what), "purge: state %s", states[i]);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
	}
	one_field(x, "purge", "purge: state missing", "queue", "pre", "BAD_REQUEST");

	static const char *const queue_ops[] = {"pause", "resume", "cues"};
	for (size_t i = 0; i < sizeof(queue_ops) / sizeof(queue_ops[0]); i++) {
		char what[64];
		snprintf(what, sizeof(what), "%s: queue missing", queue_ops[i]);
		one_field(x, queue_ops[i], what, NULL, NULL, "BAD_REQUEST");
		snprintf(what, sizeof(what), "%s: queue 'pre/x'", queue_ops[i]);
		one_field(x, queue_ops[i], what, "queue", "pre/x", "BAD_REQUEST");
		hostile_begin(&q, queue_ops[i], 1);
		proto_kv_uint(th_pk(&q), "queue", 7);
		snprintf(what, sizeof(what), "%s: queue as an int", queue_ops[i]);
		hostile_expect_req(x, what, &q, 0, "BAD_REQUEST", NULL);
	}
}
