/*
 * index.c - job pool, ID table and heaps.
 *
 * The ID table is open addressing with linear probing and backward-shift
 * deletion (no tombstones), kept at most 70% full: about 12 bytes a job.
 * The pool hands out jobs from chunks so malloc's per-object overhead is
 * not paid a million times.
 */
#include "index.h"

#include <stdlib.h>
#include <string.h>

#include "cueq/defs.h"

#define CHUNK 1024

struct chunk {
	struct chunk *next;
	struct job jobs[CHUNK];
};

struct jobs {
	struct job **slot; /* NULL: empty */
	size_t cap, n;	   /* cap is a power of two */
	struct chunk *chunks;
	struct job **freelist; /* stack of free jobs */
	size_t nfree, freecap;
	size_t allocated; /* jobs in all chunks */
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

struct jobs *jobs_new(void)
{
	struct jobs *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->cap = 1024;
	t->slot = calloc(t->cap, sizeof(*t->slot));
	if (t->slot == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

void jobs_free(struct jobs *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i])
			free(t->slot[i]->error);
	while (t->chunks) {
		struct chunk *c = t->chunks;
		t->chunks = c->next;
		free(c);
	}
	free(t->slot);
	free(t->freelist);
	free(t);
}

struct job *jobs_alloc(struct jobs *t)
{
	if (t->nfree == 0) {
		struct chunk *c = malloc(sizeof(*c));
		if (c == NULL)
			return NULL;
		/* room to hold every job ever allocated, all released at once */
		if (t->freecap < t->allocated + CHUNK) {
			size_t cap = t->freecap ? t->freecap * 2 : CHUNK;
			while (cap < t->allocated + CHUNK)
				cap *= 2;
			struct job **fl = realloc(t->freelist, cap * sizeof(*fl));
			if (fl == NULL) {
				free(c);
				return NULL;
			}
			t->freelist = fl, t->freecap = cap;
		}
		c->next = t->chunks;
		t->chunks = c;
		t->allocated += CHUNK;
		for (size_t i = CHUNK; i > 0; i--)
			t->freelist[t->nfree++] = &c->jobs[i - 1];
	}
	struct job *j = t->freelist[--t->nfree];
	memset(j, 0, sizeof(*j));
	j->heap_pos = HEAP_NONE;
	return j;
}

void jobs_release(struct jobs *t, struct job *j)
{
	free(j->error);
	j->error = NULL;
	/* freecap covers every job ever allocated (see jobs_alloc) */
	t->freelist[t->nfree++] = j;
}

static int grow(struct jobs *t)
{
	size_t ncap = t->cap * 2;
	struct job **ns = calloc(ncap, sizeof(*ns));
	if (ns == NULL)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		struct job *j = t->slot[i];
		if (j == NULL)
			continue;
		size_t k = mix(j->id) & (ncap - 1);
		while (ns[k])
			k = (k + 1) & (ncap - 1);
		ns[k] = j;
	}
	free(t->slot);
	t->slot = ns, t->cap = ncap;
	return 0;
}

void jobs_reserve(struct jobs *t, size_t n)
{
	if (n > ((size_t)1 << 22)) /* an estimate: past 4M jobs, grow as they come */
		n = (size_t)1 << 22;
	while ((n + 1) * 10 > t->cap * 7)
		if (grow(t) != 0)
			return;
}

int jobs_insert(struct jobs *t, struct job *j)
{
	if ((t->n + 1) * 10 > t->cap * 7 && grow(t) != 0)
		return -1;
	size_t k = mix(j->id) & (t->cap - 1);
	while (t->slot[k])
		k = (k + 1) & (t->cap - 1);
	t->slot[k] = j;
	t->n++;
	return 0;
}

struct job *jobs_find(const struct jobs *t, uint64_t id)
{
	size_t k = mix(id) & (t->cap - 1);
	while (t->slot[k]) {
		if (t->slot[k]->id == id)
			return t->slot[k];
		k = (k + 1) & (t->cap - 1);
	}
	return NULL;
}

void jobs_remove(struct jobs *t, struct job *j)
{
	size_t mask = t->cap - 1, k = mix(j->id) & mask;
	while (t->slot[k] && t->slot[k] != j)
		k = (k + 1) & mask;
	if (t->slot[k] == NULL)
		return;
	t->slot[k] = NULL;
	t->n--;
	/* backward-shift: move later entries of the cluster into the hole */
	for (size_t i = (k + 1) & mask; t->slot[i]; i = (i + 1) & mask) {
		size_t home = mix(t->slot[i]->id) & mask;
		/* slot i may move to k if its home is not in (k, i] cyclically */
		bool stays = (k <= i) ? (home > k && home <= i) : (home > k || home <= i);
		if (!stays) {
			t->slot[k] = t->slot[i];
			t->slot[i] = NULL;
			k = i;
		}
	}
}

size_t jobs_count(const struct jobs *t)
{
	return t->n;
}

/* ---- heaps ---- */

void heap_init(struct heap *h, heap_less less)
{
	h->v = NULL, h->n = h->cap = 0, h->less = less;
}

void heap_fini(struct heap *h)
{
	free(h->v);
	h->v = NULL, h->n = h->cap = 0;
}

static void place(struct heap *h, uint32_t i, struct job *j)
{
	h->v[i] = j;
	j->heap_pos = i;
}

static void up(struct heap *h, uint32_t i)
{
	struct job *j = h->v[i];
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (!h->less(j, h->v[p]))
			break;
		place(h, i, h->v[p]);
		i = p;
	}
	place(h, i, j);
}

static void down(struct heap *h, uint32_t i)
{
	struct job *j = h->v[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->less(h->v[c + 1], h->v[c]))
			c++;
		if (!h->less(h->v[c], j))
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, j);
}

int heap_push(struct heap *h, struct job *j)
{
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap + h->cap / 2 : 64;
		struct job **v = realloc(h->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		h->v = v, h->cap = cap;
	}
	h->v[h->n] = j;
	j->heap_pos = h->n++;
	up(h, j->heap_pos);
	return 0;
}

struct job *heap_top(const struct heap *h)
{
	return h->n ? h->v[0] : NULL;
}

void heap_remove(struct heap *h, struct job *j)
{
	uint32_t i = j->heap_pos;
	struct job *last = h->v[--h->n];
	j->heap_pos = HEAP_NONE;
	if (i == h->n)
		return;
	place(h, i, last);
	up(h, i);
	down(h, last->heap_pos);
}

struct job *heap_pop(struct heap *h)
{
	struct job *j = heap_top(h);
	if (j)
		heap_remove(h, j);
	return j;
}

void heap_fix(struct heap *h, struct job *j)
{
	up(h, j->heap_pos);
	down(h, j->heap_pos);
}

bool job_ready_before(const struct job *a, const struct job *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority;
	/* push order: IDs of one-shot jobs grow with time, but a recurring
	 * cue's fires have IDs derived from (cue, fire time) */
	if (a->created_at != b->created_at)
		return a->created_at < b->created_at;
	return a->id < b->id;
}

int64_t job_due(const struct job *j)
{
	return j->state == CUEQ_LEASED ? j->deadline : j->run_at;
}

bool job_due_before(const struct job *a, const struct job *b)
{
	return job_due(a) < job_due(b);
}
