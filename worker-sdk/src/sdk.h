/*
 * sdk.h - libcueq's private interface between its files.
 *
 * Everything the public calls share lives here: the thread's last-error
 * sentence, the client (one nng REQ socket, a small pool of request
 * contexts), the request engine that sends one request and retries it with
 * the same request ID until an answer or the deadline, argument checks that
 * turn bad input into a sentence before anything is sent, and readers for
 * the untrusted fields of a reply.  The engine returns only good replies
 * (ok true): a broker error becomes the call's error code with the broker's
 * sentence as the last error.
 */
#ifndef CUEQ_SDK_H
#define CUEQ_SDK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>
#include <nng/nng.h>

#include "cueq/cueq.h"
#include "proto.h"

#define SDK_RID_LEN 16	 /* random bytes in each request ID */
#define SDK_POOL_MAX 32	 /* idle request contexts kept per client */
#define SDK_FRAME_MARGIN 4096 /* room for a request's non-payload bytes */
#define SDK_JOB_OVERHEAD 192  /* a pushed job's bytes beyond queue, payload, keys */
#define SDK_MIN_KEY_TTL_MS 1000LL
#define SDK_MAX_KEY_TTL_MS 2592000000LL /* 30 days */
#define SDK_MAX_BACKOFF_MS 86400000LL	/* a retry delay or its cap: 1 day */
#define SDK_MAX_BACKOFF_FACTOR 100
#define SDK_MIN_EVERY_MS 1000LL
#define SDK_MAX_EVERY_MS 315360000000LL /* 10 years */
#define SDK_MAX_CRON 128 /* bytes of a cron expression */
#define SDK_MAX_TZ 64	 /* bytes of a zone name */

/* ---- errors (errors.c) --------------------------------------------------- */

/* Sets the thread's last-error sentence; returns code. */
int sdk_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A reply that did not make sense: PROTOCOL, naming the op and the flaw. */
int sdk_bad_reply(const char *op, const proto_error *e);
/* The thread's current last-error sentence (to carry it across threads). */
const char *sdk_last_error(void);

/* ---- time and waiting (sync.c) ---------------------------------------- */

/* A condition variable that waits on the monotonic clock. */
int sdk_cond_init(pthread_cond_t *cv);
/* Waits on cv until signalled or the proto_mono_ms() time deadline. */
void sdk_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline);
void sdk_sleep_ms(int64_t ms);
/* Fills buf with random bytes (getrandom, else /dev/urandom, else a
 * clock-seeded generator: request IDs need uniqueness, not secrecy). */
void sdk_random(void *buf, size_t n);

/* ---- argument checks (check.c) ------------------------------------------ */

int sdk_check_queue(const char *queue);
/* A group name, or NULL (none): CUEQ_OK or CUEQ_ERR_INVALID said. */
int sdk_check_group(const char *group);
/* what: "execution ID" or "lease token"; must be 1-32 bytes of [0-9a-zA-Z]. */
int sdk_check_id(const char *what, const char *s);
/* A result or error text: NULL is fine, else at most CUEQ_MAX_TEXT bytes. */
int sdk_check_text(const char *what, const char *s);
int sdk_check_lease(const char *what, int64_t lease_ms, bool zero_ok);
/* An idempotency or unique key: NULL is fine, else 1-CUEQ_MAX_KEY bytes. */
int sdk_check_key(const char *what, const char *s);
/* A step name: 1-128 bytes of [A-Za-z0-9._:-]. */
int sdk_check_step_name(const char *name);
/* A step value: at most CUEQ_MAX_STEP_VALUE bytes. */
int sdk_check_step_value(const void *value, size_t len);
/* Validates one job to push; *wire_bytes gets its size estimate. */
int sdk_check_job(const char *queue, const void *payload, size_t len, const cueq_push_opts *o,
		  size_t *wire_bytes);

/* ---- reading replies (check.c) --------------------------------------------
 * Each returns CUEQ_OK or a proto error code with e set; callers turn any
 * failure into sdk_bad_reply(). */
int sdk_get_id(const msgpack_object *m, const char *key, bool required, char out[CUEQ_ID_SIZE],
	       proto_error *e);
/* A state name into a cueq_state. */
int sdk_get_state(const msgpack_object *m, const char *key, bool required, int *out,
		  proto_error *e);
/* A malloc'd NUL-terminated copy of a str field; *out stays NULL when absent. */
int sdk_get_text(const msgpack_object *m, const char *key, size_t max, char **out,
		 proto_error *e);
/* The per-item outcome of ack/nack/extend results: *code is CUEQ_OK or the
 * item's error; the item's msg becomes the thread's last error. */
int sdk_item_status(const msgpack_object *m, int *code, proto_error *e);
/* The results array of a batch reply, exactly n maps. */
int sdk_get_results(const msgpack_object *root, size_t n, const msgpack_object_array **out,
		    proto_error *e);
/* The optional array of step maps under key (`steps` of a steps or get
 * reply) into *out[*n], in the broker's order; on failure what was read is
 * freed and *out is NULL. */
int sdk_get_steps(const msgpack_object *m, const char *key, cueq_step **out, size_t *n,
		  proto_error *e);

/* ---- recurring cues (cues.c) ------------------------------------------- */

/* Fills x from a cue map m (of get or cues); the payload only when detail
 * is set (cues gives the newest of the executions, get the last ten).  On failure what was read stays in x for
 * sdk_cue_clear. */
int sdk_read_cue(const msgpack_object *m, bool detail, cueq_cue *x, proto_error *e);
/* Optional reply fields (inspect.c): a uint that fits, and Unix ms; absent
 * leaves *out alone. */
int sdk_get_u32(const msgpack_object *m, const char *key, uint32_t *out, proto_error *e);
int sdk_get_ms(const msgpack_object *m, const char *key, int64_t *out, proto_error *e);
/* Frees what x holds and zeroes it. */
void sdk_cue_clear(cueq_cue *x);

/* ---- the client and its request engine (client.c) ----------------------- */

struct ctx_slot {
	nng_ctx ctx;
	nng_aio *aio;
	struct ctx_slot *cut_next; /* in its sdk_cut's list while being sent */
};

/*
 * A group of calls another thread can cut short: a worker's claims, its
 * outcomes, its extensions.  After sdk_cut(g, grace_ms), a call of the
 * group sends no attempt later than grace_ms after the cut or after its
 * own start, whichever is later, instead of retrying until its deadline;
 * an attempt still waiting for a connection to be sent on is abandoned at
 * once (and sent again within that time).  An attempt already handed to a
 * connection is left to finish: the broker may have applied it (a claim's
 * leases), and its answer comes soon or its connection drops, which ends
 * it too.  A call that gives up this way fails as UNREACHABLE.
 */
struct sdk_cut {
	pthread_mutex_t mu;
	int64_t at;		  /* proto_mono_ms() of the cut; 0: not cut */
	int64_t grace_ms;
	struct ctx_slot *sending; /* the group's attempts not yet sent */
};

/* 0, or -1 when the mutex cannot be made. */
int sdk_cut_init(struct sdk_cut *g);
void sdk_cut_destroy(struct sdk_cut *g);
/* Cuts g's calls as described above (a second cut changes nothing). */
void sdk_cut(struct sdk_cut *g, int64_t grace_ms);
/* Makes g uncut again, for calls to come. */
void sdk_cut_reset(struct sdk_cut *g);

/* Told (on an nng thread, which holds the socket's lock: touch no socket)
 * when a connection to the broker is made (up) or lost. */
typedef void (*sdk_watch_fn)(void *arg, bool up);
/* Sets the one watcher of c's connections (NULL: none); it is told at once
 * of a connection open now. */
void sdk_client_watch(cueq_client *c, sdk_watch_fn fn, void *arg);

struct cueq_client {
	nng_socket sock;
	bool sock_open;
	char *url;
	char *auth;
	int64_t connect_timeout_ms, request_timeout_ms, retry_deadline_ms;
	char worker_name[PROTO_MAX_WORKER + 1]; /* host:pid, recorded by claims */
	bool detach_claims;			/* cueq_client_opts */
	uint8_t cid[16];			/* client ID: random, per client */

	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cv;
	bool mu_init;
	unsigned pipes_added; /* connections made so far */
	unsigned pipes_live;  /* connections open now */
	sdk_watch_fn watch;   /* told of each connection made and lost */
	void *watch_arg;
	struct ctx_slot *pool[SDK_POOL_MAX];
	size_t n_pool;
};

/* One request under construction: header written, the caller packs exactly
 * the n_fields op fields it announced into pk. */
struct sdk_request {
	nng_msg *msg;
	proto_writer w;
	const char *op;
	uint8_t rid[SDK_RID_LEN];
	struct sdk_cut *cut; /* NULL, or the group the call belongs to */
};

/* A good reply: root is its map.  Free with sdk_reply_free. */
struct sdk_reply {
	nng_msg *msg;
	msgpack_unpacked up;
	bool up_init;
	const msgpack_object *root;
};

int sdk_request_begin(cueq_client *c, struct sdk_request *rq, const char *op, size_t n_fields);
/* The packer to write the op fields with. */
static inline msgpack_packer *sdk_pk(struct sdk_request *rq)
{
	return &rq->w.pk;
}
/* Sends rq (always consumed) and waits for its good reply.  Each attempt
 * may take request_timeout_ms + extra_ms; attempts repeat (same bytes, same
 * rid) on timeout or UNAVAILABLE until retry_deadline_ms + extra_ms has
 * passed, or until deadline (a proto_mono_ms() time) when it is earlier and
 * not 0, or until rq->cut (set after sdk_request_begin) says to stop. */
int sdk_call(cueq_client *c, struct sdk_request *rq, int64_t extra_ms, int64_t deadline,
	     struct sdk_reply *rp);
void sdk_reply_free(struct sdk_reply *rp);

#endif /* CUEQ_SDK_H */
