/*
 * holders.c - leases by connection (holders.h).  A fixed table of buckets
 * of per-connection lists; connections are few (--max-connections), leases
 * per connection as many as its worker holds.
 */
#include "holders.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

#define BUCKETS 1024

struct holder {
	uint32_t pipe;
	size_t n, cap;
	uint64_t *v; /* id, token pairs */
	struct holder *next;
};

struct holders {
	const struct engine_ops *eo;
	struct engine *e;
	struct holder *bucket[BUCKETS];
};

struct holders *holders_new(const struct engine_ops *eo, struct engine *e)
{
	struct holders *h = calloc(1, sizeof(*h));
	if (h != NULL)
		h->eo = eo, h->e = e;
	return h;
}

void holders_free(struct holders *h)
{
	if (h == NULL)
		return;
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct holder *x = h->bucket[b], *next; x != NULL; x = next) {
			next = x->next;
			free(x->v);
			free(x);
		}
	free(h);
}

static struct holder **slot(struct holders *h, uint32_t pipe)
{
	struct holder **p = &h->bucket[(pipe * 2654435761u) % BUCKETS];
	while (*p != NULL && (*p)->pipe != pipe)
		p = &(*p)->next;
	return p;
}

/* Drops the leases of x that ended. */
static void prune(struct holders *h, struct holder *x)
{
	size_t k = 0;
	for (size_t i = 0; i < x->n; i++)
		if (h->eo->is_live(h->e, x->v[2 * i], x->v[2 * i + 1])) {
			x->v[2 * k] = x->v[2 * i];
			x->v[2 * k + 1] = x->v[2 * i + 1];
			k++;
		}
	x->n = k;
}

void holders_add(struct holders *h, uint32_t pipe, const uint64_t *ids, const uint64_t *tokens,
		 size_t n)
{
	struct holder **p = slot(h, pipe), *x = *p;
	if (x == NULL) {
		if ((x = calloc(1, sizeof(*x))) == NULL)
			goto oom;
		x->pipe = pipe;
		*p = x;
	}
	if (x->n + n > x->cap) {
		prune(h, x);
		if (x->n + n > x->cap / 2) { /* still half full: grow, keeping pruning rare */
			size_t cap = x->cap ? x->cap : 16;
			while (cap < 2 * (x->n + n))
				cap *= 2;
			uint64_t *v = realloc(x->v, cap * 2 * sizeof(*v));
			if (v == NULL)
				goto oom;
			x->v = v;
			x->cap = cap;
		}
	}
	for (size_t i = 0; i < n; i++) {
		x->v[2 * x->n] = ids[i];
		x->v[2 * x->n + 1] = tokens[i];
		x->n++;
	}
	return;
oom:
	/* the leases then end when they run out, as without the release */
	log_warn("out of memory recording leases by connection; they end by expiry instead");
}

size_t holders_release(struct holders *h, uint32_t pipe)
{
	struct holder **p = slot(h, pipe), *x = *p;
	size_t ended = 0;
	if (x == NULL)
		return 0;
	*p = x->next;
	uint64_t *ids = malloc((x->n ? x->n : 1) * sizeof(*ids));
	uint64_t *tokens = malloc((x->n ? x->n : 1) * sizeof(*tokens));
	if (ids != NULL && tokens != NULL) {
		for (size_t i = 0; i < x->n; i++)
			ids[i] = x->v[2 * i], tokens[i] = x->v[2 * i + 1];
		h->eo->release(h->e, ids, tokens, x->n, &ended);
	}
	free(ids);
	free(tokens);
	free(x->v);
	free(x);
	return ended;
}
