/*
 * faults_load.h - producers and workers against a broker that is going to
 * fail (faults_load.c), and the check, after a restart, that everything
 * they were answered ok is on disk.
 *
 * Each thread has its own raw connection.  Producers push two jobs per
 * request; workers claim up to four (60 s leases) and ack them in one
 * request.  A thread records what was answered ok and ends at the first
 * request that gets no reply (the broker stopped).  The threads never call
 * cmocka; the main thread asserts after fx_load_stop has joined them.
 */
#ifndef CUEQ_TEST_FAULTS_LOAD_H
#define CUEQ_TEST_FAULTS_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "faults_util.h"

#define FX_LOAD_MAX_THREADS 8

typedef struct fx_claimed {
	char id[FX_ID], token[FX_ID];
	bool acked; /* its ack was answered ok */
} fx_claimed;

typedef struct fx_load {
	char url[64];
	const char *queue;
	size_t payload_size; /* 0: short payloads; set before fx_load_start */
	atomic_bool stop;
	pthread_mutex_t mu;
	char (*pushed)[FX_ID]; /* pushes answered ok */
	size_t n_pushed, cap_pushed;
	fx_claimed *claimed; /* claims answered ok */
	size_t n_claimed, cap_claimed;
	atomic_size_t n_push_ok, n_ack_ok;
	size_t n_errors; /* replies that were errors (none expected) */
	char first_error[320];
	pthread_t thr[FX_LOAD_MAX_THREADS];
	size_t n_thr;
} fx_load;

/* Starts producers and workers against url on queue (l zero-filled). */
void fx_load_start(fx_load *l, const char *url, const char *queue, int producers, int workers);
/* Waits (bounded) until at least pushes and acks were answered ok, or the
 * threads all ended.  Returns true when the numbers were reached. */
bool fx_load_wait(fx_load *l, size_t pushes, size_t acks, int timeout_ms);
/* Stops and joins the threads (each ends within its request timeout). */
void fx_load_stop(fx_load *l);
/* After a restart: every push answered ok exists, every ack answered ok
 * is succeeded, every claim answered ok holds its lease or succeeded, and
 * no request was answered with an error; fails the test otherwise.  Also
 * that the load did something (at least one push and one ack). */
void fx_load_verify(fx_load *l, th_broker *b, const char *what);
void fx_load_free(fx_load *l);

/* The LD_PRELOAD value that loads the faultfs library into a broker of
 * this build: the library, after the ASan runtime when this process runs
 * under ASan (the runtime must come first).  Prints a line in that case. */
const char *fx_faultfs_preload(const char *faultfs_path);

#endif /* CUEQ_TEST_FAULTS_LOAD_H */
