/*
 * chaos_check.c - after a chaos run, with the broker up again and every
 * job drained: the producers' and handlers' logs against what the broker
 * says of each execution (get: state, history, ledger).
 *
 * The checks, numbered as the test's promise list:
 *   1. every push answered ok names an execution the broker has, and it
 *      succeeded; the queue holds no execution no producer was answered;
 *   2. in each history, a claim comes only after the previous lease
 *      ended (expired, released, acked, nacked), never while one is live,
 *      and attempts count up by one;
 *   3. one idempotency key, one execution ID: every answer for a key
 *      named the same ID, no ID answered two keys, and every handler that
 *      ran an ID saw the key that ID was pushed with;
 *   4. no handler ran an ID no push was answered with;
 *   5. fencing: every event the broker accepted under a token (extend,
 *      step, ack) falls inside that token's lease in its history; every
 *      step record or ack a handler saw accepted is in the history under
 *      its token and was sent before its lease ended; every refusal came
 *      after the lease ended (or for a lease the broker never kept); a
 *      token was never given twice; the ledger holds, for each step, the
 *      value a handler made under the lease that recorded it, at the time
 *      the history says.
 * Times compare the handlers' CLOCK_REALTIME with the broker's history
 * stamps (the same clock, in ms, on the same machine): a request's event
 * lies between its sending and its answer, give or take SLACK_MS.
 */
#include "chaos.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cueq/cueq.h"

#define SLACK_MS 2
#define SHOWN 30 /* violations printed in full */
#define NO_END INT64_MAX

/* One execution a producer was answered with. */
struct pushed {
	uint64_t id;
	const chaos_rec *rec; /* its first answer */
	bool listed;
};

/* One lease of an execution, from its history. */
struct lease {
	uint64_t token;
	uint32_t attempt;
	int64_t from, to; /* claimed at, ended at (NO_END: still live) */
	const char *end;  /* the event that ended it */
};

/* A token given, for the check that none is given twice. */
struct given {
	uint64_t token, id;
	uint32_t attempt;
	const chaos_rec *rec; /* a handler's start, or NULL: the broker's claim */
};

struct ctx {
	cueq_client *c;
	chaos_logs *logs;
	const char *breaks;
	chaos_figures *f;
	struct pushed *pushed;
	size_t n_pushed;
	const chaos_rec **work; /* the handlers' lines, by execution ID */
	size_t n_work;
	struct given *starts;
	size_t n_starts, cap_starts;
	bool spoiled;
};

/* ---- helpers ---- */

static void violation(struct ctx *x, int check, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void violation(struct ctx *x, int check, const char *fmt, ...)
{
	va_list ap;

	if (x->f->violations++ >= SHOWN) {
		if (x->f->violations == SHOWN + 1)
			fprintf(stderr, "chaos: (more violations follow; only counted)\n");
		return;
	}
	fprintf(stderr, "chaos: VIOLATION of check %d: ", check);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const char *where(struct ctx *x, const chaos_rec *r)
{
	static char buf[4][300];
	static unsigned k;
	return chaos_where(x->logs, r, buf[k++ % 4], sizeof(buf[0]));
}

/* Spoils one input when the run asked for it (--break NAME), once. */
static bool spoil(struct ctx *x, const char *name)
{
	if (x->spoiled || strcmp(x->breaks, name) != 0)
		return false;
	x->spoiled = true;
	fprintf(stderr, "chaos: --break %s: spoiling one input on purpose\n", name);
	return true;
}

static uint64_t hex_id(const char *s)
{
	return s != NULL ? strtoull(s, NULL, 16) : 0;
}

/* A lease token of a history: the broker shows its last four digits only
 * ("************1a2b"), so a handler's token (from its claim, in full) is
 * compared with one by TAIL, and a stale token is told from the live one
 * unless the two share those digits (1 in 65,536).  Tokens given twice are
 * checked on the handlers' side, where they are whole. */
#define TAIL(token) ((token) & 0xffffu)

static uint64_t tok_id(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;
	return n >= 4 ? strtoull(s + n - 4, NULL, 16) : 0;
}

static int push_given(struct given **a, size_t *n, size_t *cap, struct given g)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 4096;
		struct given *p = realloc(*a, nc * sizeof(*p));
		if (p == NULL)
			return -1;
		*a = p, *cap = nc;
	}
	(*a)[(*n)++] = g;
	return 0;
}

static int by_key(const void *a, const void *b)
{
	const chaos_rec *ra = *(const chaos_rec *const *)a, *rb = *(const chaos_rec *const *)b;
	int c = strcmp(ra->key, rb->key);
	return c != 0 ? c : (ra->file != rb->file ? (ra->file < rb->file ? -1 : 1)
						  : (ra->line < rb->line ? -1 : ra->line > rb->line));
}

static int by_pushed_id(const void *a, const void *b)
{
	const struct pushed *pa = a, *pb = b;
	return pa->id < pb->id ? -1 : pa->id > pb->id;
}

static int by_work_id(const void *a, const void *b)
{
	const chaos_rec *ra = *(const chaos_rec *const *)a, *rb = *(const chaos_rec *const *)b;
	if (ra->id != rb->id)
		return ra->id < rb->id ? -1 : 1;
	if (ra->file != rb->file)
		return ra->file < rb->file ? -1 : 1;
	return ra->line < rb->line ? -1 : ra->line > rb->line;
}

static int by_token(const void *a, const void *b)
{
	const struct given *ga = a, *gb = b;
	return ga->token < gb->token ? -1 : ga->token > gb->token;
}

static struct pushed *find_pushed(struct ctx *x, uint64_t id)
{
	struct pushed key = { .id = id };
	return bsearch(&key, x->pushed, x->n_pushed, sizeof(key), by_pushed_id);
}

/* ---- checks 3 and 4: keys, IDs, what handlers ran ---- */

/* One ID per key (3); builds the pushed table. */
static int check_keys(struct ctx *x)
{
	size_t n = 0;
	const chaos_rec **p = malloc((x->logs->n + 1) * sizeof(*p));

	if (p == NULL)
		return -1;
	for (size_t i = 0; i < x->logs->n; i++)
		if (x->logs->recs[i].kind == CR_PUSH) {
			x->f->pushes_answered++;
			x->f->duplicates_answered += x->logs->recs[i].dup;
			if (n == 0 && spoil(x, "push"))
				continue;
			p[n++] = &x->logs->recs[i];
		}
	qsort(p, n, sizeof(*p), by_key);
	x->pushed = calloc(n + 1, sizeof(*x->pushed));
	if (x->pushed == NULL) {
		free(p);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(p[i]->key, p[i - 1]->key) == 0) {
			if (p[i]->id != x->pushed[x->n_pushed - 1].id)
				violation(x, 3, "key %s was answered with two execution IDs: %016" PRIx64
						" (%s) and %016" PRIx64 " (%s)",
					  p[i]->key, x->pushed[x->n_pushed - 1].id,
					  where(x, x->pushed[x->n_pushed - 1].rec), p[i]->id, where(x, p[i]));
			continue;
		}
		x->pushed[x->n_pushed++] = (struct pushed){ .id = p[i]->id, .rec = p[i] };
	}
	free(p);
	x->f->jobs = x->n_pushed;
	qsort(x->pushed, x->n_pushed, sizeof(*x->pushed), by_pushed_id);
	for (size_t i = 1; i < x->n_pushed; i++)
		if (x->pushed[i].id == x->pushed[i - 1].id)
			violation(x, 3, "execution %016" PRIx64 " was answered for two keys: %s (%s) and %s (%s)",
				  x->pushed[i].id, x->pushed[i - 1].rec->key,
				  where(x, x->pushed[i - 1].rec), x->pushed[i].rec->key,
				  where(x, x->pushed[i].rec));
	return 0;
}

/* The handlers' lines by execution; each must name a pushed ID (4). */
static int index_work(struct ctx *x)
{
	x->work = malloc((x->logs->n + 1) * sizeof(*x->work));
	if (x->work == NULL)
		return -1;
	for (size_t i = 0; i < x->logs->n; i++)
		if (x->logs->recs[i].kind != CR_PUSH)
			x->work[x->n_work++] = &x->logs->recs[i];
	qsort(x->work, x->n_work, sizeof(*x->work), by_work_id);
	for (size_t i = 0; i < x->n_work; i++) {
		const chaos_rec *r = x->work[i];
		if (r->kind == CR_START && find_pushed(x, r->id) == NULL)
			violation(x, 4, "a handler ran execution %016" PRIx64 " (key %s, %s), which no "
					"push was answered with",
				  r->id, r->key, where(x, r));
	}
	return 0;
}

/* Every execution of the queue is one a producer was answered with (1). */
static int check_listing(struct ctx *x, char *why, size_t why_size)
{
	char after[CUEQ_ID_SIZE] = "";

	for (;;) {
		cueq_execution *list = NULL;
		size_t n = 0;
		int rc = cueq_list(x->c, CHAOS_QUEUE, -1, 1000, after[0] ? after : NULL, &list, &n);
		if (rc != CUEQ_OK) {
			snprintf(why, why_size, "list %s: %s (%s)", CHAOS_QUEUE, cueq_strerror(rc),
				 cueq_last_error());
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			struct pushed *p = find_pushed(x, hex_id(list[i].execution_id));
			if (p == NULL)
				violation(x, 1, "the broker holds execution %s (%s, attempt %u), which no "
						"push was answered with",
					  list[i].execution_id, cueq_state_name(list[i].state),
					  list[i].attempt);
			else
				p->listed = true;
		}
		if (n > 0)
			snprintf(after, sizeof(after), "%s", list[n - 1].execution_id);
		cueq_list_free(list, n);
		if (n < 1000)
			return 0;
	}
}

/* ---- check 2 and the broker's half of 5: the history ---- */

struct walk {
	struct lease *l;
	size_t n, cap;
	int open;	 /* index of the live lease, -1 none */
	int64_t last_at, last_end;
	uint64_t succeeded_token;
	int64_t succeeded_at;
	size_t successes;
};

static int add_lease(struct walk *w, struct lease l)
{
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 8;
		struct lease *p = realloc(w->l, nc * sizeof(*p));
		if (p == NULL)
			return -1;
		w->l = p, w->cap = nc;
	}
	w->l[w->n++] = l;
	return 0;
}

static const struct lease *find_lease(const struct walk *w, uint64_t token)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->l[i].token == TAIL(token))
			return &w->l[i];
	return NULL;
}

static void on_claim(struct ctx *x, const cueq_execution *e, struct walk *w,
		     const cueq_event *ev, uint64_t tok)
{
	x->f->deliveries++;
	if (w->open >= 0)
		violation(x, 2, "%s: claimed under %s (attempt %u) at %" PRId64 " while lease %016" PRIx64
				" from %" PRId64 " was live",
			  e->execution_id, ev->lease_token, ev->attempt, ev->at_ms,
			  w->l[w->open].token, w->l[w->open].from);
	else if (ev->at_ms + SLACK_MS < w->last_end)
		violation(x, 2, "%s: claimed at %" PRId64 ", before the previous lease ended at %" PRId64,
			  e->execution_id, ev->at_ms, w->last_end);
	uint32_t want = w->n > 0 ? w->l[w->n - 1].attempt + 1 : 1;
	if (ev->attempt != want)
		violation(x, 2, "%s: claim %zu is attempt %u, expected %u", e->execution_id, w->n + 1,
			  ev->attempt, want);
	if (add_lease(w, (struct lease){ .token = tok, .attempt = ev->attempt, .from = ev->at_ms,
					 .to = NO_END }) != 0) {
		violation(x, 2, "out of memory checking %s", e->execution_id);
		return;
	}
	w->open = (int)w->n - 1;
}

/* An event that needs the live lease (extended, step) or ends it. */
static void on_leased(struct ctx *x, const cueq_execution *e, struct walk *w,
		      const cueq_event *ev, uint64_t tok, bool ends)
{
	if (w->open < 0 || w->l[w->open].token != tok) {
		violation(x, ends && strcmp(ev->event, "expired") == 0 ? 2 : 5,
			  "%s: %s under token %s at %" PRId64 ", but the live lease was %s",
			  e->execution_id, ev->event, ev->lease_token ? ev->lease_token : "(none)",
			  ev->at_ms, w->open < 0 ? "none" : "another");
		return;
	}
	if (!ends)
		return;
	w->l[w->open].to = ev->at_ms;
	w->l[w->open].end = ev->event;
	w->last_end = ev->at_ms;
	w->open = -1;
}

static void walk_event(struct ctx *x, const cueq_execution *e, struct walk *w,
		       const cueq_event *ev)
{
	uint64_t tok = tok_id(ev->lease_token);
	const char *k = ev->event != NULL ? ev->event : "?";

	if (ev->at_ms + SLACK_MS < w->last_at)
		violation(x, 2, "%s: history goes back in time: %s at %" PRId64 " after %" PRId64,
			  e->execution_id, k, ev->at_ms, w->last_at);
	w->last_at = ev->at_ms;
	if (strcmp(k, "claimed") == 0) {
		on_claim(x, e, w, ev, tok);
	} else if (strcmp(k, "extended") == 0 || strcmp(k, "step") == 0) {
		on_leased(x, e, w, ev, tok, false);
	} else if (strcmp(k, "expired") == 0 || strcmp(k, "released") == 0 ||
		   strcmp(k, "nacked") == 0 || strcmp(k, "succeeded") == 0) {
		x->f->expiries += strcmp(k, "expired") == 0;
		x->f->releases += strcmp(k, "released") == 0;
		x->f->nacks += strcmp(k, "nacked") == 0;
		if (strcmp(k, "succeeded") == 0)
			w->successes++, w->succeeded_token = tok, w->succeeded_at = ev->at_ms;
		on_leased(x, e, w, ev, tok, true);
	} else {
		violation(x, 1, "%s: unexpected %s event at %" PRId64 " (%s)", e->execution_id, k,
			  ev->at_ms, ev->detail ? ev->detail : "");
	}
}

static void walk_history(struct ctx *x, const cueq_execution *e, struct walk *w)
{
	size_t spoilt = SIZE_MAX;

	w->open = -1;
	for (size_t i = 0; i < e->history_len; i++)
		if (spoilt == SIZE_MAX && e->history[i].event != NULL &&
		    (strcmp(e->history[i].event, "expired") == 0 ||
		     strcmp(e->history[i].event, "released") == 0) &&
		    spoil(x, "overlap"))
			spoilt = i;
	for (size_t i = 0; i < e->history_len; i++)
		if (i != spoilt)
			walk_event(x, e, w, &e->history[i]);
	if (w->open >= 0)
		violation(x, 2, "%s: lease %016" PRIx64 " is still live at the end", e->execution_id,
			  w->l[w->open].token);
	if (w->successes != 1)
		violation(x, 1, "%s: %zu successes in its history, expected 1", e->execution_id,
			  w->successes);
	if (e->history_len >= 1000)
		violation(x, 2, "%s: its history is full (%zu events): older ones may be gone",
			  e->execution_id, e->history_len);
	if (w->n > 0)
		x->f->redeliveries += w->n - 1;
}

/* ---- the handlers' half of 5 ---- */

/* A step event of the history under token, named name, between s and a. */
static bool step_in_history(const cueq_execution *e, uint64_t token, const char *name, int64_t s,
			    int64_t a)
{
	for (size_t i = 0; i < e->history_len; i++) {
		const cueq_event *ev = &e->history[i];
		if (ev->event != NULL && strcmp(ev->event, "step") == 0 &&
		    tok_id(ev->lease_token) == TAIL(token) && ev->detail != NULL &&
		    strcmp(ev->detail, name) == 0 && ev->at_ms + SLACK_MS >= s &&
		    ev->at_ms <= a + SLACK_MS)
			return true;
	}
	return false;
}

/* An accepted write under l: sent before l ended. */
static void accepted_in_lease(struct ctx *x, const chaos_rec *r, const struct lease *l,
			      const char *what)
{
	if (l == NULL)
		violation(x, 5, "%016" PRIx64 ": %s accepted under token %016" PRIx64
				", which the broker's history never gave (%s)",
			  r->id, what, r->token, where(x, r));
	else if (r->s_rt > l->to + SLACK_MS)
		violation(x, 5, "%016" PRIx64 ": %s accepted under token %016" PRIx64 " sent at %" PRId64
				", after its lease ended (%s at %" PRId64 ") (%s)",
			  r->id, what, r->token, r->s_rt, l->end, l->to, where(x, r));
}

/* A refusal under l: answered after l ended, or l unknown to the broker. */
static void refused_after_lease(struct ctx *x, const chaos_rec *r, const struct lease *l,
				const char *what)
{
	if (l != NULL && l->to != NO_END && l->to > r->a_rt + SLACK_MS)
		violation(x, 5, "%016" PRIx64 ": %s under token %016" PRIx64 " refused at %" PRId64
				", but the history keeps that lease live until %" PRId64 " (%s)",
			  r->id, what, r->token, r->a_rt, l->to, where(x, r));
}

static void check_start(struct ctx *x, const struct pushed *p, const struct walk *w,
			const chaos_rec *r)
{
	const struct lease *l = find_lease(w, r->token);

	x->f->handler_starts++;
	if (strcmp(r->key, p->rec->key) != 0)
		violation(x, 3, "%016" PRIx64 " was pushed as %s but its handler saw key %s (%s)", r->id,
			  p->rec->key, r->key, where(x, r));
	if (push_given(&x->starts, &x->n_starts, &x->cap_starts,
		       (struct given){ .token = r->token, .id = r->id, .attempt = r->attempt,
				       .rec = r }) != 0)
		violation(x, 5, "out of memory checking %016" PRIx64, r->id);
	if (l == NULL) {
		x->f->starts_unknown_lease++;
		return;
	}
	if (l->attempt != r->attempt)
		violation(x, 5, "%016" PRIx64 ": a handler ran token %016" PRIx64 " as attempt %u, the "
				"history says %u (%s)",
			  r->id, r->token, r->attempt, l->attempt, where(x, r));
	if (r->s_rt > l->to)
		x->f->late_starts++;
}

static void check_step(struct ctx *x, const cueq_execution *e, const struct walk *w,
		       chaos_rec *r)
{
	const struct lease *l = find_lease(w, r->token);

	if (strcmp(r->outcome, "stale") == 0 && spoil(x, "step"))
		strcpy(r->outcome, "ok");
	if (strcmp(r->outcome, "ok") == 0) {
		x->f->steps_accepted++;
		accepted_in_lease(x, r, l, "step record");
		if (!step_in_history(e, r->token, r->step, r->s_rt, r->a_rt))
			violation(x, 5, "%016" PRIx64 ": step %s accepted under token %016" PRIx64
					" between %" PRId64 " and %" PRId64 " is not in the history (%s)",
				  r->id, r->step, r->token, r->s_rt, r->a_rt, where(x, r));
	} else if (strcmp(r->outcome, "stale") == 0) {
		x->f->steps_refused++;
		refused_after_lease(x, r, l, "step record");
	} else if (strcmp(r->outcome, "skipped") == 0) {
		x->f->steps_skipped++;
	} else {
		x->f->step_errors++;
	}
}

static void check_ack(struct ctx *x, const struct walk *w, chaos_rec *r)
{
	const struct lease *l = find_lease(w, r->token);

	if (strcmp(r->outcome, "stale") == 0 && spoil(x, "fence"))
		strcpy(r->outcome, "ok");
	if (strcmp(r->outcome, "ok") == 0) {
		x->f->acks_accepted++;
		accepted_in_lease(x, r, l, "ack");
		if (w->succeeded_token != TAIL(r->token) || w->succeeded_at + SLACK_MS < r->s_rt ||
		    w->succeeded_at > r->a_rt + SLACK_MS)
			violation(x, 5, "%016" PRIx64 ": ack under token %016" PRIx64 " accepted between %" PRId64
					" and %" PRId64 ", but the history has its success under %016" PRIx64
					" at %" PRId64 " (%s)",
				  r->id, r->token, r->s_rt, r->a_rt, w->succeeded_token, w->succeeded_at,
				  where(x, r));
	} else if (strcmp(r->outcome, "stale") == 0) {
		x->f->acks_refused++;
		refused_after_lease(x, r, l, "ack");
		if (w->succeeded_token == TAIL(r->token))
			violation(x, 5, "%016" PRIx64 ": ack under token %016" PRIx64 " was refused, yet the "
					"execution succeeded under that token (%s)",
				  r->id, r->token, where(x, r));
	} else if (strncmp(r->outcome, "err-", 4) == 0) {
		x->f->ack_errors++; /* sent, answer unknown */
	} else {
		violation(x, 5, "%016" PRIx64 ": ack under token %016" PRIx64 " answered %s (%s)", r->id,
			  r->token, r->outcome, where(x, r));
	}
}

/* The handlers' lines of execution p, [from, to) of x->work. */
static void check_handlers(struct ctx *x, const struct pushed *p, const cueq_execution *e,
			   const struct walk *w, size_t from, size_t to)
{
	bool started_success = false;

	for (size_t i = from; i < to; i++) {
		chaos_rec *r = (chaos_rec *)x->work[i];
		if (r->kind == CR_START && i == from && spoil(x, "key"))
			snprintf(r->key, sizeof(r->key), "p999-0");
		if (r->kind == CR_START) {
			check_start(x, p, w, r);
			started_success |= TAIL(r->token) == w->succeeded_token;
		} else if (r->kind == CR_STEP) {
			check_step(x, e, w, r);
		} else if (r->kind == CR_ACK) {
			check_ack(x, w, r);
		}
	}
	if (w->successes == 1 && !started_success)
		violation(x, 5, "%s succeeded under token %016" PRIx64 ", which no handler started with",
			  e->execution_id, w->succeeded_token);
}

/* ---- the ledger: what the last record of each step wrote ---- */

/* The last step event of name in e's history, or NULL. */
static const cueq_event *last_step_event(const cueq_execution *e, const char *name, size_t *n)
{
	const cueq_event *last = NULL;
	*n = 0;
	for (size_t i = 0; i < e->history_len; i++) {
		const cueq_event *ev = &e->history[i];
		if (ev->event != NULL && strcmp(ev->event, "step") == 0 && ev->detail != NULL &&
		    strcmp(ev->detail, name) == 0) {
			if (last != NULL && tok_id(last->lease_token) != tok_id(ev->lease_token))
				(*n)++;
			last = ev;
		}
	}
	return last;
}

/* The effect that made value under token, in [from, to) of x->work. */
static const chaos_rec *find_effect(struct ctx *x, size_t from, size_t to, const char *name,
				    const char *value)
{
	for (size_t i = from; i < to; i++) {
		const chaos_rec *r = x->work[i];
		if (r->kind == CR_EFFECT && strcmp(r->step, name) == 0 && strcmp(r->value, value) == 0)
			return r;
	}
	return NULL;
}

static void check_one_step(struct ctx *x, cueq_execution *e, size_t from, size_t to,
			   const char *name)
{
	size_t again = 0;
	const cueq_event *ev = last_step_event(e, name, &again);
	cueq_step *s = NULL;

	for (size_t i = 0; i < e->steps_len; i++)
		if (strcmp(e->steps[i].name, name) == 0)
			s = &e->steps[i];
	if (s == NULL || ev == NULL) {
		violation(x, 5, "%s succeeded without step %s in its %s", e->execution_id, name,
			  s == NULL ? "ledger" : "history");
		return;
	}
	if (again > 0)
		violation(x, 5, "%s: step %s was recorded under %zu leases: a handler did not find "
				"it in the ledger after it was recorded",
			  e->execution_id, name, again + 1);
	if (spoil(x, "ledger"))
		((char *)s->value)[0] = '#';
	const chaos_rec *made = find_effect(x, from, to, name, s->value);
	if (made == NULL)
		violation(x, 5, "%s: the ledger's %s = %s was made by no handler", e->execution_id,
			  name, (const char *)s->value);
	else if (TAIL(made->token) != tok_id(ev->lease_token))
		violation(x, 5, "%s: the ledger's %s = %s was made under token %016" PRIx64
				" but recorded under %s (%s)",
			  e->execution_id, name, (const char *)s->value, made->token, ev->lease_token,
			  where(x, made));
	if (s->at_ms != ev->at_ms)
		violation(x, 5, "%s: the ledger's %s was written at %" PRId64 ", its history says %" PRId64,
			  e->execution_id, name, s->at_ms, ev->at_ms);
}

/* ---- one execution ---- */

static int check_execution(struct ctx *x, struct pushed *p, size_t from, size_t to, char *why,
			   size_t why_size)
{
	char id[CUEQ_ID_SIZE];
	cueq_execution *e = NULL;
	struct walk w = { 0 };
	int rc;

	snprintf(id, sizeof(id), "%016" PRIx64, p->id);
	if ((rc = cueq_get(x->c, id, &e)) == CUEQ_ERR_NOT_FOUND) {
		violation(x, 1, "%s (key %s, pushed %s) is not in the broker", id, p->rec->key,
			  where(x, p->rec));
		return 0;
	}
	if (rc != CUEQ_OK) {
		snprintf(why, why_size, "get %s: %s (%s)", id, cueq_strerror(rc), cueq_last_error());
		return -1;
	}
	if (!p->listed)
		violation(x, 1, "%s (key %s) is not listed in queue %s", id, p->rec->key, CHAOS_QUEUE);
	if (spoil(x, "finish"))
		e->state = CUEQ_READY;
	if (e->state != CUEQ_SUCCEEDED)
		violation(x, 1, "%s (key %s) ended %s%s%s", id, p->rec->key, cueq_state_name(e->state),
			  e->reason ? ": " : "", e->reason ? e->reason : "");
	if (e->payload == NULL || e->payload_len != strlen(p->rec->key) ||
	    memcmp(e->payload, p->rec->key, e->payload_len) != 0)
		violation(x, 3, "%s was pushed as %s but holds a payload of %zu bytes: %.*s", id,
			  p->rec->key, e->payload_len, e->payload_len > 64 ? 64 : (int)e->payload_len,
			  e->payload ? (const char *)e->payload : "");
	walk_history(x, e, &w);
	check_handlers(x, p, e, &w, from, to);
	if (e->state == CUEQ_SUCCEEDED)
		for (int k = 0; k < CHAOS_N_STEPS; k++)
			check_one_step(x, e, from, to, chaos_steps[k]);
	free(w.l);
	cueq_execution_free(e);
	return 0;
}

/* A token given twice to the handlers (5): their tokens are whole (the
 * histories' are cut to four digits, see TAIL). */
static void check_tokens(struct ctx *x)
{
	qsort(x->starts, x->n_starts, sizeof(*x->starts), by_token);
	for (size_t i = 1; i < x->n_starts; i++) {
		const struct given *a = &x->starts[i - 1], *b = &x->starts[i];
		if (a->token == b->token && (a->id != b->id || a->attempt != b->attempt))
			violation(x, 5, "token %016" PRIx64 " came to handlers for %016" PRIx64
					" attempt %u (%s) and %016" PRIx64 " attempt %u (%s)",
				  a->token, a->id, a->attempt, where(x, a->rec), b->id, b->attempt,
				  where(x, b->rec));
	}
}

int chaos_check(cueq_client *c, chaos_logs *logs, const char *breaks, chaos_figures *f,
		char *why, size_t why_size)
{
	struct ctx x = { .c = c, .logs = logs, .breaks = breaks ? breaks : "", .f = f };
	int rc = -1;

	if (check_keys(&x) != 0 || index_work(&x) != 0) {
		snprintf(why, why_size, "out of memory checking %zu log lines", logs->n);
		goto out;
	}
	if (check_listing(&x, why, why_size) != 0)
		goto out;
	size_t k = 0;
	for (size_t i = 0; i < x.n_pushed; i++) {
		while (k < x.n_work && x.work[k]->id < x.pushed[i].id)
			k++;
		size_t end = k;
		while (end < x.n_work && x.work[end]->id == x.pushed[i].id)
			end++;
		if (check_execution(&x, &x.pushed[i], k, end, why, why_size) != 0)
			goto out;
		k = end;
	}
	check_tokens(&x);
	if (x.breaks[0] != '\0' && !x.spoiled)
		fprintf(stderr, "chaos: --break %s found nothing to spoil\n", x.breaks);
	rc = 0;
out:
	free(x.pushed);
	free(x.work);
	free(x.starts);
	return rc;
}

void chaos_print_figures(const chaos_figures *f, unsigned seed, int64_t ms)
{
	fprintf(stderr,
		"chaos: seed %u, %lld ms\n"
		"chaos:   broker kills survived %llu (restarts on another port %llu)\n"
		"chaos:   jobs %llu (pushes answered %llu, of them duplicates %llu)\n"
		"chaos:   deliveries %llu, redeliveries %llu (expiries %llu, releases %llu, nacks %llu)\n"
		"chaos:   worker kills %llu, stops %llu, producer kills %llu; wedged at the end "
		"(did not stop, killed) %llu\n"
		"chaos:   handler starts %llu, handlers started after lease end %llu, under a lease "
		"the broker never kept %llu\n"
		"chaos:   steps accepted %llu, skipped %llu, errors %llu; acks accepted %llu, "
		"errors %llu\n"
		"chaos:   fenced (STALE_LEASE): step records refused %llu, acks refused %llu\n"
		"chaos:   violations %llu\n",
		seed, (long long)ms, (unsigned long long)f->broker_kills,
		(unsigned long long)f->url_changes, (unsigned long long)f->jobs,
		(unsigned long long)f->pushes_answered, (unsigned long long)f->duplicates_answered,
		(unsigned long long)f->deliveries, (unsigned long long)f->redeliveries,
		(unsigned long long)f->expiries, (unsigned long long)f->releases,
		(unsigned long long)f->nacks, (unsigned long long)f->worker_kills,
		(unsigned long long)f->worker_stops, (unsigned long long)f->producer_kills,
		(unsigned long long)f->wedged,
		(unsigned long long)f->handler_starts, (unsigned long long)f->late_starts,
		(unsigned long long)f->starts_unknown_lease, (unsigned long long)f->steps_accepted,
		(unsigned long long)f->steps_skipped, (unsigned long long)f->step_errors,
		(unsigned long long)f->acks_accepted, (unsigned long long)f->ack_errors,
		(unsigned long long)f->steps_refused, (unsigned long long)f->acks_refused,
		(unsigned long long)f->violations);
}
