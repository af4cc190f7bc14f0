/*
 * park.c - the parked claims of park.h: a list in arrival order, served
 * in that order, so the longest waiter gets the first job.
 */
#include "park.h"

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

void park_add(struct parks *ps, struct request *r, const struct claim_args *a,
	      struct rid_entry *e, const void *rid, size_t rid_len, bool rid_bin)
{
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
	struct park **tail = &ps->head;
	while (*tail)
		tail = &(*tail)->next;
	*tail = p;
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
		if (p->gone)
			p->a.max = 0; /* nobody would get the jobs */
		if (!final && !eo->has_ready(e, p->a.queue, p->a.qlen)) {
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
		int rc = ops_claim(&c, &p->a, final);
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
		answer(arg, p->r, m, rc, p->rid_entry, rc == CUEQ_OK ? c.memo : NULL, c.memo_len,
		       c.early);
		if (rc != CUEQ_OK)
			free(c.memo);
		*pp = p->next;
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
}
