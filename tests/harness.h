/*
 * harness.h - what every cueq test shares: a real broker per test, a raw
 * protocol client, and a runner for the cueq command-line client.
 *
 * Tests run the real thing.  th_broker_start() makes a temp dir, picks a
 * free loopback port and starts the real cueqd on it, then waits (bounded)
 * until a ping answers, so tests run in parallel without sharing anything.
 * The broker can be killed with SIGKILL and restarted on the same data dir,
 * stopped with SIGTERM and its exit status checked, or started with extra
 * environment and a descriptor limit and waited for as it exits by itself;
 * the process work is cueqd_proc.c's, shared with cueq-bench.  The raw
 * client speaks the wire protocol with the proto/ codec, for tests that
 * must send bytes no SDK would.  Every wait here is bounded by time.
 *
 * None of these functions call cmocka's asserts: they return errors (and
 * print one line saying what went wrong), so they are safe from any thread.
 */
#ifndef CUEQ_TEST_HARNESS_H
#define CUEQ_TEST_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cueqd_proc.h"
#include "proto.h"

/* ---- the broker (cueqd_proc.h does the work) -------------------------- */

#define TH_MAX_EXTRA CUEQD_MAX_ARGS

/* A test's broker.  Besides the fields that cueqd_start fills (dir, data,
 * log, url, port, pid) a test may set, before a start or restart:
 *   env[n_env]  "NAME=VALUE" entries for the broker, e.g.
 *               "CUEQ_FAULT=write:3:exit" (borrowed strings);
 *   nofile      RLIMIT_NOFILE soft and hard of the broker (0: inherit). */
typedef cueqd_proc th_broker;

/* Makes the temp dir, picks a port and starts cueqd with the extra flags
 * (a NULL-terminated list, may be NULL), retrying on a port clash.  b must
 * be zero-filled or cleaned up (th_broker_cleanup), with env, n_env and
 * nofile as wanted.  Returns 0 when a ping answered, else -1 (then
 * th_broker_cleanup still removes the temp dir). */
int th_broker_start(th_broker *b, const char *const *extra);
/* Starts cueqd again on the same dir (it must not be running) with b's
 * current env and nofile, and waits for a ping: first on the same port,
 * then, if it exits at once, on new ones.  Returns 0 when a ping answered. */
static inline int th_broker_restart(th_broker *b)
{
	return cueqd_restart(b);
}
/* One start without retries, for a broker expected to die: on b's dir and
 * port, or on fresh ones if b was never started (b zero-filled but for
 * env, n_env, nofile).  Returns 0 when a ping answered; 1 when cueqd
 * exited first, with its wait status in *status (e.g. WEXITSTATUS 2);
 * -1 when it could not start or did not answer in time (left running). */
int th_broker_launch(th_broker *b, int *status);
/* Waits up to timeout_ms for a broker that exits by itself.  Returns 0
 * with its wait status in *status; -1 on timeout (the broker is left
 * running) or when it was not running. */
static inline int th_broker_wait(th_broker *b, int timeout_ms, int *status)
{
	return cueqd_wait(b, timeout_ms, status);
}
/* SIGKILL and reap (bounded).  Returns 0, -1 when it would not die. */
static inline int th_broker_kill9(th_broker *b)
{
	return cueqd_kill9(b);
}
/* SIGTERM, wait up to timeout_ms; *status gets the wait status.  Returns 0
 * when the broker exited (any status), -1 when it had to be killed. */
static inline int th_broker_stop(th_broker *b, int timeout_ms, int *status)
{
	return cueqd_stop(b, timeout_ms, status);
}
/* Kills the broker if it runs and removes the temp dir (kept when
 * CUEQ_TEST_KEEP is set). */
static inline void th_broker_cleanup(th_broker *b)
{
	cueqd_cleanup(b);
}
/* Prints the last lines of the broker's log to stderr (for failures). */
static inline void th_broker_dump_log(const th_broker *b)
{
	cueqd_dump_log(b);
}

/* cmocka fixtures: a th_broker started with default flags in *state, and
 * its cleanup (which also frees it). */
int th_fixture_start(void **state);
int th_fixture_stop(void **state);

/* A free loopback TCP port (bind port 0, read it back, close). */
static inline int th_free_port(void)
{
	return proc_free_port();
}
/* Monotonic milliseconds. */
static inline int64_t th_now_ms(void)
{
	return proc_now_ms();
}
static inline void th_sleep_ms(int64_t ms)
{
	proc_sleep_ms(ms);
}

/* ---- the raw protocol client ----------------------------------------- */

typedef struct th_raw {
	nng_socket s;
	bool open;
} th_raw;

/* A decoded reply.  root is the reply map; err is "" when ok. */
typedef struct th_reply {
	void *buf; /* the reply bytes (decoded strings point here) */
	size_t len;
	msgpack_unpacked up;
	const msgpack_object *root;
	bool ok;
	char err[32];
	char msg[512];
} th_reply;

/* Opens a REQ socket to url: resend off, replies awaited recv_timeout_ms. */
int th_raw_open(th_raw *r, const char *url, int recv_timeout_ms);
void th_raw_close(th_raw *r);
/* Sends len bytes as one message and waits for the reply, decoded into
 * *rep (free with th_reply_free, also on failure).  Returns 0, an nng error
 * (NNG_ETIMEDOUT when nothing came back), or -1 when the reply did not
 * decode as a map with a boolean ok. */
int th_raw_call(th_raw *r, const void *buf, size_t len, th_reply *rep);
/* Decodes reply message m (freed here) into *rep, which th_raw_call's way
 * was zeroed with its unpacked initialised.  0, NNG_ENOMEM, or -1 when it
 * is not a map with a boolean ok. */
int th_reply_decode(nng_msg *m, th_reply *rep);
void th_reply_free(th_reply *rep);

/* A request under construction: a msgpack map in an nng_msg. */
typedef struct th_req {
	nng_msg *msg;
	proto_writer w;
	char rid[40];
} th_req;

/* Starts a request for op with a fresh request ID and n op fields to pack
 * after it (with the proto_kv_* helpers on th_pk(q)). */
int th_req_begin(th_req *q, const char *op, size_t n_fields);
/* The same under a request ID of the caller's (at most 39 bytes): to build
 * another request with an ID already used. */
int th_req_begin_rid(th_req *q, const char *op, size_t n_fields, const char *rid);
/* The same with the client ID cid (NULL: none, so the connection scopes
 * the request ID); the others send one per test process. */
int th_req_begin_cid(th_req *q, const char *op, size_t n_fields, const char *rid, const char *cid);
/* The same with the auth token auth (NULL: none). */
int th_req_begin_auth(th_req *q, const char *op, size_t n_fields, const char *rid, const char *cid,
		      const char *auth);
msgpack_packer *th_pk(th_req *q);
/* Sends the request (and frees it); like th_raw_call. */
int th_req_call(th_raw *r, th_req *q, th_reply *rep);
void th_req_free(th_req *q);
/* A built request kept as bytes, to be sent as often as wanted. */
typedef struct th_bytes {
	void *p;
	size_t n;
} th_bytes;
/* Copies q's bytes (failing the test if packing failed) and frees q. */
th_bytes th_req_keep(th_req *q);

/* Field access on decoded maps.  Each returns false when the key is absent
 * or of another type. */
const msgpack_object *th_get(const msgpack_object *map, const char *key);
bool th_str(const msgpack_object *map, const char *key, char *out, size_t size);
bool th_uint(const msgpack_object *map, const char *key, uint64_t *out);
bool th_bool(const msgpack_object *map, const char *key, bool *out);
/* The i-th map of the array under key, or NULL. */
const msgpack_object *th_item(const msgpack_object *map, const char *key, size_t i);
size_t th_count(const msgpack_object *map, const char *key);
/* Whether shown, a lease token as get and list show it (redacted to its
 * last four digits), is token's. */
bool th_token_shown(const char *shown, const char *token);

/* Common operations over the raw client; return 0 on success, else -1
 * with a line printed saying what the broker answered. */
int th_raw_ping(th_raw *r);
int th_raw_push(th_raw *r, const char *queue, const char *payload, uint64_t lease_ms,
		uint64_t max_attempts, char id[PROTO_ID_LEN + 1]);
/* Claims one job (wait_ms long poll); returns 0 with the job, 1 when none. */
int th_raw_claim(th_raw *r, const char *queue, uint64_t lease_ms, uint64_t wait_ms,
		 char id[PROTO_ID_LEN + 1], char token[PROTO_ID_LEN + 1], uint64_t *attempt);
/* get; the reply's "execution" map is left in rep (free it). */
int th_raw_get(th_raw *r, const char *id, th_reply *rep, const msgpack_object **exe);
/* Counts of one queue from stats (all zero when the queue is unknown). */
typedef struct th_counts {
	uint64_t scheduled, ready, leased, succeeded, dead, cancelled;
} th_counts;
int th_raw_counts(th_raw *r, const char *queue, th_counts *c);
/* All of stats as one line of text, queues sorted, for before/after
 * comparisons.  Returns a malloc'd string or NULL. */
char *th_raw_stats_text(th_raw *r);

/* ---- running the CLI and other programs ------------------------------ */

typedef struct th_proc {
	int exit_code; /* -1 when killed by a signal or timed out */
	bool timed_out;
	char *out, *err; /* NUL-terminated captures */
	size_t out_len, err_len;
} th_proc;

/* Runs argv (argv[0] a path) with stdin_data (may be NULL: empty stdin),
 * extra environment "K=V" entries (NULL-terminated, may be NULL), killing
 * it after timeout_ms.  Returns 0 when it ran (see exit_code), -1 when it
 * could not be started. */
int th_run(th_proc *p, const char *stdin_data, int timeout_ms, char *const argv[],
	   char *const env_extra[]);
/* Runs the cueq CLI with the NULL-terminated args. */
int th_cli(th_proc *p, const char *stdin_data, int timeout_ms, const char *const *args);
/* A copy of environ less the names that extra (NAME=VALUE, NULL-ended)
 * sets, then extra; NULL when out of memory.  free() the array only. */
static inline char **th_make_env(char *const extra[])
{
	return proc_make_env(extra);
}
/* Runs the CLI (args NULL-terminated, TH_CLI_MS at most) and fails the
 * test, showing its output, unless it exits want_exit. */
#define TH_CLI_MS 20000
void th_cli_expect(th_proc *p, const char *stdin_data, int want_exit, const char *const *args);
#define TH_CLI(p, in, code, ...) \
	th_cli_expect((p), (in), (code), (const char *const[]){__VA_ARGS__, NULL})
/* The first line of p's stdout, trimmed, into out. */
void th_first_line(const th_proc *p, char *out, size_t size);
void th_proc_free(th_proc *p);
/* Prints a proc's exit code and captures to stderr (for failures). */
void th_proc_dump(const char *what, const th_proc *p);

/* The string or number value of "key" in one JSON object (minimal reader:
 * first occurrence at any depth, string escapes \" \\ \/ \n \t \u00XX).
 * Returns false when absent. */
bool th_json_str(const char *json, const char *key, char *out, size_t size);
bool th_json_int(const char *json, const char *key, int64_t *out);

/* Paths of the binaries under test. */
extern const char th_cueqd_path[];
extern const char th_cli_path[];

/* ---- SDK helpers (harness_sdk.c; for tests that link libcueq) ---- */
#include "cueq/cueq.h"
/* Connects to b or fails the test. */
cueq_client *th_sdk_connect(th_broker *b);
/* How many events of that name e's history holds. */
size_t th_count_events(const cueq_execution *e, const char *event);

#endif /* CUEQ_TEST_HARNESS_H */
