/*
 * test_hostile.c - bad input gets a clear error and changes nothing
 * (promise 6).
 *
 * Over the raw protocol the broker is fed empty, truncated, random and
 * deeply nested frames, absurd declared counts, oversized frames, wrong
 * field types and ranges, unknown ops, bad queue names, bad tokens and IDs,
 * bad request IDs and versions.  Each must get a reply with ok=false, the
 * right error code and a sentence (or, for a frame over the transport
 * limit, a closed connection).  Where the frame itself was readable the
 * reply must carry the request's rid.  Before and after, a leased job and a
 * ready job sit in the broker: afterwards the broker still answers, stats
 * are identical and the leased job is exactly as it was.  Against a
 * broker with --auth, bad auth values are refused and change nothing.
 *
 * All cases run even when one fails; the failures are listed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostile.h"
#include "proc.h"

void hostile_failed(ctx *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAILED: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	x->failures++;
}

static bool rid_matches(const msgpack_object *root, const char *rid)
{
	const msgpack_object *v = th_get(root, "rid");
	size_t n = strlen(rid);
	if (v == NULL)
		return false;
	if (v->type == MSGPACK_OBJECT_BIN)
		return v->via.bin.size == n && memcmp(v->via.bin.ptr, rid, n) == 0;
	if (v->type == MSGPACK_OBJECT_STR)
		return v->via.str.size == n && memcmp(v->via.str.ptr, rid, n) == 0;
	return false;
}

/* Sends one hostile frame and checks the answer: error code c1 (or c2 when
 * not NULL), a message, the rid echoed when rid is not NULL. */
/* Every str in o (keys too) is valid UTF-8: the broker's replies quote
 * clients' bytes, and must still be text. */
static bool all_utf8(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		return proto_utf8_prefix(o->via.str.ptr, o->via.str.size) == o->via.str.size;
	case MSGPACK_OBJECT_ARRAY:
		for (uint32_t i = 0; i < o->via.array.size; i++)
			if (!all_utf8(&o->via.array.ptr[i]))
				return false;
		return true;
	case MSGPACK_OBJECT_MAP:
		for (uint32_t i = 0; i < o->via.map.size; i++)
			if (!all_utf8(&o->via.map.ptr[i].key) || !all_utf8(&o->via.map.ptr[i].val))
				return false;
		return true;
	default:
		return true;
	}
}

void hostile_expect(ctx *x, const char *what, const void *buf, size_t len, const char *rid,
		    int flags, const char *c1, const char *c2)
{
	th_reply rep;
	int rv = th_raw_call(&x->r, buf, len, &rep);
	char err[32] = "", msg[512] = "";
	bool item = false;

	x->cases++;
	if (rv != 0) {
		if (!(flags & F_MAY_CLOSE))
			hostile_failed(x, "%s: no decodable reply (%s)", what,
			       rv > 0 ? nng_strerror(rv) : "undecodable");
		th_reply_free(&rep);
		/* Start over on a fresh connection. */
		th_raw_close(&x->r);
		if (th_raw_open(&x->r, x->b->url, 10000) != 0)
			fail_msg("cannot reconnect after %s", what);
		return;
	}
	if (rep.ok && (flags & F_ITEM)) {
		const msgpack_object *m = th_item(rep.root, "results", 0);
		bool ok = true;
		if (m != NULL && th_bool(m, "ok", &ok) && !ok) {
			th_str(m, "err", err, sizeof(err));
			th_str(m, "msg", msg, sizeof(msg));
			item = true;
		}
	} else {
		snprintf(err, sizeof(err), "%s", rep.err);
		snprintf(msg, sizeof(msg), "%s", rep.msg);
	}
	if (rep.ok && !item) {
		hostile_failed(x, "%s: accepted (ok=true); expected %s%s%s", what, c1, c2 ? " or " : "",
		       c2 ? c2 : "");
	} else if (strcmp(err, c1) != 0 && (c2 == NULL || strcmp(err, c2) != 0)) {
		hostile_failed(x, "%s: err '%s' (%s); expected %s%s%s", what, err, msg, c1, c2 ? " or " : "",
		       c2 ? c2 : "");
	} else if (msg[0] == '\0') {
		hostile_failed(x, "%s: err %s without a msg sentence", what, err);
	}
	if (rid != NULL && !(flags & F_NO_RID) && !rid_matches(rep.root, rid))
		hostile_failed(x, "%s: the reply does not carry the request's rid", what);
	if (rep.root != NULL && !all_utf8(rep.root))
		hostile_failed(x, "%s: the reply holds a string that is not valid UTF-8", what);
	th_reply_free(&rep);
}

/* Sends a th_req (and frees it). */
void hostile_expect_req(ctx *x, const char *what, th_req *q, int flags, const char *c1,
			const char *c2)
{
	if (q->w.failed)
		fail_msg("%s: packing failed", what);
	hostile_expect(x, what, nng_msg_body(q->msg), nng_msg_len(q->msg), q->rid, flags, c1, c2);
	th_req_free(q);
}

msgpack_packer *hostile_begin(th_req *q, const char *op, size_t n)
{
	if (th_req_begin(q, op, n) != 0)
		fail_msg("th_req_begin");
	return th_pk(q);
}


/* ---- the test ------------------------------------------------------- */

/* What of the leased job must not change. */
typedef struct snapshot {
	char state[16], token[PROTO_ID_LEN + 1];
	uint64_t attempt, failures, expiries, deadline;
	size_t history;
	char *stats;
} snapshot;

static void take(ctx *x, snapshot *s)
{
	th_reply rep;
	const msgpack_object *exe;

	memset(s, 0, sizeof(*s));
	if (th_raw_get(&x->r, x->pre_id, &rep, &exe) != 0)
		fail_msg("get of the leased job failed");
	th_str(exe, "state", s->state, sizeof(s->state));
	th_str(exe, "lease_token", s->token, sizeof(s->token));
	th_uint(exe, "attempt", &s->attempt);
	th_uint(exe, "failures", &s->failures);
	th_uint(exe, "expiries", &s->expiries);
	th_uint(exe, "lease_deadline", &s->deadline);
	s->history = th_count(exe, "history");
	th_reply_free(&rep);
	s->stats = th_raw_stats_text(&x->r);
	if (s->stats == NULL)
		fail_msg("stats failed");
}

static void test_hostile_input(void **state)
{
	ctx x = { .b = *state };
	snapshot before, after;
	uint64_t attempt = 0;
	th_req q;
	th_reply rep;

	assert_int_equal(th_raw_open(&x.r, x.b->url, 10000), 0);
	assert_int_equal(th_raw_push(&x.r, "pre", "leased one", 120000, 0, x.pre_id), 0);
	assert_int_equal(th_raw_push(&x.r, "pre", "ready one", 0, 0, x.ready_id), 0);
	assert_int_equal(th_raw_claim(&x.r, "pre", 0, 1000, x.pre_id, x.pre_tok, &attempt), 0);
	take(&x, &before);
	assert_string_equal(before.state, "leased");
	assert_true(th_token_shown(before.token, x.pre_tok));

	/* Unknown keys are ignored: a ping with one is fine. */
	hostile_begin(&q, "ping", 1);
	proto_kv_cstr(th_pk(&q), "favourite_colour", "blue");
	assert_int_equal(th_req_call(&x.r, &q, &rep), 0);
	assert_true(rep.ok);
	th_reply_free(&rep);

	hostile_framing(&x);
	hostile_random(&x);
	hostile_sizes(&x);
	hostile_headers(&x);
	hostile_push(&x);
	hostile_claim(&x);
	hostile_operate(&x);
	hostile_ops2(&x);
	hostile_finish(&x);
	hostile_inspect(&x);

	/* Still serving, nothing created or changed. */
	th_raw_close(&x.r);
	assert_int_equal(th_raw_open(&x.r, x.b->url, 10000), 0);
	if (th_raw_ping(&x.r) != 0)
		fail_msg("the broker stopped answering after the hostile input");
	take(&x, &after);
	if (strcmp(before.stats, after.stats) != 0)
		hostile_failed(&x, "stats changed:\n  before: %s\n  after:  %s", before.stats, after.stats);
	if (strcmp(before.state, after.state) != 0 || strcmp(before.token, after.token) != 0 ||
	    before.attempt != after.attempt || before.failures != after.failures ||
	    before.expiries != after.expiries || before.deadline != after.deadline ||
	    before.history != after.history)
		hostile_failed(&x,
		       "the leased job changed: state %s->%s token %s->%s attempt %llu->%llu failures "
		       "%llu->%llu deadline %llu->%llu history %zu->%zu",
		       before.state, after.state, before.token, after.token,
		       (unsigned long long)before.attempt, (unsigned long long)after.attempt,
		       (unsigned long long)before.failures, (unsigned long long)after.failures,
		       (unsigned long long)before.deadline, (unsigned long long)after.deadline,
		       before.history, after.history);
	free(before.stats);
	free(after.stats);
	th_raw_close(&x.r);
	if (getenv("CUEQ_TEST_VERBOSE") != NULL)
		fprintf(stderr, "%zu hostile cases, %zu failures\n", x.cases, x.failures);
	if (x.failures != 0)
		fail_msg("%zu of %zu hostile cases were not answered as specified (listed above)",
			 x.failures, x.cases);
}

/* ---- the auth field, against a broker with --auth ---------------------- */

#define H_ADMIN "admin-token-4f1c9a7e0b2d"
#define H_PRODUCER "producer-token-8e3b1d5a77c0"

struct authfx {
	th_broker b;
	char dir[64], file[96];
};

static int start_with_auth(void **state)
{
	struct authfx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/cueq-hostile-auth-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->file, sizeof(f->file), "%s/auth", f->dir);
	FILE *fp = fopen(f->file, "w");
	if (fp == NULL)
		return -1;
	fputs("admin ops " H_ADMIN "\nproducer web " H_PRODUCER "\n", fp);
	fclose(fp);
	const char *extra[] = {"--auth", f->file, NULL};
	*state = f;
	return th_broker_start(&f->b, extra);
}

static int stop_with_auth(void **state)
{
	struct authfx *f = *state;
	th_broker_cleanup(&f->b);
	unlink(f->file);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* op as the admin; the reply in rep (free it). */
static void as_admin(th_raw *r, const char *op, const char *key, const char *value, th_reply *rep)
{
	static unsigned serial;
	char rid[32];
	th_req q;
	snprintf(rid, sizeof(rid), "admin-%u", serial++);
	assert_int_equal(th_req_begin_auth(&q, op, key ? 1 : 0, rid, "hostile-admin", H_ADMIN), 0);
	if (key != NULL && strcmp(key, "jobs") == 0) {
		proto_key(th_pk(&q), "jobs");
		msgpack_pack_array(th_pk(&q), 1);
		msgpack_pack_map(th_pk(&q), 1);
		proto_kv_cstr(th_pk(&q), "queue", value);
	} else if (key != NULL) {
		proto_kv_cstr(th_pk(&q), key, value);
	}
	assert_int_equal(th_req_call(r, &q, rep), 0);
	if (!rep->ok)
		fail_msg("%s as the admin: %s %s", op, rep->err, rep->msg);
}

/* Bad auth values on a push and on a cancel: refused, and nothing was
 * pushed or cancelled (the one job pushed before is still ready, alone in
 * its queue). */
static void test_hostile_auth(void **state)
{
	struct authfx *f = *state;
	ctx x = {.b = &f->b};
	th_reply rep;
	char st[16];
	uint64_t ready = 0;

	assert_int_equal(th_raw_open(&x.r, f->b.url, 10000), 0);
	as_admin(&x.r, "push", "jobs", "auth.q", &rep);
	assert_true(th_str(th_item(rep.root, "results", 0), "execution_id", x.pre_id, sizeof(x.pre_id)));
	th_reply_free(&rep);

	hostile_auth(&x, H_PRODUCER);

	th_raw_close(&x.r);
	assert_int_equal(th_raw_open(&x.r, f->b.url, 10000), 0);
	as_admin(&x.r, "get", "execution_id", x.pre_id, &rep);
	assert_true(th_str(th_get(rep.root, "execution"), "state", st, sizeof(st)));
	th_reply_free(&rep);
	as_admin(&x.r, "stats", "queue", "auth.q", &rep);
	assert_true(th_uint(th_item(rep.root, "queues", 0), "ready", &ready));
	th_reply_free(&rep);
	th_raw_close(&x.r);
	if (strcmp(st, "ready") != 0 || ready != 1)
		hostile_failed(&x, "bad auth changed something: the job is %s, %llu ready in its queue",
			       st, (unsigned long long)ready);
	if (x.failures != 0)
		fail_msg("%zu of %zu auth cases were not answered as specified (listed above)",
			 x.failures, x.cases);
}

/* A broker without authentication refuses to listen where other machines
 * reach it, saying what to do, unless --insecure says the risk is known. */
static void test_listen_beyond_loopback_needs_insecure(void **state)
{
	char dir[] = "/tmp/cueq-insecure-XXXXXX", data[64], url[64], local[64];
	int port = th_free_port();
	th_proc p;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(url, sizeof(url), "tcp://0.0.0.0:%d", port);
	snprintf(local, sizeof(local), "tcp://127.0.0.1:%d", port);
	char *const refused[] = {(char *)th_cueqd_path, "--data", data, "--listen", url, "--http",
				 "off", NULL};
	assert_int_equal(th_run(&p, NULL, 10000, refused, NULL), 0);
	assert_int_equal(p.exit_code, 1);
	if (strstr(p.err, "--insecure") == NULL || strstr(p.err, "loopback") == NULL)
		fail_msg("the refusal does not say what to do: %s", p.err);
	th_proc_free(&p);

	char *const allowed[] = {(char *)th_cueqd_path, "--data", data, "--listen", url,
				 "--http", "off", "--insecure", NULL};
	pid_t pid = proc_spawn(allowed, NULL);
	assert_true(pid > 0);
	th_raw r;
	bool up = false;
	for (int64_t deadline = th_now_ms() + 10000; !up && th_now_ms() < deadline; th_sleep_ms(50)) {
		if (th_raw_open(&r, local, 1000) != 0)
			continue;
		up = th_raw_ping(&r) == 0;
		th_raw_close(&r);
	}
	int status = 0;
	proc_stop(pid, 10000, &status);
	assert_true(up);
	char rm[96];
	snprintf(rm, sizeof(rm), "rm -rf %s", dir);
	assert_int_equal(system(rm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hostile_input, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_hostile_auth, start_with_auth, stop_with_auth),
		cmocka_unit_test(test_listen_beyond_loopback_needs_insecure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

