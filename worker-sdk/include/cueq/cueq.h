/*
 * cueq.h - the public C API of libcueq, the cueq client SDK.
 *
 * Producers push jobs, workers claim executions under a lease and finish
 * them with ack or nack, operators inspect.  Everything is an opaque handle;
 * the library keeps no global state.  A cueq_client is thread-safe: any
 * number of threads may call into one client at once, each call uses its own
 * request context on the shared connection.  Every request carries a
 * client-generated request ID; the SDK retries a request whose answer was
 * lost with the same ID, and the broker answers a repeated ID without
 * applying it twice.
 *
 * Errors: every call returns CUEQ_OK (0) or a cueq_err.  cueq_last_error()
 * gives the human sentence for the last failure on the calling thread.  The
 * codes, the states and the limits are in cueq/defs.h, included here.
 *
 * Threads: every function may be called from any thread, at once with
 * others on the same client, unless its comment says otherwise.  A
 * cueq_job belongs to one thread at a time: the handler's inside a worker,
 * else the caller's of cueq_claim.  cueq_worker_run blocks its caller
 * until the worker stops; cueq_worker_stop may be called from anywhere,
 * a signal handler too.  The worker's event hook runs on its threads.
 *
 * Ownership, one rule: whatever the SDK hands back through an out-pointer
 * is the caller's, and is released with the _free function of its type
 * (cueq_job_free, cueq_execution_free, cueq_list_free, cueq_steps_free,
 * cueq_stats_free, cueq_cue_free, cueq_cues_free, cueq_value_free), never
 * with free().  Each accepts NULL.  Strings inside a returned struct
 * belong to it.  Texts and values the SDK returns are NUL-terminated (the
 * NUL not counted in a length); binary ones may hold NULs, so use the
 * length.
 */
#ifndef CUEQ_H
#define CUEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cueq/defs.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CUEQ_BUILDING) && defined(__GNUC__)
#define CUEQ_API __attribute__((visibility("default")))
#else
#define CUEQ_API
#endif

#define CUEQ_VERSION_MAJOR 0
#define CUEQ_VERSION_MINOR 1
#define CUEQ_VERSION_PATCH 0

/* Sizes of the fixed text fields below, terminating NUL included. */
#define CUEQ_ID_SIZE 33     /* execution, cue IDs and lease tokens */
#define CUEQ_QUEUE_SIZE 129 /* queue names: 1-128 bytes of [A-Za-z0-9._:-] */

/* Static English text for an error code; never NULL. */
CUEQ_API const char *cueq_strerror(int err);
/* The detailed message of the last failed call on this thread ("" if none).
 * Valid until the next call on this thread. */
CUEQ_API const char *cueq_last_error(void);
/* "scheduled", "ready", ...; NULL for an unknown value. */
CUEQ_API const char *cueq_state_name(int state);
/* Parses a state name; returns -1 when unknown. */
CUEQ_API int cueq_state_parse(const char *name);
/* Parses a duration: numbers with units, "250ms", "30s", "5m", "2h", "1d",
 * "1h30m", or a bare "0".  Returns CUEQ_OK or CUEQ_ERR_INVALID. */
CUEQ_API int cueq_parse_duration(const char *s, int64_t *ms);
/* Runtime version, "MAJOR.MINOR.PATCH". */
CUEQ_API const char *cueq_version(void);

/* ---- connection ------------------------------------------------------- */

typedef struct cueq_client cueq_client;

typedef struct cueq_client_opts {
	int64_t connect_timeout_ms; /* 0: 5000. Wait for the first connection. */
	int64_t request_timeout_ms; /* 0: 10000. One attempt, beyond any long poll. */
	int64_t retry_deadline_ms;  /* 0: 30000. Total time a call retries. */
	const char *auth;	    /* auth token (16-256 characters) for a broker
				     * started with --auth; copied; NULL: none */
	/* Leases this client claims outlive its connection: the broker does
	 * not end them when it closes (its --release-on-disconnect).  For a
	 * short-lived process that claims and leaves the job to another, as
	 * `cueq claim` does; a worker that runs its jobs itself leaves it
	 * false, so a crash of it frees them at once. */
	bool detach_claims;
	/* For tls+tcp:// URLs: the CA certificates (PEM file) the broker's
	 * certificate must be signed by (NULL: the system's,
	 * /etc/ssl/certs/ca-certificates.crt), and the name it must carry
	 * (NULL: the URL's host). */
	const char *tls_ca_file;
	const char *tls_server_name;
} cueq_client_opts;

/* Connects to a broker at url (tcp://host:port, tls+tcp://host:port or
 * ipc:///path); opts may be NULL.  Returns CUEQ_ERR_UNREACHABLE when
 * nothing answers within the connect timeout (for tls+tcp://, also when the
 * broker's certificate does not verify).  Free with cueq_close(). */
CUEQ_API int cueq_connect(const char *url, const cueq_client_opts *opts, cueq_client **out);
/* Closes the connection; no call may be in progress or follow. */
CUEQ_API void cueq_close(cueq_client *c);
/* Round trip to the broker; server_time_ms (may be NULL) gets its clock. */
CUEQ_API int cueq_ping(cueq_client *c, int64_t *server_time_ms);

/* ---- producing -------------------------------------------------------- */

typedef struct cueq_push_opts {
	int32_t priority;      /* higher first; -1000..1000; default 0 */
	uint32_t max_attempts; /* handler failures (nacks) before dead; 0: broker default (5) */
	uint32_t max_expiries; /* leases that may run out before dead; 0: broker default (5) */
	int64_t lease_ms;      /* 0: broker default (30 s) */
	int64_t delay_ms;      /* run no sooner than this from now */
	int64_t run_at_ms;     /* or at this Unix time in ms (0: now) */
	/* Idempotency key (1-256 bytes, per queue): the same key and the same
	 * request within the key's window returns the first push's answer
	 * (duplicate true, with the execution's state now: cueq_wait gives
	 * its outcome) and creates nothing; the same key with a different
	 * request is CUEQ_ERR_IDEMPOTENCY_MISMATCH.  NULL: the SDK makes a key
	 * for this call, so its own retries never push twice. */
	const char *key;
	int64_t key_ttl_ms; /* 0: the broker's --idempotency-window (24 h) */
	/* Unique key (1-256 bytes, per queue): refused with CUEQ_ERR_CONFLICT
	 * while an unfinished execution holds it (see holder).  Not on a
	 * recurring cue (use overlap CUEQ_OVERLAP_SKIP). */
	const char *unique;
	/* Concurrency group (1-128 bytes of [A-Za-z0-9._:-], per queue): a
	 * tenant, a site, a customer.  Claims take a queue's groups in turn,
	 * and each group can have its own limits (cueq_set_limit).  NULL: the
	 * queue's default group.  Not on a recurring cue. */
	const char *group;

	/* Retries.  A nack without its own delay waits min(backoff_max_ms,
	 * backoff_ms x backoff_factor^(failures-1)), drawn uniformly from zero
	 * to that unless no_jitter.  0 keeps the broker's default of each;
	 * CUEQ_ZERO_MS asks for a zero delay or cap. */
	int64_t backoff_ms;	/* 0..1 day; 0: 1 s */
	double backoff_factor;	/* 1..100; 0: 2 */
	int64_t backoff_max_ms; /* 0..1 day; 0: 1 h */
	bool no_jitter;		/* true: the computed delay exactly */

	/* A recurring cue: give every_ms or cron, not both.  It creates no
	 * execution now but one per fire, with this payload and these options
	 * (the push result says recurring, with the cue ID).  every_ms: the
	 * first fire at run_at_ms or now + delay_ms when given, else now +
	 * every_ms.  Stop it with cueq_cancel(cue ID). */
	int64_t every_ms; /* 1 s..10 years; 0: not recurring */
	/* Five fields "minute hour day-of-month month day-of-week" (lists,
	 * ranges, steps, names) or @yearly, @monthly, @weekly, @daily,
	 * @hourly...; NULL: none.  A bad expression is CUEQ_ERR_BAD_REQUEST
	 * naming the field. */
	const char *cron;
	const char *tz; /* the zone cron is read in ("Europe/Paris"); NULL: UTC */
	int catch_up;	/* fires missed while the broker was down: cueq_catch_up */
	int overlap;	/* a fire while the previous one is unfinished: cueq_overlap */
} cueq_push_opts;

/* An explicit zero for the fields of cueq_push_opts where 0 is the default. */
#define CUEQ_ZERO_MS (-1)

typedef enum cueq_catch_up {
	CUEQ_CATCH_UP_ONE = 0,	/* the latest missed slot fires (default) */
	CUEQ_CATCH_UP_ALL = 1,	/* each missed slot fires */
	CUEQ_CATCH_UP_NONE = 2, /* none; the next on-time slot fires */
} cueq_catch_up;

typedef enum cueq_overlap {
	CUEQ_OVERLAP_ALLOW = 0, /* fire anyway (default) */
	CUEQ_OVERLAP_SKIP = 1,	/* make no execution; counted as skipped */
} cueq_overlap;

typedef struct cueq_job_spec {
	const char *queue;
	const void *payload;
	size_t payload_len;
	cueq_push_opts opts;
} cueq_job_spec;

typedef struct cueq_push_result {
	int err; /* CUEQ_OK, or why this job was refused */
	char execution_id[CUEQ_ID_SIZE];
	char cue_id[CUEQ_ID_SIZE];
	int state;	   /* CUEQ_SCHEDULED or CUEQ_READY; a duplicate's state now */
	int64_t run_at_ms; /* when it becomes ready */
	bool synced;	   /* true: on disk and fsynced; false: written, not yet synced */
	bool duplicate;	   /* answered from an earlier push with the same key */
	char holder[CUEQ_ID_SIZE]; /* CONFLICT: execution holding the unique key */
	/* A recurring cue: cue_id names it, execution_id is "", state is
	 * CUEQ_SCHEDULED and run_at_ms is its first fire. */
	bool recurring;
} cueq_push_result;

/* Pushes one job; opts may be NULL.  out (may be NULL) gets the IDs. */
CUEQ_API int cueq_push(cueq_client *c, const char *queue, const void *payload, size_t len,
		       const cueq_push_opts *opts, cueq_push_result *out);
/* Pushes n (1..CUEQ_MAX_BATCH) jobs in one request, all or nothing on a
 * request error; out[n] gets one result per job. */
CUEQ_API int cueq_push_many(cueq_client *c, const cueq_job_spec *jobs, size_t n,
			    cueq_push_result *out);

/* The batching producer: jobs added are sent in batches, several requests
 * in flight, from a background thread.  Each job's result is reported to
 * on_result (from that thread).  add() copies the job and returns at once,
 * or waits while the pipeline is full. */
typedef struct cueq_pusher cueq_pusher;
typedef void (*cueq_push_cb)(void *arg, void *tag, const cueq_push_result *res);
typedef struct cueq_pusher_opts {
	size_t batch;	   /* 0: 128 jobs per request */
	int64_t linger_ms; /* 0: 2 ms; while a request is in flight, a batch
			    * waits at most this long to fill (with none in
			    * flight it leaves at once) */
	unsigned inflight; /* 0: 4 requests in flight */
	cueq_push_cb on_result; /* may be NULL */
	void *arg;
} cueq_pusher_opts;

CUEQ_API int cueq_pusher_new(cueq_client *c, const cueq_pusher_opts *opts, cueq_pusher **out);
CUEQ_API int cueq_pusher_add(cueq_pusher *p, const char *queue, const void *payload, size_t len,
			     const cueq_push_opts *opts, void *tag);
/* Waits until every added job has its answer; returns the first error seen
 * since the last flush (CUEQ_OK when all were accepted). */
CUEQ_API int cueq_pusher_flush(cueq_pusher *p);
/* Flushes, then frees. */
CUEQ_API void cueq_pusher_free(cueq_pusher *p);

/* ---- claiming and finishing ------------------------------------------ */

/* A claimed execution.  Owned by the caller of cueq_claim (free with
 * cueq_job_free) or, inside a worker handler, by the worker. */
typedef struct cueq_job cueq_job;

CUEQ_API const char *cueq_job_id(const cueq_job *j);    /* execution ID */
CUEQ_API const char *cueq_job_cue_id(const cueq_job *j);
CUEQ_API const char *cueq_job_queue(const cueq_job *j);
CUEQ_API const char *cueq_job_token(const cueq_job *j); /* lease token */
CUEQ_API uint32_t cueq_job_attempt(const cueq_job *j);  /* 1 on first delivery */
/* The payload, len bytes (len may be NULL), followed by a NUL that is not
 * counted, so a text payload can be used as a C string; it lives as long
 * as the job. */
CUEQ_API const void *cueq_job_payload(const cueq_job *j, size_t *len);
CUEQ_API int64_t cueq_job_lease_deadline(const cueq_job *j); /* Unix ms */
CUEQ_API void cueq_job_free(cueq_job *j);

/* Claims up to max (1..CUEQ_MAX_CLAIM) executions of queue, waiting up to
 * wait_ms for one to be ready (long poll).  lease_ms 0 keeps each job's own
 * lease length.  jobs[max] receives *n executions; CUEQ_ERR_EMPTY when none. */
CUEQ_API int cueq_claim(cueq_client *c, const char *queue, size_t max, int64_t lease_ms,
			int64_t wait_ms, cueq_job **jobs, size_t *n);

typedef struct cueq_ack_item {
	const char *execution_id;
	const char *lease_token;
	const char *result; /* may be NULL */
	int err;	    /* out: CUEQ_OK, STALE_LEASE, CONFLICT, NOT_FOUND... */
} cueq_ack_item;

typedef struct cueq_nack_item {
	const char *execution_id;
	const char *lease_token;
	const char *error;   /* may be NULL */
	int64_t retry_in_ms; /* <0: the broker's backoff */
	bool terminal;	     /* true: dead now, no more attempts */
	int err;	     /* out */
	int state;	     /* out: CUEQ_SCHEDULED, CUEQ_READY or CUEQ_DEAD; with
			      * STALE_LEASE the execution's state now, if said */
} cueq_nack_item;

typedef struct cueq_extend_item {
	const char *execution_id;
	const char *lease_token;
	int64_t lease_ms;	    /* new lease length from now */
	int err;		    /* out */
	int64_t lease_deadline_ms; /* out */
	/* out: with STALE_LEASE, the execution's state now (-1 when the broker
	 * did not say): CUEQ_CANCELLED means an operator cancelled it, so its
	 * work should stop; anything else that the lease ran out or was
	 * released. */
	int state;
} cueq_extend_item;

/* Batch forms: the call fails only when the request as a whole failed; each
 * item's own answer is in its err.  n is 1..CUEQ_MAX_BATCH. */
CUEQ_API int cueq_ack_many(cueq_client *c, cueq_ack_item *items, size_t n);
CUEQ_API int cueq_nack_many(cueq_client *c, cueq_nack_item *items, size_t n);
CUEQ_API int cueq_extend_many(cueq_client *c, cueq_extend_item *items, size_t n);

/* Single forms: return the item's own answer. */
CUEQ_API int cueq_ack(cueq_client *c, const char *id, const char *token, const char *result);
CUEQ_API int cueq_nack(cueq_client *c, const char *id, const char *token, const char *error,
		       int64_t retry_in_ms, bool terminal, int *state_out);
CUEQ_API int cueq_extend(cueq_client *c, const char *id, const char *token, int64_t lease_ms,
			 int64_t *deadline_ms_out);

/* ---- the step ledger ------------------------------------------------ */

/* A named entry in an execution's ledger, kept across redeliveries. */
typedef struct cueq_step {
	char *name;
	void *value; /* NUL-terminated for convenience; value_len excludes it */
	size_t value_len;
	int64_t at_ms; /* when it was written */
} cueq_step;

/* Writes step name = value under the live lease token (STALE_LEASE when
 * the token is not live; nothing is written then). */
CUEQ_API int cueq_step_set(cueq_client *c, const char *id, const char *token, const char *name,
			   const void *value, size_t len);
/* Reads one step: *value gets its value (NUL-terminated, *len bytes
 * without the NUL; release with cueq_value_free).  CUEQ_ERR_NO_STEP when
 * the execution has no such step, CUEQ_ERR_NOT_FOUND when there is no such
 * execution. */
CUEQ_API int cueq_step_get(cueq_client *c, const char *id, const char *name, void **value,
			   size_t *len);
/* Releases a value cueq_step_get returned. */
CUEQ_API void cueq_value_free(void *value);
/* Every step of an execution, in name order; free with cueq_steps_free. */
CUEQ_API int cueq_steps(cueq_client *c, const char *id, cueq_step **out, size_t *n);
CUEQ_API void cueq_steps_free(cueq_step *steps, size_t n);

/* ---- inspecting ------------------------------------------------------- */

typedef struct cueq_event {
	int64_t at_ms;
	char *event;	   /* claimed, extended, expired, nacked, succeeded, dead, step */
	uint32_t attempt;  /* delivery it belongs to, 0 if none */
	char *lease_token; /* redacted like cueq_execution's; may be NULL */
	char *detail;	   /* worker name, error text...; may be NULL */
} cueq_event;

typedef struct cueq_execution {
	char execution_id[CUEQ_ID_SIZE];
	char cue_id[CUEQ_ID_SIZE];
	char queue[CUEQ_QUEUE_SIZE];
	int state;
	int32_t priority;
	uint32_t attempt; /* deliveries so far */
	uint32_t max_attempts;
	uint32_t expiries, failures;
	int64_t lease_ms;
	int64_t created_at_ms, run_at_ms, lease_deadline_ms, finished_at_ms; /* 0: none */
	char lease_token[CUEQ_ID_SIZE]; /* live lease, redacted to its last four
					 * digits ("************1a2b"): only the
					 * claim gives the token; "" if none */
	void *payload;			/* NULL in list results */
	size_t payload_len;
	char *result, *error; /* may be NULL */
	cueq_event *history;  /* only from cueq_get */
	size_t history_len;
	cueq_step *steps; /* only from cueq_get */
	size_t steps_len;
	char *unique; /* its unique key, NULL if none */
	uint32_t max_expiries; /* lease expiries before it is dead */
	char *reason;	       /* why it is dead or cancelled, NULL if it is not */
	char *group;	       /* its concurrency group, NULL if none */
} cueq_execution;

/* Reads one execution with its steps and history; free with
 * cueq_execution_free.  CUEQ_ERR_NOT_FOUND when there is none, also when id
 * is a recurring cue's (read those with cueq_get_cue or cueq_get_any). */
CUEQ_API int cueq_get(cueq_client *c, const char *id, cueq_execution **out);
CUEQ_API void cueq_execution_free(cueq_execution *e);

/* Waits for execution id to have an outcome (succeeded, dead or
 * cancelled), at most timeout_ms (-1: for as long as it takes), holding
 * no thread of the broker: it answers the moment the outcome is durable.
 * CUEQ_OK with *out once it has one; CUEQ_ERR_TIMEOUT when the time
 * passed first, with *out as the execution is then; either way *out has
 * no payload, steps or history (free with cueq_execution_free).
 * CUEQ_ERR_NOT_FOUND when there is no such execution. */
CUEQ_API int cueq_wait(cueq_client *c, const char *id, int64_t timeout_ms, cueq_execution **out);

/* Lists executions of queue, oldest first; state -1 means every state.
 * after: an execution ID to continue after (NULL to start).  *out is an
 * array of *n executions; free it with cueq_list_free. */
CUEQ_API int cueq_list(cueq_client *c, const char *queue, int state, size_t limit,
		       const char *after, cueq_execution **out, size_t *n);
CUEQ_API void cueq_list_free(cueq_execution *list, size_t n);

typedef struct cueq_queue_stats {
	char queue[CUEQ_QUEUE_SIZE];
	uint64_t scheduled, ready, leased, succeeded, dead, cancelled;
	bool paused;   /* claims get nothing until it is resumed */
	uint64_t cues; /* active recurring cues */
	/* Totals since the queue was created: claims given, leases that ran
	 * out, handler failures (nacks), leases ended by a worker's
	 * disconnect. */
	uint64_t deliveries, expiries, failures, releases;
} cueq_queue_stats;

/* Counts per queue; queue NULL for every queue (the broker answers in pages
 * of 1000 queues: this asks for all of them).  A queue that holds nothing
 * is not listed.  Release *out with cueq_stats_free. */
CUEQ_API int cueq_stats(cueq_client *c, const char *queue, cueq_queue_stats **out, size_t *n);
CUEQ_API void cueq_stats_free(cueq_queue_stats *stats, size_t n);

/* ---- flow control ----------------------------------------------------- */

#define CUEQ_GROUP_SIZE 129
#define CUEQ_LIMIT_KEEP (-1) /* cueq_limit_spec: leave this part as it is */

typedef struct cueq_limit {
	uint32_t concurrency; /* executions leased at once; 0: no limit */
	uint32_t rate;	      /* claims per per_ms (a token bucket); 0: no limit */
	int64_t per_ms;
} cueq_limit;

/* Which limit to set, and to what.  group NULL and each_group false: the
 * queue's own (its concurrency counts every lease of the queue); group:
 * that group's own; each_group: the default of every group without its
 * own (not the default group of jobs pushed without one). */
typedef struct cueq_limit_spec {
	const char *group;
	bool each_group;
	int64_t concurrency; /* 0..100000, 0 removes it; CUEQ_LIMIT_KEEP */
	int64_t rate;	     /* 0..1000000 claims per per_ms, 0 removes it; CUEQ_LIMIT_KEEP */
	int64_t per_ms;	     /* with a rate: 1 ms..1 day */
} cueq_limit_spec;

/* Sets a limit of queue, stored by the broker (it survives restarts);
 * *now (may be NULL) gets the limit as it is then.  An execution over a
 * limit stays ready and is claimed when a lease ends or a token comes. */
CUEQ_API int cueq_set_limit(cueq_client *c, const char *queue, const cueq_limit_spec *spec,
			    cueq_limit *now);

typedef struct cueq_group_stats {
	char group[CUEQ_GROUP_SIZE];
	uint64_t ready, leased, unfinished; /* unfinished: in any state */
	bool own_limit; /* limit is the group's own, else the queue's default */
	cueq_limit limit;
} cueq_group_stats;

/* The groups of queue that have unfinished executions (at most 1000, by
 * name; free with cueq_groups_free) and the queue's limits (may be NULL):
 * limits[0] the queue's own, limits[1] the default of each group. */
CUEQ_API int cueq_groups(cueq_client *c, const char *queue, cueq_limit limits[2],
			 cueq_group_stats **out, size_t *n);
CUEQ_API void cueq_groups_free(cueq_group_stats *groups, size_t n);

/* ---- recurring cues ---------------------------------------------------- */

typedef enum cueq_cue_state {
	CUEQ_CUE_ACTIVE = 0,
	CUEQ_CUE_CANCELLED = 1, /* fires no more */
} cueq_cue_state;

/* One fire of a cue: the execution it made. */
typedef struct cueq_cue_fire {
	char execution_id[CUEQ_ID_SIZE];
	int64_t fire_at_ms;
	int state; /* a cueq_state, or -1: gone (deleted after the retention window) */
} cueq_cue_fire;

#define CUEQ_NEXT_FIRES 5

/* A recurring cue: its schedule, the options of the executions it makes
 * and what it made so far. */
typedef struct cueq_cue {
	char cue_id[CUEQ_ID_SIZE];
	char queue[CUEQ_QUEUE_SIZE];
	int state;	  /* cueq_cue_state */
	int64_t every_ms; /* the period, or 0 for a cron cue */
	char *cron;	  /* the cron expression, NULL for an every cue */
	char *tz;	  /* the zone cron is read in, NULL when not said */
	int catch_up;	  /* cueq_catch_up */
	int overlap;	  /* cueq_overlap */
	int32_t priority;
	uint32_t max_attempts, max_expiries;
	int64_t lease_ms;
	int64_t created_at_ms;
	uint64_t fires;	  /* executions made */
	uint64_t skipped; /* slots skipped by overlap skip or catch-up */
	int64_t next_fires_ms[CUEQ_NEXT_FIRES]; /* Unix ms, soonest first */
	size_t n_next_fires;			/* 0 once cancelled */
	void *payload; /* NULL in cueq_cues results; NUL-terminated */
	size_t payload_len;
	/* last fires, newest first: ten from a get, the newest from cueq_cues */
	cueq_cue_fire *executions;
	size_t executions_len;
} cueq_cue;

/* Reads a recurring cue; free with cueq_cue_free.  CUEQ_ERR_NOT_FOUND when
 * there is none, also when id is an execution's. */
CUEQ_API int cueq_get_cue(cueq_client *c, const char *id, cueq_cue **out);
/* Reads whatever id names, in one request: an execution into *exe or a
 * recurring cue into *cue; the other is set to NULL. */
CUEQ_API int cueq_get_any(cueq_client *c, const char *id, cueq_execution **exe, cueq_cue **cue);
CUEQ_API void cueq_cue_free(cueq_cue *cue);
/* The recurring cues of queue, oldest first (at most 1000), without
 * payload and executions; *out is an array of *n, free it with
 * cueq_cues_free. */
CUEQ_API int cueq_cues(cueq_client *c, const char *queue, cueq_cue **out, size_t *n);
CUEQ_API void cueq_cues_free(cueq_cue *list, size_t n);
/* "active", "cancelled"; "one", "all", "none"; "allow", "skip"; NULL for
 * an unknown value.  The parsers return -1 for an unknown name. */
CUEQ_API const char *cueq_cue_state_name(int state);
CUEQ_API const char *cueq_catch_up_name(int catch_up);
CUEQ_API int cueq_catch_up_parse(const char *name);
CUEQ_API const char *cueq_overlap_name(int overlap);
CUEQ_API int cueq_overlap_parse(const char *name);

/* ---- operating -------------------------------------------------------- */

typedef enum cueq_kind {
	CUEQ_KIND_EXECUTION = 0,
	CUEQ_KIND_CUE = 1,
} cueq_kind;

/* Cancels an execution or a recurring cue.  An execution that is scheduled,
 * ready or leased ends cancelled at once: its lease ends (the token is
 * refused from then on; a worker learns it on its next extension, see
 * cueq_job_cancelled) and its unique key is free.  A recurring cue stops
 * firing; the executions it made are not touched.  kind (cueq_kind) and
 * state (CUEQ_CANCELLED) may be NULL.  Cancelling what is cancelled
 * answers the same; CUEQ_ERR_CONFLICT when the execution already succeeded
 * or is dead; CUEQ_ERR_NOT_FOUND when there is none. */
CUEQ_API int cueq_cancel(cueq_client *c, const char *id, int *kind, int *state);
/* Makes a dead execution ready again: the same ID and step ledger, attempt,
 * failures and expiries back to 0, a "retried" event in its history.
 * CUEQ_ERR_CONFLICT when it is not dead. */
CUEQ_API int cueq_retry(cueq_client *c, const char *execution_id);
/* Retries every dead execution of queue (100 per request, as many
 * requests as it takes); *retried (may be NULL) gets how many.  One whose
 * unique key another unfinished execution holds now stays dead.  On a
 * failure *retried still counts those retried before it. */
CUEQ_API int cueq_retry_all(cueq_client *c, const char *queue, uint64_t *retried);
/* Deletes the executions of queue in state (CUEQ_DEAD, CUEQ_SUCCEEDED or
 * CUEQ_CANCELLED) as the retention window would: payload, history, steps
 * and keys.  As many requests as it takes; *purged (may be NULL) gets how
 * many, also on a failure. */
CUEQ_API int cueq_purge(cueq_client *c, const char *queue, int state, uint64_t *purged);
/* Pauses a queue: it still takes pushes and its cues keep firing, but
 * claims get nothing (parked ones wait) until cueq_resume.  Kept across
 * broker restarts.  Both answer CUEQ_OK when it already was so. */
CUEQ_API int cueq_pause(cueq_client *c, const char *queue);
CUEQ_API int cueq_resume(cueq_client *c, const char *queue);

/* ---- the worker loop -------------------------------------------------- */

/* Runs for each claimed execution on one of the worker's threads.  Return
 * CUEQ_OK to ack (with the result set by cueq_job_set_result, if any);
 * any other value nacks (with the error set by cueq_job_fail, if any).  A
 * handler that called cueq_job_fail is nacked even when it returns
 * CUEQ_OK. */
typedef int (*cueq_handler)(cueq_job *job, void *arg);

/* Inside a handler: the text stored with the ack. */
CUEQ_API void cueq_job_set_result(cueq_job *j, const char *result);
/* Inside a handler: how to nack.  retry_in_ms <0 uses the broker's backoff. */
CUEQ_API void cueq_job_fail(cueq_job *j, const char *error, int64_t retry_in_ms, bool terminal);
/* Inside a handler: a key for side effects of step name in other systems
 * (an Idempotency-Key header): "cueq-EXECUTIONID-NAME", the same on every
 * redelivery of this execution.  Returns CUEQ_ERR_INVALID if it does not fit
 * in size (CUEQ_MAX_STEP_NAME + 24 always does). */
CUEQ_API int cueq_job_step_key(const cueq_job *j, const char *name, char *out, size_t size);

/* A step's work: does the side effect once and writes what to remember
 * (an external ID, say) into value[size], its length into *len.  Returns
 * CUEQ_OK, or any other value, which fails the step: nothing is recorded,
 * and cueq_job_step_once returns that same value, with cueq_last_error()
 * saying which step failed (or what fn's own failed cueq call said). */
typedef int (*cueq_step_fn)(cueq_job *j, void *arg, char *value, size_t size, size_t *len);

/* Inside a handler: runs step name once per execution.  When the ledger
 * already has it, fn is not called and value gets the recorded value
 * (*skipped true); otherwise fn runs and its value is recorded under the
 * job's lease.  value has room for size bytes (CUEQ_MAX_STEP_VALUE is
 * enough); *len gets the value's length.  skipped may be NULL. */
CUEQ_API int cueq_job_step_once(cueq_job *j, const char *name, cueq_step_fn fn, void *arg,
				char *value, size_t size, size_t *len, bool *skipped);

/* The same as a pair of calls, for work that reads better inline:
 *
 *	bool done; void *inv; size_t n;
 *	if ((rc = cueq_step_begin(job, "create_invoice", &done, &inv, &n)) != CUEQ_OK)
 *		return rc;
 *	if (!done) {
 *		... create the invoice, with cueq_job_step_key as its idempotency key ...
 *		rc = cueq_step_done(job, "create_invoice", invoice_id, strlen(invoice_id));
 *	}
 *	cueq_value_free(inv);
 *
 * cueq_step_begin: *done true with the recorded value in *value (*len
 * bytes, NUL-terminated; release with cueq_value_free) when the ledger has
 * the step; *done false (and *value NULL) when the work is still to do.
 * CUEQ_ERR_LEASE_LOST when it is not done and the lease is already gone:
 * do not start it.  cueq_step_done records the value under the job's lease
 * once the work is done: CUEQ_ERR_LEASE_LOST when the lease ended (nothing
 * is recorded; the next delivery does the work again, so give the other
 * system the step key). */
CUEQ_API int cueq_step_begin(cueq_job *j, const char *name, bool *done, void **value,
			     size_t *len);
CUEQ_API int cueq_step_done(cueq_job *j, const char *name, const void *value, size_t len);

/* True once the worker learned that this job's lease is gone (an extension
 * was refused or its deadline passed): stop side effects and return. */
CUEQ_API bool cueq_job_lease_lost(const cueq_job *j);
/* True once an extension learned that an operator cancelled this job
 * (cueq_cancel); its lease is lost then too, and the worker sends no
 * outcome for it.  Stop its work and return. */
CUEQ_API bool cueq_job_cancelled(const cueq_job *j);

typedef struct cueq_worker cueq_worker;
/* What a worker tells its event hook (cueq_worker_opts.on_event). */
typedef enum cueq_worker_event_kind {
	CUEQ_WORKER_DROPPED = 1, /* a claimed job not run: its lease ended (or
				  * could not be shown live) before a handler
				  * was free; the broker delivers it again */
	CUEQ_WORKER_LEASE_LOST,	 /* a held job's lease ended: its outcome will
				  * not be taken (the handler should stop) */
	CUEQ_WORKER_CANCELLED,	 /* an operator cancelled a held job */
	CUEQ_WORKER_RETRYING,	 /* a claim failed (err, detail) and is tried
				  * again after a pause: the broker may be down */
	CUEQ_WORKER_CONNECTED,	 /* a connection to the broker was made */
	CUEQ_WORKER_DISCONNECTED, /* one was lost: the SDK reconnects by itself */
	CUEQ_WORKER_FINISHED,	 /* the broker took a job's outcome (acked says
				  * which; a nack's error is the detail) */
} cueq_worker_event_kind;

typedef struct cueq_worker_event {
	cueq_worker_event_kind kind;
	const char *execution_id; /* NULL for RETRYING */
	uint32_t attempt;	  /* the job's delivery, 0 for RETRYING */
	int err;		  /* RETRYING: the claim's error */
	bool acked;		  /* FINISHED: acked (true) or nacked */
	const char *detail;	  /* a sentence for people */
} cueq_worker_event;

/* Called on one of the worker's threads, possibly while the worker holds
 * its own lock: it must return quickly, must not call into the worker but
 * for cueq_worker_stop() and cueq_worker_get_counts(), and must copy what
 * it keeps (the strings live only during the call). */
typedef void (*cueq_worker_event_fn)(const cueq_worker_event *ev, void *arg);

typedef struct cueq_worker_opts {
	unsigned concurrency;	/* 0: 1 handler thread */
	unsigned prefetch;	/* claimed ahead of the handlers.  0: adapts: as
				 * many as concurrency, more while claims come
				 * back full (a backlog), up to about 200 ms of
				 * the handlers' work or CUEQ_MAX_CLAIM; N: N */
	int64_t lease_ms;	/* 0: each job's own lease length */
	int64_t wait_ms;	/* 0: 1000; long poll of each claim */
	int64_t ack_linger_ms;	/* 0: none: outcomes leave at once and batch while an
				 * ack request is in flight; N: wait up to N ms
				 * to share a request */
	uint64_t max_jobs;	/* 0: run until stopped; else stop after this many */
	cueq_worker_event_fn on_event; /* NULL: none */
	void *event_arg;
} cueq_worker_opts;

typedef struct cueq_worker_counts {
	uint64_t succeeded; /* acked */
	uint64_t failed;    /* nacked */
	uint64_t lost;	    /* lease lost before the outcome was accepted */
	uint64_t dropped;   /* claimed but not run: the lease ended first (counted
			     * in lost too) */
} cueq_worker_counts;

CUEQ_API int cueq_worker_new(cueq_client *c, const char *queue, cueq_handler h, void *arg,
			     const cueq_worker_opts *opts, cueq_worker **out);
/* Runs until cueq_worker_stop() or max_jobs; finishes the jobs in hand. */
CUEQ_API int cueq_worker_run(cueq_worker *w);
/* Asks the worker to stop; async-signal-safe, callable from any thread. */
CUEQ_API void cueq_worker_stop(cueq_worker *w);
/* Stops the worker as cueq_worker_stop() does, without waiting on a broker
 * that does not answer: the claim in flight is given up at once (unless the
 * broker already has it: then it ends with its long poll), and each outcome
 * still to be sent, or being sent, is tried for grace_ms at most instead of
 * the client's retry deadline.  Running handlers still finish.  An outcome
 * not sent counts as lost: its lease expires and the broker hands the job
 * out again.  Not async-signal-safe: call it from a thread. */
CUEQ_API void cueq_worker_shutdown(cueq_worker *w, int64_t grace_ms);
CUEQ_API void cueq_worker_get_counts(const cueq_worker *w, cueq_worker_counts *out);
CUEQ_API void cueq_worker_free(cueq_worker *w);

#ifdef __cplusplus
}
#endif
#endif /* CUEQ_H */
