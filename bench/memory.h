/*
 * memory.h - the pending-job memory measurement (cueq-bench --memory N).
 */
#ifndef CUEQ_BENCH_MEMORY_H
#define CUEQ_BENCH_MEMORY_H

#include <stddef.h>
#include <sys/types.h>

struct memory_result {
	long rss_before_kb, rss_half_kb, rss_after_kb, hwm_kb; /* broker's, /proc */
	double push_secs;			  /* first add to flush done */
	size_t errors;				  /* pushes refused */
	size_t ready;				  /* pending jobs the broker reports */
};

/* Pushes jobs payloads of payload bytes to queue on the broker at url
 * (process broker) with no worker, and measures its RSS before and after.
 * Returns 0, or -1 when the measurement could not be made (said on stderr). */
int run_memory(const char *url, pid_t broker, size_t jobs, size_t payload, const char *queue,
	       struct memory_result *r);

#endif
