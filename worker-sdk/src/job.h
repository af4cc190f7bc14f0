/*
 * job.h - what a claimed execution holds, shared by claim.c, finish.c and
 * the worker loop.
 *
 * A cueq_job owns copies of every field (the payload follows the struct in
 * the same allocation), so it outlives the reply it came in.  The worker's
 * bookkeeping sits in the same struct to spare an allocation per job; those
 * fields are guarded by the worker's mutex.  lease_deadline and lease_lost
 * and cancelled are atomics because the extender changes them while a
 * handler reads them.
 */
#ifndef CUEQ_JOB_H
#define CUEQ_JOB_H

#include <stdatomic.h>

#include "sdk.h"

struct cueq_job {
	cueq_client *c; /* the client it was claimed through (its step calls) */
	char id[CUEQ_ID_SIZE];
	char cue_id[CUEQ_ID_SIZE];
	char token[CUEQ_ID_SIZE];
	char queue[CUEQ_QUEUE_SIZE];
	uint32_t attempt;
	_Atomic int64_t lease_deadline; /* broker's Unix ms */
	int64_t lease_ms;		/* from the claim reply when it says; else 0 */
	char *payload;			/* points after the struct; NUL-terminated */
	size_t payload_len;

	/* The handler's outcome (cueq_job_set_result / cueq_job_fail). */
	char *result;
	char *error;
	int64_t retry_in_ms;
	bool terminal;
	atomic_bool lease_lost;
	atomic_bool cancelled; /* an operator cancelled it (set before lease_lost) */

	/* Worker bookkeeping, under the worker's mutex. */
	struct cueq_job *next;		  /* in the run queue or the outcome queue */
	struct cueq_job *held_prev, *held_next; /* in the held list */
	int64_t lease_len;		  /* lease length asked for on extension */
	int64_t local_deadline;		  /* mono ms by which the lease surely ends */
	int64_t next_extend;		  /* mono ms of the next extension */
	int refs;			  /* held list + an extension in flight */
	bool ok;			  /* outcome: ack (true) or nack */
	bool extending;			  /* an extension request is in flight */
};

/* cueq_claim as a member of cut (may be NULL), for the worker. */
int sdk_claim(cueq_client *c, const char *queue, size_t max, int64_t lease_ms, int64_t wait_ms,
	      struct sdk_cut *cut, cueq_job **jobs, size_t *n);
/* Finishing calls with an absolute mono deadline (0: the client's), as
 * members of cut (may be NULL). */
int sdk_ack_many(cueq_client *c, cueq_ack_item *items, size_t n, int64_t deadline,
		 struct sdk_cut *cut);
int sdk_nack_many(cueq_client *c, cueq_nack_item *items, size_t n, int64_t deadline,
		  struct sdk_cut *cut);
int sdk_extend_many(cueq_client *c, cueq_extend_item *items, size_t n, int64_t deadline,
		    struct sdk_cut *cut);
/* Bytes an ack or nack item adds to a request, for batching under a frame. */
size_t sdk_item_bytes(const char *text);

#endif /* CUEQ_JOB_H */
