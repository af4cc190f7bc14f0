/*
 * harness.h - what every cueq test shares: a real broker per test, a raw
 * protocol client, and a runner for the cueq command-line client.
 *
 * Tests run the real thing.  th_broker_start() makes a temp dir, picks a
 * free loopback port and starts the real cueqd on it, then waits (bounded)
 * until a ping answers, so tests run in parallel without sharing anything.
 * The broker can be killed with SIGKILL and restarted on the same data dir,
 * or stopped with SIGTERM and its exit status checked.  The raw client
 * speaks the wire protocol with the proto/ codec, for tests that must send
 * bytes no SDK would.  Every wait here is bounded by time.
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

#include "proto.h"

#define TH_MAX_EXTRA 16

/* ---- the broker ------------------------------------------------------ */

typedef struct th_broker {
	char dir[PATH_MAX - 64]; /* the temp dir; removed by th_broker_cleanup */
	char data[PATH_MAX]; /* dir/data: the broker's --data */
	char log[PATH_MAX];  /* dir/broker.log: its stdout and stderr */
	char url[64];	     /* tcp://127.0.0.1:PORT */
	int port;
	pid_t pid; /* 0 when not running */
	const char *extra[TH_MAX_EXTRA]; /* extra flags, e.g. "--fsync", "never" */
	size_t n_extra;
} th_broker;

/* Makes the temp dir, picks a port and starts cueqd with the extra flags
 * (a NULL-terminated list, may be NULL).  Returns 0 when a ping answered. */
int th_broker_start(th_broker *b, const char *const *extra);
/* Starts cueqd again on the same dir and port (it must not be running). */
int th_broker_restart(th_broker *b);
/* SIGKILL and reap. */
int th_broker_kill9(th_broker *b);
/* SIGTERM, wait up to timeout_ms; *status gets the wait status.  Returns 0
 * when the broker exited (any status), -1 when it had to be killed. */
int th_broker_stop(th_broker *b, int timeout_ms, int *status);
/* Kills the broker if it runs and removes the temp dir. */
void th_broker_cleanup(th_broker *b);
/* Prints the last lines of the broker's log to stderr (for failures). */
void th_broker_dump_log(const th_broker *b);

/* cmocka fixtures: a th_broker started with default flags in *state, and
 * its cleanup (which also frees it). */
int th_fixture_start(void **state);
int th_fixture_stop(void **state);

/* A free loopback TCP port (bind port 0, read it back, close). */
int th_free_port(void);
/* Monotonic milliseconds. */
int64_t th_now_ms(void);
void th_sleep_ms(int64_t ms);

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
char **th_make_env(char *const extra[]);
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
