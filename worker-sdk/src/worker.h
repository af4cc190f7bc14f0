/*
 * worker.h - the worker loop's state, shared by its three files:
 * worker.c (lifecycle, the fetch loop, handler threads), worker_extend.c
 * (the lease extender) and worker_ack.c (the outcome sender).
 *
 * Every job the worker holds, from its claim until the broker answered its
 * outcome, is on the held list, so the extender keeps its lease alive the
 * whole time (waiting for a handler, running, waiting for its ack).  Jobs
 * move: claim -> run queue -> a handler -> outcome queue -> acker -> freed.
 * A job is freed when its refs drop to zero: the held list holds one, an
 * extension in flight another.
 */
#ifndef CUEQ_WORKER_H
#define CUEQ_WORKER_H

#include "job.h"

struct cueq_worker {
	cueq_client *c;
	char queue[CUEQ_QUEUE_SIZE];
	cueq_handler h;
	void *arg;
	unsigned concurrency, prefetch;
	bool adaptive; /* prefetch 0: the window adapts (worker.c) */
	int64_t lease_ms, wait_ms, ack_linger_ms;
	uint64_t max_jobs;

	cueq_worker_event_fn on_event;
	void *event_arg;
	atomic_bool stop;
	_Atomic uint64_t succeeded, failed, lost, dropped;
	/* Cut by cueq_worker_shutdown (claims at once, outcomes after its
	 * grace) and, for extensions, when no job needs its lease any more. */
	struct sdk_cut claim_cut, send_cut, ext_cut;

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv_run;	 /* handlers: a job to run, or the end */
	pthread_cond_t cv_fetch; /* fetch loop: a slot is free */
	pthread_cond_t cv_ext;	 /* extender: new jobs, or the end */
	pthread_cond_t cv_ack;	 /* acker: an outcome, or the end */
	bool sync_init;
	bool running;		/* inside cueq_worker_run */

	cueq_job *run_head, *run_tail; /* claimed, waiting for a handler */
	unsigned n_queued, n_running;
	uint64_t handled; /* jobs the handlers finished */
	cueq_job *out_head, *out_tail; /* outcomes waiting to be sent */
	size_t n_out;
	int64_t out_since; /* mono ms the oldest waiting outcome was queued */
	bool acking;	   /* an outcome request is in flight (acker or handler) */
	cueq_job *held;	   /* every job the worker holds */
	bool fetch_done;   /* no more jobs will be queued */
	bool handlers_done;
	bool ext_done;
	int64_t clock_offset; /* broker's Unix ms minus ours */
};

/* Puts j on the held list (refs 1) and sets up its lease tracking; j was
 * claimed by a request sent at mono time sent_mono.  Called with mu held. */
void worker_hold(cueq_worker *w, cueq_job *j, int64_t sent_mono);
/* Tells the event hook that the broker took j's outcome. */
void worker_finished(cueq_worker *w, const cueq_job *j, bool acked, const char *detail);
/* Tells the event hook, if any, about job j (may be NULL). */
void worker_event(cueq_worker *w, cueq_worker_event_kind kind, const cueq_job *j, int err,
		  const char *detail);
/* Drops one reference; frees j at zero.  Called with mu held. */
void worker_unref(cueq_worker *w, cueq_job *j);
/* Takes j off the held list and drops its reference.  With mu held. */
void worker_release(cueq_worker *w, cueq_job *j);
/* Releases every job of the list *head..*tail, counting each as lost (its
 * lease will expire and the broker redelivers it).  With mu held. */
void worker_lose_all(cueq_worker *w, cueq_job **head, cueq_job **tail);

void *worker_extender(void *arg);
void *worker_acker(void *arg);
/* A handler thread sends the outcome of its own job j (without mu; the
 * caller set acking, and releases j after). */
void worker_send_own(cueq_worker *w, cueq_job *j);

#endif /* CUEQ_WORKER_H */
