/*
 * syncer.c - the group-commit thread and the replies it holds (see
 * syncer.h).  The core does not wait for this thread: handing over a
 * batch is a queue append under a mutex, and the fsync runs here; only a
 * lone turn, with nothing else waiting for the core and no sync under way
 * or queued, is synced by the core itself (syncer_hand).
 */
#include "syncer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "proto.h"

struct reply_out {
	struct request *r;
	nng_msg *m;
	bool early;
};

struct syncer {
	const struct engine_ops *eo;
	struct engine *e;
	struct server *srv;
	int fsync;
	int64_t interval_ms;
	void (*on_fail)(void *);
	void (*on_synced)(void *);
	void *arg;

	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct replies *head, *tail;
	bool busy, stop, written;
	atomic_bool failed;
};

static void add(struct replies *b, struct request *r, nng_msg *m, bool early);

void replies_add(struct replies *b, struct request *r, nng_msg *m)
{
	add(b, r, m, false);
}

void replies_add_early(struct replies *b, struct request *r, nng_msg *m)
{
	add(b, r, m, true);
	b->n_early++;
}

static void add(struct replies *b, struct request *r, nng_msg *m, bool early)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct reply_out *v = realloc(b->v, cap * sizeof(*v));
		if (v == NULL) {
			log_error("out of memory in the core; stopping without answering this turn");
			abort();
		}
		b->v = v, b->cap = cap;
	}
	b->v[b->n++] = (struct reply_out){r, m, early};
}

/* Sends b's early replies now (the rest keep their order). */
static void send_early(struct server *srv, struct replies *b)
{
	size_t k = 0;
	if (b->n_early == 0)
		return;
	for (size_t i = 0; i < b->n; i++) {
		if (b->v[i].early) {
			metrics_sent(b->v[i].r);
			server_reply(srv, b->v[i].r, b->v[i].m);
		} else {
			b->v[k++] = b->v[i];
		}
	}
	b->n = k;
	b->n_early = 0;
}

void replies_send(struct server *srv, struct replies *b, bool drop)
{
	if (drop && b->n > 0)
		metrics_dropped(b->n);
	for (size_t i = 0; i < b->n; i++) {
		if (drop) {
			nng_msg_free(b->v[i].m);
			server_drop(srv, b->v[i].r);
		} else {
			metrics_sent(b->v[i].r);
			server_reply(srv, b->v[i].r, b->v[i].m);
		}
	}
	b->n = 0;
	b->n_early = 0;
}

void replies_free(struct server *srv, struct replies *b)
{
	if (b == NULL)
		return;
	if (b->n && srv)
		replies_send(srv, b, true);
	free(b->v);
	free(b);
}

static void fail(struct syncer *s)
{
	s->failed = true;
	s->on_fail(s->arg);
}

static void interval_wait(struct syncer *s)
{
	struct timespec ts;
	int64_t at = proto_mono_ms() + s->interval_ms;
	ts.tv_sec = at / 1000;
	ts.tv_nsec = (at % 1000) * 1000000;
	if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT || !s->written || s->failed)
		return;
	s->written = false;
	pthread_mutex_unlock(&s->mu);
	int64_t t0 = metrics_clock_ns();
	if (s->eo->sync(s->e) != 0) {
		log_error("cannot make writes durable (interval sync); the broker stops");
		fail(s);
	} else {
		metrics_synced(metrics_clock_ns() - t0, 0);
		s->on_synced(s->arg);
	}
	pthread_mutex_lock(&s->mu);
}

static void *syncer_main(void *arg)
{
	struct syncer *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->head == NULL && !s->stop) {
			if (s->fsync == FSYNC_INTERVAL)
				interval_wait(s);
			else
				pthread_cond_wait(&s->cv, &s->mu);
		}
		if (s->head == NULL && s->stop)
			break;
		struct replies *b = s->head;
		s->head = s->tail = NULL;
		s->busy = true;
		pthread_mutex_unlock(&s->mu);

		bool need = false;
		size_t n = 0;
		for (struct replies *x = b; x; x = x->next)
			need |= x->sync, n += x->n;
		if (need && !s->failed) {
			int64_t t0 = metrics_clock_ns();
			if (s->eo->sync(s->e) != 0) {
				log_error("cannot make writes durable; their requests get no answer and the broker stops");
				fail(s);
			} else {
				metrics_synced(metrics_clock_ns() - t0, n); /* one group commit */
				s->on_synced(s->arg);
			}
		}
		bool drop = s->failed;
		while (b) {
			struct replies *next = b->next;
			replies_send(s->srv, b, drop);
			replies_free(s->srv, b);
			b = next;
		}
		pthread_mutex_lock(&s->mu);
		s->busy = false;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int syncer_start(const struct engine_ops *eo, struct engine *e, struct server *srv, int fsync,
		 int64_t interval_ms, void (*on_fail)(void *), void (*on_synced)(void *), void *arg,
		 struct syncer **out)
{
	struct syncer *s = calloc(1, sizeof(*s));
	pthread_condattr_t a;

	*out = NULL;
	if (s == NULL)
		return -1;
	s->eo = eo, s->e = e, s->srv = srv, s->fsync = fsync, s->interval_ms = interval_ms;
	s->on_fail = on_fail, s->on_synced = on_synced, s->arg = arg;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &a);
	pthread_condattr_destroy(&a);
	if (pthread_create(&s->thr, NULL, syncer_main, s) != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

struct replies *syncer_hand(struct syncer *s, struct replies *b, bool durable, bool idle)
{
	bool need_sync = durable && s->fsync == FSYNC_ALWAYS;

	if (!s->failed)
		send_early(s->srv, b); /* written: they wait for nothing else */
	pthread_mutex_lock(&s->mu);
	if (durable)
		s->written = true;
	if (s->failed || (b->n == 0 && !need_sync) || (!need_sync && !s->busy && s->head == NULL)) {
		/* nothing is queued before it (or nothing may leave at all) */
		bool drop = s->failed;
		pthread_mutex_unlock(&s->mu);
		replies_send(s->srv, b, drop);
		return b;
	}
	if (need_sync && idle && !s->busy && s->head == NULL) {
		/* the syncer's work, done here: only the core hands batches
		 * over, so none can queue behind b meanwhile.  No on_synced:
		 * that wakes a core waiting to write, and the core is here */
		s->busy = true;
		pthread_mutex_unlock(&s->mu);
		int64_t t0 = metrics_clock_ns();
		if (s->eo->sync(s->e) != 0) {
			log_error("cannot make writes durable; their requests get no answer and the broker stops");
			fail(s);
		} else {
			metrics_synced(metrics_clock_ns() - t0, b->n);
		}
		replies_send(s->srv, b, s->failed);
		pthread_mutex_lock(&s->mu);
		s->busy = false;
		pthread_mutex_unlock(&s->mu);
		return b;
	}
	b->sync = need_sync;
	b->next = NULL;
	if (s->tail)
		s->tail->next = b;
	else
		s->head = b;
	s->tail = b;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	struct replies *n = calloc(1, sizeof(*n));
	if (n == NULL) {
		log_error("out of memory in the core; stopping");
		abort();
	}
	return n;
}

void syncer_fail(struct syncer *s)
{
	s->failed = true;
}

bool syncer_failed(struct syncer *s)
{
	return s->failed;
}

void syncer_stop(struct syncer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thr, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
