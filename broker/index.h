/*
 * index.h - the broker's memory indexes of unfinished executions.
 *
 * A job is the in-memory face of one unfinished execution: just what
 * scheduling needs (112 bytes; the payload and history stay on disk).
 * Jobs come from a pool, are found by ID in an open-addressing table, and
 * sit in at most one heap: their group's ready heap (priority, then push
 * order) or the global timer heap (run_at while scheduled, the lease
 * deadline while leased).  Everything here is owned by the core thread.
 */
#ifndef CUEQ_INDEX_H
#define CUEQ_INDEX_H

#ifndef CUEQ_EMBEDDED_ENGINE
#error "index.h is private to the embedded engine: outside it, use engine.h"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEAP_NONE UINT32_MAX

struct group;

struct job {
	uint64_t id;
	uint64_t cue_id;     /* the recurring cue it is a fire of, else id */
	uint64_t token;	     /* live lease token, 0 when not leased */
	int64_t created_at;  /* Unix ms */
	int64_t run_at;	     /* when it became or becomes ready */
	int64_t deadline;    /* lease deadline while leased */
	char *error;	     /* last nack's error text (malloc'd), or NULL */
	struct group *group; /* its concurrency group (its queue's default: none) */
	uint32_t error_len;
	uint32_t heap_pos;   /* place in its heap, HEAP_NONE if in none */
	uint32_t queue;	     /* index in the queue table */
	uint32_t lease_ms;   /* default lease length */
	uint32_t hist_seq;   /* next history sequence number */
	uint32_t backoff_ms, backoff_max_ms, backoff_factor; /* eng_backoff */
	uint16_t attempt;    /* deliveries so far */
	uint16_t max_expiries;
	uint16_t max_attempts;
	uint16_t expiries, failures;
	int16_t priority;
	uint8_t state; /* cueq_state */
	uint8_t flags; /* REC_F_* of record.h, and JOB_F_* */
};

/* Made ready again by a write that may not be synced (an operator's retry
 * of an execution whose ID is old): memory only, never stored. */
#define JOB_F_UNSYNCED 0x80
/* Its newest history event is an extension under the live lease: the next
 * one replaces it (memory only). */
#define JOB_F_EXTENDED 0x40
#define JOB_F_MEMORY (JOB_F_UNSYNCED | JOB_F_EXTENDED)

/* ---- pool and ID table ---- */
struct jobs;
struct jobs *jobs_new(void);
void jobs_free(struct jobs *t); /* frees every job too */
/* A zeroed job, not yet in the table; NULL when out of memory. */
struct job *jobs_alloc(struct jobs *t);
/* Returns a job (removed from the table and heaps first) to the pool. */
void jobs_release(struct jobs *t, struct job *j);
int jobs_insert(struct jobs *t, struct job *j); /* 0, or -1 out of memory */
/* Makes room for n jobs at once (start-up); a failure leaves it growing
 * as it goes. */
void jobs_reserve(struct jobs *t, size_t n);
struct job *jobs_find(const struct jobs *t, uint64_t id);
void jobs_remove(struct jobs *t, struct job *j);
size_t jobs_count(const struct jobs *t);

/* ---- heaps ---- */
typedef bool (*heap_less)(const struct job *a, const struct job *b);
struct heap {
	struct job **v;
	uint32_t n, cap;
	heap_less less;
};
void heap_init(struct heap *h, heap_less less);
void heap_fini(struct heap *h);
int heap_push(struct heap *h, struct job *j); /* 0, or -1 out of memory */
struct job *heap_top(const struct heap *h);
struct job *heap_pop(struct heap *h);
void heap_remove(struct heap *h, struct job *j); /* j must be in h */
void heap_fix(struct heap *h, struct job *j);	 /* after j's key changed */

/* Orders of the two kinds of heap. */
bool job_ready_before(const struct job *a, const struct job *b);
bool job_due_before(const struct job *a, const struct job *b);
/* The time a job in the timer heap is due: run_at or the lease deadline. */
int64_t job_due(const struct job *j);

#endif /* CUEQ_INDEX_H */
