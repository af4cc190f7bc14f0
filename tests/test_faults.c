/*
 * test_faults.c - the broker on failing storage and with too few
 * descriptors (PROTOCOL.md, "When storage fails"; broker/store.h, the
 * failure rule; broker/fault.h, the fault hook).
 *
 * 1. Kill at every write: for each request kind (ack, nack to dead, nack to
 *    retry, push with keys, step set, extend, the retention sweep) the
 *    broker kills itself just before, or just after, its Kth write (or
 *    sync) for K = 1, 2, ... until the request completes; after every death
 *    the execution is wholly before or wholly after the request (get,
 *    stats, list, the unique key, the idempotency key all agree) and the
 *    client's retry of the same request gives one consistent answer
 *    (faults_kill.c).  A push remembered by its request ID (retry_ttl_ms,
 *    as the SDK sends it) exists once after a kill at its write or sync
 *    and the retry, and is answered the same bytes after a clean restart.
 *    A claim that gives a job whose push is not yet synced is not answered
 *    before that sync (the broker dies at it, the claim gets nothing).
 * 2. Fail and recover: producers and workers against a broker whose Nth
 *    write or sync fails; it must exit by itself with status 2, and after a
 *    restart everything it answered ok is on disk (faults_load.c).
 * 3. A faulty disk below RocksDB (faultfs.c, preloaded into the broker
 *    only): ENOSPC on every file, EIO on the WAL, EIO on fdatasync, EIO on
 *    table files while flushes run.  Each ends in exit status 2, never a
 *    signal, and loses nothing answered.
 * 4. Descriptors: with RLIMIT_NOFILE 256 the broker serves the connections
 *    its budget allows and closes the rest as they connect, stays up, and
 *    keeps what it answered; a cap that cannot fit refuses to start, and
 *    the budget holds at its edges; TCP connections that never handshake,
 *    more than the broker has descriptors, leave the store its own.
 * 5. A start on a disk that already fails exits 1 with a clear line, and
 *    loses nothing.
 *
 * Every test ends with a graceful stop that must exit 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faults_conn.h"
#include "faults_kill.h"
#include "faults_load.h"
#include "faults_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef FAULTFS_PATH
#error "FAULTFS_PATH must name the faultfs library (set by tests/CMakeLists.txt)"
#endif

/* LeakSanitizer, in this process only (brokers keep their own checks: a
 * leak fails their clean exit): libnng 1.5.2 loses a dialer and its pipe
 * (14 allocations, 4288 bytes) whenever a REQ socket is closed while the
 * peer is closing its connections, which this test does on purpose (the
 * connections past the cap) and the harness does when it pings a broker
 * that is starting.  A plain nng program that dials a REP socket closing
 * every pipe at NNG_PIPE_EV_ADD_PRE, and closes, shows the same leak. */
const char *__lsan_default_suppressions(void);
__attribute__((used)) const char *__lsan_default_suppressions(void)
{
	return "leak:libnng.so\n";
}

/* Setup: a zero-filled broker, not started (th_fixture_stop stops it,
 * requiring exit status 0, and frees it). */
static int unstarted(void **state)
{
	*state = calloc(1, sizeof(th_broker));
	return *state != NULL ? 0 : -1;
}

/* ---- 1. kill at every write ------------------------------------------------ */

static void kill_loop(th_broker *b, enum fx_kind kind, const char *name, const char *point,
		      const char *action)
{
	int k = fx_kill_loop(b, kind, point, action);
	fprintf(stderr, "faults: %s with CUEQ_FAULT=%s:K:%s completed at K=%d\n", name, point, action, k);
}

static void test_kill_ack(void **state)
{
	kill_loop(*state, FK_ACK, "ack", "write", "exit");
	kill_loop(*state, FK_ACK, "ack", "write", "exit-after");
	kill_loop(*state, FK_ACK, "ack", "sync", "exit");
}

static void test_kill_nack_dead(void **state)
{
	kill_loop(*state, FK_NACK_DEAD, "nack terminal", "write", "exit");
	kill_loop(*state, FK_NACK_DEAD, "nack terminal", "write", "exit-after");
}

static void test_kill_nack_retry(void **state)
{
	kill_loop(*state, FK_NACK_RETRY, "nack retry_in_ms", "write", "exit");
	kill_loop(*state, FK_NACK_RETRY, "nack retry_in_ms", "write", "exit-after");
}

static void test_kill_push(void **state)
{
	kill_loop(*state, FK_PUSH, "push", "write", "exit");
	kill_loop(*state, FK_PUSH, "push", "write", "exit-after");
	kill_loop(*state, FK_PUSH, "push", "sync", "exit");
}

static void test_kill_step(void **state)
{
	kill_loop(*state, FK_STEP, "step_set", "write", "exit");
	kill_loop(*state, FK_STEP, "step_set", "write", "exit-after");
}

static void test_kill_extend(void **state)
{
	kill_loop(*state, FK_EXTEND, "extend", "write", "exit");
	kill_loop(*state, FK_EXTEND, "extend", "write", "exit-after");
}

static void test_kill_cancel(void **state)
{
	kill_loop(*state, FK_CANCEL, "cancel", "write", "exit");
	kill_loop(*state, FK_CANCEL, "cancel", "write", "exit-after");
	kill_loop(*state, FK_CANCEL, "cancel", "sync", "exit");
}

static void test_kill_retry(void **state)
{
	kill_loop(*state, FK_RETRY, "retry", "write", "exit");
	kill_loop(*state, FK_RETRY, "retry", "write", "exit-after");
	kill_loop(*state, FK_RETRY, "retry", "sync", "exit");
}

static void test_kill_purge(void **state)
{
	kill_loop(*state, FK_PURGE, "purge", "write", "exit");
	kill_loop(*state, FK_PURGE, "purge", "write", "exit-after");
	kill_loop(*state, FK_PURGE, "purge", "sync", "exit");
}

static void test_kill_retention(void **state)
{
	kill_loop(*state, FK_RETENTION, "retention sweep", "write", "exit");
	kill_loop(*state, FK_RETENTION, "retention sweep", "write", "exit-after");
}

/* A push as the SDK sends it: no idempotency key, retry_ttl_ms.  The same
 * request ID with the other payload is bad_twin. */
static th_bytes remembered_push(const char *payload, th_bytes *bad_twin)
{
	th_req q;
	th_bytes out = { 0 };
	char rid[sizeof(q.rid)];
	for (int i = 0; i < 2; i++) {
		if (i == 0) {
			assert_int_equal(th_req_begin(&q, "push", 2), 0);
			memcpy(rid, q.rid, sizeof(rid));
		} else { /* the same request ID, other bytes */
			assert_int_equal(th_req_begin_rid(&q, "push", 2, rid), 0);
		}
		proto_kv_uint(th_pk(&q), "retry_ttl_ms", 600000);
		proto_key(th_pk(&q), "jobs");
		msgpack_pack_array(th_pk(&q), 1);
		msgpack_pack_map(th_pk(&q), 2);
		proto_kv_cstr(th_pk(&q), "queue", "remembered");
		proto_kv_cstr(th_pk(&q), "payload", i == 0 ? payload : "another payload");
		if (i == 0)
			out = th_req_keep(&q);
		else
			*bad_twin = th_req_keep(&q);
	}
	return out;
}

/* Killed before its write, after it, or after it and before the sync that
 * would answer it, a push sent with retry_ttl_ms and retried with the same
 * bytes on the restarted broker exists once; every later retry, through a
 * clean restart too, gets the answer byte for byte, and other bytes under
 * the same ID are refused. */
static void test_kill_remembered_push(void **state)
{
	th_broker *b = *state;
	static const char *const faults[] = { "CUEQ_FAULT=write:1:exit", "CUEQ_FAULT=write:1:exit-after",
					      "CUEQ_FAULT=sync:1:exit" };
	for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
		th_bytes bad, req = remembered_push("remember me", &bad);
		th_reply rep, again;
		th_raw r;
		char ids[4][FX_ID];
		int status = 0;

		fx_start(b, NULL);
		fx_stop_clean(b);
		fx_set_env(b, (const char *const[]){ faults[f], NULL });
		if (fx_launch(b, &status) != 0)
			fail_msg("%s: the broker did not start", faults[f]);
		fx_open(&r, b);
		fx_end end = fx_send(b, &r, &req, &rep, FX_CHECK_MS);
		th_reply_free(&rep);
		th_raw_close(&r);
		if (!end.died)
			fail_msg("%s: the broker answered (%d) instead of dying at the fault", faults[f],
				 end.replied);
		fx_set_env(b, NULL);
		th_broker_kill9(b);
		fx_restart(b);
		fx_open(&r, b);
		size_t before = fx_list(&r, "remembered", NULL, ids, 4);
		assert_true(before <= 1);
		fx_call(&r, &req, &rep, "the retry after the crash");
		fx_pushed p;
		if (!fx_push_result(&rep, &p) || !p.ok)
			fail_msg("%s: the retry was refused: %s %s", faults[f], rep.err, rep.msg);
		assert_int_equal(fx_list(&r, "remembered", NULL, ids, 4), 1);
		assert_string_equal(ids[0], p.id);
		if (before == 1 && strcmp(faults[f], "CUEQ_FAULT=write:1:exit") == 0)
			fail_msg("killed before its first write, the push is there after the restart");
		/* a clean restart: the answer is still remembered, on disk */
		th_raw_close(&r);
		fx_stop_clean(b);
		fx_restart(b);
		fx_open(&r, b);
		fx_call(&r, &req, &again, "the retry after a clean restart");
		if (again.len != rep.len || memcmp(again.buf, rep.buf, rep.len) != 0)
			fail_msg("%s: the retry after a clean restart got another answer", faults[f]);
		th_reply_free(&again);
		fx_call(&r, &bad, &again, "other bytes under the same request ID");
		assert_false(again.ok);
		assert_string_equal(again.err, "BAD_REQUEST");
		th_reply_free(&again);
		assert_int_equal(fx_list(&r, "remembered", NULL, ids, 4), 1);
		fprintf(stderr, "faults: remembered push with %s: %s once, %s\n", faults[f], p.id,
			before ? "there after the crash" : "created by the retry");
		th_reply_free(&rep);
		th_raw_close(&r);
		fx_stop_clean(b);
		fx_bytes_free(&req);
		fx_bytes_free(&bad);
		th_broker_cleanup(b);
	}
}

/* A claim parked on an empty queue, served by the push that arrives: the
 * job is not durable until the push's sync, so neither answer may leave
 * before it.  The broker dies at that sync (CUEQ_FAULT=sync:1:exit): the
 * claim must get no answer (a claim of durable jobs may leave before its
 * turn's sync; this one may not). */
struct parked_claim {
	const th_broker *b;
	int rc; /* th_raw_claim's: -1 or an nng error when no answer came */
	char id[FX_ID], token[FX_ID];
};

static void *park_a_claim(void *arg)
{
	struct parked_claim *pc = arg;
	th_raw r;
	uint64_t attempt = 0;
	if (th_raw_open(&r, pc->b->url, 8000) != 0) {
		pc->rc = -2;
		return NULL;
	}
	pc->rc = th_raw_claim(&r, "early", 60000, 5000, pc->id, pc->token, &attempt);
	th_raw_close(&r);
	return NULL;
}

static void test_claim_waits_for_the_push_it_gives(void **state)
{
	th_broker *b = *state;
	struct parked_claim pc = { .b = b };
	fx_job job = { "early", "not yet durable", NULL, NULL, 0, 0 };
	th_bytes req = fx_push_req(&job);
	th_reply rep;
	pthread_t t;
	th_raw r;
	int status = 0;

	fx_start(b, NULL);
	fx_stop_clean(b);
	fx_set_env(b, (const char *const[]){ "CUEQ_FAULT=sync:1:exit", NULL });
	if (fx_launch(b, &status) != 0)
		fail_msg("the broker did not start");
	assert_int_equal(pthread_create(&t, NULL, park_a_claim, &pc), 0);
	th_sleep_ms(300); /* the claim is parked */
	fx_open(&r, b);
	fx_end end = fx_send(b, &r, &req, &rep, FX_CHECK_MS);
	th_reply_free(&rep);
	th_raw_close(&r);
	pthread_join(t, NULL);
	if (!end.died)
		fail_msg("the broker answered the push (%d) instead of dying at its sync", end.replied);
	if (pc.rc == 0)
		fail_msg("the parked claim was answered with %s before the sync of the push that "
			 "created it", pc.id);
	assert_true(pc.rc != 1); /* not an empty answer either: no answer at all */
	fx_set_env(b, NULL);
	th_broker_kill9(b);
	fx_restart(b);
	fx_stop_clean(b);
	fx_bytes_free(&req);
	th_broker_cleanup(b);
}

/* ---- 2. fail and recover ------------------------------------------------------ */

/* After a restart the broker works as before: one push, claim, ack. */
static void works_again(th_broker *b)
{
	th_raw r;
	char id[FX_ID], cid[FX_ID], token[FX_ID];
	uint64_t deadline;
	th_bytes ack;
	th_reply rep;

	fx_open(&r, b);
	if (th_raw_push(&r, "again", "x", 0, 0, id) != 0)
		fail_msg("no push after the restart");
	fx_claim_ok(&r, "again", 30000, cid, token, &deadline);
	assert_string_equal(cid, id);
	ack = fx_ack_req(id, token, NULL);
	fx_call(&r, &ack, &rep, "ack after the restart");
	assert_true(rep.ok);
	th_reply_free(&rep);
	fx_bytes_free(&ack);
	th_raw_close(&r);
}

static void fail_and_recover(th_broker *b, const char *spec, const char *log_fault,
			     const char *log_stop)
{
	static fx_load l;
	int status = 0, rc;

	memset(&l, 0, sizeof(l));
	fx_set_env(b, (const char *const[]){ spec, NULL });
	fx_start(b, NULL);
	fx_load_start(&l, b->url, "load", 3, 2);
	rc = th_broker_wait(b, 30000, &status);
	fx_load_stop(&l);
	if (rc != 0) {
		th_broker_dump_log(b);
		fail_msg("%s: the broker did not stop by itself within 30 s", spec);
	}
	fx_expect_exit(b, status, 2, spec);
	if (!fx_log_has(b, log_fault) || !fx_log_has(b, log_stop) ||
	    !fx_log_has(b, "stopped: storage failed")) {
		th_broker_dump_log(b);
		fail_msg("%s: the log does not say '%s', '%s' and 'stopped: storage failed'", spec,
			 log_fault, log_stop);
	}
	fx_set_env(b, NULL);
	fx_restart(b);
	fx_load_verify(&l, b, spec);
	fx_load_free(&l);
	works_again(b);
}

static void test_write_fails(void **state)
{
	fail_and_recover(*state, "CUEQ_FAULT=write:300:fail",
			 "storage fault injection: write 300 fails", "cannot write to storage");
}

static void test_sync_fails(void **state)
{
	fail_and_recover(*state, "CUEQ_FAULT=sync:150:fail",
			 "storage fault injection: sync 150 fails", "cannot make writes durable");
}

/* ---- 3. a faulty disk below RocksDB ------------------------------------------ */

static bool maps_has(pid_t pid, const char *needle)
{
	char path[64], line[1024];
	FILE *f;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static void faulty_disk(th_broker *b, const char *match, const char *err, const char *ops,
			const char *errtext, size_t payload_size)
{
	static fx_load l;
	static char arm_env[PATH_MAX + 32], arm[PATH_MAX];
	char m_env[64], e_env[64], o_env[64], what[128];
	int status = 0, rc;
	bool progressed;
	FILE *f;

	snprintf(what, sizeof(what), "faultfs %s on '%s' (%s)", err, match, ops);
	memset(&l, 0, sizeof(l));
	/* the arm file lives in the broker's temp dir: start once to make it */
	fx_set_env(b, NULL);
	fx_start(b, NULL);
	fx_stop_clean(b);
	snprintf(arm, sizeof(arm), "%s/arm", b->dir);
	snprintf(arm_env, sizeof(arm_env), "CUEQ_FAULTFS_ARM=%s", arm);
	snprintf(m_env, sizeof(m_env), "CUEQ_FAULTFS_MATCH=%s", match);
	snprintf(e_env, sizeof(e_env), "CUEQ_FAULTFS_ERRNO=%s", err);
	snprintf(o_env, sizeof(o_env), "CUEQ_FAULTFS_OPS=%s", ops);
	fx_set_env(b, (const char *const[]){ fx_faultfs_preload(FAULTFS_PATH), arm_env, m_env, e_env,
					     o_env, NULL });
	fx_restart(b);
	if (!maps_has(b->pid, "faultfs")) {
		th_broker_dump_log(b);
		fail_msg("%s: the broker did not load %s", what, FAULTFS_PATH);
	}
	if (getenv("LD_PRELOAD") != NULL && strstr(getenv("LD_PRELOAD"), "faultfs") != NULL)
		fail_msg("the faulty disk reached the test process");

	l.payload_size = payload_size;
	fx_load_start(&l, b->url, "disk", 3, 2);
	progressed = fx_load_wait(&l, 200, 20, 15000);
	f = fopen(arm, "w");
	if (f != NULL)
		fclose(f);
	rc = th_broker_wait(b, 30000, &status);
	fx_load_stop(&l);
	unlink(arm);
	if (f == NULL)
		fail_msg("%s: cannot create %s", what, arm);
	if (!progressed)
		fail_msg("%s: the load got only %zu pushes and %zu acks answered before the disk failed",
			 what, (size_t)atomic_load(&l.n_push_ok), (size_t)atomic_load(&l.n_ack_ok));
	if (rc != 0) {
		th_broker_dump_log(b);
		fail_msg("%s: the broker did not stop by itself within 30 s of the disk failing", what);
	}
	fx_expect_exit(b, status, 2, what);
	if (!fx_log_has(b, errtext) || !fx_log_has(b, "stopped: storage failed")) {
		th_broker_dump_log(b);
		fail_msg("%s: the log does not say '%s' and 'stopped: storage failed'", what, errtext);
	}
	fx_set_env(b, NULL);
	fx_restart(b);
	fx_load_verify(&l, b, what);
	fx_load_free(&l);
	works_again(b);
}

static void test_disk_full(void **state)
{
	faulty_disk(*state, "", "ENOSPC", "all", "No space left on device", 0);
}

static void test_wal_eio(void **state)
{
	faulty_disk(*state, ".log", "EIO", "all", "Input/output error", 0);
}

static void test_fdatasync_eio(void **state)
{
	faulty_disk(*state, "", "EIO", "sync", "Input/output error", 0);
}

/* Table files only, with 64 KiB payloads so that memtable flushes run all
 * the time: a flush fails in the background, the WAL writes still work,
 * and the broker must stop at the next write the failure refuses. */
static void test_table_file_eio(void **state)
{
	faulty_disk(*state, ".sst", "EIO", "all", "Input/output error", 64 * 1024);
}

/* ---- 4. descriptors ------------------------------------------------------------ */

#define NOFILE 256
#define EXTRA 40
#define N_PUSH 50

static void test_descriptor_cap(void **state)
{
	th_broker *b = *state;
	static fx_pinger in[NOFILE], extra[EXTRA], fresh[EXTRA], beyond[1];
	static char ids[N_PUSH][FX_ID];
	long tables = NOFILE / 8 < 32 ? 32 : NOFILE / 8 > 1024 ? 1024 : NOFILE / 8;
	long want = NOFILE - tables - 64, allowed;
	size_t n_in, got;
	th_counts c;
	th_raw ctl;

	b->nofile = NOFILE;
	fx_start(b, NULL);
	allowed = fx_log_number(b, "at most ");
	if (allowed != want) {
		th_broker_dump_log(b);
		fail_msg("with %d descriptors the broker serves %ld connections; the budget is %ld", NOFILE,
			 allowed, want);
	}
	n_in = (size_t)allowed - 1; /* and ctl */
	fx_open(&ctl, b);
	assert_int_equal(th_raw_ping(&ctl), 0);
	fx_open_all(in, n_in, b->url);
	if ((got = fx_ping_all(in, n_in, 10000)) != n_in) {
		th_broker_dump_log(b);
		fail_msg("only %zu of the %ld connections allowed were served", got + 1, allowed);
	}

	/* Past the cap: closed as they connect, while the others are served. */
	fx_open_all(extra, EXTRA, b->url);
	if ((got = fx_ping_all(extra, EXTRA, 500)) != 0) {
		th_broker_dump_log(b);
		fail_msg("%zu connections past the cap of %ld were served", got, allowed);
	}
	for (int i = 0; i < 5; i++)
		if (!fx_sp_connect_closed(b->port, 2000))
			fail_msg("a TCP connection past the cap stayed open for 2 s");
	if (!fx_log_has(b, "refusing connections")) {
		th_broker_dump_log(b);
		fail_msg("the log does not say it is refusing connections");
	}
	for (int i = 0; i < N_PUSH; i++) {
		char p[16];
		snprintf(p, sizeof(p), "cap-%d", i);
		if (th_raw_push(&ctl, "cap", p, 0, 0, ids[i]) != 0)
			fail_msg("push #%d at the cap was not answered ok", i);
	}
	if ((got = fx_ping_all(in, n_in, 10000)) != n_in)
		fail_msg("at the cap, with %d more knocking, only %zu of %zu served connections answered",
			 EXTRA, got, n_in);
	assert_int_equal(th_raw_ping(&ctl), 0);

	/* Once connections close, new ones are served again, up to the cap. */
	fx_close_all(extra, EXTRA);
	fx_close_all(in, EXTRA);
	bool stays = false; /* the broker sees the closes a moment later */
	for (int64_t until = th_now_ms() + 3000; !stays && th_now_ms() < until;)
		stays = !fx_sp_connect_closed(b->port, 300);
	if (!stays)
		fail_msg("with %d connections closed, new TCP connections were still closed at once", EXTRA);
	fx_open_all(fresh, EXTRA, b->url);
	if ((got = fx_ping_all(fresh, EXTRA, 10000)) != EXTRA) {
		th_broker_dump_log(b);
		fail_msg("after %d connections closed only %zu of %d new ones were served", EXTRA, got, EXTRA);
	}
	fx_open_all(beyond, 1, b->url);
	if (fx_ping_all(beyond, 1, 500) != 0)
		fail_msg("at the cap again, one connection more was served: the count drifted");

	/* What was answered survives kill -9. */
	th_broker_kill9(b);
	fx_close_all(beyond, 1);
	fx_close_all(fresh, EXTRA);
	fx_close_all(in + EXTRA, n_in - EXTRA);
	th_raw_close(&ctl);
	fx_restart(b);
	fx_open(&ctl, b);
	for (int i = 0; i < N_PUSH; i++) {
		fx_exec x;
		fx_get(&ctl, ids[i], &x);
		if (!x.found || strcmp(x.state, "ready") != 0)
			fail_msg("push #%d (%s), answered ok at the cap, is %s after kill -9", i, ids[i],
				 x.found ? x.state : "gone");
	}
	fx_counts(&ctl, "cap", &c);
	assert_int_equal(c.ready, N_PUSH);
	assert_int_equal(th_raw_ping(&ctl), 0);
	th_raw_close(&ctl);
}

static void test_cap_beyond_descriptors(void **state)
{
	th_broker *b = *state;
	int status = 0;

	b->nofile = NOFILE;
	fx_set_flags(b, (const char *const[]){ "--max-connections", "100000", NULL });
	if (th_broker_launch(b, &status) != 1) {
		th_broker_dump_log(b);
		fail_msg("--max-connections 100000 with %d descriptors started", NOFILE);
	}
	fx_expect_exit(b, status, 1, "--max-connections 100000");
	if (!fx_log_has(b, "ulimit") || !fx_log_has(b, "100000")) {
		th_broker_dump_log(b);
		fail_msg("the refusal does not name ulimit and the cap asked for");
	}
}

/* One start with nofile and flags: it must serve want_conns connections
 * (want_exit < 0), or exit want_exit with needle in its log. */
static void budget(th_broker *b, int nofile, const char *const *flags, int want_exit,
		   long want_conns, const char *needle)
{
	char what[96];
	int status = 0, rc;

	th_broker_cleanup(b);
	memset(b, 0, sizeof(*b));
	b->nofile = nofile;
	fx_set_flags(b, flags);
	snprintf(what, sizeof(what), "nofile %d%s%s", nofile, flags ? " " : "", flags ? flags[1] : "");
	rc = th_broker_launch(b, &status);
	if (want_exit < 0) {
		if (rc != 0) {
			th_broker_dump_log(b);
			fail_msg("%s: cueqd did not start", what);
		}
		long n = fx_log_number(b, "at most ");
		if (n != want_conns) {
			th_broker_dump_log(b);
			fail_msg("%s: cueqd serves %ld connections, expected %ld", what, n, want_conns);
		}
		fx_stop_clean(b);
		return;
	}
	if (rc != 1) {
		th_broker_dump_log(b);
		fail_msg("%s: cueqd started (%d); it must refuse", what, rc);
	}
	fx_expect_exit(b, status, want_exit, what);
	if (!fx_log_has(b, needle)) {
		th_broker_dump_log(b);
		fail_msg("%s: the log does not say '%s'", what, needle);
	}
}

/* Connections that have not finished their SP handshake are not counted
 * by the cap, yet each takes a descriptor once accepted, for 10 s.  Rounds
 * of BARE such sockets (more than the broker's descriptors) while 64 KiB
 * pushes make the store open new files (a WAL each 4 MiB): every push is
 * answered, the broker says it refuses connections and stays up, and once
 * the sockets close new connections are served again. */
#define BARE 400
#define BARE_ROUNDS 4
#define BIG_PUSHES 50 /* a round: 3.2 MiB */

static void test_unhandshaked_connections_leave_the_store_its_descriptors(void **state)
{
	th_broker *b = *state;
	static int fds[BARE];
	char *big = malloc(64 * 1024 + 1), id[FX_ID];
	th_counts c;
	th_raw ctl, fresh;
	int status = 0;

	assert_non_null(big);
	memset(big, 'd', 64 * 1024);
	big[64 * 1024] = '\0';
	b->nofile = NOFILE;
	fx_start(b, NULL);
	fx_open(&ctl, b);
	assert_int_equal(th_raw_ping(&ctl), 0);
	for (int round = 0; round < BARE_ROUNDS; round++) {
		size_t opened = 0;
		for (size_t i = 0; i < BARE; i++)
			opened += (fds[i] = fx_bare_connect_start(b->port)) >= 0;
		if (opened < BARE / 2)
			fail_msg("only %zu of %d bare connections could be started", opened, BARE);
		th_sleep_ms(300); /* the broker accepts what it will meanwhile */
		for (int i = 0; i < BIG_PUSHES; i++)
			if (th_raw_push(&ctl, "fds", big, 0, 0, id) != 0) {
				th_broker_dump_log(b);
				fail_msg("push %d of round %d, beside %zu unhandshaked connections, was not answered ok",
					 i, round, opened);
			}
		for (size_t i = 0; i < BARE; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	free(big);
	if (th_broker_wait(b, 0, &status) == 0) {
		th_broker_dump_log(b);
		fail_msg("the broker exited beside unhandshaked connections");
	}
	if (!fx_log_has(b, "refusing connections")) {
		th_broker_dump_log(b);
		fail_msg("the log does not say it refused connections past its descriptors");
	}
	assert_int_equal(th_raw_ping(&ctl), 0);
	fx_counts(&ctl, "fds", &c);
	assert_int_equal(c.ready, BARE_ROUNDS * BIG_PUSHES);
	bool served = false; /* the broker sees the closes a moment later */
	for (int64_t until = th_now_ms() + 5000; !served && th_now_ms() < until; th_sleep_ms(100)) {
		fx_open(&fresh, b);
		served = th_raw_ping(&fresh) == 0;
		th_raw_close(&fresh);
	}
	if (!served)
		fail_msg("once the unhandshaked connections closed, a new one was not served");
	th_raw_close(&ctl);
	fx_stop_clean(b);
}

/* The budget at its edges: 128 descriptors is the least cueqd starts with
 * (128 - 32 - 64 = 32 connections), 127 refuses; with 256 descriptors
 * --max-connections 160 fits and 161 does not. */
static void test_descriptor_budget(void **state)
{
	th_broker *b = *state;

	budget(b, 128, NULL, -1, 32, NULL);
	budget(b, 127, NULL, 1, 0, "ulimit -n");
	budget(b, NOFILE, (const char *const[]){ "--max-connections", "160", NULL }, -1, 160, NULL);
	budget(b, NOFILE, (const char *const[]){ "--max-connections", "161", NULL }, 1, 0, "ulimit -n");
	budget(b, NOFILE, (const char *const[]){ "--max-connections", "100", NULL }, -1, 100, NULL);
}

/* ---- a start on a failing disk ------------------------------------------- */

/* On a disk that fails from the start cueqd must say it cannot write to
 * the data directory and exit 1.  (RocksDB's open writes the LOG header,
 * and its writer asserts at the line after a failed append: the store
 * probes the directory with a synced write before it opens RocksDB.) */
static void test_start_on_a_failing_disk(void **state)
{
	th_broker *b = *state;
	static char arm_env[PATH_MAX + 32], arm[PATH_MAX];
	char id[FX_ID];
	int status = 0, rc;
	th_raw r;
	FILE *f;

	fx_start(b, NULL);
	fx_open(&r, b);
	if (th_raw_push(&r, "before", "x", 0, 0, id) != 0)
		fail_msg("push before the disk failed");
	th_raw_close(&r);
	fx_stop_clean(b);
	snprintf(arm, sizeof(arm), "%s/arm", b->dir);
	snprintf(arm_env, sizeof(arm_env), "CUEQ_FAULTFS_ARM=%s", arm);
	assert_non_null(f = fopen(arm, "w"));
	fclose(f);
	fx_set_env(b, (const char *const[]){ fx_faultfs_preload(FAULTFS_PATH), arm_env,
					     "CUEQ_FAULTFS_ERRNO=ENOSPC", NULL });
	rc = fx_launch(b, &status);
	unlink(arm);
	fx_set_env(b, NULL);
	if (rc != 1) {
		th_broker_dump_log(b);
		fail_msg("cueqd started on a disk that fails every write (%d)", rc);
	}
	fx_expect_exit(b, status, 1, "start on a full disk");
	if (!fx_log_has(b, "cannot write to the data directory")) {
		th_broker_dump_log(b);
		fail_msg("the log does not say it cannot write to the data directory");
	}
	fx_restart(b);
	fx_open(&r, b);
	fx_exec x;
	fx_get(&r, id, &x);
	th_raw_close(&r);
	if (!x.found)
		fail_msg("the push before the failed start is gone");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill_ack, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_nack_dead, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_nack_retry, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_push, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_step, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_extend, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_retention, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_cancel, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_retry, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_purge, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_remembered_push, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_claim_waits_for_the_push_it_gives, unstarted,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_write_fails, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_sync_fails, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_disk_full, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_wal_eio, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_fdatasync_eio, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_table_file_eio, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_descriptor_cap, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_cap_beyond_descriptors, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_descriptor_budget, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_unhandshaked_connections_leave_the_store_its_descriptors,
						unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_start_on_a_failing_disk, unstarted, th_fixture_stop),
	};
	if (getenv("CUEQ_TEST_FILTER") != NULL) /* e.g. "test_kill_*" */
		cmocka_set_test_filter(getenv("CUEQ_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
