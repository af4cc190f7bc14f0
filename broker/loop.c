/*
 * loop.c - the core turn and request IDs; parked claims are park.c, the
 * group-commit thread syncer.c.  See loop.h for the shape; the invariant
 * that keeps replies honest: a reply that depends on a write leaves only
 * after that write is as durable as the fsync policy promises (replies
 * leave in turn order, but for a claim that depends on no write waiting
 * for a sync: its own lease need not be synced), and after a failed write
 * or sync none leaves.
 */
#define _GNU_SOURCE /* memmem */
#include "loop.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "holders.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "park.h"
#include "ridcache.h"
#include "syncer.h"

/* Jobs pushed in one turn at most: a turn stays short under a flood of
 * pushes, so workers' claims and acks get many turns a second. */
#define PRODUCE_PER_TURN 512
/* Repeats of one request waiting for its answer (a parked claim resent):
 * each holds a server context, so they are bounded too. */
#define MAX_WAITERS 8

struct loop {
	const struct engine_ops *eo;
	struct engine *e;
	struct server *srv;
	int fsync;
	int64_t fsync_interval_ms;

	pthread_mutex_t mu; /* inbound */
	pthread_cond_t cv;
	struct request *in_head, *in_tail;
	uint32_t *gone;
	size_t ngone, capgone;
	bool stop;

	struct request *deferred_head, *deferred_tail; /* pushes for the next turn */
	size_t produced; /* jobs pushed this turn */

	struct syncer *syncer;
	bool fatal; /* storage failed */
	bool commit_pending; /* a sync was under way at the turn's end: the
			      * writes and replies wait for the next turn */
	bool synced;	     /* a sync ended since the turn began (under mu) */
	struct ridcache *rids;
	struct holders *holders; /* NULL: --release-on-disconnect off */
	struct parks parks;
	struct replies *turn;
	size_t max_frame;	/* --max-frame */
	struct auth *auth;	/* --auth: the principals; NULL: no authentication */
	struct auth *auth_next; /* a reload, taken at the next turn (under mu) */
};

static void *xoom(void *p)
{
	if (p == NULL) {
		log_error("out of memory in the core; stopping without answering this turn");
		abort();
	}
	return p;
}

/* ---- replies ---- */

/* Records under r's connection the leases a claim's memo gives; when the
 * connection closed already (its request was handled after the close was),
 * the answer cannot reach it: they end now. */
static void hold(struct loop *l, const struct request *r, const void *memo, size_t len)
{
	uint64_t ids[CUEQ_MAX_CLAIM], tokens[CUEQ_MAX_CLAIM];
	size_t n, ended;
	if (l->holders == NULL || memo == NULL || r->pipe == 0 || /* 0: no connection known */
	    (n = ops_memo_leases(memo, len, ids, tokens)) == 0)
		return;
	if (server_pipe_open(l->srv, r->pipe))
		holders_add(l->holders, r->pipe, ids, tokens, n);
	else
		l->eo->release(l->e, ids, tokens, n, &ended);
}

/* Queues reply m (answer code: CUEQ_OK or the error) for r, remembers it
 * under its request ID (when keep; as memo when the op made one: ownership
 * passes) and answers the repeats that waited for it.  A "try again"
 * answer is not remembered: the retry must be able to work; nor is one the
 * engine gives again by itself (OP_REPLAYS), which keeps the loop's memory
 * for the requests that need it. */
static void answer_as(struct loop *l, struct request *r, nng_msg *m, int code,
		      struct rid_entry *e, bool keep, void *memo, size_t memo_len, bool early)
{
	if (code == CUEQ_OK) { /* before the memo passes to the cache */
		hold(l, r, memo, memo_len);
		for (struct request *w = e ? e->waiters : NULL; w != NULL; w = w->next)
			hold(l, w, memo, memo_len);
	}
	r->code = (uint8_t)code;
	if (e != NULL) {
		struct request *w = e->waiters;
		e->waiters = NULL;
		e->n_waiters = 0;
		e->code = (uint8_t)code;
		if (!keep || code == CUEQ_ERR_UNAVAILABLE || code == CUEQ_ERR_INTERNAL)
			ridcache_remove(l->rids, e);
		else if (memo != NULL)
			ridcache_done_memo(l->rids, e, memo, memo_len), memo = NULL;
		else
			ridcache_done(l->rids, e, nng_msg_body(m), nng_msg_len(m));
		while (w) {
			struct request *next = w->next;
			nng_msg *copy;
			w->flags |= REQ_REPLAYED;
			w->code = (uint8_t)code;
			if (nng_msg_dup(&copy, m) == 0)
				replies_add(l->turn, w, copy);
			else
				server_drop(l->srv, w);
			w = next;
		}
	}
	free(memo);
	if (early && code == CUEQ_OK)
		replies_add_early(l->turn, r, m);
	else
		replies_add(l->turn, r, m);
}

static void answer(void *arg, struct request *r, nng_msg *m, int code, struct rid_entry *e,
		   void *memo, size_t memo_len, bool early)
{
	answer_as(arg, r, m, code, e, true, memo, memo_len, early);
}

static nng_msg *new_msg(proto_writer *w)
{
	nng_msg *m;
	xoom(nng_msg_alloc(&m, 0) == 0 ? (void *)1 : NULL);
	proto_writer_init(w, m);
	return m;
}

static nng_msg *fail_msg(const void *rid, size_t rid_len, bool rid_bin, const proto_error *e)
{
	proto_writer w;
	nng_msg *m = new_msg(&w);
	proto_reply_fail(&w.pk, rid, rid_len, rid_bin, e);
	return m;
}

static nng_msg *error_msg(const void *rid, size_t rid_len, bool rid_bin, int code, const char *msg)
{
	proto_writer w;
	nng_msg *m = new_msg(&w);
	proto_reply_error(&w.pk, rid, rid_len, rid_bin, code, msg);
	return m;
}

/* Answers r with an error, its code told to metrics. */
static void refuse(struct loop *l, struct request *r, const void *rid, size_t rid_len, bool rid_bin,
		   int code, const char *msg)
{
	r->code = (uint8_t)code;
	replies_add(l->turn, r, error_msg(rid, rid_len, rid_bin, code, msg));
}

/* ---- requests ---- */

/* With --auth, who sent r: 0 with *who set (NULL for a ping without a
 * token, which any client may send), or UNAUTHORIZED with a sentence. */
static int authenticate(struct loop *l, const msgpack_object *root, const struct op *op,
			const struct principal **who, proto_error *err)
{
	const char *tok = NULL;
	size_t tl = 0;
	char roles[64];
	*who = NULL;
	if (proto_str(root, "auth", false, AUTH_MAX_TOKEN, &tok, &tl, err) != CUEQ_OK)
		return err->code;
	if (tok == NULL) {
		if (op != NULL && strcmp(op->name, "ping") == 0)
			return CUEQ_OK;
		return proto_fail(err, CUEQ_ERR_UNAUTHORIZED,
				  "this broker needs an auth token: give --auth-token T or set CUEQ_TOKEN (the tokens are in the broker's --auth file)");
	}
	if ((*who = auth_find(l->auth, tok, tl)) == NULL)
		return proto_fail(err, CUEQ_ERR_UNAUTHORIZED,
				  "the auth token is not one this broker knows: check --auth-token or CUEQ_TOKEN against the broker's --auth file");
	if (op != NULL && !(op->roles & (*who)->role))
		return proto_fail(err, CUEQ_ERR_UNAUTHORIZED,
				  "'%s' is a %s and may not %s: that needs the %s role", (*who)->name,
				  auth_role_name((*who)->role), op->name,
				  auth_roles_text(op->roles, roles, sizeof(roles)));
	return CUEQ_OK;
}

static void run_op(struct loop *l, struct request *r, const struct op *op,
		   const msgpack_object *root, const void *rid, size_t rid_len, bool rid_bin,
		   const uint8_t *scoped, size_t scoped_len, bool by_client, uint64_t hash,
		   const struct principal *who, struct rid_entry *e)
{
	proto_writer w;
	nng_msg *m = new_msg(&w);
	struct opctx c = {
		.eo = l->eo,
		.e = l->e,
		.req = root,
		.pk = &w.pk,
		.rid = rid,
		.rid_len = rid_len,
		.rid_bin = rid_bin,
		.scoped_rid = scoped,
		.scoped_len = scoped_len,
		.by_client = by_client,
		.synced = l->fsync == FSYNC_ALWAYS,
		.body_hash = hash,
		.who = who,
	};
	int rc = op->fn(&c);
	r->flags |= (c.recalled ? REQ_REPLAYED : 0) | (c.rid_reused ? REQ_RID_REUSED : 0) |
		    (rc == CUEQ_ERR_UNAUTHORIZED && who != NULL ? REQ_FORBIDDEN : 0);
	if (rc == OP_PARKED) {
		nng_msg_free(m);
		if (park_add(&l->parks, r, &c.park, e, rid, rid_len, rid_bin, &c.err) == 0)
			return;
		/* a bound is reached: answered now (not remembered: a retry works) */
		rc = c.err.code;
		m = error_msg(rid, rid_len, rid_bin, c.err.code, c.err.msg);
		answer_as(l, r, m, rc, e, true, NULL, 0, false);
		return;
	}
	if (rc != CUEQ_OK || w.failed) {
		nng_msg_free(m);
		if (rc == CUEQ_OK)
			rc = proto_fail(&c.err, CUEQ_ERR_INTERNAL, "the broker could not build the reply");
		m = fail_msg(rid, rid_len, rid_bin, &c.err);
	} else if (c.remember_ms > 0 && /* in the same write as the push */
		   l->eo->remember(l->e, scoped, scoped_len, hash, nng_msg_body(m), nng_msg_len(m),
				   proto_now_ms() + c.remember_ms) != 0) {
		c.replayable = false; /* not on disk: this memory keeps it */
	}
	answer_as(l, r, m, rc, e, !(op->flags & OP_REPLAYS) && !c.replayable,
		  rc == CUEQ_OK ? c.memo : NULL, c.memo_len, c.early);
	if (rc != CUEQ_OK)
		free(c.memo);
}

/* The remembered answer of e for its repeat r: the reply kept, or one
 * made from the op's memo (a claim: the leases it gave still live). */
static nng_msg *remembered(struct loop *l, const struct rid_entry *e, const void *rid,
			   size_t rid_len, bool rid_bin)
{
	if (!e->memo)
		return xoom(ridcache_reply(e));
	proto_writer w;
	nng_msg *m = new_msg(&w);
	struct opctx c = {
		.eo = l->eo,
		.e = l->e,
		.pk = &w.pk,
		.rid = rid,
		.rid_len = rid_len,
		.rid_bin = rid_bin,
	};
	int rc = ops_claim_again(&c, e->reply, e->reply_len);
	if (rc != CUEQ_OK || w.failed) {
		nng_msg_free(m);
		if (rc == CUEQ_OK)
			proto_fail(&c.err, CUEQ_ERR_INTERNAL, "the broker could not build the reply");
		m = error_msg(rid, rid_len, rid_bin, c.err.code, c.err.msg);
	}
	return m;
}

static void handle(struct loop *l, struct request *r)
{
	const void *buf = nng_msg_body(r->msg);
	size_t len = nng_msg_len(r->msg);
	msgpack_unpacked up;
	proto_error err = {0};
	struct proto_envelope env;
	char msg[sizeof(err.msg)];

	msgpack_unpacked_init(&up);
	if (len > l->max_frame) {
		snprintf(msg, sizeof(msg), "request is %zu bytes; the limit is %zu: send smaller batches",
			 len, l->max_frame);
		refuse(l, r, NULL, 0, false, CUEQ_ERR_TOO_LARGE, msg);
		return;
	}
	if (proto_decode(buf, len, &up, &err) != CUEQ_OK) {
		msgpack_unpacked_destroy(&up);
		refuse(l, r, NULL, 0, false, err.code, err.msg);
		return;
	}
	const msgpack_object *root = &up.data;
	if (proto_envelope(root, &env, &err) != CUEQ_OK) {
		refuse(l, r, env.rid, env.rid_len, env.rid_bin, err.code, err.msg);
		goto out;
	}
	const char *rid = env.rid, *opname = env.op;
	size_t rid_len = env.rid_len, oplen = env.op_len;
	bool rid_bin = env.rid_bin;
	const struct op *op = ops_find(opname, oplen);
	r->op = op != NULL ? (uint8_t)(ops_place(op) + 1) : 0;
	const struct principal *who = NULL;
	/* a webhook push its signature proved stands without a token */
	bool verified = (r->flags & REQ_VERIFIED) && op != NULL && strcmp(op->name, "push") == 0;
	if (l->auth != NULL && !verified && authenticate(l, root, op, &who, &err) != CUEQ_OK) {
		if (who != NULL) /* a known token, refused this op */
			r->flags |= REQ_FORBIDDEN;
		refuse(l, r, rid, rid_len, rid_bin, err.code, err.msg);
		goto out;
	}
	uint8_t scoped[PROTO_MAX_SCOPED_RID];
	size_t scoped_len = auth_scope_rid(&env, r->pipe, who, scoped);
	if (op != NULL && (op->flags & OP_PRODUCE) && l->produced >= PRODUCE_PER_TURN) {
		/* this turn took its share of new work: the next one takes this
		 * first, after the claims and acks that arrive meanwhile */
		r->next = NULL;
		if (l->deferred_tail)
			l->deferred_tail->next = r;
		else
			l->deferred_head = r;
		l->deferred_tail = r;
		goto out;
	}
	if (op != NULL && (op->flags & OP_PRODUCE)) {
		const msgpack_object *jobs = proto_get(root, "jobs");
		l->produced += jobs && jobs->type == MSGPACK_OBJECT_ARRAY ? jobs->via.array.size : 1;
	}
	if (op == NULL) {
		snprintf(msg, sizeof(msg), "unknown op '%.*s'; this broker knows: %s",
			 (int)(oplen > 32 ? 32 : oplen), opname, ops_names());
		for (char *p = msg; *p; p++)
			if (*p < 0x20 || *p == 0x7f)
				*p = '?';
		refuse(l, r, rid, rid_len, rid_bin, CUEQ_ERR_BAD_REQUEST, msg);
		goto out;
	}
	struct rid_entry *e = NULL;
	uint64_t hash = 0;
	if (op->flags & OP_WRITE) {
		hash = r->body_hash; /* proto_hash(PROTO_HASH_INIT, buf, len), by server.c */
		e = ridcache_find(l->rids, scoped, scoped_len);
		if (e != NULL && e->body_hash != hash) {
			r->flags |= REQ_RID_REUSED;
			refuse(l, r, rid, rid_len, rid_bin, CUEQ_ERR_BAD_REQUEST,
			       "this request ID was already used for a different request; use a new ID for each request and the same one only to resend it unchanged");
			goto out;
		}
		if (e != NULL && e->done) {
			r->flags |= REQ_REPLAYED;
			if (e->memo)
				hold(l, r, e->reply, e->reply_len);
			r->code = e->code;
			replies_add(l->turn, r, remembered(l, e, rid, rid_len, rid_bin));
			goto out;
		}
		if (e != NULL) { /* the first is still in progress */
			if (e->n_waiters >= MAX_WAITERS) {
				refuse(l, r, rid, rid_len, rid_bin, CUEQ_ERR_UNAVAILABLE,
				       "this request is already waiting for its answer, sent again too often: wait for the answer before sending it again");
				goto out;
			}
			e->n_waiters++;
			/* it gets a copy of the first one's answer: its frame can go */
			nng_msg_free(r->msg);
			r->msg = NULL;
			r->next = e->waiters;
			e->waiters = r;
			goto out;
		}
		e = ridcache_add(l->rids, scoped, scoped_len, hash, proto_mono_ms());
	}
	run_op(l, r, op, root, rid, rid_len, rid_bin, scoped, scoped_len, env.cid != NULL, hash, who,
	       e);
out:
	msgpack_unpacked_destroy(&up);
}

/* ---- the loop ---- */

static void cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

int loop_new(const struct engine_ops *eo, struct engine *e, int fsync, int64_t fsync_interval_ms,
	     bool release_on_disconnect, size_t max_parked, size_t max_parked_per_conn,
	     struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));
	*out = NULL;
	if (l == NULL)
		return -1;
	l->eo = eo, l->e = e, l->fsync = fsync, l->fsync_interval_ms = fsync_interval_ms;
	l->max_frame = PROTO_MAX_FRAME;
	pthread_mutex_init(&l->mu, NULL);
	cond_init_mono(&l->cv);
	l->rids = ridcache_new();
	l->turn = calloc(1, sizeof(*l->turn));
	if (release_on_disconnect)
		l->holders = holders_new(eo, e);
	park_limits(&l->parks, max_parked, max_parked_per_conn);
	if (l->rids == NULL || l->turn == NULL || (release_on_disconnect && l->holders == NULL)) {
		loop_free(l);
		return -1;
	}
	*out = l;
	return 0;
}

void loop_set_server(struct loop *l, struct server *s)
{
	l->srv = s;
}

void loop_set_max_frame(struct loop *l, size_t bytes)
{
	l->max_frame = bytes;
}

void loop_set_auth(struct loop *l, struct auth *a)
{
	pthread_mutex_lock(&l->mu);
	auth_free(l->auth_next);
	l->auth_next = a;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void loop_deliver(void *arg, struct request *r)
{
	struct loop *l = arg;
	pthread_mutex_lock(&l->mu);
	r->next = NULL;
	if (l->in_tail)
		l->in_tail->next = r;
	else
		l->in_head = r;
	l->in_tail = r;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void loop_pipe_gone(void *arg, uint32_t pipe)
{
	struct loop *l = arg;
	pthread_mutex_lock(&l->mu);
	if (l->ngone == l->capgone) {
		size_t cap = l->capgone ? l->capgone * 2 : 16;
		uint32_t *g = realloc(l->gone, cap * sizeof(*g));
		if (g == NULL) { /* the claim then just waits out its time */
			pthread_mutex_unlock(&l->mu);
			return;
		}
		l->gone = g, l->capgone = cap;
	}
	l->gone[l->ngone++] = pipe;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void loop_stop(struct loop *l)
{
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Fail-stop has a deadline: once storage failed the broker must end with
 * status 2, whatever its threads are doing.  The orderly way out (threads
 * joined, connections closed) normally takes milliseconds; should any step
 * of it hang, this ends the process after FAIL_STOP_MS all the same.  It
 * writes nothing: what was answered is on disk already. */
#define FAIL_STOP_MS 5000

static void *fail_stop_deadline(void *arg)
{
	(void)arg;
	struct timespec ts = {.tv_sec = FAIL_STOP_MS / 1000, .tv_nsec = 0};
	nanosleep(&ts, NULL);
	log_error("the broker did not stop within %d ms of the storage failure; exiting now (status 2)",
		  FAIL_STOP_MS);
	_exit(2);
	return NULL;
}

static void start_deadline(void)
{
	pthread_t thr;
	if (pthread_create(&thr, NULL, fail_stop_deadline, NULL) == 0)
		pthread_detach(thr);
}

static void arm_fail_stop(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, start_deadline);
}

static void stop_cb(void *arg)
{
	arm_fail_stop(); /* the syncer failed: the broker stops */
	loop_stop(arg);
}

static void synced_cb(void *arg)
{
	struct loop *l = arg;
	pthread_mutex_lock(&l->mu);
	l->synced = true;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Writes the turn and hands its replies over; false when storage failed
 * (now or in an earlier sync): then nothing of this turn is answered.
 * While a sync is under way (and wait is not set) nothing is written: the
 * turn's writes and replies join the next turn's, which starts when the
 * sync ends, so the core never waits for the syncer's fsync (it syncs a
 * lone turn itself only when nothing else waits for it). */
static bool end_turn(struct loop *l, bool wait)
{
	bool durable = false;
	int rc = l->eo->commit(l->e, wait, &durable);
	if (rc < 0) {
		log_error("cannot write to storage; this turn's requests get no answer and the broker stops (restart it: what was answered is on disk)");
		arm_fail_stop();
		syncer_fail(l->syncer);
		l->fatal = true;
		replies_send(l->srv, l->turn, true);
		return false;
	}
	l->commit_pending = rc > 0;
	if (!l->commit_pending) {
		pthread_mutex_lock(&l->mu);
		bool idle = l->in_head == NULL && l->deferred_head == NULL && l->ngone == 0;
		pthread_mutex_unlock(&l->mu);
		l->turn = syncer_hand(l->syncer, l->turn, durable, idle);
	}
	return !syncer_failed(l->syncer);
}

/* How far into a frame is_produce looks: past an envelope of the largest
 * v, rid, cid and auth in any order (about 490 bytes), where clients put
 * op (the SDK packs it second). */
#define PRODUCE_LOOK 512

static bool is_produce(const struct request *r)
{
	/* a cheap look for the op name "push" near the start of the frame:
	 * precise enough to order a turn (a push whose op comes later is
	 * ordered with the claims and acks, and its jobs still count against
	 * the turn's share in handle(), which decodes and checks every
	 * request anyway); looking through the whole frame cost the core
	 * about 4 ms for each frame padded to 4 MiB */
	const char *b = nng_msg_body(r->msg);
	size_t n = nng_msg_len(r->msg);
	static const char pat[] = "\xa2op\xa4push";
	if (n > PRODUCE_LOOK)
		n = PRODUCE_LOOK;
	return n >= sizeof(pat) - 1 && memmem(b, n, pat, sizeof(pat) - 1) != NULL;
}

/* The turn's order: what is not a push in arrival order, then the pushes
 * held back last turn, then the new pushes. */
static struct request *consumers_first(struct request *in, struct request *held)
{
	struct request *c = NULL, **ct = &c, *p = NULL, **pt = &p;
	while (in) {
		struct request *next = in->next;
		in->next = NULL;
		if (is_produce(in))
			*pt = in, pt = &in->next;
		else
			*ct = in, ct = &in->next;
		in = next;
	}
	if (held) {
		struct request *h = held;
		while (h->next)
			h = h->next;
		h->next = p;
		p = held;
	}
	*ct = p;
	return c;
}

/* Waits for requests, closed connections, a stop, or the next time the
 * engine or a parked claim has work (next_due: wall ms). */
static void wait_for_work(struct loop *l, int64_t next_due)
{
	while (l->in_head == NULL && l->deferred_head == NULL && l->ngone == 0 && !l->stop &&
	       !(l->commit_pending && l->synced)) {
		int64_t mono = proto_mono_ms(), wall = proto_now_ms();
		int64_t wake = park_next_deadline(&l->parks);
		if (next_due != INT64_MAX && mono + (next_due - wall) < wake)
			wake = mono + (next_due - wall);
		if (wake <= mono)
			break;
		struct timespec ts = {.tv_sec = wake / 1000, .tv_nsec = (wake % 1000) * 1000000};
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	}
}

/* What the metrics op asks of the loop (core thread, as the op runs). */
static void metrics_now(void *arg, struct metrics_now *now)
{
	struct loop *l = arg;
	now->parked = l->parks.n;
	now->connections = l->srv != NULL ? server_connections(l->srv) : 0;
}

int loop_run(struct loop *l)
{
	int64_t next_due = 0; /* wall ms */
	uint32_t *gone = NULL;
	size_t capgone = 0;

	metrics_start(metrics_now, l);
	if (syncer_start(l->eo, l->e, l->srv, l->fsync, l->fsync_interval_ms, stop_cb, synced_cb, l,
			 &l->syncer) != 0) {
		log_error("cannot start the syncer thread");
		return -1;
	}
	for (;;) {
		pthread_mutex_lock(&l->mu);
		wait_for_work(l, next_due);
		struct request *in = l->in_head;
		l->in_head = l->in_tail = NULL;
		size_t ngone = l->ngone;
		if (ngone > capgone) {
			gone = xoom(realloc(gone, ngone * sizeof(*gone)));
			capgone = ngone;
		}
		if (ngone)
			memcpy(gone, l->gone, ngone * sizeof(*gone));
		l->ngone = 0;
		l->synced = false;
		bool stop = l->stop;
		struct auth *reloaded = l->auth_next;
		l->auth_next = NULL;
		pthread_mutex_unlock(&l->mu);
		if (reloaded) { /* this thread alone reads the table */
			auth_free(l->auth);
			l->auth = reloaded;
		}

		l->eo->tick(l->e, proto_now_ms()); /* expiries before requests */
		/* claims, acks and the rest first; pushes held back last turn
		 * next, then the new ones, while the turn's share lasts */
		struct request *held = l->deferred_head;
		l->deferred_head = l->deferred_tail = NULL;
		l->produced = 0;
		in = consumers_first(in, held);
		while (in) {
			struct request *next = in->next;
			if (stop)
				server_drop(l->srv, in); /* arrived during shutdown */
			else
				handle(l, in);
			in = next;
		}
		park_gone(&l->parks, gone, ngone);
		for (size_t i = 0; l->holders != NULL && i < ngone; i++)
			holders_release(l->holders, gone[i]);
		park_serve(&l->parks, l->eo, l->e, l->fsync == FSYNC_ALWAYS, stop, answer, l);
		ridcache_trim(l->rids, proto_mono_ms());
		next_due = l->eo->next_due(l->e); /* this turn may have set timers */
		if (!end_turn(l, stop) || stop)
			break;
	}
	free(gone);
	if (syncer_failed(l->syncer))
		l->fatal = true;
	syncer_stop(l->syncer);
	l->syncer = NULL;
	if (!l->fatal && l->eo->sync(l->e) != 0)
		l->fatal = true;
	if (l->fatal)
		arm_fail_stop();
	return l->fatal ? -1 : 0;
}

void loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	park_free_all(&l->parks);
	ridcache_free(l->rids);
	holders_free(l->holders);
	replies_free(l->srv, l->turn);
	free(l->gone);
	auth_free(l->auth);
	auth_free(l->auth_next);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
}
