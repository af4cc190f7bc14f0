/*
 * faults_util.h - what the storage-fault tests (test_faults.c) share: a
 * request that may meet a dying broker, kept requests to resend with the
 * same request ID, an execution as `get` shows it, and broker starts with
 * fault environments.
 *
 * The raw client is used throughout: a retry must be the very same bytes
 * (same request ID), which no SDK call exposes.  Functions named fx_*_ok
 * and the broker helpers fail the test (cmocka) and so belong to the main
 * thread; fx_send and the fx_*_result readers do not assert.
 */
#ifndef CUEQ_TEST_FAULTS_UTIL_H
#define CUEQ_TEST_FAULTS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#define FX_ID (PROTO_ID_LEN + 1)
#define FX_CHECK_MS 10000 /* how long a check waits for a reply */

/* ---- brokers ---------------------------------------------------------- */

/* Sets b's environment (a NULL-terminated list of borrowed "K=V"; NULL or
 * empty: none) and flags for the next (re)start. */
void fx_set_env(th_broker *b, const char *const *env);
void fx_set_flags(th_broker *b, const char *const *flags);
/* A fresh broker (b is cleaned first, its env and nofile kept) with
 * flags; fails the test. */
void fx_start(th_broker *b, const char *const *flags);
/* Restart on the same dir with b's env and flags; fails the test. */
void fx_restart(th_broker *b);
/* One start on b's dir that may die at once; a port taken meanwhile
 * (exit 1 with "cannot listen") moves to another.  As th_broker_launch. */
int fx_launch(th_broker *b, int *status);
/* SIGTERM; fails the test (with the log) unless it exits 0. */
void fx_stop_clean(th_broker *b);
/* True when the broker's log contains needle. */
bool fx_log_has(const th_broker *b, const char *needle);
/* Fails the test unless status is an exit with code want (signal, other
 * code: the log is shown). */
void fx_expect_exit(const th_broker *b, int status, int want, const char *what);

/* ---- requests ---------------------------------------------------------- */

/* A raw connection with FX_CHECK_MS timeouts; fails the test. */
void fx_open(th_raw *r, const th_broker *b);

typedef struct fx_job {
	const char *queue, *payload, *key, *unique;
	uint64_t max_attempts, lease_ms;
} fx_job;

/* Requests kept as bytes (a fresh request ID each), to send as often as
 * wanted: free with fx_bytes_free. */
th_bytes fx_push_req(const fx_job *j);
th_bytes fx_ack_req(const char *id, const char *token, const char *result);
th_bytes fx_nack_req(const char *id, const char *token, const char *error, uint64_t retry_in_ms,
		     bool terminal);
th_bytes fx_extend_req(const char *id, const char *token, uint64_t lease_ms);
th_bytes fx_step_req(const char *id, const char *token, const char *name, const char *value);
void fx_bytes_free(th_bytes *b);

/* How a request to a broker that may die ended. */
typedef struct fx_end {
	bool replied; /* rep holds the decoded reply (free it) */
	bool died;    /* the broker exited meanwhile: status */
	int status;
	int rv; /* nng error or -1 (undecodable) when neither */
} fx_end;

/* Sends req on r and waits up to timeout_ms for the reply or for b (may
 * be NULL) to exit, whichever first.  Never asserts. */
fx_end fx_send(th_broker *b, th_raw *r, const th_bytes *req, th_reply *rep, int timeout_ms);
/* Sends req and fails the test unless a reply (ok or not) comes. */
void fx_call(th_raw *r, const th_bytes *req, th_reply *rep, const char *what);

/* results[0] of a push reply. */
typedef struct fx_pushed {
	bool ok, duplicate;
	char err[32], msg[256];
	char id[FX_ID], holder[FX_ID];
} fx_pushed;
/* results[0] of an ack, nack or extend reply. */
typedef struct fx_item {
	bool ok;
	char err[32], msg[256], state[16];
	uint64_t run_at, lease_deadline;
} fx_item;
/* false when the reply is refused as a whole or has no results[0]. */
bool fx_push_result(const th_reply *rep, fx_pushed *out);
bool fx_item_result(const th_reply *rep, fx_item *out);

/* A push (fresh request ID) whose reply must come; *out its result. */
void fx_push(th_raw *r, const fx_job *j, fx_pushed *out);
/* Claims one job of queue (it must come within 2 s). */
void fx_claim_ok(th_raw *r, const char *queue, uint64_t lease_ms, char id[FX_ID],
		 char token[FX_ID], uint64_t *lease_deadline);

/* ---- what the broker holds --------------------------------------------- */

typedef struct fx_exec {
	bool found;
	char state[16], token[FX_ID], result[64], error[64], unique[64], payload[64];
	uint64_t attempt, failures, lease_deadline, run_at;
	size_t n_steps;
	char step_name[32], step_value[64]; /* the first step */
	/* history events by name */
	size_t ev_claimed, ev_extended, ev_nacked, ev_succeeded, ev_dead, ev_step;
} fx_exec;

/* get; NOT_FOUND is found = false, any other failure fails the test. */
void fx_get(th_raw *r, const char *id, fx_exec *x);
/* The IDs list shows for queue (state NULL: all), up to max. */
size_t fx_list(th_raw *r, const char *queue, const char *state, char (*ids)[FX_ID], size_t max);
bool fx_listed(th_raw *r, const char *queue, const char *state, const char *id);
/* stats of one queue; fails the test when refused. */
void fx_counts(th_raw *r, const char *queue, th_counts *c);
bool fx_counts_equal(const th_counts *a, const th_counts *b);
void fx_counts_text(const th_counts *c, char *buf, size_t size);

#endif /* CUEQ_TEST_FAULTS_UTIL_H */
