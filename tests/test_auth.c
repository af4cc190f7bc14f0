/*
 * test_auth.c - who may do what (cueqd --auth FILE).  A real broker with
 * an auth file of four principals: an admin, a producer and a worker
 * limited to queues starting with "inv.", and an unlimited worker.  Over
 * the raw protocol every op is tried by every role, without a token and
 * with a wrong one; a refusal is UNAUTHORIZED and changes nothing (stats
 * before and after).  Queue prefixes hold for queue fields and for
 * execution IDs alike; lease tokens are shown redacted and are not
 * derived from IDs; request IDs are scoped by principal; SIGHUP reloads
 * the file; bad files stop cueqd at start with the line at fault; the CLI
 * sends --auth-token or CUEQ_TOKEN, and `cueq work` hands it to its
 * commands.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define ADMIN "admin-token-4f1c9a7e0b2d"
#define PRODUCER "producer-token-8e3b1d5a77c0"
#define WORKER "worker-token-2a6f0c9d41e8"
#define ANYWORKER "anyworker-token-77d2e0b9c4a1"
#define LATER "later-token-5b0e9f3a2c61d"

static const char auth_text[] =
	"# role    name       token                         queue prefixes\n"
	"admin     ops        " ADMIN "\n"
	"producer  web        " PRODUCER "   inv. mail.\n"
	"worker    billing    " WORKER "     inv.\n"
	"worker    anyworker  " ANYWORKER "\n";

struct fx {
	th_broker b;
	th_raw r;
	char dir[64];
	char file[96];
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0600), 0);
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	strcpy(x->dir, "/tmp/cueq-auth-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	snprintf(x->file, sizeof(x->file), "%s/auth", x->dir);
	write_file(x->file, auth_text);
	const char *extra[] = {"--auth", x->file, NULL};
	assert_int_equal(th_broker_start(&x->b, extra), 0);
	assert_int_equal(th_raw_open(&x->r, x->b.url, 10000), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	th_raw_close(&x->r);
	th_broker_cleanup(&x->b);
	unlink(x->file);
	rmdir(x->dir);
	free(x);
	return 0;
}

/* ---- requests as a principal ---- */

static int seq;

static void begin(th_req *q, const char *op, size_t n, const char *tok)
{
	char rid[32];
	snprintf(rid, sizeof(rid), "a%d-%d", (int)getpid(), ++seq);
	assert_int_equal(th_req_begin_auth(q, op, n, rid, "auth-test", tok), 0);
}

static void call(struct fx *x, th_req *q, th_reply *rep)
{
	int rv = th_req_call(&x->r, q, rep);
	if (rv != 0)
		fail_msg("no reply (%d)", rv);
}

static void expect(const th_reply *rep, const char *err, const char *what)
{
	if (err == NULL && !rep->ok)
		fail_msg("%s: refused: %s %s", what, rep->err, rep->msg);
	if (err != NULL && (rep->ok || strcmp(rep->err, err) != 0))
		fail_msg("%s: want %s, got %s %s", what, err, rep->ok ? "ok" : rep->err, rep->msg);
}

/* Pushes one job to queue as tok; the reply's error code ("" when ok) in
 * err, its ID in id. */
static void push_as(struct fx *x, const char *tok, const char *queue, const char *want,
		    char id[PROTO_ID_LEN + 1])
{
	th_req q;
	th_reply rep;
	begin(&q, "push", 1, tok);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_bin(th_pk(&q), "payload", "p", 1);
	call(x, &q, &rep);
	expect(&rep, want, "push");
	if (id != NULL && rep.ok) {
		const msgpack_object *j = th_item(rep.root, "results", 0);
		assert_non_null(j);
		assert_true(th_str(j, "execution_id", id, PROTO_ID_LEN + 1));
	}
	th_reply_free(&rep);
}

static void claim_as(struct fx *x, const char *tok, const char *queue, const char *want,
		     char id[PROTO_ID_LEN + 1], char token[PROTO_ID_LEN + 1])
{
	th_req q;
	th_reply rep;
	begin(&q, "claim", 2, tok);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_uint(th_pk(&q), "lease_ms", 60000);
	call(x, &q, &rep);
	expect(&rep, want, "claim");
	if (id != NULL && rep.ok) {
		const msgpack_object *j = th_item(rep.root, "jobs", 0);
		if (j == NULL)
			fail_msg("claim from %s got no job", queue);
		assert_true(th_str(j, "execution_id", id, PROTO_ID_LEN + 1));
		assert_true(th_str(j, "lease_token", token, PROTO_ID_LEN + 1));
	}
	th_reply_free(&rep);
}

/* An op whose fields are one string (queue or ID) as tok, expecting want. */
static void op1_as(struct fx *x, const char *tok, const char *op, const char *field,
		   const char *value, const char *want)
{
	th_req q;
	th_reply rep;
	char what[96];
	begin(&q, op, 1, tok);
	proto_kv_cstr(th_pk(&q), field, value);
	call(x, &q, &rep);
	snprintf(what, sizeof(what), "%s %s=%s", op, field, value);
	expect(&rep, want, what);
	th_reply_free(&rep);
}

/* ack (or nack, extend) of one (id, token) item as tok. */
static void finish_as(struct fx *x, const char *tok, const char *op, const char *id,
		      const char *token, const char *want)
{
	th_req q;
	th_reply rep;
	begin(&q, op, 1, tok);
	proto_key(th_pk(&q), "items");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), strcmp(op, "extend") == 0 ? 3 : 2);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "lease_token", token);
	if (strcmp(op, "extend") == 0)
		proto_kv_uint(th_pk(&q), "lease_ms", 60000);
	call(x, &q, &rep);
	expect(&rep, want, op);
	if (want == NULL) { /* the item itself went through */
		const msgpack_object *it = th_item(rep.root, "results", 0);
		bool ok = false;
		assert_non_null(it);
		assert_true(th_bool(it, "ok", &ok));
		assert_true(ok);
	}
	th_reply_free(&rep);
}

/* The queues' counts and paused flags from stats, as text, to compare
 * before and after (the reply's own bytes differ by request ID). */
static char *queues_text(struct fx *x)
{
	th_req q;
	th_reply rep;
	begin(&q, "stats", 0, ADMIN);
	call(x, &q, &rep);
	expect(&rep, NULL, "stats");
	const msgpack_object *qs = th_get(rep.root, "queues");
	assert_non_null(qs);
	char *buf = calloc(1, 1 << 16);
	assert_non_null(buf);
	size_t n = 0;
	for (uint32_t i = 0; i < qs->via.array.size; i++) {
		const msgpack_object *m = &qs->via.array.ptr[i];
		char name[160] = "";
		uint64_t c[6] = {0};
		static const char *const f[] = {"scheduled", "ready", "leased", "succeeded", "dead",
						"cancelled"};
		th_str(m, "queue", name, sizeof(name));
		for (int k = 0; k < 6; k++)
			th_uint(m, f[k], &c[k]);
		bool paused = false;
		th_bool(m, "paused", &paused);
		n += (size_t)snprintf(buf + n, (1 << 16) - n, "%s:%llu,%llu,%llu,%llu,%llu,%llu,%d ",
				      name, (unsigned long long)c[0], (unsigned long long)c[1],
				      (unsigned long long)c[2], (unsigned long long)c[3],
				      (unsigned long long)c[4], (unsigned long long)c[5], paused);
	}
	th_reply_free(&rep);
	return buf;
}

/* ---- the tests ---- */

/* Without a token, with a wrong one, or with one whose role lacks the op:
 * UNAUTHORIZED, and nothing changed. */
static void test_roles(void **state)
{
	struct fx *x = *state;
	char id[PROTO_ID_LEN + 1], tok[PROTO_ID_LEN + 1];

	push_as(x, ADMIN, "inv.a", NULL, id);
	char *before = queues_text(x);

	push_as(x, NULL, "inv.a", "UNAUTHORIZED", NULL);
	push_as(x, "not-a-token-of-this-broker", "inv.a", "UNAUTHORIZED", NULL);
	push_as(x, WORKER, "inv.a", "UNAUTHORIZED", NULL);
	claim_as(x, NULL, "inv.a", "UNAUTHORIZED", NULL, NULL);
	claim_as(x, PRODUCER, "inv.a", "UNAUTHORIZED", NULL, NULL);
	static const char *const operator_ops[] = {"pause", "resume"};
	for (size_t i = 0; i < 2; i++) {
		op1_as(x, PRODUCER, operator_ops[i], "queue", "inv.a", "UNAUTHORIZED");
		op1_as(x, WORKER, operator_ops[i], "queue", "inv.a", "UNAUTHORIZED");
		op1_as(x, NULL, operator_ops[i], "queue", "inv.a", "UNAUTHORIZED");
	}
	op1_as(x, PRODUCER, "cancel", "id", id, "UNAUTHORIZED");
	op1_as(x, WORKER, "cancel", "id", id, "UNAUTHORIZED");
	op1_as(x, PRODUCER, "steps", "execution_id", id, "UNAUTHORIZED");
	op1_as(x, NULL, "get", "execution_id", id, "UNAUTHORIZED");
	op1_as(x, "not-a-token-of-this-broker", "stats", "queue", "inv.a", "UNAUTHORIZED");

	char *after = queues_text(x);
	assert_string_equal(before, after);
	free(before);
	free(after);

	/* a ping without a token is answered (health checks); a wrong one is not */
	th_req q;
	th_reply rep;
	begin(&q, "ping", 0, NULL);
	call(x, &q, &rep);
	expect(&rep, NULL, "ping without a token");
	th_reply_free(&rep);
	begin(&q, "ping", 0, "not-a-token-of-this-broker");
	call(x, &q, &rep);
	expect(&rep, "UNAUTHORIZED", "ping with a wrong token");
	assert_non_null(strstr(rep.msg, "--auth"));
	th_reply_free(&rep);

	/* what each role may do, it can */
	op1_as(x, PRODUCER, "get", "execution_id", id, NULL);
	op1_as(x, PRODUCER, "list", "queue", "inv.a", NULL);
	claim_as(x, WORKER, "inv.a", NULL, id, tok);
	finish_as(x, WORKER, "extend", id, tok, NULL);
	op1_as(x, WORKER, "steps", "execution_id", id, NULL);
	finish_as(x, WORKER, "ack", id, tok, NULL);
	op1_as(x, ADMIN, "pause", "queue", "inv.a", NULL);
	op1_as(x, ADMIN, "resume", "queue", "inv.a", NULL);
	op1_as(x, ADMIN, "purge", "queue", "inv.a", "BAD_REQUEST"); /* no state: past auth */
}

/* A principal limited to prefixes reaches only those queues: by name, and
 * by execution ID; a batch with one job elsewhere is refused whole. */
static void test_prefixes(void **state)
{
	struct fx *x = *state;
	char inv[PROTO_ID_LEN + 1], other[PROTO_ID_LEN + 1], tok[PROTO_ID_LEN + 1];
	char oid[PROTO_ID_LEN + 1];

	push_as(x, PRODUCER, "inv.b", NULL, inv);
	push_as(x, PRODUCER, "mail.b", NULL, NULL);
	push_as(x, PRODUCER, "other", "UNAUTHORIZED", NULL);
	push_as(x, PRODUCER, "invoice", "UNAUTHORIZED", NULL); /* "inv." is the prefix */
	push_as(x, ADMIN, "other", NULL, other);
	char *before = queues_text(x);

	/* two jobs, the second outside: nothing is pushed */
	th_req q;
	th_reply rep;
	begin(&q, "push", 1, PRODUCER);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 2);
	for (int i = 0; i < 2; i++) {
		msgpack_pack_map(th_pk(&q), 2);
		proto_kv_cstr(th_pk(&q), "queue", i == 0 ? "inv.b" : "other");
		proto_kv_bin(th_pk(&q), "payload", "p", 1);
	}
	call(x, &q, &rep);
	expect(&rep, "UNAUTHORIZED", "a batch reaching outside");
	assert_non_null(strstr(rep.msg, "jobs[1]"));
	assert_non_null(strstr(rep.msg, "'inv.'"));
	th_reply_free(&rep);

	/* the limited worker: not the other queue, nor its executions */
	claim_as(x, WORKER, "other", "UNAUTHORIZED", NULL, NULL);
	op1_as(x, WORKER, "get", "execution_id", other, "UNAUTHORIZED");
	op1_as(x, PRODUCER, "get", "execution_id", other, "UNAUTHORIZED");
	op1_as(x, WORKER, "steps", "execution_id", other, "UNAUTHORIZED");
	claim_as(x, ANYWORKER, "other", NULL, oid, tok);
	assert_string_equal(oid, other);
	finish_as(x, WORKER, "ack", other, tok, "UNAUTHORIZED");
	finish_as(x, WORKER, "nack", other, tok, "UNAUTHORIZED");
	finish_as(x, WORKER, "extend", other, tok, "UNAUTHORIZED");
	/* the claim by anyworker is the only change */
	char *after = queues_text(x);
	assert_string_not_equal(before, after);
	finish_as(x, ANYWORKER, "nack", other, tok, NULL); /* back to ready... */
	free(before);
	free(after);

	/* stats show a limited principal its own queues only */
	begin(&q, "stats", 0, WORKER);
	call(x, &q, &rep);
	expect(&rep, NULL, "stats as billing");
	const msgpack_object *qs = th_get(rep.root, "queues");
	assert_non_null(qs);
	assert_true(qs->via.array.size >= 1);
	for (uint32_t i = 0; i < qs->via.array.size; i++) {
		char name[160];
		assert_true(th_str(&qs->via.array.ptr[i], "queue", name, sizeof(name)));
		assert_int_equal(strncmp(name, "inv.", 4), 0);
	}
	th_reply_free(&rep);

	/* and an ID that names nothing is NOT_FOUND, for them as for others */
	op1_as(x, WORKER, "get", "execution_id", "00000fffffffffff", "NOT_FOUND");
	op1_as(x, WORKER, "get", "execution_id", inv, NULL);
}

/* get and list show a live lease token redacted; tokens do not follow the
 * IDs (knowing one lets nobody work out the next). */
static void test_tokens_hidden(void **state)
{
	struct fx *x = *state;
	char id[2][PROTO_ID_LEN + 1], tok[2][PROTO_ID_LEN + 1];
	for (int i = 0; i < 2; i++) {
		push_as(x, PRODUCER, "inv.t", NULL, NULL);
		claim_as(x, WORKER, "inv.t", NULL, id[i], tok[i]);
	}
	th_req q;
	th_reply rep;
	begin(&q, "get", 1, ADMIN);
	proto_kv_cstr(th_pk(&q), "execution_id", id[0]);
	call(x, &q, &rep);
	expect(&rep, NULL, "get");
	const msgpack_object *exe = th_get(rep.root, "execution");
	char shown[64] = "";
	assert_true(th_str(exe, "lease_token", shown, sizeof(shown)));
	assert_true(th_token_shown(shown, tok[0]));
	assert_string_not_equal(shown, tok[0]);
	assert_null(memmem(rep.buf, rep.len, tok[0], strlen(tok[0]))); /* not in history either */
	th_reply_free(&rep);

	begin(&q, "list", 1, ADMIN);
	proto_kv_cstr(th_pk(&q), "queue", "inv.t");
	call(x, &q, &rep);
	expect(&rep, NULL, "list");
	for (int i = 0; i < 2; i++)
		assert_null(memmem(rep.buf, rep.len, tok[i], strlen(tok[i])));
	th_reply_free(&rep);

	/* tokens of consecutive claims differ in many bits, unlike IDs */
	uint64_t a = strtoull(tok[0], NULL, 16), b = strtoull(tok[1], NULL, 16);
	assert_true(__builtin_popcountll(a ^ b) >= 12);
	uint64_t ia = strtoull(id[0], NULL, 16);
	assert_true(__builtin_popcountll(a ^ ia) >= 12);
	/* and each still works for its holder */
	finish_as(x, WORKER, "ack", id[0], tok[0], NULL);
	finish_as(x, WORKER, "ack", id[1], tok[1], NULL);
}

/* Two principals that send the same client and request IDs get their own
 * answers. */
static void test_rid_per_principal(void **state)
{
	struct fx *x = *state;
	char ids[2][PROTO_ID_LEN + 1];
	push_as(x, ADMIN, "inv.r", NULL, NULL);
	push_as(x, ADMIN, "inv.r", NULL, NULL);
	const char *toks[2] = {WORKER, ANYWORKER};
	for (int i = 0; i < 2; i++) {
		th_req q;
		th_reply rep;
		assert_int_equal(th_req_begin_auth(&q, "claim", 2, "1", "same-client", toks[i]), 0);
		proto_kv_cstr(th_pk(&q), "queue", "inv.r");
		proto_kv_uint(th_pk(&q), "lease_ms", 60000);
		call(x, &q, &rep);
		expect(&rep, NULL, "claim with rid 1");
		const msgpack_object *j = th_item(rep.root, "jobs", 0);
		assert_non_null(j);
		assert_true(th_str(j, "execution_id", ids[i], sizeof(ids[i])));
		th_reply_free(&rep);
	}
	assert_string_not_equal(ids[0], ids[1]);
}

/* SIGHUP reads the file again: a new principal is let in, a removed one
 * is not; a file that no longer parses leaves the principals as they were. */
static void test_reload(void **state)
{
	struct fx *x = *state;
	char text[1024];
	snprintf(text, sizeof(text), "%sproducer later %s\n", auth_text, LATER);
	push_as(x, LATER, "any", "UNAUTHORIZED", NULL);

	write_file(x->file, text);
	assert_int_equal(kill(x->b.pid, SIGHUP), 0);
	int64_t deadline = th_now_ms() + 10000;
	for (;;) { /* the reload is taken at the broker's next turn */
		th_req q;
		th_reply rep;
		begin(&q, "ping", 0, LATER);
		call(x, &q, &rep);
		bool ok = rep.ok;
		th_reply_free(&rep);
		if (ok)
			break;
		if (th_now_ms() > deadline)
			fail_msg("a principal added to the file was not let in after SIGHUP");
		th_sleep_ms(20);
	}
	push_as(x, LATER, "any", NULL, NULL);

	write_file(x->file, "admin ops short\n"); /* a token too short: refused */
	assert_int_equal(kill(x->b.pid, SIGHUP), 0);
	th_sleep_ms(300);
	push_as(x, LATER, "any", NULL, NULL);

	write_file(x->file, auth_text); /* "later" is gone */
	assert_int_equal(kill(x->b.pid, SIGHUP), 0);
	deadline = th_now_ms() + 10000;
	for (;;) {
		th_req q;
		th_reply rep;
		begin(&q, "ping", 0, LATER);
		call(x, &q, &rep);
		bool refused = !rep.ok && strcmp(rep.err, "UNAUTHORIZED") == 0;
		th_reply_free(&rep);
		if (refused)
			break;
		if (th_now_ms() > deadline)
			fail_msg("a principal removed from the file was still let in after SIGHUP");
		th_sleep_ms(20);
	}
	push_as(x, ADMIN, "any", NULL, NULL);
}

/* The CLI sends --auth-token or CUEQ_TOKEN; `cueq work` passes it on to
 * its command, whose own `cueq` calls are then let in. */
static void test_cli(void **state)
{
	struct fx *x = *state;
	th_proc p;
	TH_CLI(&p, NULL, 1, "push", "inv.c", "x", "--url", x->b.url);
	assert_non_null(strstr(p.err, "auth token"));
	th_proc_free(&p);
	TH_CLI(&p, NULL, 0, "--auth-token", PRODUCER, "push", "inv.c", "x", "--url", x->b.url);
	th_proc_free(&p);
	TH_CLI(&p, NULL, 1, "push", "inv.c", "x", "--auth-token", WORKER, "--url", x->b.url);
	assert_non_null(strstr(p.err, "'billing' is a worker"));
	th_proc_free(&p);

	char env[128];
	snprintf(env, sizeof(env), "CUEQ_TOKEN=%s", WORKER);
	char *const envs[] = {env, NULL};
	const char *script = "cueq step set \"$CUEQ_EXECUTION_ID\" s1 v --token \"$CUEQ_LEASE_TOKEN\"";
	char path[256];
	snprintf(path, sizeof(path), "PATH=%.*s:/usr/bin:/bin", (int)(strrchr(th_cli_path, '/') - th_cli_path),
		 th_cli_path);
	char *const envs2[] = {env, path, NULL};
	char *const argv[] = {(char *)th_cli_path, "work", "inv.c", "--max-jobs", "1", "--url",
			      x->b.url, "--", "sh", "-c", (char *)script, NULL};
	assert_int_equal(th_run(&p, NULL, 20000, argv, envs2), 0);
	if (p.exit_code != 0)
		th_proc_dump("cueq work with CUEQ_TOKEN", &p), fail();
	th_proc_free(&p);

	/* the step the command wrote is there, so the job succeeded with it */
	snprintf(env, sizeof(env), "CUEQ_TOKEN=%s", ADMIN);
	char *const argv2[] = {(char *)th_cli_path, "list", "inv.c", "--state", "succeeded", "--json",
			       "--url", x->b.url, NULL};
	assert_int_equal(th_run(&p, NULL, 20000, argv2, envs), 0);
	assert_int_equal(p.exit_code, 0);
	char id[64];
	assert_true(th_json_str(p.out, "execution_id", id, sizeof(id)));
	th_proc_free(&p);
	char *const argv3[] = {(char *)th_cli_path, "step", "get", id, "s1", "--url", x->b.url, NULL};
	assert_int_equal(th_run(&p, NULL, 20000, argv3, envs), 0);
	assert_int_equal(p.exit_code, 0);
	assert_non_null(strstr(p.out, "v"));
	th_proc_free(&p);
}

/* Bad auth files stop cueqd at start, naming the line and the fault. */
static void test_bad_files(void **state)
{
	(void)state;
	static const struct {
		const char *text, *says;
	} cases[] = {
		{"boss ops " ADMIN "\n", "line 1: 'boss' is not a role"},
		{"# ok\nadmin ops short\n", "line 2: the token of 'ops' has 5 characters"},
		{"admin ops\n", "line 1: a principal is ROLE NAME TOKEN"},
		{"admin ops " ADMIN "\nworker ops " WORKER "\n", "line 2: name 'ops' is used twice"},
		{"admin a " ADMIN "\nworker b " ADMIN "\n", "'b' has the same token as 'a'"},
		{"worker w " WORKER " bad/prefix\n", "queue prefix 'bad/prefix'"},
		{"# nothing\n", "no principal"},
	};
	char dir[] = "/tmp/cueq-authbad-XXXXXX", file[96];
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/auth", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(file, cases[i].text);
		th_proc p;
		char *const argv[] = {(char *)th_cueqd_path, "--data", dir, "--listen",
				      "tcp://127.0.0.1:1", "--http", "off", "--auth", file, NULL};
		assert_int_equal(th_run(&p, NULL, 20000, argv, NULL), 0);
		if (p.exit_code != 1 || strstr(p.err, cases[i].says) == NULL) {
			th_proc_dump("cueqd with a bad --auth file", &p);
			fail_msg("case %zu: want exit 1 saying \"%s\"", i, cases[i].says);
		}
		th_proc_free(&p);
	}
	/* with --auth, a listener beyond loopback needs no --insecure */
	write_file(file, auth_text);
	th_broker b = {0};
	const char *extra[] = {"--auth", file, "--listen", "tcp://0.0.0.0:0", NULL};
	assert_int_equal(th_broker_start(&b, extra), 0);
	th_broker_cleanup(&b);
	unlink(file);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefixes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens_hidden, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rid_per_principal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
		cmocka_unit_test(test_bad_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
