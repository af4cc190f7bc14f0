/*
 * idset.h - a thread-safe set of execution IDs, for the demo's handler.
 *
 * The handler records every execution it is given, with the attempt number,
 * so the demo can tell a legitimate redelivery (same ID, higher attempt)
 * from a duplicate (same ID handed out again without a new attempt).  One
 * mutex around an open-addressing table: the handler's critical section is
 * a hash and a compare, far below the cost of the request that brought the
 * job.
 */
#ifndef CUEQ_BENCH_IDSET_H
#define CUEQ_BENCH_IDSET_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cueq/cueq.h>

struct idset_entry {
	char id[CUEQ_ID_SIZE]; /* "" for a free slot */
	uint32_t times;	       /* handler calls with this ID */
	uint32_t max_attempt;  /* highest attempt seen */
};

struct idset {
	pthread_mutex_t lock;
	struct idset_entry *slots;
	size_t cap;  /* power of two */
	size_t used; /* distinct IDs */
	int lock_ok; /* the mutex was initialised */
};

enum idset_seen {
	IDSET_FIRST = 0,     /* never seen before */
	IDSET_REDELIVERY = 1, /* seen, and this attempt is higher than any before */
	IDSET_DUPLICATE = 2,  /* seen, and the attempt did not increase */
	IDSET_NOMEM = -1,
};

/* Zero-filled s, sized for about expect IDs (it grows).  0 or -1. */
int idset_init(struct idset *s, size_t expect);
/* Frees the table; copes with a half-built s. */
void idset_free(struct idset *s);
/* Records one handler call for id at attempt. */
enum idset_seen idset_see(struct idset *s, const char *id, uint32_t attempt);
/* Handler calls recorded for id (0: never handled). */
uint32_t idset_times(struct idset *s, const char *id);
/* Distinct IDs recorded. */
size_t idset_size(struct idset *s);
/* IDs handled more than once. */
size_t idset_multi(struct idset *s);

#endif
