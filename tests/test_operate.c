/*
 * test_operate.c - operating a queue through the real CLI and a real
 * cueqd: recurring cues (push prints the cue ID, `cues` and `get` show
 * it, a fire is claimed with its cue ID, cancel stops it), dead executions
 * and retry (same ID, same step ledger, attempt from 1), purge, pause
 * (claims get nothing, kept across a restart), cancel of a ready and of a
 * leased execution (under `cueq work` the command gets SIGTERM and the old
 * token is refused), and the exit codes of each (4 conflict, 5 not found).
 *
 * Everything goes through the CLI as a user would type it, so its output
 * and --json fields are checked with the broker's behaviour.  Waits poll
 * with deadlines of seconds: the machines that run this are small and
 * loaded.
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

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* `cueq push ARGS... --url URL`: the ID it printed into id. */
static void push_id(th_broker *b, char id[64], const char *const *args)
{
	const char *argv[32];
	size_t n = 0;
	th_proc p;

	argv[n++] = "push";
	for (; *args != NULL && n < 28; args++)
		argv[n++] = *args;
	argv[n++] = "--url";
	argv[n++] = b->url;
	argv[n] = NULL;
	th_cli_expect(&p, NULL, 0, argv);
	th_first_line(&p, id, 64);
	if (!is_id(id))
		fail_msg("push printed '%s', not an ID", p.out);
	th_proc_free(&p);
}
#define PUSH(b, id, ...) push_id((b), (id), (const char *const[]){ __VA_ARGS__, NULL })

/* Claims one execution of queue (waiting up to 10 s): its ID and token. */
static void claim(th_broker *b, const char *queue, char id[64], char tok[64], int64_t *attempt)
{
	th_proc p;

	CLI(&p, NULL, 0, "claim", queue, "--json", "--wait", "10s", "--url", b->url);
	if (!th_json_str(p.out, "execution_id", id, 64) ||
	    !th_json_str(p.out, "lease_token", tok, 64) ||
	    (attempt != NULL && !th_json_int(p.out, "attempt", attempt)))
		fail_msg("claim --json lacks execution_id/lease_token/attempt: %s", p.out);
	th_proc_free(&p);
}

/* The state of an execution or cue, from `cueq get ID --json`. */
static void get_state(th_broker *b, const char *id, char *state, size_t size)
{
	th_proc p;

	CLI(&p, NULL, 0, "get", id, "--json", "--url", b->url);
	if (!th_json_str(p.out, "state", state, size))
		fail_msg("get %s --json has no state: %s", id, p.out);
	th_proc_free(&p);
}

static void expect_in(const th_proc *p, const char *what)
{
	if (strstr(p->out, what) == NULL)
		fail_msg("expected '%s' in the output, got: %s", what, p->out);
}

/* Claims, then nacks terminally: the execution is dead. */
static void make_dead(th_broker *b, const char *queue, const char *want_id)
{
	char id[64], tok[64];
	th_proc p;

	claim(b, queue, id, tok, NULL);
	if (want_id != NULL)
		assert_string_equal(id, want_id);
	CLI(&p, NULL, 0, "nack", id, "--token", tok, "--error", "it broke", "--terminal", "--url",
	    b->url);
	th_proc_free(&p);
}

static void test_push_flag_errors(void **state)
{
	th_broker *b = *state;
	th_proc p;

	/* Refused before anything is sent: exit 1 with a sentence. */
	CLI(&p, NULL, 1, "push", "q", "x", "--every", "1m", "--cron", "@daily", "--url", b->url);
	assert_true(p.err_len > 0);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "q", "x", "--tz", "Europe/Paris", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "q", "x", "--overlap", "skip", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "q", "x", "--every", "1m", "--catch-up", "some", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "q", "x", "--every", "1m", "--unique", "u", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "q", "x", "--backoff", "1s,2", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "q", "x", "--backoff", "1s,0.5,1h", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "q", "x", "--backoff", "soon,2,1h", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "push", "q", "x", "--max-expiries", "0", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "retry", "--all", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "purge", "q", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 1, "purge", "q", "--state", "ready", "--url", b->url);
	th_proc_free(&p);
}

static void test_recurring(void **state)
{
	th_broker *b = *state;
	char cue[64], id[64], tok[64], got[64], st[32];
	th_proc p;

	/* A recurring push prints the cue ID; --json says recurring. */
	PUSH(b, cue, "rc", "hourly", "--every", "1h");
	CLI(&p, NULL, 0, "push", "rc", "daily", "--cron", "0 6 * * *", "--tz", "UTC", "--json",
	    "--url", b->url);
	expect_in(&p, "\"recurring\":true");
	expect_in(&p, "\"execution_id\":null");
	if (!th_json_str(p.out, "cue_id", got, sizeof(got)) || !is_id(got))
		fail_msg("a recurring push --json has no cue_id: %s", p.out);
	th_proc_free(&p);

	CLI(&p, NULL, 0, "cues", "rc", "--url", b->url);
	expect_in(&p, cue);
	expect_in(&p, "every 1h");
	expect_in(&p, "active");
	th_proc_free(&p);
	CLI(&p, NULL, 0, "cues", "rc", "--json", "--url", b->url);
	expect_in(&p, cue);
	expect_in(&p, "\"next_fires\":[\"");
	th_proc_free(&p);
	CLI(&p, NULL, 0, "get", cue, "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "cue_id", got, sizeof(got)));
	assert_string_equal(got, cue);
	assert_true(th_json_str(p.out, "payload", got, sizeof(got)));
	assert_string_equal(got, "hourly");
	expect_in(&p, "\"every_ms\":3600000");
	th_proc_free(&p);
	CLI(&p, NULL, 0, "get", cue, "--url", b->url);
	expect_in(&p, "next fires");
	expect_in(&p, "last executions");
	th_proc_free(&p);

	/* Firing every 2 s: a claim gets a fire that names its cue. */
	PUSH(b, cue, "rf", "tick", "--every", "2s");
	claim(b, "rf", id, tok, NULL);
	CLI(&p, NULL, 0, "get", id, "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "cue_id", got, sizeof(got)));
	assert_string_equal(got, cue);
	th_proc_free(&p);
	CLI(&p, NULL, 0, "ack", id, "--token", tok, "--url", b->url);
	th_proc_free(&p);
	/* the list shows each cue's newest fire */
	CLI(&p, NULL, 0, "cues", "rf", "--json", "--url", b->url);
	expect_in(&p, "\"executions\":[{\"execution_id\":\"");
	th_proc_free(&p);

	/* Cancel stops it; the cue says so and keeps what it made. */
	CLI(&p, NULL, 0, "cancel", cue, "--url", b->url);
	expect_in(&p, "cue");
	expect_in(&p, "cancelled");
	th_proc_free(&p);
	get_state(b, cue, st, sizeof(st));
	assert_string_equal(st, "cancelled");
	get_state(b, id, st, sizeof(st));
	assert_string_equal(st, "succeeded");
	CLI(&p, NULL, 0, "get", cue, "--json", "--url", b->url);
	expect_in(&p, id);
	th_proc_free(&p);
}

static void test_dead_and_retry(void **state)
{
	th_broker *b = *state;
	char id[64], id2[64], tok[64], got[64], st[32];
	int64_t attempt = 0, n = 0;
	th_proc p;

	PUSH(b, id, "dq", "work", "--max-attempts", "3");
	claim(b, "dq", id2, tok, &attempt);
	assert_string_equal(id2, id);
	CLI(&p, NULL, 0, "step", "set", id, "charge", "ch_42", "--token", tok, "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 0, "nack", id, "--token", tok, "--error", "card declined", "--terminal",
	    "--url", b->url);
	th_proc_free(&p);
	get_state(b, id, st, sizeof(st));
	assert_string_equal(st, "dead");

	/* dead lists it with why it died: one JSON array. */
	CLI(&p, NULL, 0, "dead", "dq", "--json", "--url", b->url);
	if (p.out[0] != '[')
		fail_msg("dead --json is not an array: %s", p.out);
	assert_true(th_json_str(p.out, "execution_id", got, sizeof(got)));
	assert_string_equal(got, id);
	assert_true(th_json_str(p.out, "error", got, sizeof(got)));
	assert_string_equal(got, "card declined");
	assert_non_null(strstr(p.out, "\"reason\":"));
	assert_true(th_json_int(p.out, "failures", &n));
	assert_int_equal(n, 1);
	th_proc_free(&p);
	CLI(&p, NULL, 0, "dead", "dq", "--url", b->url);
	expect_in(&p, id);
	expect_in(&p, "card declined");
	th_proc_free(&p);

	/* retry: ready again under the same ID, the ledger kept, attempt 1. */
	CLI(&p, NULL, 0, "retry", id, "--url", b->url);
	expect_in(&p, "1 retried");
	th_proc_free(&p);
	claim(b, "dq", id2, tok, &attempt);
	assert_string_equal(id2, id);
	assert_int_equal(attempt, 1);
	CLI(&p, NULL, 0, "steps", id, "--url", b->url);
	expect_in(&p, "charge ch_42");
	th_proc_free(&p);
	CLI(&p, NULL, 0, "get", id, "--json", "--url", b->url);
	expect_in(&p, "\"retried\"");
	th_proc_free(&p);

	/* Not dead (it is leased): 4.  No such execution: 5. */
	CLI(&p, NULL, 4, "retry", id, "--url", b->url);
	assert_true(p.err_len > 0);
	th_proc_free(&p);
	CLI(&p, NULL, 5, "retry", "00000000deadbeef", "--url", b->url);
	th_proc_free(&p);

	/* The queue's totals count both deliveries and the one failure. */
	CLI(&p, NULL, 0, "stats", "dq", "--json", "--url", b->url);
	assert_true(th_json_int(p.out, "deliveries", &n));
	assert_int_equal(n, 2);
	assert_true(th_json_int(p.out, "failures", &n));
	assert_int_equal(n, 1);
	th_proc_free(&p);
}

static void test_retry_all_and_purge(void **state)
{
	th_broker *b = *state;
	char ids[3][64], st[32];
	int64_t n = 0;
	th_proc p;

	for (int i = 0; i < 3; i++)
		PUSH(b, ids[i], "pq", "x");
	for (int i = 0; i < 3; i++)
		make_dead(b, "pq", ids[i]);

	CLI(&p, NULL, 0, "retry", "--queue", "pq", "--all", "--json", "--url", b->url);
	assert_true(th_json_int(p.out, "retried", &n));
	assert_int_equal(n, 3);
	th_proc_free(&p);
	for (int i = 0; i < 3; i++) {
		get_state(b, ids[i], st, sizeof(st));
		assert_string_equal(st, "ready");
	}
	for (int i = 0; i < 3; i++)
		make_dead(b, "pq", NULL); /* in whatever order retry made them ready */

	CLI(&p, NULL, 0, "purge", "pq", "--state", "dead", "--url", b->url);
	expect_in(&p, "3 dead purged");
	th_proc_free(&p);
	for (int i = 0; i < 3; i++) {
		CLI(&p, NULL, 5, "get", ids[i], "--url", b->url);
		th_proc_free(&p);
	}
	CLI(&p, NULL, 0, "dead", "pq", "--json", "--url", b->url);
	assert_string_equal(p.out, "[]\n");
	th_proc_free(&p);
	CLI(&p, NULL, 0, "purge", "pq", "--state", "dead", "--json", "--url", b->url);
	assert_true(th_json_int(p.out, "purged", &n));
	assert_int_equal(n, 0);
	th_proc_free(&p);
}

/* stats of more queues than one reply holds (1000 a page): the CLI shows
 * them all. */
static void test_stats_of_many_queues(void **state)
{
	th_broker *b = *state;
	th_raw r;
	th_proc p;

	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	for (int batch = 0; batch < 3; batch++) {
		th_req q;
		th_reply rep;
		assert_int_equal(th_req_begin(&q, "push", 1), 0);
		proto_key(th_pk(&q), "jobs");
		msgpack_pack_array(th_pk(&q), 1000);
		for (int i = 0; i < 1000; i++) {
			char name[32];
			snprintf(name, sizeof(name), "many.%d", batch * 1000 + i);
			msgpack_pack_map(th_pk(&q), 1);
			proto_kv_cstr(th_pk(&q), "queue", name);
		}
		assert_int_equal(th_req_call(&r, &q, &rep), 0);
		assert_true(rep.ok);
		th_reply_free(&rep);
	}
	th_raw_close(&r);
	CLI(&p, NULL, 0, "stats", "--json", "--url", b->url);
	size_t lines = 0;
	for (const char *c = p.out; (c = strstr(c, "\"queue\":\"many.")) != NULL; c++)
		lines++;
	if (lines != 3000)
		fail_msg("cueq stats showed %zu of the 3000 queues", lines);
	expect_in(&p, "\"queue\":\"many.2999\"");
	th_proc_free(&p);
}

static void test_pause_resume(void **state)
{
	th_broker *b = *state;
	char id[64], id2[64], tok[64];
	int status = 0;
	th_proc p;

	PUSH(b, id, "zq", "waiting");
	CLI(&p, NULL, 0, "pause", "zq", "--url", b->url);
	expect_in(&p, "paused");
	th_proc_free(&p);
	CLI(&p, NULL, 3, "claim", "zq", "--wait", "0", "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 0, "stats", "zq", "--json", "--url", b->url);
	expect_in(&p, "\"paused\":true");
	expect_in(&p, "\"ready\":1");
	th_proc_free(&p);

	/* Paused it stays across a restart. */
	assert_int_equal(th_broker_stop(b, 15000, &status), 0);
	assert_int_equal(th_broker_restart(b), 0);
	CLI(&p, NULL, 0, "stats", "zq", "--json", "--url", b->url);
	expect_in(&p, "\"paused\":true");
	th_proc_free(&p);
	CLI(&p, NULL, 3, "claim", "zq", "--wait", "500ms", "--url", b->url);
	th_proc_free(&p);

	CLI(&p, NULL, 0, "resume", "zq", "--url", b->url);
	expect_in(&p, "resumed");
	th_proc_free(&p);
	claim(b, "zq", id2, tok, NULL);
	assert_string_equal(id2, id);
	CLI(&p, NULL, 0, "stats", "zq", "--json", "--url", b->url);
	expect_in(&p, "\"paused\":false");
	th_proc_free(&p);
}

static void test_cancel_ready(void **state)
{
	th_broker *b = *state;
	char id[64], id2[64], tok[64], st[32], got[64];
	th_proc p;

	PUSH(b, id, "cq", "never");
	CLI(&p, NULL, 0, "cancel", id, "--json", "--url", b->url);
	assert_true(th_json_str(p.out, "kind", got, sizeof(got)));
	assert_string_equal(got, "execution");
	assert_true(th_json_str(p.out, "state", got, sizeof(got)));
	assert_string_equal(got, "cancelled");
	th_proc_free(&p);
	CLI(&p, NULL, 3, "claim", "cq", "--wait", "0", "--url", b->url);
	th_proc_free(&p);
	get_state(b, id, st, sizeof(st));
	assert_string_equal(st, "cancelled");
	CLI(&p, NULL, 0, "cancel", id, "--url", b->url); /* again: the same answer */
	expect_in(&p, "cancelled");
	th_proc_free(&p);

	/* Finished already: 4.  No such ID: 5. */
	PUSH(b, id, "cq", "done");
	claim(b, "cq", id2, tok, NULL);
	assert_string_equal(id2, id);
	CLI(&p, NULL, 0, "ack", id, "--token", tok, "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 4, "cancel", id, "--url", b->url);
	th_proc_free(&p);
	CLI(&p, NULL, 5, "cancel", "00000000deadbeef", "--url", b->url);
	th_proc_free(&p);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = calloc(1, 4096);
	if (buf == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, 4095, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Waits up to ms for the file at path to hold text; its contents or NULL. */
static char *wait_for_file(const char *path, const char *text, int64_t ms)
{
	int64_t end = th_now_ms() + ms;

	for (;;) {
		char *s = slurp(path);
		if (s != NULL && strstr(s, text) != NULL)
			return s;
		free(s);
		if (th_now_ms() >= end)
			return NULL;
		th_sleep_ms(50);
	}
}

static void test_cancel_leased_under_work(void **state)
{
	th_broker *b = *state;
	static char script[4 * PATH_MAX + 512];
	char id[64], path[PATH_MAX + 64], log[PATH_MAX + 64], st[32];
	char *tok, *term;
	int status = 0;
	th_proc p;
	pid_t pid;

	PUSH(b, id, "wq", "slow", "--lease", "1s");
	snprintf(script, sizeof(script),
		 "cat >/dev/null; echo \"$CUEQ_LEASE_TOKEN\" > \"%s/token.tmp\" && "
		 "mv \"%s/token.tmp\" \"%s/token\"; "
		 "trap 'echo got-term >> \"%s/term\"; exit 0' TERM; sleep 30 & wait $!",
		 b->dir, b->dir, b->dir, b->dir);
	snprintf(log, sizeof(log), "%s/work.log", b->dir);
	char *const argv[] = { (char *)th_cli_path, "work", "wq", "--lease", "1s", "--grace", "5s",
			       "--max-jobs", "1", "--url", b->url, "--", "/bin/sh", "-c", script,
			       NULL };
	proc_opts o = { .log = log, .death_signal = SIGKILL };
	pid = proc_spawn(argv, &o);
	assert_true(pid > 0);

	snprintf(path, sizeof(path), "%s/token", b->dir);
	tok = wait_for_file(path, "\n", 20000);
	if (tok == NULL) {
		proc_dump_tail(log, 2000);
		proc_kill9(pid);
		fail_msg("the command under cueq work never started");
	}
	tok[strcspn(tok, "\n")] = '\0';
	assert_true(is_id(tok));
	th_sleep_ms(1500); /* past the first lease: extensions keep it */

	CLI(&p, NULL, 0, "cancel", id, "--url", b->url);
	expect_in(&p, "cancelled");
	th_proc_free(&p);

	/* The next extension learns it: SIGTERM within a few seconds. */
	snprintf(path, sizeof(path), "%s/term", b->dir);
	term = wait_for_file(path, "got-term", 10000);
	if (term == NULL) {
		proc_dump_tail(log, 2000);
		proc_kill9(pid);
		fail_msg("the command was not sent SIGTERM after its execution was cancelled");
	}
	free(term);
	if (proc_wait(pid, 20000, &status) != 0) {
		proc_dump_tail(log, 2000);
		proc_kill9(pid);
		fail_msg("cueq work did not stop after its one job was cancelled");
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* Neither acked nor nacked: cancelled, and the old token is refused. */
	get_state(b, id, st, sizeof(st));
	assert_string_equal(st, "cancelled");
	CLI(&p, NULL, 4, "ack", id, "--token", tok, "--url", b->url);
	th_proc_free(&p);
	char *out = slurp(log);
	if (out == NULL || strstr(out, "cancelled") == NULL)
		fail_msg("cueq work did not say the execution was cancelled: %s", out ? out : "");
	free(out);
	free(tok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_push_flag_errors, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_recurring, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_dead_and_retry, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_retry_all_and_purge, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_pause_resume, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_stats_of_many_queues, th_fixture_start,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cancel_ready, th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cancel_leased_under_work, th_fixture_start,
						th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
