/*
 * embedded.h - private parts of the embedded engine, shared by its files:
 * embedded.c (open, recovery, queues, commit), push.c (push, idempotency
 * and unique keys), lease.c (the state machine: claim, ack/nack, extend,
 * timers), steps.c (the step ledger), inspect.c (get, list, stats, the
 * figures of metrics) and retention.c (deleting finished executions and
 * expired keys).
 *
 * Memory holds only unfinished executions (index.h); RocksDB holds
 * everything (store.h).  Running out of memory in the core is fatal: the
 * process aborts before committing, so nothing half-applied reaches disk and
 * nothing acknowledged is lost.
 */
#ifndef CUEQ_EMBEDDED_H
#define CUEQ_EMBEDDED_H

#ifndef CUEQ_EMBEDDED_ENGINE
#error "embedded.h is private to the embedded engine: outside it, use engine.h"
#endif

#include <stdatomic.h>

#include "engine.h"
#include "index.h"
#include "record.h"
#include "store.h"

/* Records keep the engine's outcome kinds as they are (lease.c). */
_Static_assert((int)OUT_ACK == (int)ENG_ACK && (int)OUT_NACK == (int)ENG_NACK,
	       "stored outcome kinds");

/* A token bucket of a rate limit: up to rate claims at once, refilled at
 * rate per per_ms.  Throttled (in e->throttled) while it has no token. */
struct bucket {
	double tokens;
	int64_t at;	   /* Unix ms of the last refill */
	int64_t wake;	   /* throttled: when it has a token again */
	uint32_t heap_pos; /* in e->throttled, HEAP_NONE if not throttled */
	struct queue *q;
	struct group *g; /* NULL: the queue's own bucket */
};

/* A concurrency group of a queue (push --group): its READY jobs in
 * priority order, how many of its jobs are leased, its limit.  A group
 * that can give a job (ready, under its concurrency limit, not throttled)
 * is on its queue's ring, which claims take round-robin (groups.c).  A
 * group lives while it has unfinished jobs; the queue's default group
 * (jobs pushed without one) always, with no limit of its own. */
struct group {
	char name[PROTO_MAX_GROUP + 1];
	uint8_t len;
	bool in_ring;
	struct heap ready;
	uint32_t n_jobs; /* unfinished jobs in it */
	uint32_t leased;
	struct eng_limit lim; /* its own, or the queue's per-group default */
	struct bucket bucket;
	struct group *next, *prev; /* on the ring */
	struct group *hnext;	   /* in the queue's group table */
};

/* A group's own limit, kept by its queue while set (sorted by name). */
struct glimit {
	char name[PROTO_MAX_GROUP + 1];
	uint8_t len;
	struct eng_limit lim;
};

struct queue {
	char name[PROTO_MAX_QUEUE + 1];
	uint8_t len;
	bool counts_dirty; /* finished counts changed this turn */
	uint32_t idx;	   /* place in the queue table */
	struct group dflt;   /* the jobs pushed without a group */
	struct group **gtab; /* the other groups, chained by name hash */
	uint32_t gtab_cap, n_groups;
	struct group *ring;	/* the group the next claim takes from; NULL none */
	struct eng_limit lim;	/* the queue's own: concurrency counts every lease */
	struct eng_limit per_group; /* of each group without its own */
	struct bucket bucket;
	struct glimit *glims; /* groups' own limits, sorted by name */
	uint32_t n_glims, cap_glims;
	uint64_t count[6];   /* by cueq_state; finished ones = retained */
	bool paused;	     /* claims get nothing (stored with the counts) */
	uint32_t n_cues;     /* recurring cues that will fire (in memory) */
	/* totals since the queue was created (stored with the counts) */
	uint64_t deliveries, expiries, failures, releases;
};

/* A recurring cue in memory: when it fires next; the rest is in its
 * record (cues.c). */
struct cue {
	uint64_t id;
	uint32_t queue;
	uint32_t heap_pos;
	int64_t next_fire;
	int64_t every_ms, anchor; /* every: slots are anchor + k x every_ms */
	struct cron *cron;	  /* NULL for every */
	uint8_t catch_up, overlap;
	uint64_t last_exec; /* the newest fire's execution, 0 none */
};

struct cues {
	struct cue **heap; /* by next_fire */
	uint32_t n, cap;
};

struct engine {
	struct store *st;
	int64_t (*clock)(void *arg); /* eng_config's */
	void *clock_arg;
	uint64_t rng; /* backoff jitter (xorshift64*) */
	struct cues cues;
	int64_t cues_retry_at; /* a cue's record could not be read: not before */
	struct jobs *jobs;
	struct heap timers; /* SCHEDULED by run_at, LEASED by deadline */
	struct bucket **throttled; /* buckets without a token, by wake */
	uint32_t n_throttled, cap_throttled;
	struct queue **queues;
	uint32_t nq, capq;
	uint32_t *dirty; /* queues whose counters changed this turn */
	uint32_t n_dirty, cap_dirty;
	uint32_t n_live;    /* queues in the table (nq counts its slots) */
	uint32_t max_queues; /* eng_config's; 0: unbounded */
	uint32_t *free_idx; /* slots of forgotten queues, NULL in queues */
	uint32_t n_free, cap_free;
	uint32_t *qslot; /* name hash -> queue index + 1 */
	uint32_t qslot_cap;
	uint32_t epoch;
	uint8_t token_key[16]; /* crypto_shorthash_KEYBYTES: lease tokens (stored with the epoch) */
	uint64_t counter; /* low 40 bits of IDs and tokens */
	int64_t retention_ms;
	int64_t idem_window_ms;
	int64_t next_sweep, last_sweep;
	uint8_t sweep_from[16]; /* expiry key to resume the sweep from */
	uint8_t idem_sweep_from[8]; /* idemexp time to resume from */
	msgpack_sbuffer sbuf;	/* scratch for packing records */
	msgpack_packer pk;
	bool durable; /* this turn holds writes that must be synced */
	/* IDs are handed out in order, so "created by a write that is
	 * durable" is "ID at most synced_id" (lease.c: a claim's answer need
	 * not wait for the sync when every job it gives is).  committed_id:
	 * the last ID handed out before the last commit (the core writes it,
	 * the syncer reads it when a sync starts); synced_id: the same as of
	 * the last sync that succeeded. */
	_Atomic uint64_t committed_id, synced_id;
	struct eng_counters counted; /* since open, for metrics (inspect.c) */
	uint64_t uk_id; /* emb_unique_load: whose key uk holds, 0 none */
	char uk[PROTO_MAX_QUEUE + 2 + CUEQ_MAX_KEY];
	size_t uk_len;
};

#define ID_EPOCH_SHIFT 40
/* State of a job not yet placed in any state (for emb_set_state). */
#define ST_NONE 0xff

/* The engine's clock, Unix ms. */
static inline int64_t emb_now(struct engine *e)
{
	return e->clock ? e->clock(e->clock_arg) : proto_now_ms();
}

/* The defaults of a job's retry policy and expiry limit. */
#define BACKOFF_BASE_MS 1000u
#define BACKOFF_MAX_MS 3600000u
#define BACKOFF_FACTOR 2000u /* x 1000 */
#define MAX_EXPIRIES 5u
/* History events kept per execution: the newest (inspect.c says how many
 * older ones were dropped). */
#define HIST_KEEP 1000u

/* Sets j's retry policy; zeros (records of older brokers) are the
 * defaults. */
static inline void emb_job_backoff(struct job *j, uint32_t base, uint32_t max, uint32_t factor)
{
	if (factor == 0) {
		base = BACKOFF_BASE_MS;
		max = BACKOFF_MAX_MS;
		factor = BACKOFF_FACTOR;
	}
	j->backoff_ms = base;
	j->backoff_max_ms = max;
	j->backoff_factor = factor;
}

/* Aborts with a log line: out of memory in the core. */
void *emb_oom(void *p);
/* A new ID or lease token: boot epoch in the top bits, never reused. */
uint64_t emb_next_id(struct engine *e);
/* A new lease token: unique like an ID, and unguessable. */
uint64_t emb_next_token(struct engine *e);
/* Finds a queue by name, creating it when create is set (else NULL). */
struct queue *emb_queue(struct engine *e, const char *name, size_t len, bool create);
/* The queue, made if it is new and --max-queues allows one more; NULL with
 * UNAVAILABLE in err when it does not.  For what clients create; what the
 * store holds already is always loaded. */
struct queue *emb_queue_admit(struct engine *e, const char *name, size_t len, proto_error *err);
/* The queue of slot i, which a job or cue holds (so it is not NULL). */
static inline struct queue *emb_queue_at(struct engine *e, uint32_t i) { return e->queues[i]; }

/* Fills rec from j (strings point into j and its queue). */
void emb_rec_from_job(struct engine *e, const struct job *j, struct exec_rec *rec);
/* Writes rec to the exec column family. */
void emb_put_rec(struct engine *e, const struct exec_rec *rec);
/* Appends a history event of j. */
void emb_history(struct engine *e, struct job *j, int event, uint32_t attempt, uint64_t token,
		 const char *detail, size_t detail_len, int64_t now);
/* Reads and decodes the stored record of id: 1 found, 0 absent, -1 error.
 * Strings in rec point into *up and *buf; free with emb_rec_release, also
 * after -1 and 0 (then there is nothing to free, but it is harmless). */
int emb_read_rec(struct engine *e, uint64_t id, struct exec_rec *rec, msgpack_unpacked *up,
		 char **buf);
void emb_rec_release(msgpack_unpacked *up, char *buf);

void emb_key(uint8_t k[8], uint64_t id);
/* Key of the done index: queue 0 state id. Returns its length. */
size_t emb_done_key(uint8_t *k, const char *queue, size_t qlen, int state, uint64_t id);

/* Writes the turn so far, whole requests only (call it before a request
 * changes anything), so that its reads of active, hist and done see every
 * earlier request of the turn.  0, or -1: storage failed (fail-stop). */
int emb_settle(struct engine *e);

/* Moves a job between states, keeping heaps and counts right. */
void emb_set_state(struct engine *e, struct job *j, int state);
/* Marks q's stored counters (finished counts, totals, paused) changed:
 * the commit writes those of the queues marked, not of every queue. */
void emb_counts_dirty(struct engine *e, struct queue *q);

/* ridstore.c: answers remembered by request ID (engine.h remember, recall) */
int emb_remember(struct engine *e, const void *rid, size_t rid_len, uint64_t hash,
		 const void *reply, size_t len, int64_t expires_at);
int emb_recall(struct engine *e, const void *rid, size_t rid_len, uint64_t hash, void **reply,
	       size_t *len, proto_error *err);
/* The expiry of a remembered request's record (for the sweep): 0, or -1
 * when it is not one. */
int emb_rid_expiry(const char *v, size_t vl, int64_t *expires_at);

/* push.c */
int emb_push(struct engine *e, const struct eng_push *jobs, size_t n, struct eng_pushed *out,
	     proto_error *err);
/* Reads the unique key j holds (if any) before j's end is written, so the
 * end never has to read in the middle of its writes: 0, or -1 when the
 * read failed (then change nothing of j: answer UNAVAILABLE or retry). */
int emb_unique_load(struct engine *e, const struct job *j);
/* Frees the unique key held by j (when it holds one), as emb_unique_load
 * read it. */
void emb_unique_release(struct engine *e, const struct job *j);
/* For finished execution id (with flags) to be unfinished again (an
 * operator's retry): reads the unique key it held into key (*kl bytes, 0
 * none); 0 free (or none), 1 held by another unfinished execution
 * (*holder), -1 the read failed.  emb_unique_take then takes it. */
int emb_unique_check(struct engine *e, uint64_t id, uint8_t flags, char *key, size_t size,
		      size_t *kl, uint64_t *holder);
void emb_unique_take(struct engine *e, struct job *j, const char *key, size_t kl);
/* Reads the unique key of id into buf (queue 0 key), *len 0 when none or
 * when it does not fit: 0, or -1 when the read failed. */
int emb_unique_of(struct engine *e, uint64_t id, char *buf, size_t size, size_t *len);

/* steps.c */
int emb_step_set(struct engine *e, uint64_t id, uint64_t token, const char *name,
		 size_t name_len, const char *value, size_t value_len, int64_t *at,
		 proto_error *err);
int emb_steps(struct engine *e, uint64_t id, const char *name, size_t name_len,
	      struct eng_view *out, proto_error *err);

/* lease.c */
/* The token is not the live lease of o->id: answers a resend of the
 * outcome already applied, refuses anything else (o->err).  For other
 * writes under a lease (extend, step), pass kind OUT_NONE.  It reads the
 * stored record, which is written aside: settle first (store.c). */
void emb_not_live(struct engine *e, struct eng_outcome *o);
int emb_claim(struct engine *e, const char *queue, size_t qlen, size_t max, uint32_t lease_ms,
	      const char *worker, size_t wlen, struct eng_claimed *out, size_t *n, proto_error *err);
int emb_claimed_again(struct engine *e, const uint64_t *ids, const uint64_t *tokens, size_t n,
		      struct eng_claimed *out, size_t *nout, proto_error *err);
void emb_claimed_free(struct engine *e, struct eng_claimed *c);
bool emb_has_ready(struct engine *e, const char *queue, size_t qlen);
void emb_finish(struct engine *e, struct eng_outcome *items, size_t n);
void emb_extend(struct engine *e, struct eng_extend *items, size_t n);
int64_t emb_tick(struct engine *e, int64_t now);
int64_t emb_next_due(struct engine *e);

/* The job's end as a record: j's fields with state, the time and why
 * (NULL: no reason); the caller writes it and retires j. */
void emb_end_rec(struct engine *e, const struct job *j, int state, int64_t now, const char *why,
		 struct exec_rec *rec);
/* j's lease ended without an outcome (expired, or released when its
 * worker went away): ready again, or dead when its expiries are used up.
 * emb_unique_load(j) must have succeeded first when it may die. */
void emb_lease_ended(struct engine *e, struct job *j, bool released, int64_t now);
/* Whether j's next lease end would make it dead. */
static inline bool emb_last_expiry(const struct job *j)
{
	return (uint32_t)j->expiries + 1 >= (j->max_expiries ? j->max_expiries : MAX_EXPIRIES);
}

/* operate.c: cancel, retry, purge, pause, release */
int emb_cancel(struct engine *e, uint64_t id, int *kind, proto_error *err);
int emb_retry(struct engine *e, uint64_t id, const char *queue, size_t qlen, size_t max,
	      size_t *n, bool *more, proto_error *err);
int emb_purge(struct engine *e, const char *queue, size_t qlen, int state, size_t max, size_t *n,
	      bool *more, proto_error *err);
int emb_pause(struct engine *e, const char *queue, size_t qlen, bool paused, proto_error *err);
void emb_release(struct engine *e, const uint64_t *ids, const uint64_t *tokens, size_t n,
		 size_t *n_ended);
bool emb_is_live(struct engine *e, uint64_t id, uint64_t token);

/* cues.c: recurring cues */
/* Creates the recurring cue of p (a push job with every_ms or cron). */
void emb_cue_new(struct engine *e, const struct eng_push *p, int64_t now, struct eng_pushed *o);
/* Fires what is due; the time of the next fire (INT64_MAX none). */
int64_t emb_cues_fire(struct engine *e, int64_t now);
int64_t emb_cues_next(const struct engine *e);
/* Start-up: the active cues into memory.  0, or -1 when a read failed. */
int emb_cues_load(struct engine *e);
void emb_cues_free(struct engine *e);
/* Cancels cue id: 1 done (or cancelled before), 0 no such cue, -1 the
 * read failed. */
int emb_cue_cancel(struct engine *e, uint64_t id);
int emb_cue_get(struct engine *e, uint64_t id, struct eng_cue *out, proto_error *err);
/* The queue of cue id (engine.h queue_of): 1, 0 none, -1 error. */
int emb_cue_queue(struct engine *e, uint64_t id, char *out, size_t *len);
int emb_cues_list(struct engine *e, const char *queue, size_t qlen, size_t max,
		  struct eng_cue **out, size_t *n, proto_error *err);

/* groups.c */
void emb_groups_init(struct queue *q);
void emb_groups_fini(struct engine *e, struct queue *q);
/* Whether q keeps limits (a queue with limits is not forgotten when empty). */
bool emb_queue_has_limits(const struct queue *q);
/* The group of that name (len 0: the default one), made when missing; the
 * caller counts a job into it (n_jobs). */
struct group *emb_group(struct engine *e, struct queue *q, const char *name, size_t len);
/* A job of g finished or went: g goes once it has none. */
void emb_group_unref(struct engine *e, struct queue *q, struct group *g);
/* Puts g on q's ring or takes it off, as it can give a job or not. */
void emb_group_review(struct queue *q, struct group *g);
/* Whether q's own limits let a claim through now. */
bool emb_queue_open(const struct queue *q);
/* A claim took a job of g: the rate buckets of g and q lose a token. */
void emb_group_took(struct engine *e, struct queue *q, struct group *g, int64_t now);
/* Buckets whose wake came: refilled, their groups on the ring again. */
void emb_throttle_tick(struct engine *e, int64_t now);
int64_t emb_throttle_next(const struct engine *e);
int emb_limit(struct engine *e, struct eng_limit_set *s, proto_error *err);
int emb_groups_list(struct engine *e, const char *queue, size_t qlen, size_t max,
		    struct eng_group_stats **out, size_t *n, struct eng_queue_limits *lims,
		    proto_error *err);
/* Reads the stored limits at open. */
int emb_limits_load(struct engine *e);

/* inspect.c */
int emb_get(struct engine *e, uint64_t id, struct eng_view *out, proto_error *err);
bool emb_unfinished(struct engine *e, uint64_t id);
int emb_queue_of(struct engine *e, uint64_t id, char *out, size_t *len);
int emb_list(struct engine *e, const char *queue, size_t qlen, int state, uint64_t after,
	     size_t limit, struct eng_view *out, size_t *n, uint64_t *next, proto_error *err);
void emb_view_free(struct engine *e, struct eng_view *v);
int emb_stats(struct engine *e, const char *queue, size_t qlen, uint64_t from, size_t limit,
	      struct eng_stats **out, size_t *n, uint64_t *next, proto_error *err);
void emb_metrics(struct engine *e, struct eng_metrics *out);

/* retention.c: deletes what finished before now - retention; returns
 * the time of the next sweep. */
int64_t emb_sweep(struct engine *e, int64_t now);
/* Records j's end in state (succeeded, dead or cancelled): indexes for
 * list and retention, counts; removes and releases j. */
void emb_retire(struct engine *e, struct job *j, int state, int64_t now);
/* Deletes every step of id (the steps' keys are id(8) name). */
void emb_steps_forget(struct engine *e, uint64_t id);
/* Deletes everything of finished execution id of queue in state
 * (finished at finished_at), as the retention sweep does. */
void emb_forget(struct engine *e, uint64_t id, const char *queue, size_t qlen, int state,
		int64_t finished_at);

#endif /* CUEQ_EMBEDDED_H */
