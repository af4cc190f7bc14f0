/*
 * latency.c - clocks and lock-free latency recorders (see latency.h).
 */
#include "latency.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int lat_init(struct lat *l, size_t cap)
{
	l->ns = calloc(cap ? cap : 1, sizeof(*l->ns));
	if (l->ns == NULL)
		return -1;
	l->cap = cap;
	atomic_init(&l->n, 0);
	l->sorted = 0;
	return 0;
}

void lat_free(struct lat *l)
{
	free(l->ns);
	l->ns = NULL;
	l->cap = 0;
}

void lat_add(struct lat *l, uint64_t ns)
{
	size_t i = atomic_fetch_add_explicit(&l->n, 1, memory_order_relaxed);

	if (i < l->cap)
		l->ns[i] = ns;
}

size_t lat_count(const struct lat *l)
{
	size_t n = atomic_load(&l->n);

	return n < l->cap ? n : l->cap;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

void lat_sort(struct lat *l)
{
	qsort(l->ns, lat_count(l), sizeof(*l->ns), cmp_u64);
	l->sorted = 1;
}

uint64_t lat_pct(struct lat *l, double p)
{
	size_t n = lat_count(l), i;

	if (n == 0)
		return 0;
	if (!l->sorted)
		lat_sort(l);
	/* Nearest rank: the smallest sample with at least p% at or below it. */
	i = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return l->ns[i - 1];
}
