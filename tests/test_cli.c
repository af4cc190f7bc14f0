/*
 * test_cli.c - the command-line contract of `cueq` (shared/DESIGN.md):
 * what each command prints, its --json fields and its exit codes (0 ok,
 * 1 usage, 3 nothing to claim, 4 conflict or stale lease, 5 not found,
 * 6 unreachable), and `cueq work` running a shell command per execution
 * with the payload on stdin and CUEQ_* in its environment.
 *
 * The CLI runs as a subprocess; state is checked over the raw protocol,
 * independently of the SDK the CLI is built on.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "proc.h"


#define CLI(p, in, code, ...) TH_CLI((p), (in), (code), __VA_ARGS__)

static bool is_id(const char *s)
{
	if (strlen(s) != PROTO_ID_LEN)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

static void push_id(th_broker *b, const char *queue, const char *payload, char id[64])
{
	th_proc p;
	CLI(&p, NULL, 0, "push", queue, payload, "--url", b->url);
	th_first_line(&p, id, 64);
	if (!is_id(id))
		fail_msg("push printed '%s', not an execution ID", p.out);
	th_proc_free(&p);
}

static void raw_state(th_broker *b, const char *id, char *state, size_t size, th_reply *rep,
		      const msgpack_object **exe)
{
	th_raw r;
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	if (th_raw_get(&r, id, rep, exe) != 0)
		fail_msg("raw get of %s failed", id);
	th_raw_close(&r);
	if (!th_str(*exe, "state", state, size))
		fail_msg("get of %s has no state", id);
}

static void test_cli_basic_flow(void **state)
{
	th_broker *b = *state;
	th_proc p;
	char id[64], id2[64], tok[64], payload[64], st[32], url_env[96];
	int64_t attempt = 0;
	th_reply rep;
	const msgpack_object *exe;

	/* ping: --url after the command, before it, and from $CUEQ_URL. */
	CLI(&p, NULL, 0, "ping", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 0, "--url", b->url, "ping");
	th_proc_free(&p);
	snprintf(url_env, sizeof(url_env), "CUEQ_URL=%s", b->url);
	char *env[] = { url_env, NULL };
	const char *argv[] = { th_cli_path, "ping", NULL };
	assert_int_equal(th_run(&p, NULL, TH_CLI_MS, (char *const *)argv, env), 0);
	if (p.exit_code != 0) {
		th_proc_dump("CUEQ_URL=... cueq ping", &p);
		fail_msg("cueq ping with CUEQ_URL set: exit %d", p.exit_code);
	}
	th_proc_free(&p);

	/* push prints the ID; claim --json shows it with a token. */
	push_id(b, "cq", "hello", id);
	CLI(&p, NULL, 0, "claim", "cq", "--json", "--wait", "2s", "--url", b->url);
	if (!th_json_str(p.out, "execution_id", id2, sizeof(id2)) ||
	    !th_json_str(p.out, "lease_token", tok, sizeof(tok)) ||
	    !th_json_int(p.out, "attempt", &attempt) ||
	    !th_json_str(p.out, "payload", payload, sizeof(payload)))
		fail_msg("claim --json lacks execution_id/lease_token/attempt/payload: %s", p.out);
	th_proc_free(&p);
	assert_string_equal(id2, id);
	assert_true(is_id(tok));
	assert_int_equal(attempt, 1);
	assert_string_equal(payload, "hello");

	CLI(&p, NULL, 0, "ack", id, "--token", tok, "--result", "all good", "--url", b->url);
	th_proc_free(&p);
	raw_state(b, id, st, sizeof(st), &rep, &exe);
	assert_string_equal(st, "succeeded");
	assert_true(th_str(exe, "result", payload, sizeof(payload)));
	assert_string_equal(payload, "all good");
	th_reply_free(&rep);

	CLI(&p, NULL, 0, "get", id, "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "state", st, sizeof(st)));
	assert_string_equal(st, "succeeded");
	assert_true(th_json_str(p.out, "execution_id", id2, sizeof(id2)));
	assert_string_equal(id2, id);
	th_proc_free(&p);

	/* push --json and options; payload from stdin with '-'. */
	CLI(&p, "from stdin", 0, "push", "cq", "-", "--json", "--lease", "1s", "--max-attempts", "2",
	    "--priority", "5", "--url", b->url);
	if (!th_json_str(p.out, "execution_id", id, sizeof(id)) || !is_id(id))
		fail_msg("push --json printed no execution_id: %s", p.out);
	th_proc_free(&p);
	raw_state(b, id, st, sizeof(st), &rep, &exe);
	assert_string_equal(st, "ready");
	uint64_t v = 0;
	assert_true(th_uint(exe, "lease_ms", &v));
	assert_int_equal(v, 1000);
	assert_true(th_uint(exe, "max_attempts", &v));
	assert_int_equal(v, 2);
	assert_true(th_uint(exe, "priority", &v));
	assert_int_equal(v, 5);
	assert_true(th_str(exe, "payload", payload, sizeof(payload)));
	assert_string_equal(payload, "from stdin");
	th_reply_free(&rep);

	CLI(&p, NULL, 0, "stats", "cq", "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "queue", st, sizeof(st)));
	assert_string_equal(st, "cq");
	th_proc_free(&p);
}

static void test_cli_exit_codes(void **state)
{
	th_broker *b = *state;
	th_proc p;
	char id[64], tok[64], wrong[64], closed_url[64];

	/* 3: nothing to claim. */
	CLI(&p, NULL, 3, "claim", "empty-q", "--wait", "100ms", "--url", b->url);
	th_proc_free(&p);

	/* 4: a stale token, then a conflicting outcome. */
	push_id(b, "xq", "x", id);
	CLI(&p, NULL, 0, "claim", "xq", "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "lease_token", tok, sizeof(tok)));
	th_proc_free(&p);
	strcpy(wrong, tok);
	wrong[15] = wrong[15] == '0' ? '1' : '0';
	CLI(&p, NULL, 4, "ack", id, "--token", wrong, "--url", b->url);
	assert_true(p.err_len > 0);
	th_proc_free(&p);
	CLI(&p, NULL, 4, "extend", id, "--token", wrong, "--lease", "10s", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 0, "extend", id, "--token", tok, "--lease", "10s", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 0, "ack", id, "--token", tok, "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 4, "nack", id, "--token", tok, "--error", "late", "--url", b->url);
	th_proc_free(&p);

	/* 5: unknown IDs. */
	CLI(&p, NULL, 5, "get", "00000000deadbeef", "--url", b->url);
	assert_true(p.err_len > 0);
	th_proc_free(&p);
	CLI(&p, NULL, 5, "ack", "00000000deadbeef", "--token", tok, "--url", b->url);
	th_proc_free(&p);

	/* 6: nothing listens there. */
	snprintf(closed_url, sizeof(closed_url), "tcp://127.0.0.1:%d", th_free_port());
	CLI(&p, NULL, 6, "ping", "--url", closed_url);
	assert_true(p.err_len > 0);
	th_proc_free(&p);
	CLI(&p, NULL, 6, "push", "q", "x", "--url", closed_url, "--timeout", "1s");
	th_proc_free(&p);

	/* 1: usage errors. */
	CLI(&p, NULL, 1, "push", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "claim", "q", "--wait", "banana", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "ack", id, "--url", b->url); /* --token missing */
	th_proc_free(&p);
	CLI(&p, NULL, 1, "frobnicate", "--url", b->url);
	th_proc_free(&p);
}

/* Durations: a bare 0 is zero for every duration flag; any other bare
 * number is refused with a message that says to add a unit, and a zero
 * below a flag's minimum is refused with that flag's range. */
static void test_cli_durations(void **state)
{
	th_broker *b = *state;
	th_proc p;
	char id[64], st[32];
	th_reply rep;
	const msgpack_object *exe;

	CLI(&p, NULL, 3, "claim", "empty-q", "--wait", "0", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 3, "claim", "empty-q", "--wait=0", "--url", b->url);
	th_proc_free(&p);

	CLI(&p, NULL, 0, "push", "dq", "now", "--delay", "0", "--url", b->url);
	th_first_line(&p, id, sizeof(id));
	th_proc_free(&p);
	assert_true(is_id(id));
	raw_state(b, id, st, sizeof(st), &rep, &exe);
	assert_string_equal(st, "ready");
	th_reply_free(&rep);

	/* 0 as a retry delay: the nack is accepted. */
	char tok[64];
	CLI(&p, NULL, 0, "claim", "dq", "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "lease_token", tok, sizeof(tok)));
	th_proc_free(&p);
	CLI(&p, NULL, 0, "nack", id, "--token", tok, "--retry-in", "0", "--url", b->url);
	th_proc_free(&p);
	raw_state(b, id, st, sizeof(st), &rep, &exe);
	assert_string_equal(st, "ready");
	th_reply_free(&rep);

	/* A bare number other than 0: refused, saying what to write. */
	CLI(&p, NULL, 1, "claim", "empty-q", "--wait", "5", "--url", b->url);
	if (strstr(p.err, "'5'") == NULL || strstr(p.err, "unit") == NULL ||
	    strstr(p.err, "5s") == NULL)
		fail_msg("--wait 5 was refused with '%s'; expected the value, 'unit' and 5s", p.err);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "dq", "x", "--delay", "5", "--url", b->url);
	assert_non_null(strstr(p.err, "unit"));
	th_proc_free(&p);

	/* Zero where it makes no sense: the flag's range, not "bad duration". */
	CLI(&p, NULL, 1, "claim", "empty-q", "--lease", "0", "--url", b->url);
	if (strstr(p.err, "100ms to 1d") == NULL || strstr(p.err, "bad duration") != NULL)
		fail_msg("--lease 0 was refused with '%s'; expected the range 100ms to 1d", p.err);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "ping", "--timeout", "0", "--url", b->url);
	if (strstr(p.err, "at least 1ms") == NULL)
		fail_msg("--timeout 0 was refused with '%s'; expected 'at least 1ms'", p.err);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "--timeout", "0", "ping", "--url", b->url);
	assert_non_null(strstr(p.err, "at least 1ms"));
	th_proc_free(&p);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 4096);
	if (f == NULL || buf == NULL) {
		if (f != NULL)
			fclose(f);
		free(buf);
		return NULL;
	}
	size_t n = fread(buf, 1, 4095, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_cli_work(void **state)
{
	th_broker *b = *state;
	static const char *const payloads[] = { "alpha", "beta", "gamma" };
	char ids[3][64], script[2 * PATH_MAX + 512], path[PATH_MAX + 256], st[32], text[256];
	th_proc p;
	th_reply rep;
	const msgpack_object *exe;

	for (int i = 0; i < 3; i++)
		push_id(b, "wq", payloads[i], ids[i]);
	snprintf(script, sizeof(script),
		 "cat > \"%s/$CUEQ_EXECUTION_ID.payload\" && "
		 "printf '%%s|%%s|%%s|%%s|%%s' \"$CUEQ_EXECUTION_ID\" \"$CUEQ_ATTEMPT\" \"$CUEQ_QUEUE\" "
		 "\"$CUEQ_LEASE_TOKEN\" \"$CUEQ_URL\" > \"%s/$CUEQ_EXECUTION_ID.env\" && "
		 "echo \"result-$CUEQ_ATTEMPT\"",
		 b->dir, b->dir);
	CLI(&p, NULL, 0, "work", "wq", "--max-jobs", "3", "--url", b->url, "--", "/bin/sh", "-c", script);
	th_proc_free(&p);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%.16s.payload", b->dir, ids[i]);
		char *got = read_file(path);
		if (got == NULL)
			fail_msg("the command never ran for %s (no %s)", ids[i], path);
		assert_string_equal(got, payloads[i]);
		free(got);
		snprintf(path, sizeof(path), "%s/%.16s.env", b->dir, ids[i]);
		got = read_file(path);
		assert_non_null(got);
		char want_prefix[128];
		snprintf(want_prefix, sizeof(want_prefix), "%.16s|1|wq|", ids[i]);
		if (strncmp(got, want_prefix, strlen(want_prefix)) != 0)
			fail_msg("environment of the command for %s: '%s'", ids[i], got);
		char *tok = got + strlen(want_prefix);
		char *bar = strchr(tok, '|');
		assert_non_null(bar);
		*bar = '\0';
		assert_true(is_id(tok));
		assert_string_equal(bar + 1, b->url);
		free(got);
		raw_state(b, ids[i], st, sizeof(st), &rep, &exe);
		assert_string_equal(st, "succeeded");
		assert_true(th_str(exe, "result", text, sizeof(text)));
		assert_string_equal(text, "result-1");
		th_reply_free(&rep);
	}

	/* A failing command nacks; the next worker gets attempt 2. */
	char id[64];
	uint64_t failures = 0, attempt = 0;
	push_id(b, "wq2", "doomed", id);
	CLI(&p, NULL, 0, "work", "wq2", "--max-jobs", "1", "--url", b->url, "--", "/bin/sh", "-c",
	    "cat >/dev/null; echo 'it went wrong' >&2; exit 3");
	th_proc_free(&p);
	raw_state(b, id, st, sizeof(st), &rep, &exe);
	if (strcmp(st, "ready") != 0 && strcmp(st, "scheduled") != 0)
		fail_msg("after a failing command %s is %s, expected ready or scheduled", id, st);
	assert_true(th_uint(exe, "failures", &failures));
	assert_int_equal(failures, 1);
	assert_true(th_uint(exe, "attempt", &attempt));
	assert_int_equal(attempt, 1);
	assert_true(th_str(exe, "error", text, sizeof(text)));
	if (strstr(text, "it went wrong") == NULL)
		fail_msg("error of the nack is '%s'; expected the command's last stderr line", text);
	th_reply_free(&rep);

	snprintf(script, sizeof(script), "cat >/dev/null; echo \"$CUEQ_ATTEMPT\" > \"%s/attempt\"",
		 b->dir);
	CLI(&p, NULL, 0, "work", "wq2", "--max-jobs", "1", "--url", b->url, "--", "/bin/sh", "-c", script);
	th_proc_free(&p);
	snprintf(path, sizeof(path), "%s/attempt", b->dir);
	char *got = read_file(path);
	assert_non_null(got);
	assert_string_equal(got, "2\n");
	free(got);
	raw_state(b, id, st, sizeof(st), &rep, &exe);
	assert_string_equal(st, "succeeded");
	th_reply_free(&rep);
}

/* Starts `cueq work QUEUE` in the background running a command that
 * touches DIR/started, sleeps 1 s, then touches DIR/done; returns its pid
 * once the command has started (output in DIR/work.log). */
static pid_t start_worker(th_broker *b, const char *queue)
{
	char script[PATH_MAX + 128], log[PATH_MAX + 32], started[PATH_MAX + 32];
	char cli[PATH_MAX];
	int64_t until = th_now_ms() + 15000;

	snprintf(script, sizeof(script),
		 "cd \"%s\" && cat >/dev/null && touch started && sleep 1 && touch done", b->dir);
	snprintf(log, sizeof(log), "%s/work.log", b->dir);
	snprintf(started, sizeof(started), "%s/started", b->dir);
	snprintf(cli, sizeof(cli), "%s", th_cli_path);
	unlink(started);
	char *argv[] = { cli, "work", (char *)queue, "--url", b->url, "--", "/bin/sh", "-c", script,
			 NULL };
	proc_opts o = { .log = log, .death_signal = SIGKILL };
	pid_t pid = proc_spawn(argv, &o);
	assert_true(pid > 0);
	while (access(started, F_OK) != 0) {
		int status;
		if (th_now_ms() > until || proc_wait(pid, 0, &status) == 0) {
			proc_dump_tail(log, 2000);
			fail_msg("cueq work did not start its command within 15 s");
		}
		th_sleep_ms(20);
	}
	return pid;
}

/* SIGTERM to pid; returns how long it took to exit, failing the test
 * unless it exited 0 within 20 s. */
static int64_t term_and_wait(th_broker *b, pid_t pid)
{
	char log[PATH_MAX + 32], what[64];
	int64_t t0 = th_now_ms(), took;
	int status = 0;

	snprintf(log, sizeof(log), "%s/work.log", b->dir);
	assert_int_equal(kill(pid, SIGTERM), 0);
	if (proc_wait(pid, 20000, &status) != 0) {
		proc_kill9(pid);
		proc_dump_tail(log, 2000);
		fail_msg("cueq work did not exit within 20 s of SIGTERM");
	}
	took = th_now_ms() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		proc_describe(status, what, sizeof(what));
		proc_dump_tail(log, 2000);
		fail_msg("cueq work ended with %s after SIGTERM; expected exit status 0", what);
	}
	return took;
}

/* SIGTERM stops `cueq work` claiming at once; the running command
 * finishes and its outcome is sent while the broker is there, and when it
 * is gone (kill -9) the worker does not wait out the client's 30 s retry
 * deadline: it exits 0 after the command and the 2 s grace of the outcome,
 * which it counts as lost. */
static void test_cli_work_stop(void **state)
{
	th_broker *b = *state;
	char id[64], st[32], path[PATH_MAX + 32];
	th_reply rep;
	const msgpack_object *exe;
	int64_t took;
	pid_t pid;

	/* Broker up: the outcome of the running command is sent. */
	push_id(b, "sq", "one", id);
	pid = start_worker(b, "sq");
	took = term_and_wait(b, pid);
	snprintf(path, sizeof(path), "%s/work.log", b->dir);
	char *log = read_file(path);
	assert_non_null(log);
	if (strstr(log, "1 succeeded") == NULL)
		fail_msg("after SIGTERM with the broker up, cueq work said: %s", log);
	free(log);
	raw_state(b, id, st, sizeof(st), &rep, &exe);
	assert_string_equal(st, "succeeded");
	th_reply_free(&rep);
	assert_true(took < 8000);

	/* Broker killed while the command runs. */
	unlink(path);
	snprintf(path, sizeof(path), "%s/done", b->dir);
	unlink(path);
	push_id(b, "sq", "two", id);
	pid = start_worker(b, "sq");
	assert_int_equal(th_broker_kill9(b), 0);
	took = term_and_wait(b, pid);
	print_message("cueq work exited %lld ms after SIGTERM with its broker killed\n",
		      (long long)took);
	if (took >= 8000)
		fail_msg("cueq work took %lld ms to stop with the broker gone; expected well "
			 "under the 30 s retry deadline", (long long)took);
	if (access(path, F_OK) != 0)
		fail_msg("the running command was not let finish (no %s)", path);
	snprintf(path, sizeof(path), "%s/work.log", b->dir);
	log = read_file(path);
	assert_non_null(log);
	if (strstr(log, "0 succeeded, 0 failed, 1 lost") == NULL)
		fail_msg("with the broker gone, cueq work said: %s", log);
	free(log);
}

/* Lines of out that hold every one of the words (NULL-terminated). */
static size_t lines_with(const char *out, const char *const *words)
{
	size_t n = 0;
	for (const char *line = out; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		bool all = true;
		for (const char *const *w = words; *w && all; w++)
			all = memmem(line, len, *w, strlen(*w)) != NULL;
		n += all;
		line = end ? end + 1 : NULL;
	}
	return n;
}

/* list shows each execution's last error, pages with --after, and with
 * --all walks every queue; dead --all too. */
static void test_cli_lists(void **state)
{
	th_broker *b = *state;
	th_proc p;
	char a1[64], a2[64], a3[64], bid[64], tok[64];
	push_id(b, "la", "one", a1);
	push_id(b, "la", "two", a2);
	push_id(b, "la", "three", a3);
	CLI(&p, NULL, 0, "push", "lb", "doomed", "--max-attempts", "1", "--url", b->url);
	th_first_line(&p, bid, sizeof(bid));
	th_proc_free(&p);
	CLI(&p, NULL, 0, "claim", "lb", "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "lease_token", tok, sizeof(tok)));
	th_proc_free(&p);
	CLI(&p, NULL, 0, "nack", bid, "--token", tok, "--error", "smtp said no", "--url", b->url);
	th_proc_free(&p);

	CLI(&p, NULL, 0, "list", "--all", "--url", b->url);
	assert_int_equal(lines_with(p.out, (const char *const[]){"QUEUE", "ERROR", NULL}), 1);
	assert_int_equal(lines_with(p.out, (const char *const[]){"la ", a1, NULL}), 1);
	assert_int_equal(lines_with(p.out, (const char *const[]){"lb ", bid, "dead", "smtp said no", NULL}), 1);
	th_proc_free(&p);

	CLI(&p, NULL, 0, "list", "la", "--limit", "1", "--url", b->url);
	assert_int_equal(lines_with(p.out, (const char *const[]){a1, NULL}), 1);
	assert_int_equal(lines_with(p.out, (const char *const[]){a2, NULL}), 0);
	th_proc_free(&p);
	CLI(&p, NULL, 0, "list", "la", "--after", a1, "--url", b->url);
	assert_int_equal(lines_with(p.out, (const char *const[]){a1, NULL}), 0);
	assert_int_equal(lines_with(p.out, (const char *const[]){a2, NULL}), 1);
	assert_int_equal(lines_with(p.out, (const char *const[]){a3, NULL}), 1);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "list", "--all", "--after", a1, "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "list", "la", "--after", "zzz", "--url", b->url);
	assert_non_null(strstr(p.err, "after"));
	th_proc_free(&p);

	CLI(&p, NULL, 0, "dead", "--all", "--url", b->url);
	assert_int_equal(lines_with(p.out, (const char *const[]){"lb ", bid, "smtp said no", NULL}), 1);
	assert_int_equal(lines_with(p.out, (const char *const[]){a1, NULL}), 0);
	th_proc_free(&p);
}

/* cueq work talks: with --log-level debug it says when it connects, when
 * the connection is lost (the broker killed and started again) and each
 * outcome the broker took. */
static void test_cli_work_talks(void **state)
{
	th_broker *b = *state;
	char dir[] = "/tmp/cueq-talk-XXXXXX", errlog[64], id[64];
	assert_non_null(mkdtemp(dir));
	snprintf(errlog, sizeof(errlog), "%s/stderr", dir);
	char *const argv[] = {(char *)th_cli_path, "work", "tq", "--max-jobs", "1", "--log-level",
			      "debug", "--url", b->url, "--", "/bin/true", NULL};
	proc_opts o = {.log = errlog};
	pid_t w = proc_spawn(argv, &o);
	assert_true(w > 0);
	th_sleep_ms(500);
	assert_int_equal(th_broker_kill9(b), 0);
	assert_int_equal(th_broker_restart(b), 0);
	push_id(b, "tq", "x", id);
	int status = 0;
	if (proc_wait(w, 20000, &status) != 0) {
		proc_kill9(w);
		fail_msg("cueq work --max-jobs 1 did not finish its job after the broker came back");
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	FILE *f = fopen(errlog, "r");
	assert_non_null(f);
	char line[512], acked[128];
	int connected = 0, lost = 0, done = 0;
	snprintf(acked, sizeof(acked), "%s attempt 1 acked", id);
	while (fgets(line, sizeof(line), f) != NULL) {
		connected += strstr(line, "connected to the broker") != NULL;
		lost += strstr(line, "connection to the broker was lost") != NULL;
		done += strstr(line, acked) != NULL;
	}
	fclose(f);
	assert_true(connected >= 2);
	assert_true(lost >= 1);
	assert_int_equal(done, 1);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* cueqd's log: logfmt lines (ts, level, msg quoted), filtered by
 * --log-level; a bad level is refused. */
static bool logfmt_line(const char *l, size_t n, char *level, size_t lsize)
{
	const char *lv, *msg;
	if (n < 40 || strncmp(l, "ts=", 3) != 0 || (lv = strstr(l, " level=")) == NULL ||
	    (msg = strstr(l, " msg=\"")) == NULL || msg < lv || l[n - 1] != '"')
		return false;
	size_t k = (size_t)(msg - lv - 7);
	if (k + 1 > lsize)
		return false;
	memcpy(level, lv + 7, k);
	level[k] = '\0';
	for (const char *p = msg + 6; p < l + n - 1; p++) { /* quotes inside are escaped */
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return false;
	}
	return true;
}

static size_t log_levels(const th_broker *b, size_t *info, size_t *other)
{
	FILE *f = fopen(b->log, "r");
	char line[2048], level[16];
	size_t lines = 0;
	*info = *other = 0;
	if (f == NULL)
		fail_msg("cannot read %s", b->log);
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = strcspn(line, "\n");
		if (!logfmt_line(line, n, level, sizeof(level)))
			fail_msg("not a logfmt line: %.*s", (int)n, line);
		if (strcmp(level, "info") == 0)
			(*info)++;
		else if (strcmp(level, "warn") != 0 && strcmp(level, "error") != 0 &&
			 strcmp(level, "debug") != 0)
			fail_msg("unknown level '%s'", level);
		else
			(*other)++;
		lines++;
	}
	fclose(f);
	return lines;
}

static void test_broker_log_levels(void **state)
{
	th_broker *b = *state, quiet = { 0 };
	size_t info, other;
	int status;
	th_proc p;

	assert_true(log_levels(b, &info, &other) >= 2);
	assert_true(info >= 2); /* recovered, listening... */
	assert_int_equal(th_broker_start(&quiet, (const char *const[]){ "--log-level", "warn", NULL }),
			 0);
	assert_int_equal(th_broker_stop(&quiet, 10000, &status), 0);
	log_levels(&quiet, &info, &other);
	assert_int_equal(info, 0);
	th_broker_cleanup(&quiet);
	char *const argv[] = { (char *)th_cueqd_path, "--log-level", "loud", NULL };
	assert_int_equal(th_run(&p, NULL, 10000, argv, NULL), 0);
	assert_int_equal(p.exit_code, 1);
	assert_non_null(strstr(p.err, "--log-level 'loud' is not debug, info, warn or error"));
	th_proc_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_broker_log_levels, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_basic_flow, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_exit_codes, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_durations, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_work, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_work_stop, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_lists, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cli_work_talks, th_fixture_start, th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
