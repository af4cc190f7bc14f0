/*
 * park.c - the parked claims of park.h: a list in arrival order, served
 * in that order, so the longest waiter gets the first job.
 */
#include "park.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void *need(void *p)
{
	if (p == NULL) {
		log_error("out of memory in the core; stopping without answering this turn");
		abort();
	}
	return p;
}

void park_limits(struct parks *ps, size_t max, size_t max_per_conn)
{
	ps->max = max;
	ps->max_per_conn = max_per_conn;
}

/* The count slot of pipe (a free one when it has none), or NULL when the
 * table is full. */
static struct park_count *count_of(struct parks *ps, uint32_t pipe)
{
	if (ps->cap_counts == 0)
		return NULL;
	size_t mask = ps->cap_counts - 1;
	for (size_t i = (pipe * 2654435761u) & mask, k = 0; k < ps->cap_counts; i = (i + 1) & mask, k++)
		if (ps->counts[i].pipe == pipe || ps->counts[i].pipe == 0)
			return &ps->counts[i];
	return NULL;
}

/* Grows the table to twice what is used (slots of count 0 are dropped). */
static void counts_grow(struct parks *ps)
{
	struct park_count *old = ps->counts;
	size_t n = ps->cap_counts, cap = 64, live = 0;
	for (size_t i = 0; i < n; i++)
		live += old[i].pipe != 0 && old[i].n > 0;
	while (cap < 4 * (live + 1))
		cap *= 2;
	ps->counts = need(calloc(cap, sizeof(*ps->counts)));
	ps->cap_counts = cap;
	ps->used_counts = 0;
	for (size_t i = 0; i < n; i++)
		if (old[i].pipe != 0 && old[i].n > 0) {
			*count_of(ps, old[i].pipe) = old[i];
			ps->used_counts++;
		}
	free(old);
}

static void count_add(struct parks *ps, uint32_t pipe, int d)
{
	if (ps->max_per_conn == 0 || pipe == 0)
		return;
	if (2 * (ps->used_counts + 1) > ps->cap_counts)
		counts_grow(ps);
	struct park_count *c = count_of(ps, pipe);
	if (c->pipe == 0) {
		c->pipe = pipe;
		ps->used_counts++;
	}
	c->n = (uint32_t)((int)c->n + d);
	/* a slot of count 0 stays as a tombstone until the next growth */
}

int park_add(struct parks *ps, struct request *r, const struct claim_args *a,
	     struct rid_entry *e, const void *rid, size_t rid_len, bool rid_bin, proto_error *err)
{
	if (ps->max != 0 && ps->n >= ps->max)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE,
				  "%zu claims are waiting already, the broker's limit (--max-parked): try again later, or wait less long",
				  ps->n), -1;
	struct park_count *c = ps->max_per_conn != 0 && r->pipe != 0 ? count_of(ps, r->pipe) : NULL;
	if (c != NULL && c->pipe == r->pipe && c->n >= ps->max_per_conn)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE,
				  "%u claims of this connection are waiting already, the broker's limit (--max-parked-per-connection): wait for their answers before sending more",
				  c->n), -1;
	struct park *p = need(calloc(1, sizeof(*p)));
	p->r = r;
	p->a = *a;
	p->deadline = proto_mono_ms() + a->wait_ms;
	p->rid_entry = e;
	memcpy(p->rid, rid, rid_len);
	p->rid_len = rid_len;
	p->rid_bin = rid_bin;
	for (size_t i = 0; i < ps->n_recent_gone; i++)
		p->gone |= ps->recent_gone[i] == r->pipe; /* closed before it arrived */
	/* the frame is not needed any more: the answer is a new message */
	nng_msg_free(r->msg);
	r->msg = NULL;
	if (ps->tail)
		ps->tail->next = p;
	else
		ps->head = p;
	ps->tail = p;
	ps->n++;
	count_add(ps, r->pipe, +1);
	return 0;
}

void park_gone(struct parks *ps, const uint32_t *gone, size_t n)
{
	for (struct park *p = ps->head; p; p = p->next)
		for (size_t i = 0; i < n; i++)
			p->gone |= p->r->pipe == gone[i];
	for (size_t i = 0; i < n; i++) {
		if (ps->n_recent_gone == PARK_RECENT_GONE) {
			memmove(ps->recent_gone, ps->recent_gone + PARK_RECENT_GONE / 2,
				PARK_RECENT_GONE / 2 * sizeof(uint32_t));
			ps->n_recent_gone = PARK_RECENT_GONE / 2;
		}
		ps->recent_gone[ps->n_recent_gone++] = gone[i];
	}
}

int64_t park_next_deadline(const struct parks *ps)
{
	int64_t d = INT64_MAX;
	for (const struct park *p = ps->head; p; p = p->next)
		if (p->deadline < d)
			d = p->deadline;
	return d;
}

void park_serve(struct parks *ps, const struct engine_ops *eo, struct engine *e, bool synced,
		bool all_final, park_answer_fn answer, void *arg)
{
	int64_t now = proto_mono_ms();
	struct park **pp = &ps->head;
	while (*pp) {
		struct park *p = *pp;
		bool final = all_final || p->gone || now >= p->deadline;
		bool wait = p->a.outcome_of != 0;
		if (p->gone)
			p->a.max = 0; /* nobody would get the jobs */
		if (!final && (wait ? eo->unfinished(e, p->a.outcome_of)
				    : !eo->has_ready(e, p->a.queue, p->a.qlen))) {
			pp = &p->next;
			continue;
		}
		proto_writer w;
		nng_msg *m;
		need(nng_msg_alloc(&m, 0) == 0 ? m : NULL);
		proto_writer_init(&w, m);
		struct opctx c = {
			.eo = eo,
			.e = e,
			.pk = &w.pk,
			.rid = p->rid,
			.rid_len = p->rid_len,
			.rid_bin = p->rid_bin,
			.synced = synced,
		};
		int rc = wait ? ops_wait(&c, &p->a, final) : ops_claim(&c, &p->a, final);
		if (rc == OP_PARKED) {
			free(c.memo);
			nng_msg_free(m);
			pp = &p->next;
			continue;
		}
		if (rc != CUEQ_OK || w.failed) {
			nng_msg_free(m);
			if (rc == CUEQ_OK)
				rc = proto_fail(&c.err, CUEQ_ERR_INTERNAL, "the broker could not build the reply");
			need(nng_msg_alloc(&m, 0) == 0 ? m : NULL);
			proto_writer_init(&w, m);
			proto_reply_error(&w.pk, p->rid, p->rid_len, p->rid_bin, c.err.code, c.err.msg);
		}
		uint32_t pipe = p->r->pipe; /* r is the server's again once answered */
		answer(arg, p->r, m, rc, p->rid_entry, rc == CUEQ_OK ? c.memo : NULL, c.memo_len,
		       c.early);
		if (rc != CUEQ_OK)
			free(c.memo);
		*pp = p->next;
		if (ps->tail == p) /* the one before it, which pp is the next of */
			ps->tail = pp == &ps->head ? NULL
						   : (struct park *)((char *)pp - offsetof(struct park, next));
		ps->n--;
		count_add(ps, pipe, -1);
		free(p);
	}
}

void park_free_all(struct parks *ps)
{
	while (ps->head) {
		struct park *p = ps->head;
		ps->head = p->next;
		free(p);
	}
	ps->tail = NULL;
	ps->n = 0;
	free(ps->counts);
	ps->counts = NULL;
	ps->cap_counts = ps->used_counts = 0;
}
