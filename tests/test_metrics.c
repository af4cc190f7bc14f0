/*
 * test_metrics.c - what the broker measures of itself: the metrics op
 * (PROTOCOL.md, "metrics") and GET /metrics in Prometheus's text format.
 *
 * A real broker does real work over the raw protocol: pushes, a duplicate
 * by idempotency key, refusals by idempotency and unique key, claims,
 * acks, a terminal nack to dead, a lease that expires, one released when
 * its connection closes, a cancel, a parked claim, an unknown op.  The
 * metrics op must count each of them where PROTOCOL.md says; the same
 * answer rendered by the broker's own prom.c, and GET /metrics of the
 * HTTP face, must show the same numbers and pass `promtool check metrics`
 * (Debian's prometheus package) without a word of complaint.  With
 * --auth, metrics needs a token like stats, and a principal limited to
 * queue prefixes sees only its queues.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "prom.h"

#define Q "q"
#define ADMIN "admin-token-6d2b8f1e0c3a"
#define WORKER "worker-token-1f7c3e9a5b2d"

/* ---- the raw protocol ---- */

static void open_raw(const th_broker *b, th_raw *r)
{
	assert_int_equal(th_raw_open(r, b->url, 10000), 0);
}

/* Pushes one job to queue (key, unique: NULL none; delay_ms 0 none) and
 * returns its result's err ("" when created or a duplicate) and, in dup,
 * whether it was a duplicate. */
static void push1(th_raw *r, const char *queue, const char *payload, const char *key,
		  const char *unique, uint64_t delay_ms, char err[32], bool *dup,
		  char id[PROTO_ID_LEN + 1])
{
	th_req q;
	th_reply rep;
	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2 + (key != NULL) + (unique != NULL) + (delay_ms > 0));
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_bin(th_pk(&q), "payload", payload, strlen(payload));
	if (key != NULL)
		proto_kv_cstr(th_pk(&q), "key", key);
	if (unique != NULL)
		proto_kv_cstr(th_pk(&q), "unique", unique);
	if (delay_ms > 0)
		proto_kv_uint(th_pk(&q), "delay_ms", delay_ms);
	assert_int_equal(th_req_call(r, &q, &rep), 0);
	if (!rep.ok)
		fail_msg("push refused: %s %s", rep.err, rep.msg);
	const msgpack_object *res = th_item(rep.root, "results", 0);
	assert_non_null(res);
	err[0] = '\0';
	th_str(res, "err", err, 32);
	*dup = false;
	th_bool(res, "duplicate", dup);
	id[0] = '\0';
	th_str(res, "execution_id", id, PROTO_ID_LEN + 1);
	th_reply_free(&rep);
}

static void push_ok(th_raw *r, const char *payload, const char *key, const char *unique,
		    uint64_t delay_ms, bool want_dup, char id[PROTO_ID_LEN + 1])
{
	char err[32];
	bool dup;
	push1(r, Q, payload, key, unique, delay_ms, err, &dup, id);
	assert_string_equal(err, "");
	assert_true(dup == want_dup);
}

static void push_refused(th_raw *r, const char *payload, const char *key, const char *unique,
			 const char *want_err)
{
	char err[32], id[PROTO_ID_LEN + 1];
	bool dup;
	push1(r, Q, payload, key, unique, 0, err, &dup, id);
	assert_string_equal(err, want_err);
}

/* Acks (kind "ack") or nacks terminally ("nack") one lease. */
static void finish(th_raw *r, const char *kind, const char *id, const char *token)
{
	th_req q;
	th_reply rep;
	bool nack = strcmp(kind, "nack") == 0;
	assert_int_equal(th_req_begin(&q, kind, 1), 0);
	proto_key(th_pk(&q), "items");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2 + nack);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "lease_token", token);
	if (nack)
		proto_kv_bool(th_pk(&q), "terminal", true);
	assert_int_equal(th_req_call(r, &q, &rep), 0);
	assert_true(rep.ok);
	const msgpack_object *res = th_item(rep.root, "results", 0);
	bool ok = false;
	assert_non_null(res);
	assert_true(th_bool(res, "ok", &ok) && ok);
	th_reply_free(&rep);
}

static void claim_ok(th_raw *r, uint64_t lease_ms, char id[PROTO_ID_LEN + 1],
		     char tok[PROTO_ID_LEN + 1])
{
	uint64_t attempt;
	assert_int_equal(th_raw_claim(r, Q, lease_ms, 0, id, tok, &attempt), 0);
}

static void simple_op(th_raw *r, const char *op, const char *key, const char *val, bool want_ok)
{
	th_req q;
	th_reply rep;
	assert_int_equal(th_req_begin(&q, op, key != NULL), 0);
	if (key != NULL)
		proto_kv_cstr(th_pk(&q), key, val);
	assert_int_equal(th_req_call(r, &q, &rep), 0);
	if (rep.ok != want_ok)
		fail_msg("%s: ok %d, want %d (%s %s)", op, rep.ok, want_ok, rep.err, rep.msg);
	th_reply_free(&rep);
}

/* Starts a request with the token auth (NULL: none) under a new request ID. */
static void begin_auth(th_req *q, const char *op, size_t n_fields, const char *auth)
{
	static unsigned n;
	char rid[32];
	snprintf(rid, sizeof(rid), "m%u", n++);
	assert_int_equal(th_req_begin_auth(q, op, n_fields, rid, "metrics-test", auth), 0);
}

/* The metrics op's answer (over auth's token, NULL none) into *rep. */
static void metrics(th_raw *r, const char *auth, th_reply *rep)
{
	th_req q;
	begin_auth(&q, "metrics", 0, auth);
	assert_int_equal(th_req_call(r, &q, rep), 0);
}

static uint64_t total(const th_reply *rep, const char *key)
{
	uint64_t v = UINT64_MAX;
	const msgpack_object *t = th_get(rep->root, "totals");
	if (t == NULL || !th_uint(t, key, &v))
		fail_msg("metrics has no totals.%s", key);
	return v;
}

static uint64_t top(const th_reply *rep, const char *key)
{
	uint64_t v = UINT64_MAX;
	if (!th_uint(rep->root, key, &v))
		fail_msg("metrics has no %s", key);
	return v;
}

/* The queues entry of name, or NULL. */
static const msgpack_object *queue_of(const th_reply *rep, const char *name)
{
	char q[160];
	for (size_t i = 0; i < th_count(rep->root, "queues"); i++) {
		const msgpack_object *m = th_item(rep->root, "queues", i);
		if (m != NULL && th_str(m, "queue", q, sizeof(q)) && strcmp(q, name) == 0)
			return m;
	}
	return NULL;
}

static uint64_t field_u(const msgpack_object *m, const char *key)
{
	uint64_t v = UINT64_MAX;
	if (m == NULL || !th_uint(m, key, &v))
		fail_msg("no %s", key);
	return v;
}

/* requests[].n of op and code (0 when not listed). */
static uint64_t requests_n(const th_reply *rep, const char *op, const char *code)
{
	char o[32], c[32];
	for (size_t i = 0; i < th_count(rep->root, "requests"); i++) {
		const msgpack_object *m = th_item(rep->root, "requests", i);
		if (m != NULL && th_str(m, "op", o, sizeof(o)) && th_str(m, "code", c, sizeof(c)) &&
		    strcmp(o, op) == 0 && strcmp(c, code) == 0)
			return field_u(m, "n");
	}
	return 0;
}

/* The sum of a histogram's counts ({counts, ...}). */
static uint64_t hist_count(const msgpack_object *h)
{
	const msgpack_object *c = h != NULL ? th_get(h, "counts") : NULL;
	uint64_t n = 0;
	if (c == NULL || c->type != MSGPACK_OBJECT_ARRAY)
		fail_msg("histogram without counts");
	for (uint32_t i = 0; i < c->via.array.size; i++)
		n += c->via.array.ptr[i].via.u64;
	return n;
}

/* request_us.ops[] of op, or NULL. */
static const msgpack_object *latency_of(const th_reply *rep, const char *op)
{
	const msgpack_object *lat = th_get(rep->root, "request_us");
	char o[32];
	assert_non_null(lat);
	for (size_t i = 0; i < th_count(lat, "ops"); i++) {
		const msgpack_object *m = th_item(lat, "ops", i);
		if (m != NULL && th_str(m, "op", o, sizeof(o)) && strcmp(o, op) == 0)
			return m;
	}
	return NULL;
}

/* The value of store figure name (of part, NULL: the whole); UINT64_MAX
 * when absent. */
static uint64_t figure(const th_reply *rep, const char *name, const char *part)
{
	char n[64], p[64];
	for (size_t i = 0; i < th_count(rep->root, "store"); i++) {
		const msgpack_object *m = th_item(rep->root, "store", i);
		if (m == NULL || !th_str(m, "name", n, sizeof(n)) || strcmp(n, name) != 0)
			continue;
		bool has = th_str(m, "part", p, sizeof(p));
		if ((part == NULL && !has) || (part != NULL && has && strcmp(p, part) == 0))
			return field_u(m, "value");
	}
	return UINT64_MAX;
}

/* Asks metrics until totals.key reaches want (5 s at most). */
static void await_total(th_raw *r, const char *key, uint64_t want)
{
	int64_t deadline = th_now_ms() + 5000;
	for (;;) {
		th_reply rep;
		metrics(r, NULL, &rep);
		uint64_t v = total(&rep, key);
		th_reply_free(&rep);
		if (v >= want)
			return;
		if (th_now_ms() > deadline)
			fail_msg("totals.%s stayed %llu, want %llu", key, (unsigned long long)v,
				 (unsigned long long)want);
		th_sleep_ms(20);
	}
}

static void await_parked(th_raw *r, uint64_t want)
{
	int64_t deadline = th_now_ms() + 5000;
	for (;;) {
		th_reply rep;
		metrics(r, NULL, &rep);
		uint64_t v = top(&rep, "parked");
		th_reply_free(&rep);
		if (v == want)
			return;
		if (th_now_ms() > deadline)
			fail_msg("parked stayed %llu, want %llu", (unsigned long long)v,
				 (unsigned long long)want);
		th_sleep_ms(20);
	}
}

/* Sends a claim on r without waiting for its answer (it parks). */
static void send_claim(th_raw *r, const char *queue, uint64_t wait_ms, bool detach)
{
	th_req q;
	assert_int_equal(th_req_begin(&q, "claim", 3 + detach), 0);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_uint(th_pk(&q), "max", 1);
	proto_kv_uint(th_pk(&q), "wait_ms", wait_ms);
	if (detach)
		proto_kv_bool(th_pk(&q), "detach", true);
	th_bytes b = th_req_keep(&q);
	assert_int_equal(nng_send(r->s, b.p, b.n, 0), 0);
	free(b.p);
}

/* ---- promtool, curl ---- */

/* Runs promtool check metrics on text: it must say nothing and exit 0. */
static void promtool_ok(const char *what, const char *text)
{
	th_proc p;
	char *argv[] = {(char *)PROMTOOL_PATH, "check", "metrics", NULL};
	if (th_run(&p, text, 30000, argv, NULL) != 0)
		fail_msg("cannot run %s (install Debian's prometheus package)", PROMTOOL_PATH);
	if (p.exit_code != 0 || p.out_len > 0 || p.err_len > 0) {
		th_proc_dump("promtool check metrics", &p);
		fprintf(stderr, "---- %s ----\n%s", what, text);
		fail_msg("promtool complains about %s", what);
	}
	th_proc_free(&p);
}

/* text holds line as one whole line. */
static void has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return;
	fprintf(stderr, "%s", text);
	fail_msg("no line '%s' in the metrics text", line);
}

/* What the op's numbers must look like as text. */
static void check_text(const char *text)
{
	has_line(text, "# TYPE cueq_queue_jobs gauge");
	has_line(text, "cueq_queue_jobs{queue=\"q\",state=\"ready\"} 2");
	has_line(text, "cueq_queue_jobs{queue=\"q\",state=\"leased\"} 1");
	has_line(text, "cueq_queue_jobs{queue=\"q\",state=\"scheduled\"} 1");
	has_line(text, "cueq_queue_jobs{queue=\"q\",state=\"succeeded\"} 2");
	has_line(text, "cueq_queue_jobs{queue=\"q\",state=\"dead\"} 1");
	has_line(text, "cueq_queue_jobs{queue=\"q\",state=\"cancelled\"} 1");
	has_line(text, "cueq_queue_deliveries_total{queue=\"q\"} 6");
	has_line(text, "cueq_queue_expiries_total{queue=\"q\"} 2");
	has_line(text, "cueq_queue_failures_total{queue=\"q\"} 1");
	has_line(text, "cueq_queue_releases_total{queue=\"q\"} 1");
	has_line(text, "# TYPE cueq_pushed_total counter");
	has_line(text, "cueq_pushed_total 8");
	has_line(text, "cueq_push_duplicates_total 1");
	has_line(text, "cueq_push_refused_total{reason=\"unique_key\"} 1");
	has_line(text, "cueq_push_refused_total{reason=\"idempotency_mismatch\"} 1");
	has_line(text, "cueq_claimed_total 6");
	has_line(text, "cueq_acked_total 2");
	has_line(text, "cueq_nacked_total 1");
	has_line(text, "cueq_expired_total 1");
	has_line(text, "cueq_released_total 1");
	has_line(text, "cueq_dead_total 1");
	has_line(text, "cueq_cancelled_total 1");
	has_line(text, "cueq_parked_claims 1");
	has_line(text, "cueq_requests_total{op=\"push\",code=\"OK\"} 11");
	has_line(text, "cueq_requests_total{op=\"unknown\",code=\"BAD_REQUEST\"} 1");
	has_line(text, "# TYPE cueq_request_duration_seconds histogram");
	has_line(text, "cueq_request_duration_seconds_count{op=\"push\"} 11");
	has_line(text, "cueq_request_duration_seconds_bucket{op=\"push\",le=\"+Inf\"} 11");
	has_line(text, "# TYPE cueq_fsync_duration_seconds histogram");
	has_line(text, "# TYPE cueq_group_commit_batch_requests histogram");
	has_line(text, "cueq_store_block_cache_capacity_bytes 16777216");
	assert_non_null(strstr(text, "cueq_store_estimated_keys{part=\"exec\"} "));
	assert_non_null(strstr(text, "cueq_build_info{version=\"0.1.0\",engine=\"embedded\"} 1"));
}

/* GET url with curl: the body, malloc'd; *code and ctype the status and
 * Content-Type. */
static char *http_get(const th_broker *b, const char *url, int *code, char *ctype, size_t size)
{
	char out[PATH_MAX];
	snprintf(out, sizeof(out), "%s/metrics.txt", b->dir);
	char *argv[] = {(char *)CURL_PATH, "-sS", "--max-time", "20", "-o", out, "-w",
			"%{http_code} %{content_type}", (char *)url, NULL};
	th_proc p;
	if (th_run(&p, NULL, 30000, argv, NULL) != 0)
		fail_msg("cannot run %s", CURL_PATH);
	if (p.exit_code != 0) {
		th_proc_dump("curl", &p);
		fail_msg("curl %s failed", url);
	}
	*code = atoi(p.out);
	const char *sp = strchr(p.out, ' ');
	snprintf(ctype, size, "%s", sp ? sp + 1 : "");
	th_proc_free(&p);
	FILE *f = fopen(out, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *body = malloc((size_t)n + 1);
	assert_non_null(body);
	assert_int_equal(fread(body, 1, (size_t)n, f), (size_t)n);
	body[n] = '\0';
	fclose(f);
	return body;
}

/* ---- the tests ---- */

static void test_counts_and_text(void **state)
{
	(void)state;
	th_broker b = {0};
	th_raw r, r2, r3;
	th_reply rep;
	char id[PROTO_ID_LEN + 1], tok[PROTO_ID_LEN + 1], s2[PROTO_ID_LEN + 1];

	b.http = true;
	assert_int_equal(th_broker_start(&b, NULL), 0);
	open_raw(&b, &r);

	/* 8 created, 1 duplicate, 2 refused: 11 push requests, each ok */
	for (int i = 0; i < 4; i++)
		push_ok(&r, "plain", NULL, NULL, 0, false, id);
	push_ok(&r, "keyed", "k1", NULL, 0, false, id);
	push_ok(&r, "keyed", "k1", NULL, 0, true, id);
	push_refused(&r, "other", "k1", NULL, "IDEMPOTENCY_MISMATCH");
	push_ok(&r, "unique", NULL, "u1", 0, false, id);
	push_refused(&r, "unique", NULL, "u1", "CONFLICT");
	push_ok(&r, "later", NULL, NULL, 600000, false, id);
	push_ok(&r, "later", NULL, NULL, 600000, false, s2);
	simple_op(&r, "cancel", "id", s2, true);

	/* two acked, one dead by a terminal nack */
	for (int i = 0; i < 2; i++) {
		claim_ok(&r, 0, id, tok);
		finish(&r, "ack", id, tok);
	}
	claim_ok(&r, 0, id, tok);
	finish(&r, "nack", id, tok);
	/* one lease runs out, one ends with its connection */
	claim_ok(&r, 100, id, tok);
	await_total(&r, "expired", 1);
	open_raw(&b, &r2);
	send_claim(&r2, Q, 0, false);
	nng_msg *m;
	assert_int_equal(nng_recvmsg(r2.s, &m, 0), 0);
	nng_msg_free(m);
	th_raw_close(&r2);
	await_total(&r, "released", 1);
	/* one leased now, one claim parked on another connection */
	claim_ok(&r, 0, id, tok);
	open_raw(&b, &r3);
	send_claim(&r3, "idle", 30000, true);
	await_parked(&r, 1);
	simple_op(&r, "nope", NULL, NULL, false);

	metrics(&r, NULL, &rep);
	assert_true(rep.ok);
	assert_int_equal(total(&rep, "pushed"), 8);
	assert_int_equal(total(&rep, "duplicates"), 1);
	assert_int_equal(total(&rep, "refused_unique"), 1);
	assert_int_equal(total(&rep, "refused_mismatch"), 1);
	assert_int_equal(total(&rep, "claimed"), 6);
	assert_int_equal(total(&rep, "acked"), 2);
	assert_int_equal(total(&rep, "nacked"), 1);
	assert_int_equal(total(&rep, "expired"), 1);
	assert_int_equal(total(&rep, "released"), 1);
	assert_int_equal(total(&rep, "dead"), 1);
	assert_int_equal(total(&rep, "cancelled"), 1);
	assert_int_equal(total(&rep, "dropped"), 0);
	assert_int_equal(top(&rep, "parked"), 1);
	assert_true(top(&rep, "connections") >= 2);
	const msgpack_object *q = queue_of(&rep, Q);
	assert_non_null(q);
	assert_int_equal(field_u(q, "ready"), 2);
	assert_int_equal(field_u(q, "leased"), 1);
	assert_int_equal(field_u(q, "scheduled"), 1);
	assert_int_equal(field_u(q, "succeeded"), 2);
	assert_int_equal(field_u(q, "dead"), 1);
	assert_int_equal(field_u(q, "cancelled"), 1);
	assert_int_equal(field_u(q, "deliveries"), 6);
	assert_int_equal(field_u(q, "expiries"), 2);
	assert_int_equal(field_u(q, "failures"), 1);
	assert_int_equal(field_u(q, "releases"), 1);
	assert_int_equal(requests_n(&rep, "push", "OK"), 11);
	assert_int_equal(requests_n(&rep, "unknown", "BAD_REQUEST"), 1);
	assert_int_equal(requests_n(&rep, "cancel", "OK"), 1);
	assert_true(requests_n(&rep, "claim", "OK") >= 6);
	assert_int_equal(hist_count(latency_of(&rep, "push")), 11);
	/* under --fsync always every push waited for a sync */
	assert_true(hist_count(th_get(rep.root, "fsync_us")) >= 1);
	assert_true(hist_count(th_get(rep.root, "sync_batch")) >= 1);
	assert_int_equal(figure(&rep, "block_cache_capacity_bytes", NULL), 16u << 20);
	assert_true(figure(&rep, "estimated_keys", "exec") != UINT64_MAX);
	assert_true(figure(&rep, "memtable_bytes", "exec") > 0);

	/* the same answer as Prometheus text, by the broker's own renderer */
	size_t len;
	char *text = prom_render(rep.buf, rep.len, &len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	check_text(text);
	promtool_ok("the rendered metrics op", text);
	free(text);
	th_reply_free(&rep);

	/* and through the HTTP face */
	char url[128], ctype[128];
	int code;
	snprintf(url, sizeof(url), "%s/metrics", b.http_url);
	char *body = http_get(&b, url, &code, ctype, sizeof(ctype));
	if (code != 200) {
		th_broker_dump_log(&b);
		fail_msg("GET /metrics answered %d: %s", code, body);
	}
	assert_non_null(strstr(ctype, "text/plain; version=0.0.4"));
	check_text(body);
	promtool_ok("GET /metrics", body);
	free(body);

	th_raw_close(&r3);
	th_raw_close(&r);
	th_broker_cleanup(&b);
}

/* prom_render escapes label values and HELP text, and refuses what is no
 * ok answer of metrics. */
static void test_render_escapes(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t len;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	proto_kv_bool(&pk, "ok", true);
	proto_key(&pk, "totals");
	msgpack_pack_map(&pk, 0);
	proto_key(&pk, "store");
	msgpack_pack_array(&pk, 2);
	for (int i = 0; i < 2; i++) {
		msgpack_pack_map(&pk, 5);
		proto_kv_cstr(&pk, "name", "odd-name");
		proto_kv_cstr(&pk, "help", "a \\ and a\nnewline");
		proto_kv_cstr(&pk, "part", i ? "x\"y\\z\nw" : "plain");
		proto_kv_uint(&pk, "value", 7 + i);
		proto_kv_cstr(&pk, "kind", "counter");
	}
	char *text = prom_render(sb.data, sb.size, &len);
	assert_non_null(text);
	has_line(text, "# HELP cueq_store_odd_name_total a \\\\ and a\\nnewline");
	has_line(text, "# TYPE cueq_store_odd_name_total counter");
	has_line(text, "cueq_store_odd_name_total{part=\"plain\"} 7");
	has_line(text, "cueq_store_odd_name_total{part=\"x\\\"y\\\\z\\nw\"} 8");
	promtool_ok("a rendered reply with odd names", text);
	free(text);

	/* an error reply is no metrics */
	msgpack_sbuffer_clear(&sb);
	proto_reply_error(&pk, NULL, 0, false, CUEQ_ERR_UNAUTHORIZED, "no");
	assert_null(prom_render(sb.data, sb.size, &len));
	assert_null(prom_render("\xc1", 1, &len));
	msgpack_sbuffer_destroy(&sb);
}

/* With --auth metrics needs a token (any role); a principal limited to
 * queue prefixes sees only its queues. */
static void test_auth(void **state)
{
	(void)state;
	th_broker b = {0};
	th_raw r;
	th_reply rep;
	char dir[] = "/tmp/cueq-metrics-XXXXXX", path[64];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/auth", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "admin root " ADMIN "\nworker w " WORKER " a.\n");
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0600), 0);
	const char *extra[] = {"--auth", path, NULL};
	assert_int_equal(th_broker_start(&b, extra), 0);
	open_raw(&b, &r);
	const char *queues[] = {"a.one", "b.two"};
	for (int i = 0; i < 2; i++) {
		th_req q;
		begin_auth(&q, "push", 1, ADMIN);
		proto_key(th_pk(&q), "jobs");
		msgpack_pack_array(th_pk(&q), 1);
		msgpack_pack_map(th_pk(&q), 1);
		proto_kv_cstr(th_pk(&q), "queue", queues[i]);
		assert_int_equal(th_req_call(&r, &q, &rep), 0);
		assert_true(rep.ok);
		th_reply_free(&rep);
	}

	metrics(&r, NULL, &rep);
	assert_false(rep.ok);
	assert_string_equal(rep.err, "UNAUTHORIZED");
	th_reply_free(&rep);

	metrics(&r, WORKER, &rep);
	assert_true(rep.ok);
	assert_non_null(queue_of(&rep, "a.one"));
	assert_null(queue_of(&rep, "b.two"));
	assert_int_equal(total(&rep, "pushed"), 2); /* broker-wide figures are everyone's */
	th_reply_free(&rep);

	metrics(&r, ADMIN, &rep);
	assert_true(rep.ok);
	assert_non_null(queue_of(&rep, "a.one"));
	assert_non_null(queue_of(&rep, "b.two"));
	th_reply_free(&rep);

	th_raw_close(&r);
	th_broker_cleanup(&b);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_escapes),
		cmocka_unit_test(test_counts_and_text),
		cmocka_unit_test(test_auth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
