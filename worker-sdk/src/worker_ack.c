/*
 * worker_ack.c - sends the handlers' outcomes in batches.
 *
 * One acker thread sends them, so outcomes that finish while an ack request
 * is in flight share the next one: under load one request carries many
 * outcomes (and the broker syncs them once); when idle an outcome leaves at
 * once, and a handler with nothing else to run sends its own outcome itself
 * when no outcome request is in flight (worker_send_own), sparing a lone
 * job the hand-off to this thread.  ack_linger_ms (default 0) can make an
 * outcome wait for company.  Acks and nacks go as two batch requests.  A
 * job whose lease was lost before its outcome left is not sent at all; it
 * and every outcome the broker did not accept count as lost.  After
 * cueq_worker_shutdown() the outcome requests are cut short (send_cut):
 * one the broker does not take within the grace counts as lost.
 */
#include "worker.h"

#include <stdlib.h>

/* Takes up to one request's worth of outcomes off the queue.  With mu. */
static size_t take(cueq_worker *w, cueq_job **out)
{
	size_t n = 0, bytes = 0;

	while (w->out_head != NULL && n < CUEQ_MAX_BATCH) {
		cueq_job *j = w->out_head;
		size_t b = sdk_item_bytes(j->ok ? j->result : j->error);
		if (n > 0 && bytes + b > PROTO_MAX_FRAME - SDK_FRAME_MARGIN)
			break;
		bytes += b;
		w->out_head = j->next;
		j->next = NULL;
		out[n++] = j;
	}
	if (w->out_head == NULL)
		w->out_tail = NULL;
	w->n_out -= n;
	return n;
}

static void send_acks(cueq_worker *w, cueq_job **jobs, size_t n, cueq_ack_item *items)
{
	size_t k = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		items[k++] = (cueq_ack_item){ .execution_id = jobs[i]->id,
					      .lease_token = jobs[i]->token,
					      .result = jobs[i]->result };
	rc = sdk_ack_many(w->c, items, k, 0, &w->send_cut);
	for (size_t i = 0; i < k; i++) {
		if (rc == CUEQ_OK && items[i].err == CUEQ_OK) {
			atomic_fetch_add(&w->succeeded, 1);
			worker_finished(w, jobs[i], true, "acked");
		} else {
			atomic_fetch_add(&w->lost, 1);
		}
	}
}

static void send_nacks(cueq_worker *w, cueq_job **jobs, size_t n, cueq_nack_item *items)
{
	int rc;

	for (size_t i = 0; i < n; i++)
		items[i] = (cueq_nack_item){ .execution_id = jobs[i]->id,
					     .lease_token = jobs[i]->token,
					     .error = jobs[i]->error,
					     .retry_in_ms = jobs[i]->retry_in_ms,
					     .terminal = jobs[i]->terminal };
	rc = sdk_nack_many(w->c, items, n, 0, &w->send_cut);
	for (size_t i = 0; i < n; i++) {
		if (rc == CUEQ_OK && items[i].err == CUEQ_OK) {
			atomic_fetch_add(&w->failed, 1);
			worker_finished(w, jobs[i], false,
					jobs[i]->error != NULL ? jobs[i]->error : "nacked");
		} else {
			atomic_fetch_add(&w->lost, 1);
		}
	}
}

/* Sends the outcomes of jobs[n]; acks and nacks are sorted into scratch. */
static void send_outcomes(cueq_worker *w, cueq_job **jobs, size_t n, cueq_job **scratch,
			  void *items)
{
	size_t n_ack = 0, n_nack = 0;

	/* Acks fill scratch from the front, nacks from the back. */
	for (size_t i = 0; i < n; i++) {
		cueq_job *j = jobs[i];
		if (atomic_load(&j->lease_lost))
			atomic_fetch_add(&w->lost, 1);
		else if (j->ok)
			scratch[n_ack++] = j;
		else
			scratch[n - 1 - n_nack++] = j;
	}
	if (n_ack > 0)
		send_acks(w, scratch, n_ack, items);
	if (n_nack > 0)
		send_nacks(w, scratch + n - n_nack, n_nack, items);
}

void worker_send_own(cueq_worker *w, cueq_job *j)
{
	union {
		cueq_ack_item a;
		cueq_nack_item n;
	} item;
	cueq_job *scratch[1];
	send_outcomes(w, &j, 1, scratch, &item);
}

void *worker_acker(void *arg)
{
	cueq_worker *w = arg;
	cueq_job **jobs = malloc(CUEQ_MAX_BATCH * sizeof(*jobs));
	cueq_job **scratch = malloc(CUEQ_MAX_BATCH * sizeof(*scratch));
	size_t item_size = sizeof(cueq_ack_item) > sizeof(cueq_nack_item) ? sizeof(cueq_ack_item)
									    : sizeof(cueq_nack_item);
	void *items = malloc(CUEQ_MAX_BATCH * item_size);

	pthread_mutex_lock(&w->mu);
	for (;;) {
		int64_t now = proto_mono_ms();
		size_t n;

		if (w->n_out == 0 || w->acking) { /* acking: a handler sends its own */
			if (w->n_out == 0 && w->handlers_done)
				break;
			sdk_cond_wait_until(&w->cv_ack, &w->mu, 0);
			continue;
		}
		if (w->n_out < CUEQ_MAX_BATCH && !w->handlers_done &&
		    now < w->out_since + w->ack_linger_ms) {
			sdk_cond_wait_until(&w->cv_ack, &w->mu, w->out_since + w->ack_linger_ms);
			continue;
		}
		if (jobs == NULL || scratch == NULL || items == NULL) {
			/* Without memory the outcomes cannot be sent: the leases
			 * expire and the broker hands the jobs out again. */
			n = w->n_out;
			worker_lose_all(w, &w->out_head, &w->out_tail);
			w->n_out = 0;
			continue;
		}
		n = take(w, jobs);
		w->acking = true;
		pthread_mutex_unlock(&w->mu);
		send_outcomes(w, jobs, n, scratch, items);
		pthread_mutex_lock(&w->mu);
		w->acking = false;
		for (size_t i = 0; i < n; i++)
			worker_release(w, jobs[i]);
	}
	pthread_mutex_unlock(&w->mu);
	free(jobs);
	free(scratch);
	free(items);
	return NULL;
}
