/*
 * memory.c - broker memory per pending job.
 *
 * Pushes N jobs with no worker through one cueq_pusher, then compares the
 * broker's resident set with the one before the first push.  What grows is
 * the broker's in-memory indexes plus whatever RocksDB keeps resident
 * (memtables, block cache) for those jobs: the figure a sizing decision
 * needs.  RocksDB's buffers are bounded, so the RSS is also read halfway: the
 * second half's growth per job is the cost that keeps scaling.  The queue's
 * stats are checked to make sure the jobs are there.
 */
#include "memory.h"
#include "brokerproc.h"
#include "latency.h"

#include <cueq/cueq.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void count_errors(void *arg, void *tag, const cueq_push_result *res)
{
	(void)tag;
	if (res->err != CUEQ_OK)
		atomic_fetch_add((atomic_size_t *)arg, 1);
}

int run_memory(const char *url, pid_t broker, size_t jobs, size_t payload, const char *queue,
	       struct memory_result *r)
{
	atomic_size_t errors;
	cueq_pusher_opts po = { .on_result = count_errors, .arg = &errors };
	cueq_client *c = NULL;
	cueq_pusher *p = NULL;
	cueq_queue_stats *st = NULL;
	unsigned char *buf = calloc(payload ? payload : 1, 1);
	size_t nst = 0;
	uint64_t t0;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	atomic_init(&errors, 0);
	if (buf == NULL)
		goto out;
	if (cueq_connect(url, NULL, &c) != CUEQ_OK || cueq_ping(c, NULL) != CUEQ_OK) {
		fprintf(stderr, "cueq-bench: cannot reach %s: %s\n", url, cueq_last_error());
		goto out;
	}
	sleep_ms(200); /* let the broker's start-up settle */
	r->rss_before_kb = proc_status_kb(broker, "VmRSS");
	if (cueq_pusher_new(c, &po, &p) != CUEQ_OK) {
		fprintf(stderr, "cueq-bench: cannot make a pusher: %s\n", cueq_last_error());
		goto out;
	}
	t0 = now_ns();
	for (size_t i = 0; i < jobs; i++) {
		int k = snprintf((char *)buf, payload, "%zu", i);

		if (k >= 0 && (size_t)k < payload)
			memset(buf + k, 'm', payload - (size_t)k);
		if (cueq_pusher_add(p, queue, buf, payload, NULL, NULL) != CUEQ_OK) {
			fprintf(stderr, "cueq-bench: pusher add failed: %s\n", cueq_last_error());
			atomic_fetch_add(&errors, 1);
			break;
		}
		if (i + 1 == jobs / 2) {
			/* Halfway: the second half shows the cost of one more job
			 * once RocksDB's fixed buffers have filled. */
			if (cueq_pusher_flush(p) != CUEQ_OK)
				fprintf(stderr, "cueq-bench: some pushes failed: %s\n",
					cueq_last_error());
			sleep_ms(300);
			r->rss_half_kb = proc_status_kb(broker, "VmRSS");
		}
	}
	if (cueq_pusher_flush(p) != CUEQ_OK)
		fprintf(stderr, "cueq-bench: some pushes failed: %s\n", cueq_last_error());
	r->push_secs = (double)(now_ns() - t0) / 1e9;
	sleep_ms(500);
	r->rss_after_kb = proc_status_kb(broker, "VmRSS");
	r->hwm_kb = proc_status_kb(broker, "VmHWM");
	r->errors = atomic_load(&errors);
	if (cueq_stats(c, queue, &st, &nst) != CUEQ_OK) {
		fprintf(stderr, "cueq-bench: stats failed: %s\n", cueq_last_error());
		goto out;
	}
	for (size_t i = 0; i < nst; i++)
		if (strcmp(st[i].queue, queue) == 0)
			r->ready = st[i].ready + st[i].scheduled;
	rc = 0;
out:
	cueq_stats_free(st, nst);
	if (p != NULL)
		cueq_pusher_free(p);
	if (c != NULL)
		cueq_close(c);
	free(buf);
	return rc;
}
