/*
 * latency.h - clocks and latency samples for the benchmark.
 *
 * Many threads record samples at once, so a recorder is a preallocated array
 * with an atomic fill index: no lock on the hot path, and samples beyond the
 * capacity are counted but dropped.  Percentiles are read once, after the
 * threads are joined, by sorting the array.
 */
#ifndef CUEQ_BENCH_LATENCY_H
#define CUEQ_BENCH_LATENCY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct lat {
	uint64_t *ns;	 /* samples, nanoseconds */
	size_t cap;	 /* room in ns */
	atomic_size_t n; /* samples offered (may exceed cap) */
	int sorted;	 /* set by lat_sort */
};

/* Monotonic clock in nanoseconds; comparable across threads of one process. */
uint64_t now_ns(void);
/* Sleeps for ms milliseconds. */
void sleep_ms(unsigned ms);

/* Zero-filled l gets room for cap samples; returns 0 or -1 (out of memory). */
int lat_init(struct lat *l, size_t cap);
/* Frees the samples; copes with a zeroed or half-built l. */
void lat_free(struct lat *l);
void lat_add(struct lat *l, uint64_t ns);
/* Samples kept (at most cap). */
size_t lat_count(const struct lat *l);
/* Sorts the samples; call once all writers are done. */
void lat_sort(struct lat *l);
/* The p-th percentile (0 < p <= 100) in nanoseconds, 0 with no samples.
 * Sorts first if needed. */
uint64_t lat_pct(struct lat *l, double p);

#endif
