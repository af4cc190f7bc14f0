/*
 * worker.c - the worker loop: lifecycle, the fetch loop and handler threads.
 *
 * cueq_worker_run() starts `concurrency` handler threads, the extender and
 * the acker, then becomes the fetch loop: it keeps a window of jobs in hand
 * (running or queued for the handlers), refilling it with one long-poll
 * claim.  A fixed prefetch makes the window concurrency + prefetch, claimed
 * as soon as a slot frees.  The default adapts: the window starts there,
 * doubles while claims come back full and halves when they come back short,
 * and never holds more than about HOLD_AHEAD_MS of the handlers' measured
 * work (nor more than one claim, CUEQ_MAX_CLAIM); it is refilled when half
 * of it is left.  So a worker behind a deep backlog fetches many jobs per
 * round trip, and near an empty queue it takes only what it can start, so
 * its jobs are not kept from other workers.  Stopping only sets an atomic
 * flag (so a signal handler may do it); the fetch loop sees it after its
 * current claim (at most about
 * wait_ms), then the handlers finish every job in hand, the acker sends the
 * last outcomes, and run() returns.  cueq_worker_shutdown() also cuts the
 * worker's requests short (sdk_cut), so a broker that is gone cannot hold
 * the stop up for the client's retry deadline: the claim is given up at
 * once unless it already reached the broker (then it ends with its long
 * poll), and each outcome gets the grace.  Broker hiccups during claims are
 * retried with a growing pause; a refusal that retrying cannot cure (bad
 * request, unauthorized) ends the run with that error.
 */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 1024
#define STOP_POLL_MS 100
#define HOLD_AHEAD_MS 200 /* adaptive prefetch: work held ahead at most */
#define RATE_SAMPLE_MS 200

static bool transient(int rc)
{
	return rc == CUEQ_ERR_UNREACHABLE || rc == CUEQ_ERR_UNAVAILABLE || rc == CUEQ_ERR_INTERNAL ||
	       rc == CUEQ_ERR_PROTOCOL || rc == CUEQ_ERR_NOMEM;
}

void worker_event(cueq_worker *w, cueq_worker_event_kind kind, const cueq_job *j, int err,
		  const char *detail)
{
	if (w->on_event == NULL)
		return;
	cueq_worker_event ev = {
		.kind = kind,
		.execution_id = j != NULL ? j->id : NULL,
		.attempt = j != NULL ? j->attempt : 0,
		.err = err,
		.detail = detail,
	};
	w->on_event(&ev, w->event_arg);
}

void worker_finished(cueq_worker *w, const cueq_job *j, bool acked, const char *detail)
{
	if (w->on_event == NULL)
		return;
	cueq_worker_event ev = {
		.kind = CUEQ_WORKER_FINISHED,
		.execution_id = j->id,
		.attempt = j->attempt,
		.acked = acked,
		.detail = detail,
	};
	w->on_event(&ev, w->event_arg);
}

static void on_connection(void *arg, bool up)
{
	cueq_worker *w = arg;
	worker_event(w, up ? CUEQ_WORKER_CONNECTED : CUEQ_WORKER_DISCONNECTED, NULL, 0,
		     up ? "connected to the broker" : "the connection to the broker was lost; reconnecting");
}

static bool stopping(cueq_worker *w)
{
	return atomic_load(&w->stop);
}

/* Sleeps ms, waking early when stopped. */
static void pause_ms(cueq_worker *w, int64_t ms)
{
	int64_t end = proto_mono_ms() + ms;
	while (!stopping(w) && proto_mono_ms() < end)
		sdk_sleep_ms(end - proto_mono_ms() < 50 ? end - proto_mono_ms() : 50);
}

static void *handler_thread(void *arg)
{
	cueq_worker *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		cueq_job *j;

		while (w->run_head == NULL && !w->fetch_done)
			sdk_cond_wait_until(&w->cv_run, &w->mu, 0);
		if ((j = w->run_head) == NULL)
			break;
		w->run_head = j->next;
		if (w->run_head == NULL)
			w->run_tail = NULL;
		j->next = NULL;
		w->n_queued--;
		w->n_running++;
		/* never start a job whose lease is not surely live now (the
		 * process may have been stopped while it waited) */
		bool dead = atomic_load(&j->lease_lost) || proto_mono_ms() >= j->local_deadline;
		if (dead) {
			atomic_store(&j->lease_lost, true);
			atomic_fetch_add(&w->dropped, 1);
			worker_event(w, CUEQ_WORKER_DROPPED, j, 0,
				     "its lease ended (or it was cancelled) before a handler was free, so it was not run; the broker delivers it again unless cancelled");
		}
		pthread_mutex_unlock(&w->mu);

		j->ok = false;
		if (!atomic_load(&j->lease_lost)) {
			int rc = w->h(j, w->arg);
			/* a handler that called cueq_job_fail is nacked whatever
			 * it returns: a failure is never acked by accident */
			j->ok = rc == CUEQ_OK && j->error == NULL;
			if (!j->ok && j->error == NULL) {
				char why[64];
				snprintf(why, sizeof(why), "the handler returned %d", rc);
				cueq_job_fail(j, why, j->retry_in_ms, j->terminal);
			}
		}

		pthread_mutex_lock(&w->mu);
		w->n_running--;
		w->handled++;
		pthread_cond_signal(&w->cv_fetch);
		if (w->ack_linger_ms == 0 && !w->acking && w->n_out == 0 && w->run_head == NULL) {
			/* nothing to run next and no outcome in flight: send it
			 * from here rather than wake the acker for it */
			w->acking = true;
			pthread_mutex_unlock(&w->mu);
			worker_send_own(w, j);
			pthread_mutex_lock(&w->mu);
			w->acking = false;
			worker_release(w, j);
			pthread_cond_signal(&w->cv_ack); /* outcomes queued meanwhile */
			continue;
		}
		if (w->n_out++ == 0)
			w->out_since = proto_mono_ms();
		if (w->out_tail != NULL)
			w->out_tail->next = j;
		else
			w->out_head = j;
		w->out_tail = j;
		pthread_cond_signal(&w->cv_ack);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Learns how far the broker's clock is from ours, to read lease deadlines. */
static void measure_clock(cueq_worker *w)
{
	int64_t t0 = proto_now_ms(), server = 0, t1;

	if (cueq_ping(w->c, &server) != CUEQ_OK || server == 0)
		return;
	t1 = proto_now_ms();
	w->clock_offset = server - (t0 + t1) / 2;
}

/* The adaptive window: how far it may grow at the handlers' measured rate
 * (jobs per second), never below base. */
static unsigned window_cap(double rate, unsigned base)
{
	double cap = rate * HOLD_AHEAD_MS / 1000.0;
	if (cap > CUEQ_MAX_CLAIM)
		cap = CUEQ_MAX_CLAIM;
	return cap > base ? (unsigned)cap : base;
}

/* Claims and queues jobs until stopped, max_jobs, or a lasting error. */
static int fetch_loop(cueq_worker *w, char *why, size_t why_len)
{
	const unsigned base = w->concurrency + w->prefetch;
	unsigned window = base;
	cueq_job **jobs = calloc(CUEQ_MAX_CLAIM, sizeof(*jobs));
	uint64_t claimed = 0, rate_n0 = 0;
	int64_t backoff = 100, rate_t0 = proto_mono_ms();
	double rate = 0; /* jobs the handlers finish per second */
	int rc = CUEQ_OK;

	if (jobs == NULL)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory starting the worker");
	while (!stopping(w) && (w->max_jobs == 0 || claimed < w->max_jobs)) {
		size_t want, n = 0;
		int64_t recv;
		/* fixed: claim when a slot frees; adaptive: when half is left */
		unsigned refill = w->adaptive ? window / 2 : window - 1;

		pthread_mutex_lock(&w->mu);
		while (!stopping(w) && w->n_queued + w->n_running > refill)
			sdk_cond_wait_until(&w->cv_fetch, &w->mu, proto_mono_ms() + STOP_POLL_MS);
		want = window - (w->n_queued + w->n_running);
		uint64_t handled = w->handled;
		pthread_mutex_unlock(&w->mu);
		if (stopping(w))
			break;
		if (w->max_jobs != 0 && want > w->max_jobs - claimed)
			want = (size_t)(w->max_jobs - claimed);
		if (want > CUEQ_MAX_CLAIM)
			want = CUEQ_MAX_CLAIM;

		int64_t sent = proto_mono_ms(); /* the leases start after this */
		rc = sdk_claim(w->c, w->queue, want, w->lease_ms, w->wait_ms, &w->claim_cut, jobs,
			       &n);
		recv = proto_mono_ms();
		if (w->adaptive && recv - rate_t0 >= RATE_SAMPLE_MS) {
			double r = (double)(handled - rate_n0) * 1000.0 / (double)(recv - rate_t0);
			rate = rate == 0 ? r : (rate + r) / 2;
			rate_t0 = recv, rate_n0 = handled;
		}
		if (rc == CUEQ_ERR_EMPTY) {
			window = base;
			rc = CUEQ_OK;
			backoff = 100;
			continue;
		}
		if (rc != CUEQ_OK) {
			if (!transient(rc)) {
				snprintf(why, why_len, "%s", cueq_last_error());
				break;
			}
			worker_event(w, CUEQ_WORKER_RETRYING, NULL, rc, cueq_last_error());
			pause_ms(w, backoff);
			backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
			rc = CUEQ_OK;
			continue;
		}
		backoff = 100;
		if (w->adaptive) {
			unsigned cap = window_cap(rate, base);
			if (n == want)
				window = window * 2 < cap ? window * 2 : cap;
			else if (n < want / 2)
				window = window / 2 > base ? window / 2 : base;
			if (window > cap)
				window = cap;
		}
		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; i < n; i++) {
			cueq_job *j = jobs[i];
			worker_hold(w, j, sent);
			if (w->run_tail != NULL)
				w->run_tail->next = j;
			else
				w->run_head = j;
			w->run_tail = j;
		}
		w->n_queued += (unsigned)n;
		pthread_cond_broadcast(&w->cv_run);
		pthread_cond_signal(&w->cv_ext);
		pthread_mutex_unlock(&w->mu);
		claimed += n;
	}
	free(jobs);
	return rc;
}

static void set_flag(cueq_worker *w, bool *flag, pthread_cond_t *cv)
{
	pthread_mutex_lock(&w->mu);
	*flag = true;
	pthread_cond_broadcast(cv);
	pthread_mutex_unlock(&w->mu);
}

int cueq_worker_run(cueq_worker *w)
{
	pthread_t *handlers = NULL, extender, acker;
	unsigned n_handlers = 0;
	bool have_ext = false, have_ack = false;
	char why[1024] = "";
	int rc = CUEQ_OK;

	if (w == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_worker_run needs a worker");
	pthread_mutex_lock(&w->mu);
	if (w->running) {
		pthread_mutex_unlock(&w->mu);
		return sdk_fail(CUEQ_ERR_INVALID, "this worker is already running");
	}
	w->running = true;
	w->fetch_done = w->handlers_done = w->ext_done = false;
	pthread_mutex_unlock(&w->mu);
	sdk_cut_reset(&w->ext_cut); /* cut at the end of an earlier run */
	if (stopping(w))
		goto done;

	if (w->on_event != NULL)
		sdk_client_watch(w->c, on_connection, w);
	measure_clock(w);
	if ((handlers = calloc(w->concurrency, sizeof(*handlers))) == NULL) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory starting the worker");
		goto join;
	}
	have_ext = pthread_create(&extender, NULL, worker_extender, w) == 0;
	have_ack = have_ext && pthread_create(&acker, NULL, worker_acker, w) == 0;
	if (!have_ack) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "cannot start the worker's threads");
		goto join;
	}
	for (; n_handlers < w->concurrency; n_handlers++) {
		if (pthread_create(&handlers[n_handlers], NULL, handler_thread, w) != 0) {
			rc = sdk_fail(CUEQ_ERR_NOMEM, "cannot start the worker's handler threads");
			goto join;
		}
	}
	rc = fetch_loop(w, why, sizeof(why));
join:
	/* Order matters: handlers finish the jobs in hand, the acker sends
	 * their outcomes, and the extender keeps leases alive until then. */
	set_flag(w, &w->fetch_done, &w->cv_run);
	for (unsigned i = 0; i < n_handlers; i++)
		pthread_join(handlers[i], NULL);
	set_flag(w, &w->handlers_done, &w->cv_ack);
	if (have_ack)
		pthread_join(acker, NULL);
	sdk_cut(&w->ext_cut, 0); /* no job needs its lease any more */
	set_flag(w, &w->ext_done, &w->cv_ext);
	if (have_ext)
		pthread_join(extender, NULL);
	/* Whatever is still held could not be run or answered. */
	pthread_mutex_lock(&w->mu);
	worker_lose_all(w, &w->run_head, &w->run_tail);
	w->n_queued = 0;
	worker_lose_all(w, &w->out_head, &w->out_tail);
	w->n_out = 0;
	pthread_mutex_unlock(&w->mu);
	free(handlers);
	if (w->on_event != NULL)
		sdk_client_watch(w->c, NULL, NULL);
done:
	pthread_mutex_lock(&w->mu);
	w->running = false;
	pthread_mutex_unlock(&w->mu);
	if (rc != CUEQ_OK && why[0] != '\0')
		sdk_fail(rc, "the worker stopped: %s", why);
	return rc;
}

void cueq_worker_stop(cueq_worker *w)
{
	if (w != NULL)
		atomic_store(&w->stop, true);
}

void cueq_worker_shutdown(cueq_worker *w, int64_t grace_ms)
{
	if (w == NULL)
		return;
	atomic_store(&w->stop, true);
	sdk_cut(&w->claim_cut, 0);
	sdk_cut(&w->send_cut, grace_ms);
	pthread_mutex_lock(&w->mu);
	pthread_cond_broadcast(&w->cv_fetch);
	pthread_mutex_unlock(&w->mu);
}

void cueq_worker_get_counts(const cueq_worker *w, cueq_worker_counts *out)
{
	cueq_worker *m = (cueq_worker *)w;

	if (w == NULL || out == NULL)
		return;
	out->succeeded = atomic_load(&m->succeeded);
	out->failed = atomic_load(&m->failed);
	out->lost = atomic_load(&m->lost);
	out->dropped = atomic_load(&m->dropped);
}

int cueq_worker_new(cueq_client *c, const char *queue, cueq_handler h, void *arg,
		    const cueq_worker_opts *opts, cueq_worker **out)
{
	cueq_worker_opts o = { 0 };
	cueq_worker *w;
	int rc;

	if (out == NULL || c == NULL || h == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_worker_new needs a client, a handler and "
						  "somewhere to put the worker");
	*out = NULL;
	if (opts != NULL)
		o = *opts;
	if ((rc = sdk_check_queue(queue)) != CUEQ_OK ||
	    (rc = sdk_check_lease("lease", o.lease_ms, true)) != CUEQ_OK)
		return rc;
	if (o.concurrency > MAX_THREADS || o.prefetch > MAX_THREADS)
		return sdk_fail(CUEQ_ERR_INVALID, "concurrency and prefetch go up to %d", MAX_THREADS);
	if (o.wait_ms < 0 || o.wait_ms > PROTO_MAX_WAIT_MS)
		return sdk_fail(CUEQ_ERR_INVALID, "a wait of %lld ms is out of range: use 1 to %d ms",
				(long long)o.wait_ms, PROTO_MAX_WAIT_MS);
	if (o.ack_linger_ms < 0 || o.ack_linger_ms > 60000)
		return sdk_fail(CUEQ_ERR_INVALID, "ack linger of %lld ms is out of range: use 0 to 60000",
				(long long)o.ack_linger_ms);
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory creating a worker");
	w->c = c;
	strcpy(w->queue, queue);
	w->h = h;
	w->arg = arg;
	w->concurrency = o.concurrency ? o.concurrency : 1;
	w->prefetch = o.prefetch ? o.prefetch : w->concurrency;
	w->adaptive = o.prefetch == 0;
	w->lease_ms = o.lease_ms;
	w->wait_ms = o.wait_ms ? o.wait_ms : 1000;
	w->ack_linger_ms = o.ack_linger_ms;
	w->max_jobs = o.max_jobs;
	atomic_init(&w->stop, false);
	atomic_init(&w->succeeded, 0);
	atomic_init(&w->failed, 0);
	atomic_init(&w->lost, 0);
	atomic_init(&w->dropped, 0);
	w->on_event = o.on_event;
	w->event_arg = o.event_arg;
	if (pthread_mutex_init(&w->mu, NULL) != 0 || sdk_cond_init(&w->cv_run) != 0 ||
	    sdk_cond_init(&w->cv_fetch) != 0 || sdk_cond_init(&w->cv_ext) != 0 ||
	    sdk_cond_init(&w->cv_ack) != 0 || sdk_cut_init(&w->claim_cut) != 0 ||
	    sdk_cut_init(&w->send_cut) != 0 || sdk_cut_init(&w->ext_cut) != 0) {
		free(w);
		return sdk_fail(CUEQ_ERR_NOMEM, "cannot create the worker's locks");
	}
	w->sync_init = true;
	*out = w;
	return CUEQ_OK;
}

void cueq_worker_free(cueq_worker *w)
{
	if (w == NULL)
		return;
	if (w->sync_init) {
		pthread_cond_destroy(&w->cv_run);
		pthread_cond_destroy(&w->cv_fetch);
		pthread_cond_destroy(&w->cv_ext);
		pthread_cond_destroy(&w->cv_ack);
		pthread_mutex_destroy(&w->mu);
		sdk_cut_destroy(&w->claim_cut);
		sdk_cut_destroy(&w->send_cut);
		sdk_cut_destroy(&w->ext_cut);
	}
	free(w);
}
