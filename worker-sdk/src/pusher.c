/*
 * pusher.c - the batching producer.
 *
 * add() copies a job into the pending batch and returns.  `inflight` sender
 * threads each take the pending batch when no request is in flight (so a
 * lone job leaves at once, with no linger), when it is full, when it has
 * waited `linger_ms`, or when someone flushes, and push it with one
 * blocking cueq_push_many: jobs batch while requests are in flight, at
 * most `inflight` requests are in flight, and while all senders are busy
 * and the pending batch is full, add() waits.  A
 * sender thread per in-flight request is the simplest correct shape: the
 * request engine (retries with the same request ID) is reused as it is.
 * on_result calls are serialised, so the callback never runs twice at once.
 * Each job's result (its own err: IDEMPOTENCY_MISMATCH, CONFLICT with the
 * holder, or a duplicate) goes to on_result; the first error also to
 * flush().  A batch is packed once by cueq_push_many, whose retries resend
 * the same bytes under the same request ID, so they never push it twice.
 */
#include "sdk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INFLIGHT 64

struct batch {
	cueq_job_spec *specs;
	void **tags;
	size_t n;
	size_t bytes;
	bool full;
};

struct cueq_pusher {
	cueq_client *c;
	size_t batch_max;
	int64_t linger_ms;
	unsigned inflight;
	cueq_push_cb cb;
	void *arg;

	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cv_send; /* senders: a batch may be due */
	pthread_cond_t cv_done; /* adders and flushers: room or answers */
	pthread_mutex_t cb_mu;	/* serialises on_result */
	bool sync_init;
	pthread_t *threads;
	unsigned n_threads;
	struct batch *pending;
	int64_t pending_since;
	uint64_t added, answered;
	unsigned flushers;
	unsigned sending; /* requests in flight */
	bool closing;
	int first_err;
	char first_msg[512];
};

static void batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		free((void *)b->specs[i].queue); /* queue, payload and keys share one block */
	free(b->specs);
	free(b->tags);
	free(b);
}

static struct batch *batch_new(size_t cap)
{
	struct batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->specs = calloc(cap, sizeof(*b->specs));
	b->tags = calloc(cap, sizeof(*b->tags));
	if (b->specs == NULL || b->tags == NULL) {
		batch_free(b);
		return NULL;
	}
	return b;
}

static void note_error(cueq_pusher *p, int rc, const char *msg)
{
	pthread_mutex_lock(&p->mu);
	if (p->first_err == CUEQ_OK) {
		p->first_err = rc;
		snprintf(p->first_msg, sizeof(p->first_msg), "%s", msg);
	}
	pthread_mutex_unlock(&p->mu);
}

static void send_batch(cueq_pusher *p, struct batch *b)
{
	cueq_push_result *res = calloc(b->n, sizeof(*res));
	int rc;

	if (res == NULL) {
		/* No room even for the answers: report the batch as failed. */
		note_error(p, CUEQ_ERR_NOMEM, "out of memory sending a batch of jobs");
		if (p->cb != NULL) {
			cueq_push_result r = { .err = CUEQ_ERR_NOMEM };
			pthread_mutex_lock(&p->cb_mu);
			for (size_t i = 0; i < b->n; i++)
				p->cb(p->arg, b->tags[i], &r);
			pthread_mutex_unlock(&p->cb_mu);
		}
		return;
	}
	rc = cueq_push_many(p->c, b->specs, b->n, res);
	if (rc != CUEQ_OK) {
		note_error(p, rc, cueq_last_error());
		for (size_t i = 0; i < b->n; i++)
			res[i].err = rc;
	} else {
		for (size_t i = 0; i < b->n; i++) {
			if (res[i].err != CUEQ_OK) {
				note_error(p, res[i].err, cueq_last_error());
				break;
			}
		}
	}
	if (p->cb != NULL) {
		pthread_mutex_lock(&p->cb_mu);
		for (size_t i = 0; i < b->n; i++)
			p->cb(p->arg, b->tags[i], &res[i]);
		pthread_mutex_unlock(&p->cb_mu);
	}
	free(res);
}

/* Is the pending batch due to be sent?  Called with mu held. */
static bool due(cueq_pusher *p, int64_t now)
{
	struct batch *b = p->pending;
	if (b == NULL || b->n == 0)
		return false;
	return b->full || p->sending == 0 || p->flushers > 0 || p->closing ||
	       now >= p->pending_since + p->linger_ms;
}

static void *sender(void *arg)
{
	cueq_pusher *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		int64_t now = proto_mono_ms();
		if (due(p, now)) {
			struct batch *b = p->pending;
			p->pending = NULL;
			p->sending++;
			pthread_cond_broadcast(&p->cv_done); /* adders: room again */
			pthread_mutex_unlock(&p->mu);
			send_batch(p, b);
			pthread_mutex_lock(&p->mu);
			p->sending--;
			p->answered += b->n;
			if (p->sending == 0 && p->pending != NULL && p->pending->n > 0)
				pthread_cond_signal(&p->cv_send); /* the pipe is idle: send now */
			pthread_cond_broadcast(&p->cv_done);
			pthread_mutex_unlock(&p->mu);
			batch_free(b);
			pthread_mutex_lock(&p->mu);
			continue;
		}
		if (p->closing)
			break;
		if (p->pending != NULL && p->pending->n > 0)
			sdk_cond_wait_until(&p->cv_send, &p->mu, p->pending_since + p->linger_ms);
		else
			sdk_cond_wait_until(&p->cv_send, &p->mu, 0);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int cueq_pusher_new(cueq_client *c, const cueq_pusher_opts *opts, cueq_pusher **out)
{
	cueq_pusher_opts o = { 0 };
	cueq_pusher *p;

	if (out == NULL || c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_pusher_new needs a client and somewhere to put it");
	*out = NULL;
	if (opts != NULL)
		o = *opts;
	if (o.batch > CUEQ_MAX_BATCH)
		return sdk_fail(CUEQ_ERR_INVALID, "a batch of %zu jobs is too many: use 1 to %u",
				o.batch, CUEQ_MAX_BATCH);
	if (o.linger_ms < 0)
		return sdk_fail(CUEQ_ERR_INVALID, "linger must not be negative");
	if (o.inflight > MAX_INFLIGHT)
		return sdk_fail(CUEQ_ERR_INVALID, "%u requests in flight is too many: use 1 to %d",
				o.inflight, MAX_INFLIGHT);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory creating a pusher");
	p->c = c;
	p->batch_max = o.batch ? o.batch : 128;
	p->linger_ms = o.linger_ms ? o.linger_ms : 2;
	p->inflight = o.inflight ? o.inflight : 4;
	p->cb = o.on_result;
	p->arg = o.arg;
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p);
		return sdk_fail(CUEQ_ERR_NOMEM, "cannot create a mutex");
	}
	if (sdk_cond_init(&p->cv_send) != 0 || sdk_cond_init(&p->cv_done) != 0 ||
	    pthread_mutex_init(&p->cb_mu, NULL) != 0) {
		/* Too rare to unwind one by one: these fail only without memory. */
		free(p);
		return sdk_fail(CUEQ_ERR_NOMEM, "cannot create the pusher's condition variables");
	}
	p->sync_init = true;
	if ((p->threads = calloc(p->inflight, sizeof(*p->threads))) == NULL) {
		cueq_pusher_free(p);
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory creating a pusher");
	}
	for (; p->n_threads < p->inflight; p->n_threads++) {
		if (pthread_create(&p->threads[p->n_threads], NULL, sender, p) != 0) {
			cueq_pusher_free(p);
			return sdk_fail(CUEQ_ERR_NOMEM, "cannot start the pusher's threads");
		}
	}
	*out = p;
	return CUEQ_OK;
}

int cueq_pusher_add(cueq_pusher *p, const char *queue, const void *payload, size_t len,
		    const cueq_push_opts *opts, void *tag)
{
	size_t bytes = 0, qn, kn = 0, un = 0, cn = 0, tn = 0, gn = 0;
	char *copy, *at;
	int rc;

	if (p == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_pusher_add needs a pusher");
	if ((rc = sdk_check_job(queue, payload, len, opts, &bytes)) != CUEQ_OK)
		return rc;
	qn = strlen(queue) + 1;
	if (opts != NULL && opts->key != NULL)
		kn = strlen(opts->key) + 1;
	if (opts != NULL && opts->unique != NULL)
		un = strlen(opts->unique) + 1;
	if (opts != NULL && opts->cron != NULL)
		cn = strlen(opts->cron) + 1;
	if (opts != NULL && opts->tz != NULL)
		tn = strlen(opts->tz) + 1;
	if (opts != NULL && opts->group != NULL)
		gn = strlen(opts->group) + 1;
	/* One block: queue, payload, NUL, key, unique, cron, tz, group (see
	 * batch_free). */
	if ((copy = malloc(qn + len + 1 + kn + un + cn + tn + gn)) == NULL)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory copying a job");
	memcpy(copy, queue, qn);
	if (len > 0)
		memcpy(copy + qn, payload, len);
	copy[qn + len] = '\0';
	at = copy + qn + len + 1;
	if (kn > 0)
		memcpy(at, opts->key, kn);
	if (un > 0)
		memcpy(at + kn, opts->unique, un);
	if (cn > 0)
		memcpy(at + kn + un, opts->cron, cn);
	if (tn > 0)
		memcpy(at + kn + un + cn, opts->tz, tn);
	if (gn > 0)
		memcpy(at + kn + un + cn + tn, opts->group, gn);

	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (p->closing) {
			pthread_mutex_unlock(&p->mu);
			free(copy);
			return sdk_fail(CUEQ_ERR_CLOSED, "the pusher is closing");
		}
		if (p->pending == NULL && (p->pending = batch_new(p->batch_max)) == NULL) {
			pthread_mutex_unlock(&p->mu);
			free(copy);
			return sdk_fail(CUEQ_ERR_NOMEM, "out of memory creating a batch");
		}
		if (!p->pending->full && (p->pending->n == 0 ||
					  p->pending->bytes + bytes <= PROTO_MAX_FRAME - SDK_FRAME_MARGIN))
			break;
		/* Seal it; wait until a sender takes it. */
		p->pending->full = true;
		pthread_cond_signal(&p->cv_send);
		sdk_cond_wait_until(&p->cv_done, &p->mu, 0);
	}
	struct batch *b = p->pending;
	cueq_job_spec *s = &b->specs[b->n];
	s->queue = copy;
	s->payload = copy + qn;
	s->payload_len = len;
	if (opts != NULL) {
		s->opts = *opts;
		s->opts.key = kn > 0 ? at : NULL;
		s->opts.unique = un > 0 ? at + kn : NULL;
		s->opts.cron = cn > 0 ? at + kn + un : NULL;
		s->opts.tz = tn > 0 ? at + kn + un + cn : NULL;
		s->opts.group = gn > 0 ? at + kn + un + cn + tn : NULL;
	}
	b->tags[b->n] = tag;
	if (b->n++ == 0) {
		p->pending_since = proto_mono_ms();
		pthread_cond_signal(&p->cv_send); /* start the linger clock */
	}
	b->bytes += bytes;
	p->added++;
	if (b->n >= p->batch_max) {
		b->full = true;
		pthread_cond_signal(&p->cv_send);
	}
	pthread_mutex_unlock(&p->mu);
	return CUEQ_OK;
}

int cueq_pusher_flush(cueq_pusher *p)
{
	char msg[sizeof(p->first_msg)];
	int rc;

	if (p == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_pusher_flush needs a pusher");
	pthread_mutex_lock(&p->mu);
	p->flushers++;
	pthread_cond_broadcast(&p->cv_send);
	while (p->answered < p->added && p->n_threads > 0)
		sdk_cond_wait_until(&p->cv_done, &p->mu, 0);
	p->flushers--;
	rc = p->first_err;
	memcpy(msg, p->first_msg, sizeof(msg));
	p->first_err = CUEQ_OK;
	p->first_msg[0] = '\0';
	pthread_mutex_unlock(&p->mu);
	if (rc != CUEQ_OK)
		sdk_fail(rc, "%s", msg);
	return rc;
}

void cueq_pusher_free(cueq_pusher *p)
{
	if (p == NULL)
		return;
	if (p->sync_init) {
		cueq_pusher_flush(p);
		pthread_mutex_lock(&p->mu);
		p->closing = true;
		pthread_cond_broadcast(&p->cv_send);
		pthread_mutex_unlock(&p->mu);
		for (unsigned i = 0; i < p->n_threads; i++)
			pthread_join(p->threads[i], NULL);
		pthread_cond_destroy(&p->cv_send);
		pthread_cond_destroy(&p->cv_done);
		pthread_mutex_destroy(&p->cb_mu);
		pthread_mutex_destroy(&p->mu);
	}
	batch_free(p->pending);
	free(p->threads);
	free(p);
}
