/*
 * worker_extend.c - keeps the leases of held jobs alive.
 *
 * Each held job knows, in our monotonic clock, a time by which its lease
 * surely ends (local_deadline: the broker's deadline translated with the
 * clock offset for a claim, send time + lease length for an extension, so
 * it is never later than the broker's).  When less than two thirds of the
 * lease is left, the job joins the next extend batch; a handler that runs
 * longer than its lease is therefore never redelivered.  A job is marked
 * lease-lost when the broker refuses its extension (STALE_LEASE, NOT_FOUND,
 * CONFLICT) or its local deadline passes without a successful one.  A
 * STALE_LEASE that says the execution is cancelled marks the job cancelled
 * first, so a handler that sees its lease lost can tell an operator's
 * cancel from an expiry.
 */
#include "worker.h"

#include <stdlib.h>

#define MAX_IDLE_MS 1000 /* look again at least this often */

void worker_hold(cueq_worker *w, cueq_job *j, int64_t sent_mono)
{
	int64_t len = w->lease_ms ? w->lease_ms : j->lease_ms;
	/* The broker started the lease when it took the claim, after it was
	 * sent: so it lasts at least until sent + its length on our own
	 * monotonic clock, whatever the wall clocks say.  A reply that gives
	 * no length leaves only the broker's deadline, through the measured
	 * clock offset; a lease that seems gone by it is taken as gone. */
	int64_t remaining = j->lease_ms > 0 ? j->lease_ms
			    : atomic_load(&j->lease_deadline) - (proto_now_ms() + w->clock_offset);

	if (remaining < 0)
		remaining = 0;
	if (len == 0) /* the reply did not say: round what is left up to 100 ms */
		len = (remaining + 99) / 100 * 100;
	if (len < PROTO_MIN_LEASE_MS)
		len = PROTO_MIN_LEASE_MS;
	if (len > PROTO_MAX_LEASE_MS)
		len = PROTO_MAX_LEASE_MS;
	if (remaining > len)
		remaining = len;
	j->lease_len = len;
	j->local_deadline = sent_mono + remaining;
	j->next_extend = j->local_deadline - len * 2 / 3;
	j->refs = 1;
	j->held_prev = NULL;
	j->held_next = w->held;
	if (w->held != NULL)
		w->held->held_prev = j;
	w->held = j;
}

void worker_unref(cueq_worker *w, cueq_job *j)
{
	(void)w;
	if (--j->refs == 0)
		cueq_job_free(j);
}

void worker_release(cueq_worker *w, cueq_job *j)
{
	if (j->held_prev != NULL)
		j->held_prev->held_next = j->held_next;
	else
		w->held = j->held_next;
	if (j->held_next != NULL)
		j->held_next->held_prev = j->held_prev;
	j->held_prev = j->held_next = NULL;
	worker_unref(w, j);
}

void worker_lose_all(cueq_worker *w, cueq_job **head, cueq_job **tail)
{
	while (*head != NULL) {
		cueq_job *j = *head;
		*head = j->next;
		atomic_fetch_add(&w->lost, 1);
		worker_release(w, j);
	}
	*tail = NULL;
}

static bool refused(int err)
{
	return err == CUEQ_ERR_STALE_LEASE || err == CUEQ_ERR_NOT_FOUND || err == CUEQ_ERR_CONFLICT;
}

/* Picks the jobs due for extension into batch (refs taken), marks expired
 * ones lost; *wake gets when to look next.  With mu held. */
static size_t pick(cueq_worker *w, cueq_job **batch, int64_t *wake)
{
	int64_t now = proto_mono_ms();
	size_t n = 0;

	*wake = now + MAX_IDLE_MS;
	for (cueq_job *j = w->held; j != NULL; j = j->held_next) {
		if (atomic_load(&j->lease_lost) || j->extending)
			continue;
		if (now >= j->local_deadline) {
			atomic_store(&j->lease_lost, true);
			worker_event(w, CUEQ_WORKER_LEASE_LOST, j, 0,
				     "its lease ran out before an extension was answered");
			continue;
		}
		if (now >= j->next_extend && n < CUEQ_MAX_BATCH) {
			j->extending = true;
			j->refs++;
			batch[n++] = j;
			continue;
		}
		if (j->next_extend < *wake)
			*wake = j->next_extend;
		if (j->local_deadline < *wake)
			*wake = j->local_deadline;
	}
	return n;
}

static void extend_batch(cueq_worker *w, cueq_job **batch, cueq_extend_item *items, size_t n)
{
	int64_t deadline = 0, sent;
	int rc;

	for (size_t i = 0; i < n; i++) {
		items[i] = (cueq_extend_item){ .execution_id = batch[i]->id,
					       .lease_token = batch[i]->token,
					       .lease_ms = batch[i]->lease_len };
		if (deadline == 0 || batch[i]->local_deadline < deadline)
			deadline = batch[i]->local_deadline;
	}
	sent = proto_mono_ms();
	rc = sdk_extend_many(w->c, items, n, deadline, &w->ext_cut);
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < n; i++) {
		cueq_job *j = batch[i];
		j->extending = false;
		if (rc == CUEQ_OK && items[i].err == CUEQ_OK) {
			j->local_deadline = sent + j->lease_len;
			j->next_extend = j->local_deadline - j->lease_len * 2 / 3;
			atomic_store(&j->lease_deadline, items[i].lease_deadline_ms);
		} else if (rc == CUEQ_OK && refused(items[i].err)) {
			bool cancelled = items[i].err == CUEQ_ERR_STALE_LEASE &&
					 items[i].state == CUEQ_CANCELLED;
			if (cancelled)
				atomic_store(&j->cancelled, true);
			atomic_store(&j->lease_lost, true);
			worker_event(w, cancelled ? CUEQ_WORKER_CANCELLED : CUEQ_WORKER_LEASE_LOST, j,
				     items[i].err,
				     cancelled ? "an operator cancelled it"
					       : "the broker refused to extend its lease: it ended");
		} else {
			/* No answer yet: try again soon; the deadline check decides. */
			int64_t gap = j->lease_len / 10;
			j->next_extend = proto_mono_ms() + (gap < 50 ? 50 : gap > 1000 ? 1000 : gap);
		}
		worker_unref(w, j);
	}
	pthread_mutex_unlock(&w->mu);
}

void *worker_extender(void *arg)
{
	cueq_worker *w = arg;
	cueq_job **batch = malloc(CUEQ_MAX_BATCH * sizeof(*batch));
	cueq_extend_item *items = malloc(CUEQ_MAX_BATCH * sizeof(*items));

	pthread_mutex_lock(&w->mu);
	while (!w->ext_done) {
		int64_t wake;
		size_t n;

		if (batch == NULL || items == NULL) {
			/* Without memory we can only watch deadlines. */
			for (cueq_job *j = w->held; j != NULL; j = j->held_next)
				if (proto_mono_ms() >= j->local_deadline)
					atomic_store(&j->lease_lost, true);
			sdk_cond_wait_until(&w->cv_ext, &w->mu, proto_mono_ms() + 100);
			continue;
		}
		n = pick(w, batch, &wake);
		if (n == 0) {
			sdk_cond_wait_until(&w->cv_ext, &w->mu, wake);
			continue;
		}
		pthread_mutex_unlock(&w->mu);
		extend_batch(w, batch, items, n);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	free(batch);
	free(items);
	return NULL;
}
