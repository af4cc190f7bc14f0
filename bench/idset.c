/*
 * idset.c - the demo's set of execution IDs (see idset.h).
 *
 * Linear probing over a power-of-two table kept at most half full; it
 * doubles when it gets there.  Entries are never removed.
 */
#include "idset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct idset_entry *find(struct idset_entry *slots, size_t cap, const char *id)
{
	size_t i = (size_t)hash(id) & (cap - 1);

	while (slots[i].id[0] != '\0' && strcmp(slots[i].id, id) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static int grow(struct idset *s)
{
	size_t cap = s->cap * 2;
	struct idset_entry *n = calloc(cap, sizeof(*n));

	if (n == NULL)
		return -1;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].id[0] != '\0')
			*find(n, cap, s->slots[i].id) = s->slots[i];
	free(s->slots);
	s->slots = n;
	s->cap = cap;
	return 0;
}

int idset_init(struct idset *s, size_t expect)
{
	s->cap = 16;
	while (s->cap < expect * 2)
		s->cap *= 2;
	s->slots = calloc(s->cap, sizeof(*s->slots));
	if (s->slots == NULL)
		return -1;
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		return -1;
	s->lock_ok = 1;
	return 0;
}

void idset_free(struct idset *s)
{
	if (s->lock_ok)
		pthread_mutex_destroy(&s->lock);
	s->lock_ok = 0;
	free(s->slots);
	s->slots = NULL;
}

enum idset_seen idset_see(struct idset *s, const char *id, uint32_t attempt)
{
	enum idset_seen r;
	struct idset_entry *e;

	pthread_mutex_lock(&s->lock);
	if ((s->used + 1) * 2 > s->cap && grow(s) != 0) {
		pthread_mutex_unlock(&s->lock);
		return IDSET_NOMEM;
	}
	e = find(s->slots, s->cap, id);
	if (e->id[0] == '\0') {
		snprintf(e->id, sizeof(e->id), "%s", id);
		s->used++;
		r = IDSET_FIRST;
	} else {
		r = attempt > e->max_attempt ? IDSET_REDELIVERY : IDSET_DUPLICATE;
	}
	e->times++;
	if (attempt > e->max_attempt)
		e->max_attempt = attempt;
	pthread_mutex_unlock(&s->lock);
	return r;
}

uint32_t idset_times(struct idset *s, const char *id)
{
	uint32_t n;

	pthread_mutex_lock(&s->lock);
	n = find(s->slots, s->cap, id)->times;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t idset_size(struct idset *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->used;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t idset_multi(struct idset *s)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].times > 1)
			n++;
	pthread_mutex_unlock(&s->lock);
	return n;
}
