/*
 * loop.c - the core turn, request IDs, parked claims and the syncer.
 * See loop.h for the shape; the invariant that keeps replies honest:
 * replies leave in turn order, and a reply that depends on a write leaves
 * only after that write is as durable as the fsync policy promises.
 */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "ops.h"
#include "ridcache.h"

#define RECENT_GONE 1024

struct out {
	struct request *r;
	nng_msg *m;
};

struct batch {
	struct out *v;
	size_t n, cap;
	bool sync;
	struct batch *next;
};

struct park {
	struct request *r;
	struct claim_args a;
	int64_t deadline; /* monotonic ms */
	struct rid_entry *rid_entry;
	bool gone; /* its connection closed: answer empty, lease nothing */
	uint8_t rid[PROTO_MAX_RID];
	size_t rid_len;
	bool rid_bin;
	struct park *next;
};

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

	pthread_t syncer;
	pthread_mutex_t smu;
	pthread_cond_t scv;
	struct batch *sq_head, *sq_tail;
	bool sbusy, sstop, written;
	atomic_int fatal; /* storage failed: set by either thread */

	struct ridcache *rids;
	struct park *parks;
	uint32_t recent_gone[RECENT_GONE]; /* closed connections, newest last */
	size_t n_recent_gone;
	struct batch *turn;
};

static void cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

static void deadline_ts(struct timespec *ts, int64_t mono_ms)
{
	ts->tv_sec = mono_ms / 1000;
	ts->tv_nsec = (mono_ms % 1000) * 1000000;
}

static void *xoom(void *p)
{
	if (p == NULL) {
		log_error("out of memory in the core; stopping without answering this turn");
		abort();
	}
	return p;
}

/* ---- replies ---- */

static void add_out(struct batch *b, struct request *r, nng_msg *m)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->v = xoom(realloc(b->v, b->cap * sizeof(*b->v)));
	}
	b->v[b->n++] = (struct out){r, m};
}

/* Queues reply m (answer code: CUEQ_OK or the error) for r, remembers it
 * under its request ID and answers the repeats that waited for it.  A
 * "try again" answer is not remembered: the retry must be able to work. */
static void answer(struct loop *l, struct request *r, nng_msg *m, int code, struct rid_entry *e)
{
	if (e != NULL) {
		struct request *w = e->waiters;
		e->waiters = NULL;
		if (code == CUEQ_ERR_UNAVAILABLE || code == CUEQ_ERR_INTERNAL)
			ridcache_remove(l->rids, e);
		else
			ridcache_done(l->rids, e, nng_msg_body(m), nng_msg_len(m));
		while (w) {
			struct request *next = w->next;
			nng_msg *copy;
			if (nng_msg_dup(&copy, m) == 0)
				add_out(l->turn, w, copy);
			else
				server_drop(l->srv, w);
			w = next;
		}
	}
	add_out(l->turn, r, m);
}

static nng_msg *new_msg(proto_writer *w)
{
	nng_msg *m;
	xoom(nng_msg_alloc(&m, 0) == 0 ? (void *)1 : NULL);
	proto_writer_init(w, m);
	return m;
}

static nng_msg *error_msg(const void *rid, size_t rid_len, bool rid_bin, int code, const char *msg)
{
	proto_writer w;
	nng_msg *m = new_msg(&w);
	proto_reply_error(&w.pk, rid, rid_len, rid_bin, code, msg);
	return m;
}

/* ---- requests ---- */

static void run_op(struct loop *l, struct request *r, const struct op *op,
		   const msgpack_object *root, const void *rid, size_t rid_len, bool rid_bin,
		   struct rid_entry *e)
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
		.synced = l->fsync == FSYNC_ALWAYS,
	};
	int rc = op->fn(&c);
	if (rc == OP_PARKED) {
		struct park *p = xoom(calloc(1, sizeof(*p)));
		nng_msg_free(m);
		p->r = r;
		p->a = c.park;
		p->deadline = proto_mono_ms() + c.park.wait_ms;
		p->rid_entry = e;
		memcpy(p->rid, rid, rid_len);
		p->rid_len = rid_len;
		p->rid_bin = rid_bin;
		for (size_t i = 0; i < l->n_recent_gone; i++)
			p->gone |= l->recent_gone[i] == r->pipe; /* closed before it arrived */
		struct park **tail = &l->parks;
		while (*tail)
			tail = &(*tail)->next;
		*tail = p;
		return;
	}
	if (rc != CUEQ_OK || w.failed) {
		nng_msg_free(m);
		if (rc == CUEQ_OK)
			rc = proto_fail(&c.err, CUEQ_ERR_INTERNAL, "the broker could not build the reply");
		m = error_msg(rid, rid_len, rid_bin, c.err.code, c.err.msg);
	}
	answer(l, r, m, rc, e);
}

static void handle(struct loop *l, struct request *r)
{
	const void *buf = nng_msg_body(r->msg);
	size_t len = nng_msg_len(r->msg);
	msgpack_unpacked up;
	proto_error err = {0};
	const char *rid = NULL, *opname = NULL;
	size_t rid_len = 0, oplen = 0;
	uint64_t v = 0;
	char msg[sizeof(err.msg)];

	msgpack_unpacked_init(&up);
	if (len > PROTO_MAX_FRAME) {
		snprintf(msg, sizeof(msg), "request is %zu bytes; the limit is %u: send smaller batches",
			 len, PROTO_MAX_FRAME);
		add_out(l->turn, r, error_msg(NULL, 0, false, CUEQ_ERR_TOO_LARGE, msg));
		return;
	}
	if (proto_decode(buf, len, &up, &err) != CUEQ_OK) {
		msgpack_unpacked_destroy(&up);
		add_out(l->turn, r, error_msg(NULL, 0, false, err.code, err.msg));
		return;
	}
	const msgpack_object *root = &up.data;
	if (proto_bytes(root, "rid", true, PROTO_MAX_RID, &rid, &rid_len, &err) != CUEQ_OK ||
	    rid_len == 0) {
		if (err.code == CUEQ_OK)
			proto_fail(&err, CUEQ_ERR_BAD_REQUEST, "field 'rid' must not be empty");
		add_out(l->turn, r, error_msg(NULL, 0, false, CUEQ_ERR_BAD_REQUEST, err.msg));
		goto out;
	}
	bool rid_bin = proto_get(root, "rid")->type == MSGPACK_OBJECT_BIN;
	if (proto_uint(root, "v", true, 0, UINT32_MAX, &v, &err) != CUEQ_OK || v != PROTO_VERSION) {
		if (err.code == CUEQ_OK)
			proto_fail(&err, CUEQ_ERR_BAD_REQUEST,
				   "protocol version %llu is not spoken here; this broker speaks %d",
				   (unsigned long long)v, PROTO_VERSION);
		add_out(l->turn, r, error_msg(rid, rid_len, rid_bin, err.code, err.msg));
		goto out;
	}
	if (proto_str(root, "op", true, 64, &opname, &oplen, &err) != CUEQ_OK) {
		add_out(l->turn, r, error_msg(rid, rid_len, rid_bin, CUEQ_ERR_BAD_REQUEST, err.msg));
		goto out;
	}
	const struct op *op = ops_find(opname, oplen);
	if (op == NULL) {
		snprintf(msg, sizeof(msg), "unknown op '%.*s'; this broker knows: %s",
			 (int)(oplen > 32 ? 32 : oplen), opname, ops_names());
		for (char *p = msg; *p; p++)
			if (*p < 0x20 || *p == 0x7f)
				*p = '?';
		add_out(l->turn, r, error_msg(rid, rid_len, rid_bin, CUEQ_ERR_BAD_REQUEST, msg));
		goto out;
	}
	struct rid_entry *e = NULL;
	if (op->flags & OP_WRITE) {
		uint64_t hash = proto_hash(PROTO_HASH_INIT, buf, len);
		e = ridcache_find(l->rids, rid, rid_len);
		if (e != NULL && e->body_hash != hash) {
			add_out(l->turn, r,
				error_msg(rid, rid_len, rid_bin, CUEQ_ERR_BAD_REQUEST,
					  "this request ID was already used for a different request; use a new ID for each request and the same one only to resend it unchanged"));
			goto out;
		}
		if (e != NULL && e->done) {
			add_out(l->turn, r, xoom(ridcache_reply(e)));
			goto out;
		}
		if (e != NULL) { /* the first is still in progress */
			r->next = e->waiters;
			e->waiters = r;
			goto out;
		}
		e = ridcache_add(l->rids, rid, rid_len, hash, proto_mono_ms());
	}
	run_op(l, r, op, root, rid, rid_len, rid_bin, e);
out:
	msgpack_unpacked_destroy(&up);
}

/* ---- parked claims ---- */

static void serve_parks(struct loop *l, bool all_final)
{
	int64_t now = proto_mono_ms();
	struct park **pp = &l->parks;
	while (*pp) {
		struct park *p = *pp;
		bool final = all_final || p->gone || now >= p->deadline;
		if (p->gone)
			p->a.max = 0; /* nobody would get the jobs */
		if (!final && !l->eo->has_ready(l->e, p->a.queue, p->a.qlen)) {
			pp = &p->next;
			continue;
		}
		proto_writer w;
		nng_msg *m = new_msg(&w);
		struct opctx c = {
			.eo = l->eo,
			.e = l->e,
			.pk = &w.pk,
			.rid = p->rid,
			.rid_len = p->rid_len,
			.rid_bin = p->rid_bin,
			.synced = l->fsync == FSYNC_ALWAYS,
		};
		int rc = ops_claim(&c, &p->a, final);
		if (rc == OP_PARKED) {
			nng_msg_free(m);
			pp = &p->next;
			continue;
		}
		if (rc != CUEQ_OK || w.failed) {
			nng_msg_free(m);
			if (rc == CUEQ_OK)
				rc = proto_fail(&c.err, CUEQ_ERR_INTERNAL, "the broker could not build the reply");
			m = error_msg(p->rid, p->rid_len, p->rid_bin, c.err.code, c.err.msg);
		}
		answer(l, p->r, m, rc, p->rid_entry);
		*pp = p->next;
		free(p);
	}
}

/* A closed connection cannot take its claim's answer: end its wait now
 * instead of leasing jobs to nobody. */
static void drop_gone(struct loop *l, const uint32_t *gone, size_t n)
{
	for (struct park *p = l->parks; p; p = p->next)
		for (size_t i = 0; i < n; i++)
			p->gone |= p->r->pipe == gone[i];
	/* its request may still be on its way to the core: remember it */
	for (size_t i = 0; i < n; i++) {
		if (l->n_recent_gone == RECENT_GONE) {
			memmove(l->recent_gone, l->recent_gone + RECENT_GONE / 2,
				RECENT_GONE / 2 * sizeof(uint32_t));
			l->n_recent_gone = RECENT_GONE / 2;
		}
		l->recent_gone[l->n_recent_gone++] = gone[i];
	}
}

static int64_t next_park_deadline(const struct loop *l)
{
	int64_t d = INT64_MAX;
	for (const struct park *p = l->parks; p; p = p->next)
		if (p->deadline < d)
			d = p->deadline;
	return d;
}

/* ---- syncer ---- */

static void send_batch(struct loop *l, struct batch *b, bool drop)
{
	for (size_t i = 0; i < b->n; i++) {
		if (drop) {
			nng_msg_free(b->v[i].m);
			server_drop(l->srv, b->v[i].r);
		} else {
			server_reply(l->srv, b->v[i].r, b->v[i].m);
		}
	}
	b->n = 0;
}

static void free_batch(struct batch *b)
{
	if (b) {
		free(b->v);
		free(b);
	}
}

static void *syncer_main(void *arg)
{
	struct loop *l = arg;
	pthread_mutex_lock(&l->smu);
	for (;;) {
		while (l->sq_head == NULL && !l->sstop) {
			if (l->fsync == FSYNC_INTERVAL) {
				struct timespec ts;
				deadline_ts(&ts, proto_mono_ms() + l->fsync_interval_ms);
				if (pthread_cond_timedwait(&l->scv, &l->smu, &ts) == ETIMEDOUT &&
				    l->written) {
					l->written = false;
					pthread_mutex_unlock(&l->smu);
					if (l->eo->sync(l->e) != 0) {
						l->fatal = 1;
						loop_stop(l);
					}
					pthread_mutex_lock(&l->smu);
				}
			} else {
				pthread_cond_wait(&l->scv, &l->smu);
			}
		}
		if (l->sq_head == NULL && l->sstop)
			break;
		struct batch *b = l->sq_head;
		l->sq_head = l->sq_tail = NULL;
		l->sbusy = true;
		pthread_mutex_unlock(&l->smu);

		bool need = false, failed = l->fatal;
		for (struct batch *x = b; x; x = x->next)
			need |= x->sync;
		if (need && !failed && l->eo->sync(l->e) != 0) {
			log_error("cannot make writes durable; their requests get no answer and the broker stops");
			failed = true;
			l->fatal = 1;
			loop_stop(l);
		}
		while (b) {
			struct batch *next = b->next;
			send_batch(l, b, failed);
			free_batch(b);
			b = next;
		}
		pthread_mutex_lock(&l->smu);
		l->sbusy = false;
	}
	pthread_mutex_unlock(&l->smu);
	return NULL;
}

static void dispatch(struct loop *l, bool durable)
{
	struct batch *b = l->turn;
	bool need_sync = durable && l->fsync == FSYNC_ALWAYS;

	pthread_mutex_lock(&l->smu);
	if (durable)
		l->written = true;
	if (b->n == 0 || (!need_sync && !l->sbusy && l->sq_head == NULL)) {
		pthread_mutex_unlock(&l->smu);
		send_batch(l, b, false); /* nothing is queued before it */
		return;
	}
	b->sync = need_sync;
	b->next = NULL;
	if (l->sq_tail)
		l->sq_tail->next = b;
	else
		l->sq_head = b;
	l->sq_tail = b;
	pthread_cond_signal(&l->scv);
	pthread_mutex_unlock(&l->smu);
	l->turn = xoom(calloc(1, sizeof(*l->turn)));
}

/* ---- the loop ---- */

int loop_new(const struct engine_ops *eo, struct engine *e, int fsync, int64_t fsync_interval_ms,
	     struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));
	*out = NULL;
	if (l == NULL)
		return -1;
	l->eo = eo, l->e = e, l->fsync = fsync, l->fsync_interval_ms = fsync_interval_ms;
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->smu, NULL);
	cond_init_mono(&l->cv);
	cond_init_mono(&l->scv);
	l->rids = ridcache_new();
	l->turn = calloc(1, sizeof(*l->turn));
	if (l->rids == NULL || l->turn == NULL) {
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

/* Writes the turn and passes its replies on; false when storage failed. */
static bool end_turn(struct loop *l)
{
	bool durable = false;
	if (l->eo->commit(l->e, &durable) != 0) {
		log_error("cannot write to storage; this turn's requests get no answer and the broker stops");
		l->fatal = 1;
		send_batch(l, l->turn, true);
		return false;
	}
	dispatch(l, durable);
	return true;
}

int loop_run(struct loop *l)
{
	int64_t next_due = 0; /* wall ms */
	uint32_t *gone = NULL;
	size_t capgone = 0;

	if (pthread_create(&l->syncer, NULL, syncer_main, l) != 0) {
		log_error("cannot start the syncer thread");
		return -1;
	}
	for (;;) {
		pthread_mutex_lock(&l->mu);
		while (l->in_head == NULL && l->ngone == 0 && !l->stop) {
			int64_t mono = proto_mono_ms(), wall = proto_now_ms();
			int64_t wake = next_park_deadline(l);
			if (next_due != INT64_MAX && mono + (next_due - wall) < wake)
				wake = mono + (next_due - wall);
			if (wake <= mono)
				break;
			struct timespec ts;
			deadline_ts(&ts, wake);
			pthread_cond_timedwait(&l->cv, &l->mu, &ts);
		}
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
		bool stop = l->stop;
		pthread_mutex_unlock(&l->mu);

		l->eo->tick(l->e, proto_now_ms()); /* expiries before requests */
		while (in) {
			struct request *next = in->next;
			if (stop)
				server_drop(l->srv, in); /* arrived during shutdown */
			else
				handle(l, in);
			in = next;
		}
		drop_gone(l, gone, ngone);
		serve_parks(l, stop);
		ridcache_trim(l->rids, proto_mono_ms());
		next_due = l->eo->next_due(l->e); /* this turn may have set timers */
		if (!end_turn(l) || stop)
			break;
	}
	free(gone);
	pthread_mutex_lock(&l->smu);
	l->sstop = true;
	pthread_cond_signal(&l->scv);
	pthread_mutex_unlock(&l->smu);
	pthread_join(l->syncer, NULL);
	if (!l->fatal && l->eo->sync(l->e) != 0)
		l->fatal = 1;
	return l->fatal ? -1 : 0;
}

void loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	while (l->parks) {
		struct park *p = l->parks;
		l->parks = p->next;
		free(p);
	}
	ridcache_free(l->rids);
	free_batch(l->turn);
	free(l->gone);
	pthread_mutex_destroy(&l->mu);
	pthread_mutex_destroy(&l->smu);
	pthread_cond_destroy(&l->cv);
	pthread_cond_destroy(&l->scv);
	free(l);
}
