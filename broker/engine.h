/*
 * engine.h - the seam between the broker's server/protocol layer and the
 * state of the queues: the one interface a storage engine implements.
 *
 * ops.c, loop.c and main.c speak only this interface and its own types;
 * they never see how an engine stores anything.  The embedded engine
 * (memory indexes + RocksDB, the library cueqengine_embedded, whose own
 * headers compile only inside it) is the default; an engine on another
 * store (e.g. PostgreSQL) can sit behind the same table, and
 * tests/test_engine.c runs the same scenarios against any table.
 *
 * Threads: the core thread (loop.c) calls every member except sync, which
 * the syncer thread calls while the core goes on.  Writes made by the calls
 * of one loop turn are gathered and written by commit(); sync() makes them
 * durable (group commit, see loop.h and syncer.h).  Members that may block say so; the
 * others must answer from memory (has_ready and next_due run every turn).
 * Members returning int answer CUEQ_OK or a cueq_err with *err set.
 */
#ifndef CUEQ_ENGINE_H
#define CUEQ_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct engine;

/* What a worker's outcome does: succeed, or fail this attempt. */
enum eng_outcome_kind { ENG_ACK = 1, ENG_NACK = 2 };

/* What an execution's history tells, event by event. */
enum eng_event_kind {
	ENG_EV_UNKNOWN = 0, /* an event this broker has no word for */
	ENG_EV_CLAIMED,	    /* detail: the worker's name, if it gave one */
	ENG_EV_EXTENDED,
	ENG_EV_EXPIRED,
	ENG_EV_NACKED, /* detail: the error */
	ENG_EV_SUCCEEDED,
	ENG_EV_DEAD, /* detail: why */
	ENG_EV_STEP, /* detail: the step's name */
	ENG_EV_RELEASED,  /* the worker's connection closed: the lease ended */
	ENG_EV_CANCELLED, /* detail: who or why, when known */
	ENG_EV_RETRIED,	  /* an operator put the dead execution back */
};

/* Wire name of an event kind ("claimed"), "unknown" for any other value. */
static inline const char *eng_event_name(int kind)
{
	static const char *const names[] = {"unknown",	"claimed",   "extended", "expired",
					    "nacked",	"succeeded", "dead",	 "step",
					    "released", "cancelled", "retried"};
	return kind > ENG_EV_UNKNOWN && kind <= ENG_EV_RETRIED ? names[kind] : names[0];
}

struct eng_config {
	/* where the state lives: a directory for the embedded engine, a
	 * connection string for another */
	const char *location;
	int max_open_files; /* descriptors the store may keep open; 0: unbounded */
	int64_t retention_ms; /* finished executions kept this long */
	int64_t idem_window_ms; /* default life of an idempotency key */
	uint32_t max_queues; /* queues at once; a push that would make one more
			      * is refused UNAVAILABLE; 0: unbounded */
	/* the engine's clock (Unix ms): NULL is the real one; tests pass
	 * their own to run time forward without sleeping */
	int64_t (*clock)(void *arg);
	void *clock_arg;
};

/* The parts of a push an idempotency key compares, as a mismatch names
 * them (eng_push.req_fields). */
enum eng_req_field {
	ENG_F_PAYLOAD,
	ENG_F_PRIORITY,
	ENG_F_MAX_ATTEMPTS,
	ENG_F_LEASE,
	ENG_F_WHEN, /* delay_ms or run_at */
	ENG_F_UNIQUE,
	ENG_F_POLICY, /* max_expiries, backoff */
	ENG_F_SCHEDULE,
	ENG_REQ_FIELDS
};

/* A recurring cue's schedule (PROTOCOL.md, "Recurring cues"). */
enum eng_catch_up { ENG_CATCH_UP_ONE = 0, ENG_CATCH_UP_ALL, ENG_CATCH_UP_NONE };
enum eng_overlap { ENG_OVERLAP_ALLOW = 0, ENG_OVERLAP_SKIP };

/* How a job retries after a nack: min(max_ms, base_ms x factor^(failures
 * - 1)), drawn uniformly from [0, that] with jitter. */
struct eng_backoff {
	uint32_t base_ms, max_ms;
	uint32_t factor_milli; /* the factor x 1000 (1000-100000) */
	bool no_jitter;
};

/* One job of a push, already validated by the protocol layer. */
struct eng_push {
	const char *queue;
	size_t queue_len;
	const char *group; /* concurrency group or NULL (queue-wide limits only) */
	size_t group_len;
	const char *payload;
	size_t payload_len;
	int32_t priority;
	uint32_t max_attempts, lease_ms;
	int64_t run_at; /* Unix ms; <= now: ready at once */
	const char *key; /* idempotency key or NULL */
	size_t key_len;
	int64_t key_ttl_ms;
	uint64_t req_hash; /* of the job's canonical fields, for the key: FNV-1a
			    * (as keys of older brokers hold) and SHA-256 */
	uint8_t req_digest[32];
	/* a 32-bit hash of each part of it (enum eng_req_field), so that a
	 * mismatch can say which parts differ */
	uint32_t req_fields[8];
	const char *unique; /* unique key or NULL */
	size_t unique_len;
	uint32_t max_expiries;
	struct eng_backoff backoff;
	/* recurring: every_ms > 0 or cron != NULL (checked by the caller);
	 * run_at is then the earliest first fire, 0 none */
	int64_t every_ms;
	const char *cron, *tz; /* tz NULL: UTC */
	size_t cron_len, tz_len;
	uint8_t catch_up, overlap; /* enum eng_catch_up, eng_overlap */
};

struct eng_pushed {
	proto_error err; /* CUEQ_OK, IDEMPOTENCY_MISMATCH or CONFLICT */
	uint64_t holder; /* CONFLICT: the execution holding the unique key */
	uint64_t id, cue_id;
	int state;
	bool duplicate; /* the answer of an earlier push with the same key */
	bool recurring; /* a recurring cue: id is 0, run_at its first fire */
	int64_t run_at, created_at;
};

struct eng_step {
	const char *name; /* owned by the view */
	size_t name_len;
	const char *value;
	size_t value_len;
	int64_t at;
};

struct eng_claimed {
	uint64_t id, cue_id, token;
	uint32_t attempt;
	uint32_t lease_ms; /* length of this lease */
	int64_t deadline;
	char *payload; /* release with ops->claimed_free */
	size_t payload_len;
	bool durable; /* what made it claimable is synced: the write that
		       * created it (and nothing since but the engine's own
		       * time) is durable, so an answer giving it need not
		       * wait for the turn's sync; the lease itself need not
		       * (DESIGN: a lease lost in a crash behaves as an expired
		       * one).  false (the safe default): the answer waits */
};

/* An ack or nack of one execution; the out fields are the answer. */
struct eng_outcome {
	uint64_t id, token;
	int kind; /* ENG_ACK or ENG_NACK */
	const char *text; /* result (ack) or error (nack); NULL: none */
	size_t text_len;
	int64_t retry_in_ms; /* nack: <0 the default backoff */
	bool terminal;	     /* nack: dead at once */
	proto_error err;     /* out: err.code CUEQ_OK or why refused */
	int state;	     /* out: state after it (STALE_LEASE: the state now,
			      * -1 unknown) */
	int64_t run_at;	     /* out: when it runs again (nack) */
};

struct eng_extend {
	uint64_t id, token;
	uint32_t lease_ms;
	proto_error err;  /* out */
	int state;	  /* out, STALE_LEASE: the state now (-1 unknown) */
	int64_t deadline; /* out */
};

/* One execution as get and list show it. */
struct eng_exec {
	uint64_t id, cue_id;
	const char *queue;
	size_t queue_len;
	const char *group; /* NULL: none */
	size_t group_len;
	int state; /* cueq_state */
	int32_t priority;
	uint32_t attempt;  /* deliveries so far */
	uint32_t expiries; /* leases that ran out */
	uint32_t failures; /* nacks */
	uint32_t max_attempts, max_expiries, lease_ms;
	int64_t created_at, run_at, deadline, finished_at; /* Unix ms; 0 none */
	uint64_t token;					   /* live lease token; 0 none */
	const char *result, *error;			   /* NULL: none */
	size_t result_len, error_len;
	const char *reason; /* why it is dead or cancelled; NULL: none */
	size_t reason_len;
};

/* One event of an execution's history. */
struct eng_event {
	int64_t at;	  /* Unix ms */
	int kind;	  /* enum eng_event_kind */
	uint32_t attempt; /* the delivery it belongs to; 0 none */
	uint64_t token;	  /* the lease it happened under; 0 none */
	const char *detail; /* NULL: none */
	size_t detail_len;
};

/* A read-only snapshot of one execution for get and list. */
struct eng_view {
	struct eng_exec exec;
	const char *payload; /* get only */
	size_t payload_len;
	struct eng_event *hist; /* get only */
	size_t n_hist;
	uint32_t hist_dropped; /* older events no longer kept (get only) */
	struct eng_step *steps; /* get only */
	size_t n_steps;
	const char *unique; /* get only; NULL: none */
	size_t unique_len;
	void *priv; /* the engine's storage behind the pointers */
};

struct eng_stats {
	char queue[PROTO_MAX_QUEUE + 1];
	uint64_t count[6]; /* by cueq_state */
	bool paused;
	uint64_t cues; /* recurring cues that will fire */
	/* totals since the queue was created */
	uint64_t deliveries, expiries, failures, releases;
};

/* A limit of a queue or of a group (cueq limit): 0 is none. */
struct eng_limit {
	uint32_t concurrency; /* leased at once */
	uint32_t rate;	      /* claims per per_ms */
	int64_t per_ms;
};
enum eng_limit_scope {
	ENG_LIMIT_QUEUE = 0,	  /* the queue's own, over all its groups */
	ENG_LIMIT_EACH_GROUP = 1, /* each group without a limit of its own */
	ENG_LIMIT_GROUP = 2,	  /* one group */
};
struct eng_limit_set {
	const char *queue;
	size_t queue_len;
	int scope; /* eng_limit_scope */
	const char *group;
	size_t group_len;
	bool set_concurrency, set_rate; /* the others stay as they are */
	uint32_t concurrency, rate;
	int64_t per_ms;
	struct eng_limit now; /* out: the limit as it is now */
};
/* One group of a queue, as stats shows it. */
struct eng_group_stats {
	char group[PROTO_MAX_GROUP + 1];
	uint64_t ready, leased, jobs; /* jobs: unfinished, any state */
	struct eng_limit lim;	      /* its own or the default */
	bool own;
};
struct eng_queue_limits {
	struct eng_limit queue, per_group;
};

/* A recurring cue as get and cues show it. */
#define ENG_CUE_NEXT 5 /* next fires shown */
#define ENG_CUE_LAST 10 /* last executions kept and shown */
struct eng_cue_fire {
	uint64_t id; /* the execution */
	int64_t fire_at;
	int state; /* -1: gone (deleted after retention) */
};
struct eng_cue {
	uint64_t id;
	char queue[PROTO_MAX_QUEUE + 1];
	bool cancelled;
	int64_t every_ms; /* 0: cron */
	char cron[129], tz[65];
	uint8_t catch_up, overlap;
	int32_t priority;
	uint32_t max_attempts, max_expiries, lease_ms;
	int64_t created_at;
	uint64_t fires, skipped;
	int64_t next[ENG_CUE_NEXT]; /* 0: none */
	struct eng_cue_fire last[ENG_CUE_LAST]; /* newest first */
	size_t n_last;
	char *payload; /* get only: malloc'd, caller frees */
	size_t payload_len;
};

/* What cancel found. */
enum eng_kind { ENG_KIND_EXECUTION = 1, ENG_KIND_CUE = 2 };

/* What an engine counted since it opened, for metrics (PROTOCOL.md,
 * "metrics"): what happened to executions, whichever request or timer
 * made it happen. */
struct eng_counters {
	uint64_t claimed;   /* leases given (deliveries) */
	uint64_t succeeded; /* executions acked */
	uint64_t nacked;    /* nacks applied (failures), whether they end dead or not */
	uint64_t expired;   /* leases that ran out */
	uint64_t released;  /* leases ended because their worker's connection closed */
	uint64_t dead;	    /* executions that became dead (nacks, expiries) */
	uint64_t cancelled; /* executions cancelled */
};
/* One figure an engine's store gives of itself (sizes, keys, background
 * work), shown as it is: the engine names it, so nothing above the seam
 * needs to know the store. */
struct eng_figure {
	const char *name; /* static: [a-z0-9_], its unit last ("sst_bytes") */
	const char *help; /* static: what it is, one line */
	const char *part; /* static: the part of the store it is of; NULL: all of it */
	uint64_t value;
	bool counter; /* only grows (else it goes up and down) */
};
#define ENG_MAX_FIGURES 96
struct eng_metrics {
	struct eng_counters counted;
	struct eng_figure fig[ENG_MAX_FIGURES];
	size_t n_fig;
};

/* Bump when a member of struct engine_ops is added, removed or moved, or
 * changes what it promises; cueqd refuses a table of another version. */
#define ENGINE_OPS_VERSION 7

struct engine_ops {
	uint32_t version; /* ENGINE_OPS_VERSION */
	const char *name;

	/* Opens the state at cfg->location (creating it when new) and
	 * rebuilds what the engine keeps in memory.  -1 with a sentence in
	 * err.  Core thread, before the loop; blocks on storage. */
	int (*open)(const struct eng_config *cfg, struct engine **out, char *err, size_t errlen);
	/* Frees e (NULL is fine); what was not committed is lost.  Core
	 * thread, after the loop and the syncer stopped; may block. */
	void (*close)(struct engine *e);
	/* A number that differs on every start (IDs and tokens are never
	 * reused across starts).  Core thread; does not block. */
	uint64_t (*boot_id)(struct engine *e);

	/* Creates n executions; a job refused for its key (out[i].err) creates
	 * nothing, the others are created.  Core thread; may block reading
	 * keys. */
	int (*push)(struct engine *e, const struct eng_push *jobs, size_t n, struct eng_pushed *out,
		    proto_error *err);
	/* Request memory that outlives a restart, for a push sent with
	 * retry_ttl_ms: remember stores the answer of request rid (the
	 * request ID in its client's scope, at most PROTO_MAX_SCOPED_RID
	 * bytes, opaque here; hash: of
	 * its bytes) in this turn's write, so the answer and the changes it
	 * reports are one atomic write; it is forgotten after expires_at
	 * (Unix ms).  0, or -1 when it could not be kept (no memory, too
	 * big): then the caller must remember the answer itself.  Core
	 * thread; does not block. */
	int (*remember)(struct engine *e, const void *rid, size_t rid_len, uint64_t hash,
			const void *reply, size_t len, int64_t expires_at);
	/* Looks rid up: 1 with its answer in *reply (malloc'd, *len bytes)
	 * when remembered with this hash, 2 when remembered for other bytes,
	 * 0 when not remembered (or expired), -1 with err when the read
	 * failed.  Core thread; may block reading. */
	int (*recall)(struct engine *e, const void *rid, size_t rid_len, uint64_t hash, void **reply,
		      size_t *len, proto_error *err);
	/* Leases up to max ready executions of queue (lease_ms 0: each job's
	 * own).  *n may be 0.  Core thread; may block reading payloads. */
	int (*claim)(struct engine *e, const char *queue, size_t qlen, size_t max, uint32_t lease_ms,
		     const char *worker, size_t wlen, struct eng_claimed *out, size_t *n,
		     proto_error *err);
	/* A claim answered before, asked again (its reply was lost): fills
	 * out with those of the n leases (ids[i], tokens[i]) still live, as
	 * claim gave them, without taking any other; *nout of them.  Core
	 * thread; may block reading payloads. */
	int (*claimed_again)(struct engine *e, const uint64_t *ids, const uint64_t *tokens, size_t n,
			     struct eng_claimed *out, size_t *nout, proto_error *err);
	/* Releases what claim gave c.  Core thread; does not block. */
	void (*claimed_free)(struct engine *e, struct eng_claimed *c);
	/* Whether a claim on queue would find work now.  Core thread, for
	 * every parked claim each turn; does not block. */
	bool (*has_ready)(struct engine *e, const char *queue, size_t qlen);
	/* Applies n acks or nacks; each item's answer is in its out fields.
	 * Core thread; may block reading the stored outcome of a late token. */
	void (*finish)(struct engine *e, struct eng_outcome *items, size_t n);
	/* Extends n leases; answers as finish.  Core thread; may block like
	 * finish. */
	void (*extend)(struct engine *e, struct eng_extend *items, size_t n);

	/* The step ledger: writes need the live lease token.  Core thread;
	 * may block on storage reads. */
	int (*step_set)(struct engine *e, uint64_t id, uint64_t token, const char *name,
			size_t name_len, const char *value, size_t value_len, int64_t *at,
			proto_error *err);
	/* Reads steps of id: one (name not NULL) or all; *out as in a view's
	 * steps, released with view_free on a view holding them.  Core
	 * thread; may block on storage reads. */
	int (*steps)(struct engine *e, uint64_t id, const char *name, size_t name_len,
		     struct eng_view *out, proto_error *err);

	/* One execution with its payload, history, steps and unique key into
	 * a zeroed *out, which view_free releases whatever the answer (a
	 * failure may leave part of it filled).  Core thread; may block on
	 * storage reads. */
	int (*get)(struct engine *e, uint64_t id, struct eng_view *out, proto_error *err);
	/* Lists up to limit executions of queue with state (-1: any) after
	 * the ID after; *next is the ID to continue from, 0 at the end.
	 * Core thread; may block on storage reads. */
	int (*list)(struct engine *e, const char *queue, size_t qlen, int state, uint64_t after,
		    size_t limit, struct eng_view *out, size_t *n, uint64_t *next, proto_error *err);
	/* Releases what get, list or steps put in v.  Core thread; does not
	 * block. */
	void (*view_free)(struct engine *e, struct eng_view *v);
	/* Counts per queue: of queue, or (queue NULL) of up to limit queues
	 * from position from (0: the first); *next is the position to go on
	 * from, 0 at the end.  Positions are the engine's, opaque to the
	 * caller, and stay valid while queues come and go.  *out malloc'd,
	 * caller frees.  Core thread; may block on storage reads. */
	int (*stats)(struct engine *e, const char *queue, size_t qlen, uint64_t from, size_t limit,
		     struct eng_stats **out, size_t *n, uint64_t *next, proto_error *err);
	/* Sets a limit (s->now gets it as it is then), stored in this turn's
	 * write; NOT_FOUND never (a limit may come before the queue's first
	 * job).  Core thread. */
	int (*limit)(struct engine *e, struct eng_limit_set *s, proto_error *err);
	/* The groups of queue with unfinished jobs (up to max, by name; *out
	 * malloc'd, caller frees; *n their number, up to max) and the
	 * queue's limits.  Core thread; does not block. */
	int (*groups)(struct engine *e, const char *queue, size_t qlen, size_t max,
		      struct eng_group_stats **out, size_t *n, struct eng_queue_limits *lims,
		      proto_error *err);

	/* Time passes: due executions become ready, leases whose deadline is
	 * <= now end, finished executions past retention and expired
	 * idempotency keys are deleted.  Returns the next time (Unix ms) it
	 * has work, INT64_MAX for none.  Core thread, at the start of every
	 * turn; may block on storage. */
	int64_t (*tick)(struct engine *e, int64_t now);

	/* ---- the operator (PROTOCOL.md: cancel, retry, purge, pause) ----
	 * Each is one request: its changes go in this turn's write.  Core
	 * thread; may block on storage reads. */
	/* Cancels execution or recurring cue id: *kind says which. */
	int (*cancel)(struct engine *e, uint64_t id, int *kind, proto_error *err);
	/* Puts dead executions back to ready: id, or (id 0) up to max of
	 * queue; *n of them, *more when others are left. */
	int (*retry)(struct engine *e, uint64_t id, const char *queue, size_t qlen, size_t max,
		     size_t *n, bool *more, proto_error *err);
	/* Deletes up to max finished executions of queue in state. */
	int (*purge)(struct engine *e, const char *queue, size_t qlen, int state, size_t max,
		     size_t *n, bool *more, proto_error *err);
	/* Pauses (or resumes) queue's claims. */
	int (*pause)(struct engine *e, const char *queue, size_t qlen, bool paused,
		     proto_error *err);
	/* Ends the n leases (ids[i], tokens[i]) that are still live, as an
	 * expiry does (their worker is gone): *n_ended of them.  Core
	 * thread; may block reading unique keys. */
	void (*release)(struct engine *e, const uint64_t *ids, const uint64_t *tokens, size_t n,
			size_t *n_ended);
	/* Whether (id, token) is a live lease.  Core thread; does not block. */
	bool (*is_live)(struct engine *e, uint64_t id, uint64_t token);
	/* Whether execution id is scheduled, ready or leased (false: it has
	 * an outcome, or there is no such one).  Core thread; does not block:
	 * a parked wait asks it every turn. */
	bool (*unfinished)(struct engine *e, uint64_t id);
	/* The queue of execution or recurring cue id, into out (PROTO_MAX_QUEUE
	 * + 1 bytes, NUL-terminated; *len its length): 1, 0 when there is no
	 * such one, -1 when storage could not be read.  Core thread; may
	 * block reading the execution's record. */
	int (*queue_of)(struct engine *e, uint64_t id, char *out, size_t *len);
	/* One recurring cue (with payload and its last ENG_CUE_LAST fires),
	 * or the cues of a queue (up to max, without payloads, with the
	 * newest fire only; *out malloc'd, caller frees).  NOT_FOUND when id
	 * is no recurring cue.  Core thread; may block. */
	int (*cue_get)(struct engine *e, uint64_t id, struct eng_cue *out, proto_error *err);
	int (*cues)(struct engine *e, const char *queue, size_t qlen, size_t max,
		    struct eng_cue **out, size_t *n, proto_error *err);
	/* The time (Unix ms) tick next has work, without doing any.  Core
	 * thread, every turn; does not block. */
	int64_t (*next_due)(struct engine *e);
	/* Writes this turn's changes (no sync) as one atomic write: after a
	 * crash each request of the turn is wholly there or wholly absent.
	 * Reads of the turn (every member above) already see them.
	 * *durable_needed says whether any of them must be synced before
	 * answering.  0, or -1: storage failed and the broker must stop.
	 * Fail-stop: after a failed commit or sync every later commit and sync
	 * returns -1 at once (even with nothing to write) and writes nothing.
	 * Without wait it may also return 1 (a sync is under way): nothing was
	 * written, the changes stay pending and go with the next commit, and
	 * the turn's answers must wait for that one.  Core thread, at the end
	 * of every turn; may block on storage writes (and, with wait, on a
	 * sync under way). */
	int (*commit)(struct engine *e, bool wait, bool *durable_needed);
	/* Makes everything committed before the call durable.  0 or -1 (and
	 * -1 for good after a failed commit or sync).  The syncer thread,
	 * while the core thread calls the other members (commit included),
	 * or the core thread itself while the syncer is idle, and once more
	 * after the syncer stopped; never two calls at once.  Blocks on
	 * fsync. */
	int (*sync)(struct engine *e);
	/* What the engine counted since open and what its store says of
	 * itself now, into *out (zero-filled by the caller), for the metrics
	 * op.  Core thread; does not block (the figures come from the
	 * store's memory). */
	void (*metrics)(struct engine *e, struct eng_metrics *out);
};

/* The engines this build has: memory indexes + RocksDB (cueqengine_embedded). */
extern const struct engine_ops embedded_engine;

#endif /* CUEQ_ENGINE_H */
