/*
 * faults_kill.c - kill at every write (see faults_kill.h).
 *
 * One round of the loop, for one K:
 *   1. a fresh broker, the state before the request (a push, a claim...),
 *      and a check that the observations below all say "before";
 *   2. a restart with CUEQ_FAULT=POINT:K:ACTION, and the request (for the
 *      retention sweep: a wait for the broker's own sweep);
 *   3a. the broker died (SIGKILL, by the fault): restart without the
 *      fault, observe, and the observations must agree on one side; with
 *      K = 1 the side is known (exit: before, exit-after or a sync: after);
 *   3b. a reply came: the same request ID on the same broker gets the same
 *      bytes; kill -9, restart, observe: after.
 *   4. the client's retry of the very same bytes (same request ID) on the
 *      restarted broker gives the answer that side calls for, then the
 *      execution is after the request; a graceful stop exits 0.
 *
 * An observation is one way to read the execution: get (state, fields,
 * history), stats, list by state, and two probes that write: a push with
 * the unique key (CONFLICT iff an unfinished holder has it; an accepted
 * probe is counted, as "extra", in the expectations that follow) and a
 * push with the idempotency key (replays the first push iff it happened).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faults_kill.h"
#include "faults_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define LEASE_MS 60000
#define RETRY_IN_MS 600000
#define EXTEND_MS 600000
#define MAX_EXTRA 16

enum { BEFORE = 0, AFTER = 1, BOTH = 2, NEITHER = -1 };

typedef struct kstate kstate;

typedef struct kind {
	const char *name;
	fx_job job;	    /* the subject's push (FK_PUSH: the request) */
	const char *before; /* the subject's state on either side */
	const char *after;  /* NULL: deleted */
	bool background;    /* no request: the broker's own work (the sweep) */
	void (*setup)(kstate *k);
	void (*observe)(kstate *k, const fx_exec *x); /* the kind's own fields */
	void (*check_reply)(kstate *k, const th_reply *rep, int side);
} kind;

struct kstate {
	th_broker *b;
	const kind *kd;
	char where[96];
	th_raw r;
	char id[FX_ID], token[FX_ID];
	uint64_t deadline0;	  /* the claim's lease deadline */
	uint64_t reply_run_at;	  /* nack retry: what the answer said */
	uint64_t reply_deadline;  /* extend: what the answer said */
	th_bytes req;		  /* the request under test */
	char extra[MAX_EXTRA][FX_ID]; /* executions the unique probe created */
	size_t n_extra;
	int probe_seq;
	char notes[4096]; /* the observations of the current look */
	int votes[2], bad;
};

/* ---- observations ---------------------------------------------------------- */

static const char *side_name(int side)
{
	return side == BEFORE ? "before" : side == AFTER ? "after" : side == BOTH ? "either" : "NEITHER";
}

static void obs(kstate *k, int side, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void obs(kstate *k, int side, const char *fmt, ...)
{
	size_t n = strlen(k->notes);
	va_list ap;

	if (side == BEFORE || side == AFTER)
		k->votes[side]++;
	else if (side == NEITHER)
		k->bad++;
	if (n + 200 >= sizeof(k->notes))
		return;
	n += (size_t)snprintf(k->notes + n, sizeof(k->notes) - n, "    [%s] ", side_name(side));
	va_start(ap, fmt);
	n += (size_t)vsnprintf(k->notes + n, sizeof(k->notes) - n, fmt, ap);
	va_end(ap);
	snprintf(k->notes + n, sizeof(k->notes) - n, "\n");
}

/* Side of a two-valued observation: a == before value, b == after value. */
static int pick(bool is_before, bool is_after)
{
	return is_before && !is_after ? BEFORE : is_after && !is_before ? AFTER : NEITHER;
}

/* The side all observations agree on; fails the test, showing them all,
 * when they do not (or when want is a side and they agree on another). */
static int decide(kstate *k, const char *stage, int want)
{
	int side = k->votes[AFTER] ? AFTER : BEFORE;

	if (k->bad || (k->votes[BEFORE] && k->votes[AFTER]) || (!k->votes[BEFORE] && !k->votes[AFTER])) {
		th_broker_dump_log(k->b);
		fail_msg("%s, %s: the execution %s is not wholly before or wholly after the request:\n%s",
			 k->where, stage, k->id, k->notes);
	}
	if (want != BOTH && side != want) {
		th_broker_dump_log(k->b);
		fail_msg("%s, %s: the execution %s is wholly %s the request, expected %s:\n%s", k->where,
			 stage, k->id, side_name(side), side_name(want), k->notes);
	}
	k->notes[0] = '\0';
	k->votes[0] = k->votes[1] = k->bad = 0;
	return side;
}

static bool is_extra(const kstate *k, const char *id)
{
	for (size_t i = 0; i < k->n_extra; i++)
		if (strcmp(k->extra[i], id) == 0)
			return true;
	return false;
}

/* stats of the subject's queue against either side's expectation: the
 * subject in its state (none when deleted or not pushed) plus the probes'
 * ready executions. */
static void observe_counts(kstate *k, const char *before, const char *after)
{
	th_counts c, want[2];
	const char *st[2] = { before, after };
	char got[160];

	fx_counts(&k->r, k->kd->job.queue, &c);
	for (int s = 0; s < 2; s++) {
		memset(&want[s], 0, sizeof(want[s]));
		want[s].ready = k->n_extra;
		if (st[s] == NULL)
			continue;
		uint64_t *slot = strcmp(st[s], "scheduled") == 0 ? &want[s].scheduled
				 : strcmp(st[s], "ready") == 0	  ? &want[s].ready
				 : strcmp(st[s], "leased") == 0	  ? &want[s].leased
				 : strcmp(st[s], "succeeded") == 0 ? &want[s].succeeded
				 : strcmp(st[s], "dead") == 0	  ? &want[s].dead
								  : &want[s].cancelled;
		(*slot)++;
	}
	fx_counts_text(&c, got, sizeof(got));
	bool b = fx_counts_equal(&c, &want[0]), a = fx_counts_equal(&c, &want[1]);
	obs(k, a && b ? BOTH : pick(b, a), "stats: %s", got);
}

/* list by state: the subject is listed under exactly one side's state. */
static void observe_list(kstate *k, const char *before, const char *after)
{
	bool in_b = before != NULL && fx_listed(&k->r, k->kd->job.queue, before, k->id);
	bool in_a = after != NULL && fx_listed(&k->r, k->kd->job.queue, after, k->id);

	if (before != NULL && after != NULL && strcmp(before, after) == 0)
		obs(k, in_b ? BOTH : NEITHER, "list %s: %s", before, in_b ? "listed" : "not listed");
	else if (after == NULL) /* deleted: listed nowhere */
		obs(k, in_b ? BEFORE : AFTER, "list %s: %s", before, in_b ? "listed" : "not listed");
	else
		obs(k, pick(in_b, in_a), "list: %s under %s, %s under %s", in_b ? "listed" : "not listed",
		    before ? before : "-", in_a ? "listed" : "not listed", after ? after : "deleted");
}

/* A push with the subject's unique key: CONFLICT names the holder. */
static void probe_unique(kstate *k, bool *held_by_subject, bool *free_now)
{
	char payload[32];
	fx_job j = { .queue = k->kd->job.queue, .payload = payload, .unique = k->kd->job.unique };
	fx_pushed p;

	snprintf(payload, sizeof(payload), "probe-%d", ++k->probe_seq);
	fx_push(&k->r, &j, &p);
	*held_by_subject = !p.ok && strcmp(p.err, "CONFLICT") == 0 && strcmp(p.holder, k->id) == 0;
	*free_now = p.ok && !p.duplicate;
	if (p.ok) {
		assert_true(k->n_extra < MAX_EXTRA);
		strcpy(k->extra[k->n_extra++], p.id);
	} else if (!*held_by_subject && !(strcmp(p.err, "CONFLICT") == 0 && is_extra(k, p.holder))) {
		obs(k, NEITHER, "unique probe: %s %s (holder '%s')", p.err, p.msg, p.holder);
	}
}

/* The unique probe for a subject that exists on both sides. */
static void observe_unique(kstate *k, bool unfinished_before, bool unfinished_after)
{
	bool held, free_now;
	int side;

	probe_unique(k, &held, &free_now);
	if (unfinished_before == unfinished_after)
		side = held == unfinished_before ? BOTH : NEITHER;
	else
		side = pick(held == unfinished_before, held == unfinished_after);
	obs(k, side, "unique key %s: %s", k->kd->job.unique,
	    held ? "held by it (CONFLICT)" : free_now ? "free (the probe was accepted)" : "held by a probe");
}

/* The subject's push again with its key (new request ID): a replay. */
static void observe_replay(kstate *k)
{
	fx_pushed p;

	fx_push(&k->r, &k->kd->job, &p);
	bool same = p.ok && p.duplicate && strcmp(p.id, k->id) == 0;
	obs(k, same ? BOTH : NEITHER, "idempotency key %s: %s %s%s%s", k->kd->job.key,
	    p.ok ? (p.duplicate ? "replayed" : "created anew") : p.err, p.ok ? p.id : p.msg,
	    p.ok ? " duplicate=" : "", p.ok ? (p.duplicate ? "true" : "false") : "");
	if (p.ok && !p.duplicate) {
		assert_true(k->n_extra < MAX_EXTRA);
		strcpy(k->extra[k->n_extra++], p.id);
	}
}

/* The retention sweep: the subject's step, read by name, goes with it. */
static void observe_step_get(kstate *k)
{
	th_req q;
	th_reply rep;
	char value[16] = "";

	assert_int_equal(th_req_begin(&q, "step_get", 2), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", k->id);
	proto_kv_cstr(th_pk(&q), "name", "s1");
	if (th_req_call(&k->r, &q, &rep) != 0)
		fail_msg("%s: step_get: no reply", k->where);
	if (rep.ok)
		th_str(rep.root, "value", value, sizeof(value));
	obs(k, rep.ok ? (strcmp(value, "v1") == 0 ? BEFORE : NEITHER)
		      : strcmp(rep.err, "NOT_FOUND") == 0 ? AFTER : NEITHER,
	    "step_get s1: %s %s", rep.ok ? "ok" : rep.err, rep.ok ? value : rep.msg);
	th_reply_free(&rep);
}

/* Everything about an execution that exists on at least one side. */
static void observe_subject(kstate *k)
{
	const kind *kd = k->kd;
	fx_exec x;

	fx_get(&k->r, k->id, &x);
	if (!x.found)
		obs(k, kd->after == NULL ? AFTER : NEITHER, "get: NOT_FOUND");
	else if (kd->after != NULL && strcmp(kd->before, kd->after) == 0)
		obs(k, strcmp(x.state, kd->before) == 0 ? BOTH : NEITHER, "get: state %s", x.state);
	else
		obs(k, pick(strcmp(x.state, kd->before) == 0, kd->after && strcmp(x.state, kd->after) == 0),
		    "get: state %s", x.state);
	if (x.found)
		kd->observe(k, &x);
	if (kd->background)
		observe_step_get(k);
	observe_counts(k, kd->before, kd->after);
	observe_list(k, kd->before, kd->after);
	observe_replay(k);
	bool fin_b = strcmp(kd->before, "leased") != 0 && strcmp(kd->before, "scheduled") != 0 &&
		     strcmp(kd->before, "ready") != 0;
	bool fin_a = kd->after == NULL || (strcmp(kd->after, "leased") != 0 &&
					   strcmp(kd->after, "scheduled") != 0 &&
					   strcmp(kd->after, "ready") != 0);
	if (kd->job.unique != NULL)
		observe_unique(k, !fin_b, !fin_a);
}

/* FK_PUSH: the queue is empty before, and holds exactly the push after. */
static void observe_push(kstate *k)
{
	static char ids[8][FX_ID];
	size_t n = fx_list(&k->r, k->kd->job.queue, NULL, ids, 8), mine = 0;
	th_counts c, none = { 0 }, one = { .ready = 1 };
	char got[160];

	for (size_t i = 0; i < n && i < 8; i++)
		if (!is_extra(k, ids[i])) {
			mine++;
			strcpy(k->id, ids[i]);
		}
	obs(k, mine == 0 ? BEFORE : mine == 1 ? AFTER : NEITHER, "list: %zu executions", mine);
	if (mine == 1) {
		fx_exec x;
		fx_get(&k->r, k->id, &x);
		obs(k, x.found && strcmp(x.state, "ready") == 0 && strcmp(x.unique, k->kd->job.unique) == 0 &&
				       strcmp(x.payload, k->kd->job.payload) == 0
			       ? AFTER
			       : NEITHER,
		    "get %s: %s, unique '%s', payload '%s'", k->id, x.found ? x.state : "NOT_FOUND",
		    x.unique, x.payload);
	}
	fx_counts(&k->r, k->kd->job.queue, &c);
	none.ready += k->n_extra, one.ready += k->n_extra;
	fx_counts_text(&c, got, sizeof(got));
	obs(k, pick(fx_counts_equal(&c, &none), fx_counts_equal(&c, &one)), "stats: %s", got);
	n = fx_list(&k->r, k->kd->job.queue, "ready", ids, 8);
	obs(k, pick(n == k->n_extra, n == k->n_extra + 1), "list ready: %zu executions", n);
}

static void observe(kstate *k)
{
	if (k->kd->setup == NULL)
		observe_push(k);
	else
		observe_subject(k);
}

/* ---- the kinds ------------------------------------------------------------ */

static void push_subject(kstate *k)
{
	fx_pushed p;

	fx_push(&k->r, &k->kd->job, &p);
	if (!p.ok)
		fail_msg("%s: setup push refused: %s %s", k->where, p.err, p.msg);
	strcpy(k->id, p.id);
}

static void push_and_claim(kstate *k)
{
	char id[FX_ID];

	push_subject(k);
	fx_claim_ok(&k->r, k->kd->job.queue, LEASE_MS, id, k->token, &k->deadline0);
	if (strcmp(id, k->id) != 0)
		fail_msg("%s: claimed %s, pushed %s", k->where, id, k->id);
}

static void item_reply(kstate *k, const th_reply *rep, const char *want_state, fx_item *it)
{
	if (!fx_item_result(rep, it) || !it->ok || (want_state && strcmp(it->state, want_state) != 0)) {
		th_broker_dump_log(k->b);
		fail_msg("%s: the answer is %s %s / results[0] %s %s %s, expected ok%s%s", k->where,
			 rep->ok ? "ok" : rep->err, rep->msg, it->ok ? "ok" : it->err, it->msg, it->state,
			 want_state ? " with state " : "", want_state ? want_state : "");
	}
}

/* ack */
static void setup_ack(kstate *k)
{
	push_and_claim(k);
	k->req = fx_ack_req(k->id, k->token, "result-ack");
}
static void obs_ack(kstate *k, const fx_exec *x)
{
	obs(k, pick(x->result[0] == '\0', strcmp(x->result, "result-ack") == 0), "result '%s'", x->result);
	obs(k, pick(th_token_shown(x->token, k->token), x->token[0] == '\0'), "lease token '%s'", x->token);
	obs(k, pick(x->ev_succeeded == 0, x->ev_succeeded == 1), "%zu succeeded events", x->ev_succeeded);
	obs(k, x->attempt == 1 ? BOTH : NEITHER, "attempt %llu", (unsigned long long)x->attempt);
}
static void reply_ack(kstate *k, const th_reply *rep, int side)
{
	fx_item it;
	(void)side;
	item_reply(k, rep, "succeeded", &it);
}

/* nack terminal: dead */
static void setup_dead(kstate *k)
{
	push_and_claim(k);
	k->req = fx_nack_req(k->id, k->token, "boom", 0, true);
}
static void obs_dead(kstate *k, const fx_exec *x)
{
	obs(k, pick(x->error[0] == '\0', strcmp(x->error, "boom") == 0), "error '%s'", x->error);
	obs(k, pick(x->failures == 0, x->failures == 1), "failures %llu", (unsigned long long)x->failures);
	obs(k, pick(x->ev_nacked == 0, x->ev_nacked == 1), "%zu nacked events", x->ev_nacked);
	obs(k, pick(th_token_shown(x->token, k->token), x->token[0] == '\0'), "lease token '%s'", x->token);
}
static void reply_dead(kstate *k, const th_reply *rep, int side)
{
	fx_item it;
	(void)side;
	item_reply(k, rep, "dead", &it);
}

/* nack with retry_in_ms: scheduled */
static void setup_retry(kstate *k)
{
	push_and_claim(k);
	k->req = fx_nack_req(k->id, k->token, "later", RETRY_IN_MS, false);
}
static void obs_retry(kstate *k, const fx_exec *x)
{
	uint64_t soon = (uint64_t)proto_now_ms() + RETRY_IN_MS / 2;
	obs(k, pick(x->failures == 0, x->failures == 1), "failures %llu", (unsigned long long)x->failures);
	obs(k, pick(x->error[0] == '\0', strcmp(x->error, "later") == 0), "error '%s'", x->error);
	obs(k, pick(x->ev_nacked == 0, x->ev_nacked == 1), "%zu nacked events", x->ev_nacked);
	obs(k, pick(x->run_at < soon, x->run_at >= soon), "run_at %llu", (unsigned long long)x->run_at);
	obs(k, pick(th_token_shown(x->token, k->token), x->token[0] == '\0'), "lease token '%s'", x->token);
	if (k->reply_run_at != 0 && x->run_at != k->reply_run_at)
		obs(k, NEITHER, "run_at %llu, the answer said %llu", (unsigned long long)x->run_at,
		    (unsigned long long)k->reply_run_at);
}
static void reply_retry(kstate *k, const th_reply *rep, int side)
{
	fx_item it;
	(void)side;
	item_reply(k, rep, "scheduled", &it);
	if (it.run_at < (uint64_t)proto_now_ms() + RETRY_IN_MS / 2)
		fail_msg("%s: the answer says run_at %llu, less than retry_in_ms from now", k->where,
			 (unsigned long long)it.run_at);
	k->reply_run_at = it.run_at;
}

/* step_set */
static void setup_step(kstate *k)
{
	push_and_claim(k);
	k->req = fx_step_req(k->id, k->token, "s1", "v1");
}
static void obs_step(kstate *k, const fx_exec *x)
{
	obs(k, pick(x->n_steps == 0, x->n_steps == 1 && strcmp(x->step_name, "s1") == 0 &&
						 strcmp(x->step_value, "v1") == 0),
	    "%zu steps (first '%s' = '%s')", x->n_steps, x->step_name, x->step_value);
	obs(k, pick(x->ev_step == 0, x->ev_step >= 1), "%zu step events", x->ev_step);
	obs(k, th_token_shown(x->token, k->token) ? BOTH : NEITHER, "lease token '%s'", x->token);
}
static void reply_step(kstate *k, const th_reply *rep, int side)
{
	uint64_t at = 0;
	(void)side;
	if (!rep->ok || !th_uint(rep->root, "at", &at)) {
		th_broker_dump_log(k->b);
		fail_msg("%s: step_set answered %s %s, expected ok with 'at'", k->where,
			 rep->ok ? "ok" : rep->err, rep->msg);
	}
}

/* extend */
static void setup_extend(kstate *k)
{
	push_and_claim(k);
	k->req = fx_extend_req(k->id, k->token, EXTEND_MS);
}
static void obs_extend(kstate *k, const fx_exec *x)
{
	uint64_t far = k->deadline0 + EXTEND_MS / 2;
	obs(k, pick(x->lease_deadline == k->deadline0, x->lease_deadline >= far), "lease_deadline %llu (claimed with %llu)",
	    (unsigned long long)x->lease_deadline, (unsigned long long)k->deadline0);
	obs(k, pick(x->ev_extended == 0, x->ev_extended >= 1), "%zu extended events", x->ev_extended);
	obs(k, th_token_shown(x->token, k->token) ? BOTH : NEITHER, "lease token '%s'", x->token);
	if (k->reply_deadline != 0 && x->lease_deadline != k->reply_deadline)
		obs(k, NEITHER, "lease_deadline %llu, the answer said %llu",
		    (unsigned long long)x->lease_deadline, (unsigned long long)k->reply_deadline);
}
static void reply_extend(kstate *k, const th_reply *rep, int side)
{
	fx_item it;
	(void)side;
	item_reply(k, rep, NULL, &it);
	if (it.lease_deadline < k->deadline0 + EXTEND_MS / 2)
		fail_msg("%s: extend answered lease_deadline %llu; claimed with %llu, extended by %d ms",
			 k->where, (unsigned long long)it.lease_deadline,
			 (unsigned long long)k->deadline0, EXTEND_MS);
	k->reply_deadline = it.lease_deadline;
}

/* push with a key and a unique key */
static void setup_push(kstate *k)
{
	k->req = fx_push_req(&k->kd->job);
}
static void reply_push(kstate *k, const th_reply *rep, int side)
{
	fx_pushed p;

	if (!fx_push_result(rep, &p) || !p.ok || p.duplicate != (side == AFTER) ||
	    (side == AFTER && strcmp(p.id, k->id) != 0)) {
		th_broker_dump_log(k->b);
		fail_msg("%s: the push %s answered %s %s / results[0] %s %s %s duplicate=%d; expected %s",
			 k->where, side == AFTER ? "retried after it happened" : "", rep->ok ? "ok" : rep->err,
			 rep->msg, p.ok ? "ok" : p.err, p.msg, p.id, p.duplicate,
			 side == AFTER ? "the first execution again, duplicate=true" : "a new execution");
	}
	strcpy(k->id, p.id);
}

/* the retention sweep */
static void setup_retention(kstate *k)
{
	th_bytes step, ack;
	th_reply rep;

	push_and_claim(k);
	step = fx_step_req(k->id, k->token, "s1", "v1");
	fx_call(&k->r, &step, &rep, "step_set");
	assert_true(rep.ok);
	th_reply_free(&rep);
	ack = fx_ack_req(k->id, k->token, "result-ret");
	fx_call(&k->r, &ack, &rep, "ack");
	assert_true(rep.ok);
	th_reply_free(&rep);
	fx_bytes_free(&step);
	fx_bytes_free(&ack);
}
static void obs_retention(kstate *k, const fx_exec *x)
{
	obs(k, strcmp(x->result, "result-ret") == 0 && x->n_steps == 1 ? BEFORE : NEITHER,
	    "result '%s', %zu steps", x->result, x->n_steps);
}

/* an operator's cancel of a leased execution */
static th_bytes op_req(const char *op, const char *field, const char *id)
{
	th_req q;
	assert_int_equal(th_req_begin(&q, op, 1), 0);
	proto_kv_cstr(th_pk(&q), field, id);
	return th_req_keep(&q);
}
static void setup_cancel(kstate *k)
{
	push_and_claim(k);
	k->req = op_req("cancel", "id", k->id);
}
static void obs_cancel(kstate *k, const fx_exec *x)
{
	obs(k, pick(th_token_shown(x->token, k->token), x->token[0] == '\0'), "lease token '%s'", x->token);
	obs(k, x->attempt == 1 ? BOTH : NEITHER, "attempt %llu", (unsigned long long)x->attempt);
}
static void reply_cancel(kstate *k, const th_reply *rep, int side)
{
	char st[16] = "";
	(void)side; /* cancelling what is cancelled answers the same */
	if (!rep->ok || !th_str(rep->root, "state", st, sizeof(st)) || strcmp(st, "cancelled") != 0) {
		th_broker_dump_log(k->b);
		fail_msg("%s: the cancel answered %s %s state '%s', expected ok cancelled", k->where,
			 rep->ok ? "ok" : rep->err, rep->msg, st);
	}
}

/* an operator's retry of a dead execution */
static void setup_retry_dead(kstate *k)
{
	th_bytes nack;
	th_reply rep;
	push_and_claim(k);
	nack = fx_nack_req(k->id, k->token, "broken", 0, true);
	fx_call(&k->r, &nack, &rep, "nack");
	assert_true(rep.ok);
	th_reply_free(&rep);
	fx_bytes_free(&nack);
	k->req = op_req("retry", "execution_id", k->id);
}
static void obs_retry_dead(kstate *k, const fx_exec *x)
{
	obs(k, pick(x->failures == 1, x->failures == 0), "failures %llu", (unsigned long long)x->failures);
	obs(k, pick(x->attempt == 1, x->attempt == 0), "attempt %llu", (unsigned long long)x->attempt);
	obs(k, x->token[0] == '\0' ? BOTH : NEITHER, "lease token '%s'", x->token);
}
static void reply_retry_dead(kstate *k, const th_reply *rep, int side)
{
	uint64_t n = 0;
	/* sent again once it happened (the restarted broker does not know
	 * the request ID), it finds the execution no longer dead */
	bool ok = side == BEFORE ? rep->ok && th_uint(rep->root, "retried", &n) && n == 1
				 : !rep->ok && strcmp(rep->err, "CONFLICT") == 0;
	if (!ok) {
		th_broker_dump_log(k->b);
		fail_msg("%s: the retry answered %s %s (retried %llu), expected %s", k->where,
			 rep->ok ? "ok" : rep->err, rep->msg, (unsigned long long)n,
			 side == BEFORE ? "ok, retried 1" : "CONFLICT");
	}
}

/* an operator's purge of the dead executions of the subject's queue */
static void setup_purge(kstate *k)
{
	th_req q;
	setup_retry_dead(k);
	fx_bytes_free(&k->req);
	assert_int_equal(th_req_begin(&q, "purge", 2), 0);
	proto_kv_cstr(th_pk(&q), "queue", k->kd->job.queue);
	proto_kv_cstr(th_pk(&q), "state", "dead");
	k->req = th_req_keep(&q);
}
static void obs_purge(kstate *k, const fx_exec *x)
{
	obs(k, strcmp(x->error, "broken") == 0 ? BEFORE : NEITHER, "error '%s'", x->error);
}
static void reply_purge(kstate *k, const th_reply *rep, int side)
{
	uint64_t n = 99;
	/* sent again once it happened, there is nothing left to purge */
	if (!rep->ok || !th_uint(rep->root, "purged", &n) || n != (side == BEFORE ? 1u : 0u)) {
		th_broker_dump_log(k->b);
		fail_msg("%s: the purge answered %s %s (purged %llu), expected ok, purged %d", k->where,
			 rep->ok ? "ok" : rep->err, rep->msg, (unsigned long long)n, side == BEFORE);
	}
}

static const kind kinds[] = {
	[FK_ACK] = { "ack", { "k-ack", "pa", "key-ack", "u-ack", 0, LEASE_MS }, "leased", "succeeded",
		     false, setup_ack, obs_ack, reply_ack },
	[FK_NACK_DEAD] = { "nack terminal", { "k-dead", "pd", "key-dead", "u-dead", 0, LEASE_MS },
			   "leased", "dead", false, setup_dead, obs_dead, reply_dead },
	[FK_NACK_RETRY] = { "nack retry_in_ms", { "k-retry", "pr", "key-retry", "u-retry", 0, LEASE_MS },
			    "leased", "scheduled", false, setup_retry, obs_retry, reply_retry },
	[FK_PUSH] = { "push", { "k-push", "pp", "key-push", "u-push", 0, LEASE_MS }, NULL, "ready", false,
		      NULL, NULL, reply_push },
	[FK_STEP] = { "step_set", { "k-step", "ps", "key-step", "u-step", 0, LEASE_MS }, "leased",
		      "leased", false, setup_step, obs_step, reply_step },
	[FK_EXTEND] = { "extend", { "k-ext", "pe", "key-ext", "u-ext", 0, LEASE_MS }, "leased", "leased",
			false, setup_extend, obs_extend, reply_extend },
	[FK_RETENTION] = { "retention sweep", { "k-ret", "pt", "key-ret", "u-ret", 0, LEASE_MS },
			   "succeeded", NULL, true, setup_retention, obs_retention, NULL },
	[FK_CANCEL] = { "cancel", { "k-can", "pc", "key-can", "u-can", 0, LEASE_MS }, "leased",
			"cancelled", false, setup_cancel, obs_cancel, reply_cancel },
	/* no unique key: the probe would take it while the subject is dead,
	 * and the retry would rightly be refused (engine_operate.c checks the
	 * key taken again) */
	[FK_RETRY] = { "retry", { "k-rty", "py", "key-rty", NULL, 0, LEASE_MS }, "dead", "ready",
		       false, setup_retry_dead, obs_retry_dead, reply_retry_dead },
	[FK_PURGE] = { "purge", { "k-pur", "pu", "key-pur", "u-pur", 0, LEASE_MS }, "dead", NULL,
		       false, setup_purge, obs_purge, reply_purge },
};

/* ---- the loop -------------------------------------------------------------- */

static const char *const retention_flags[] = { "--retention", "1s", NULL };

/* Waits (bounded) for the sweep to delete the subject, or the broker to
 * die; "replied" means it was deleted with the broker alive. */
static fx_end wait_sweep(kstate *k, int timeout_ms)
{
	int64_t deadline = th_now_ms() + timeout_ms;
	fx_end end = { 0 };

	while (th_now_ms() < deadline) {
		th_req q;
		th_reply rep;
		th_bytes get;

		assert_int_equal(th_req_begin(&q, "get", 1), 0);
		proto_kv_cstr(th_pk(&q), "execution_id", k->id);
		get = th_req_keep(&q);
		end = fx_send(k->b, &k->r, &get, &rep, FX_CHECK_MS);
		fx_bytes_free(&get);
		bool gone = end.replied && !rep.ok && strcmp(rep.err, "NOT_FOUND") == 0;
		th_reply_free(&rep);
		if (end.died || gone)
			return end;
		if (!end.replied)
			fail_msg("%s: get %s: no answer from a running broker", k->where, k->id);
		end.replied = false;
		th_sleep_ms(50);
	}
	th_broker_dump_log(k->b);
	fail_msg("%s: the sweep did not delete %s within %d ms (--retention 1s)", k->where, k->id,
		 timeout_ms);
	return end;
}

/* The retry of a request (or, for the sweep, the sweep on a broker
 * without the fault), then the execution must be after it. */
static void retry_and_check(kstate *k, int side)
{
	th_reply rep;

	if (k->kd->background) {
		th_raw_close(&k->r);
		fx_stop_clean(k->b);
		fx_set_flags(k->b, retention_flags);
		fx_restart(k->b);
		fx_open(&k->r, k->b);
		wait_sweep(k, 8000);
	} else {
		fx_call(&k->r, &k->req, &rep, "the retry");
		k->kd->check_reply(k, &rep, side);
		th_reply_free(&rep);
	}
	observe(k);
	decide(k, "after the retry", AFTER);
	if (k->kd->setup == NULL) { /* the push: its key and unique key are taken */
		bool held, free_now;
		observe_replay(k);
		probe_unique(k, &held, &free_now);
		if (!held)
			obs(k, NEITHER, "unique key %s is not held by %s", k->kd->job.unique, k->id);
		obs(k, AFTER, "the push again and its unique key");
		decide(k, "probing the push's keys", AFTER);
	}
}

static void expect_fault_death(kstate *k, int status)
{
	char how[96];

	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL ||
	    !fx_log_has(k->b, "storage fault injection: killing the broker")) {
		proc_describe(status, how, sizeof(how));
		th_broker_dump_log(k->b);
		fail_msg("%s: cueqd ended with %s, not by the injected SIGKILL", k->where, how);
	}
}

int fx_kill_loop(th_broker *b, enum fx_kind kind_id, const char *point, const char *action)
{
	const kind *kd = &kinds[kind_id];
	static kstate k;
	char spec[64];

	for (int K = 1; K <= FX_MAX_K; K++) {
		fx_end end = { 0 };
		th_reply rep, again;
		int status = 0, rc;

		memset(&k, 0, sizeof(k));
		memset(&rep, 0, sizeof(rep));
		msgpack_unpacked_init(&rep.up);
		k.b = b, k.kd = kd;
		snprintf(k.where, sizeof(k.where), "%s, CUEQ_FAULT=%s:%d:%s", kd->name, point, K, action);

		/* 1. the state before, checked */
		fx_start(b, NULL);
		fx_open(&k.r, b);
		if (kd->setup != NULL)
			kd->setup(&k);
		else
			setup_push(&k);
		observe(&k);
		decide(&k, "before the request", BEFORE);
		th_raw_close(&k.r);
		fx_stop_clean(b);

		/* 2. the broker that dies at the Kth write or sync */
		snprintf(spec, sizeof(spec), "CUEQ_FAULT=%s:%d:%s", point, K, action);
		fx_set_env(b, (const char *const[]){ spec, NULL });
		fx_set_flags(b, kd->background ? retention_flags : NULL);
		rc = fx_launch(b, &status);
		if (rc == 1 && kd->background) { /* the sweep ran at start-up */
			end.died = true, end.status = status;
		} else if (rc != 0) {
			th_broker_dump_log(b);
			fail_msg("%s: the broker did not start (%d)", k.where, rc);
		} else {
			fx_open(&k.r, b);
			if (kd->background)
				end = wait_sweep(&k, 8000);
			else
				end = fx_send(b, &k.r, &k.req, &rep, FX_CHECK_MS);
			if (!end.died && !end.replied) {
				th_broker_dump_log(b);
				fail_msg("%s: no answer (%d) and the broker still runs", k.where, end.rv);
			}
		}
		fx_set_env(b, NULL);
		fx_set_flags(b, NULL);

		if (end.replied && !end.died) {
			/* 3b. it completed: the same request ID gets the same bytes */
			if (!kd->background) {
				kd->check_reply(&k, &rep, BEFORE);
				fx_call(&k.r, &k.req, &again, "the same request again");
				if (again.len != rep.len || memcmp(again.buf, rep.buf, rep.len) != 0)
					fail_msg("%s: the same request ID was answered differently the second time",
						 k.where);
				th_reply_free(&again);
			}
			th_reply_free(&rep);
			th_raw_close(&k.r);
			/* answered: it must survive a crash (a graceful stop
			 * could meet the fault at its final sync) */
			if (th_broker_kill9(b) != 0)
				fail_msg("%s: cannot kill the broker", k.where);
			fx_restart(b);
			fx_open(&k.r, b);
			observe(&k);
			decide(&k, "after it completed and a restart", AFTER);
			retry_and_check(&k, AFTER);
			th_raw_close(&k.r);
			fx_stop_clean(b);
			fx_bytes_free(&k.req);
			return K;
		}

		/* 3a. it died at the fault */
		th_reply_free(&rep);
		th_raw_close(&k.r); /* before a restart: nng would resend */
		if (th_broker_kill9(b) != 0 && b->pid != 0)
			fail_msg("%s: cannot reap the broker", k.where);
		expect_fault_death(&k, end.status);
		fx_restart(b);
		fx_open(&k.r, b);
		observe(&k);
		int want = BOTH;
		if (K == 1) /* nothing else writes: the first write or sync is the request's */
			want = strcmp(point, "write") == 0 && strcmp(action, "exit") == 0 ? BEFORE : AFTER;
		int side = decide(&k, "after the crash", want);
		retry_and_check(&k, side);
		th_raw_close(&k.r);
		fx_stop_clean(b);
		fx_bytes_free(&k.req);
		th_broker_cleanup(b);
	}
	fail_msg("%s %s:K:%s: the request never completed for K up to %d", kd->name, point, action,
		 FX_MAX_K);
	return -1;
}
