/*
 * engine_operate.c - conformance scenarios of the operator's ops: cancel
 * (of an execution, fencing its lease; of a recurring cue), retry of dead
 * executions (same ID, same steps), purge, pause that survives a reopen,
 * and the release of a gone worker's leases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_fx.h"

static int cancel(struct fx *f, uint64_t id, int *kind)
{
	proto_error err = {0};
	int k = 0, rc = f->eo->cancel(f->e, id, &k, &err);
	if (rc != CUEQ_OK)
		assert_true(err.msg[0] != '\0');
	if (kind)
		*kind = k;
	return rc;
}

static int retry(struct fx *f, uint64_t id, const char *queue, size_t max, size_t *n, bool *more)
{
	proto_error err = {0};
	return f->eo->retry(f->e, id, queue, queue ? strlen(queue) : 0, max, n, more, &err);
}

/* A dead execution of queue (one failure allowed, then nacked). */
static uint64_t dead_one(struct fx *f, const char *queue)
{
	struct eng_push p = job(queue, "d");
	p.max_attempts = 1;
	struct eng_pushed a = push_new(f, p);
	struct eng_claimed c = claim_one(f, queue, 0);
	assert_true(c.id == a.id);
	assert_int_equal(finish(f, a.id, c.token, ENG_NACK, "broken", -1, false).state, CUEQ_DEAD);
	turn(f);
	return a.id;
}

/* Cancel of a leased execution ends its lease at once: the worker's next
 * extend (and any outcome) is refused and says cancelled; the unique key
 * is free; a second cancel answers the same; a finished one is CONFLICT. */
void test_cancel_fences_a_lease(void **state)
{
	struct fx *f = *state;
	int kind = 0;
	struct eng_pushed a = push_new(f, unique(job("q.cancel", "a"), "only-one"));
	turn(f);
	struct eng_claimed c = claim_one(f, "q.cancel", 0);
	turn(f);
	assert_int_equal(cancel(f, a.id, &kind), CUEQ_OK);
	assert_int_equal(kind, ENG_KIND_EXECUTION);
	assert_true(turn(f)); /* an answered cancel is durable */

	struct eng_extend x = extend(f, a.id, c.token, 60000);
	assert_int_equal(x.err.code, CUEQ_ERR_STALE_LEASE);
	assert_int_equal(x.state, CUEQ_CANCELLED);
	assert_non_null(strstr(x.err.msg, "cancelled"));
	struct eng_outcome o = finish(f, a.id, c.token, ENG_ACK, NULL, -1, false);
	assert_int_equal(o.err.code, CUEQ_ERR_STALE_LEASE);
	assert_int_equal(o.state, CUEQ_CANCELLED);
	assert_int_equal(step_set(f, a.id, c.token, "s", "v"), CUEQ_ERR_STALE_LEASE);

	struct eng_view v;
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.state, CUEQ_CANCELLED);
	assert_non_null(v.exec.reason);
	assert_true(v.exec.finished_at != 0);
	assert_int_equal(v.hist[v.n_hist - 1].kind, ENG_EV_CANCELLED);
	f->eo->view_free(f->e, &v);
	assert_int_equal(count(f, "q.cancel", CUEQ_CANCELLED), 1);
	assert_int_equal(count(f, "q.cancel", CUEQ_LEASED), 0);

	assert_int_equal(cancel(f, a.id, NULL), CUEQ_OK); /* the same answer */
	struct eng_pushed b = push_new(f, unique(job("q.cancel", "b"), "only-one"));
	turn(f);
	struct eng_claimed cb = claim_one(f, "q.cancel", 0);
	assert_true(cb.id == b.id);
	assert_int_equal(ack(f, b.id, cb.token, NULL), CUEQ_OK);
	turn(f);
	assert_int_equal(cancel(f, b.id, NULL), CUEQ_ERR_CONFLICT);
	assert_int_equal(cancel(f, 0x123456789ull, NULL), CUEQ_ERR_NOT_FOUND);

	/* ready and scheduled ones are cancelled too, and are never claimed */
	struct eng_pushed r = push_new(f, job("q.cancel2", "r"));
	struct eng_push later = job("q.cancel2", "s");
	later.run_at = proto_now_ms() + 3600000;
	struct eng_pushed s = push_new(f, later);
	assert_int_equal(cancel(f, r.id, NULL), CUEQ_OK);
	assert_int_equal(cancel(f, s.id, NULL), CUEQ_OK);
	turn(f);
	struct eng_claimed none[2];
	assert_int_equal(claim(f, "q.cancel2", 2, 0, none), 0);
	assert_int_equal(state_of(f, s.id), CUEQ_CANCELLED);
}

/* Cancel of a recurring cue stops its fires, also after a reopen. */
void test_cancel_a_cue(void **state)
{
	struct fx *f = *state;
	int kind = 0;
	f->now = 1893456000000ll;
	struct eng_push p = job("q.cuecancel", "t");
	p.every_ms = 60000;
	struct eng_pushed o = push(f, p);
	assert_true(o.recurring);
	turn(f);
	at_time(f, f->now + 60000);
	turn(f);
	assert_int_equal(count(f, "q.cuecancel", CUEQ_READY), 1);
	assert_int_equal(cancel(f, o.cue_id, &kind), CUEQ_OK);
	assert_int_equal(kind, ENG_KIND_CUE);
	turn(f);
	at_time(f, f->now + 10 * 60000);
	turn(f);
	reopen(f, false);
	at_time(f, f->now + 10 * 60000);
	turn(f);
	assert_int_equal(count(f, "q.cuecancel", CUEQ_READY), 1); /* the one fired before */
	struct eng_cue q;
	proto_error err = {0};
	assert_int_equal(f->eo->cue_get(f->e, o.cue_id, &q, &err), CUEQ_OK);
	assert_true(q.cancelled);
	assert_true(q.next[0] == 0);
	free(q.payload);
	assert_int_equal(cancel(f, o.cue_id, NULL), CUEQ_OK);
}

/* A dead execution retried is ready again with the same ID and ledger,
 * its attempts from zero; retry of one not dead is CONFLICT; retry all
 * goes in pages. */
void test_retry_dead_keeps_id_and_steps(void **state)
{
	struct fx *f = *state;
	size_t n = 0;
	bool more = true;
	struct eng_push p = job("q.retry", "r");
	p.max_attempts = 1;
	struct eng_pushed a = push_new(f, p);
	turn(f);
	struct eng_claimed c = claim_one(f, "q.retry", 0);
	assert_int_equal(step_set(f, a.id, c.token, "charge", "ch_1"), CUEQ_OK);
	assert_int_equal(finish(f, a.id, c.token, ENG_NACK, "card declined", -1, false).state,
			 CUEQ_DEAD);
	turn(f);
	assert_int_equal(retry(f, a.id, NULL, 1000, &n, &more), CUEQ_OK);
	assert_int_equal(n, 1);
	assert_false(more);
	assert_true(turn(f));
	assert_int_equal(count(f, "q.retry", CUEQ_DEAD), 0);
	struct eng_claimed c2 = claim_one(f, "q.retry", 0);
	assert_true(c2.id == a.id);
	assert_int_equal(c2.attempt, 1);
	assert_true(c2.token != c.token);
	struct eng_view v;
	assert_int_equal(steps(f, a.id, "charge", &v), CUEQ_OK);
	assert_int_equal(v.n_steps, 1);
	expect_text(v.steps[0].value, v.steps[0].value_len, "ch_1");
	f->eo->view_free(f->e, &v);
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.failures, 0);
	bool retried = false;
	for (size_t i = 0; i < v.n_hist; i++)
		retried |= v.hist[i].kind == ENG_EV_RETRIED;
	assert_true(retried);
	f->eo->view_free(f->e, &v);
	/* leased now: not dead */
	assert_int_equal(retry(f, a.id, NULL, 1000, &n, &more), CUEQ_ERR_CONFLICT);
	assert_int_equal(ack(f, a.id, c2.token, NULL), CUEQ_OK);
	turn(f);
	assert_int_equal(retry(f, a.id, NULL, 1000, &n, &more), CUEQ_ERR_CONFLICT);

	/* all of a queue, two per request */
	uint64_t d[3];
	for (int i = 0; i < 3; i++)
		d[i] = dead_one(f, "q.retryall");
	assert_int_equal(retry(f, 0, "q.retryall", 2, &n, &more), CUEQ_OK);
	assert_int_equal(n, 2);
	assert_true(more);
	turn(f);
	assert_int_equal(retry(f, 0, "q.retryall", 2, &n, &more), CUEQ_OK);
	assert_int_equal(n, 1);
	assert_false(more);
	turn(f);
	for (int i = 0; i < 3; i++)
		assert_int_equal(state_of(f, d[i]), CUEQ_READY);
	assert_int_equal(count(f, "q.retryall", CUEQ_READY), 3);

	/* a retried execution holds its unique key again; while another holds
	 * it, the retry is CONFLICT */
	struct eng_push pu = unique(job("q.retryuk", "u"), "nightly");
	pu.max_attempts = 1;
	struct eng_pushed u = push_new(f, pu);
	struct eng_claimed cu = claim_one(f, "q.retryuk", 0);
	finish(f, u.id, cu.token, ENG_NACK, NULL, -1, true);
	turn(f);
	struct eng_pushed other = push_new(f, unique(job("q.retryuk", "o"), "nightly"));
	turn(f);
	assert_int_equal(retry(f, u.id, NULL, 1000, &n, &more), CUEQ_ERR_CONFLICT);
	assert_int_equal(cancel(f, other.id, NULL), CUEQ_OK);
	turn(f);
	assert_int_equal(retry(f, u.id, NULL, 1000, &n, &more), CUEQ_OK);
	turn(f);
	struct eng_pushed again = push(f, unique(job("q.retryuk", "a"), "nightly"));
	assert_int_equal(again.err.code, CUEQ_ERR_CONFLICT);
	assert_true(again.holder == u.id);

	/* two dead ones that held the same key: retry all takes back one */
	uint64_t k1 = 0, k2 = 0;
	for (int i = 0; i < 2; i++) {
		struct eng_push pk = unique(job("q.retrydup", "k"), "same");
		pk.max_attempts = 1;
		struct eng_pushed x = push_new(f, pk);
		struct eng_claimed cx = claim_one(f, "q.retrydup", 0);
		finish(f, x.id, cx.token, ENG_NACK, NULL, -1, true);
		turn(f);
		*(i ? &k2 : &k1) = x.id;
	}
	assert_int_equal(retry(f, 0, "q.retrydup", 10, &n, &more), CUEQ_OK);
	assert_int_equal(n, 1);
	turn(f);
	assert_int_equal(count(f, "q.retrydup", CUEQ_READY), 1);
	assert_int_equal(count(f, "q.retrydup", CUEQ_DEAD), 1);
	assert_true(state_of(f, k1) == CUEQ_READY || state_of(f, k2) == CUEQ_READY);
}

/* Purge deletes the finished executions of one state, as retention would. */
void test_purge(void **state)
{
	struct fx *f = *state;
	proto_error err = {0};
	size_t n = 0;
	bool more = true;
	uint64_t d1 = dead_one(f, "q.purge"), d2 = dead_one(f, "q.purge");
	struct eng_pushed s = push_new(f, job("q.purge", "s"));
	struct eng_claimed c = claim_one(f, "q.purge", 0);
	assert_true(c.id == s.id);
	assert_int_equal(ack(f, s.id, c.token, NULL), CUEQ_OK);
	turn(f);
	assert_int_equal(f->eo->purge(f->e, "q.purge", 7, CUEQ_DEAD, 1000, &n, &more, &err), CUEQ_OK);
	assert_int_equal(n, 2);
	assert_false(more);
	assert_true(turn(f));
	expect_gone(f, d1);
	expect_gone(f, d2);
	assert_int_equal(state_of(f, s.id), CUEQ_SUCCEEDED);
	assert_int_equal(count(f, "q.purge", CUEQ_DEAD), 0);
	assert_int_equal(count(f, "q.purge", CUEQ_SUCCEEDED), 1);
	reopen(f, false);
	assert_int_equal(count(f, "q.purge", CUEQ_DEAD), 0);
	expect_gone(f, d1);
}

/* A paused queue gives no claims, also after a reopen, until resumed. */
void test_pause_survives_reopen(void **state)
{
	struct fx *f = *state;
	proto_error err = {0};
	struct eng_claimed c[2];
	push_new(f, job("q.pause", "p"));
	assert_int_equal(f->eo->pause(f->e, "q.pause", 7, true, &err), CUEQ_OK);
	assert_true(turn(f));
	assert_false(f->eo->has_ready(f->e, "q.pause", 7));
	assert_int_equal(claim(f, "q.pause", 2, 0, c), 0);
	reopen(f, false);
	assert_int_equal(claim(f, "q.pause", 2, 0, c), 0);
	struct eng_stats *s = NULL;
	size_t n = 0;
	uint64_t next = 1;
	assert_int_equal(f->eo->stats(f->e, "q.pause", 7, 0, 1, &s, &n, &next, &err), CUEQ_OK);
	assert_int_equal(n, 1);
	assert_true(s[0].paused);
	assert_int_equal(s[0].count[CUEQ_READY], 1);
	free(s);
	assert_int_equal(f->eo->pause(f->e, "q.pause", 7, false, &err), CUEQ_OK);
	turn(f);
	assert_true(f->eo->has_ready(f->e, "q.pause", 7));
	assert_int_equal(claim(f, "q.pause", 2, 0, c), 1);
	f->eo->claimed_free(f->e, &c[0]);
}

/* Release ends the leases still live (an acked one is left alone): ready
 * again at once, counted as an expiry, the old token fenced. */
void test_release_ends_live_leases(void **state)
{
	struct fx *f = *state;
	proto_error err = {0};
	struct eng_pushed a = push_new(f, job("q.release", "a"));
	struct eng_pushed b = push_new(f, job("q.release", "b"));
	turn(f);
	struct eng_claimed ca = claim_one(f, "q.release", 0), cb = claim_one(f, "q.release", 0);
	assert_true(ca.id == a.id && cb.id == b.id);
	assert_int_equal(ack(f, a.id, ca.token, NULL), CUEQ_OK);
	turn(f);
	uint64_t ids[2] = {a.id, b.id}, tokens[2] = {ca.token, cb.token};
	size_t ended = 0;
	assert_false(f->eo->is_live(f->e, a.id, ca.token));
	assert_true(f->eo->is_live(f->e, b.id, cb.token));
	f->eo->release(f->e, ids, tokens, 2, &ended);
	assert_int_equal(ended, 1);
	turn(f);
	assert_int_equal(state_of(f, a.id), CUEQ_SUCCEEDED);
	assert_int_equal(state_of(f, b.id), CUEQ_READY);
	assert_int_equal(extend(f, b.id, cb.token, 60000).err.code, CUEQ_ERR_STALE_LEASE);
	struct eng_view v;
	assert_int_equal(get(f, b.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.expiries, 1);
	assert_int_equal(v.hist[v.n_hist - 1].kind, ENG_EV_RELEASED);
	f->eo->view_free(f->e, &v);
	struct eng_stats *s = NULL;
	size_t n = 0;
	uint64_t next = 1;
	assert_int_equal(f->eo->stats(f->e, "q.release", 9, 0, 1, &s, &n, &next, &err), CUEQ_OK);
	assert_int_equal(s[0].releases, 1);
	assert_int_equal(s[0].expiries, 1);
	assert_int_equal(s[0].deliveries, 2);
	free(s);
	struct eng_metrics m = {0};
	f->eo->metrics(f->e, &m);
	assert_int_equal(m.counted.released, 1);
	assert_int_equal(m.counted.expired, 0);
	assert_int_equal(m.counted.succeeded, 1);
	assert_int_equal(m.counted.claimed, 2);
	struct eng_claimed again = claim_one(f, "q.release", 0);
	assert_true(again.id == b.id);
	assert_int_equal(again.attempt, 2);
}

/* stats of all queues comes in pages, from a position that stays valid
 * while queues come and go. */
void test_stats_in_pages(void **state)
{
	struct fx *f = *state;
	proto_error err = {0};
	char name[16];
	uint64_t from = 0, next = 0;
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "q.page%02d", i);
		push_new(f, job(name, "p"));
	}
	turn(f);
	size_t seen = 0, pages = 0;
	do {
		struct eng_stats *s = NULL;
		size_t n = 0;
		assert_int_equal(f->eo->stats(f->e, NULL, 0, from, 10, &s, &n, &next, &err), CUEQ_OK);
		assert_true(n <= 10);
		for (size_t i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "q.page%02zu", seen + i);
			assert_string_equal(s[i].queue, name);
		}
		seen += n;
		pages++;
		free(s);
		if (pages == 1) { /* a queue of the first page is forgotten meanwhile */
			struct eng_claimed c = claim_one(f, "q.page03", 0);
			assert_int_equal(ack(f, c.id, c.token, NULL), CUEQ_OK);
			size_t purged = 0;
			bool more = false;
			turn(f);
			assert_int_equal(f->eo->purge(f->e, "q.page03", 8, CUEQ_SUCCEEDED, 10, &purged,
						      &more, &err),
					 CUEQ_OK);
			turn(f);
		}
		from = next;
	} while (next != 0);
	assert_int_equal(seen, 25);
	assert_int_equal(pages, 3);
}

/* A queue that holds nothing any more is forgotten at the end of the turn
 * (its counters too, also on disk); pushing to it again makes it anew. */
void test_empty_queues_are_forgotten(void **state)
{
	struct fx *f = *state;
	proto_error err = {0};
	struct eng_stats *s = NULL;
	size_t n = 0;
	uint64_t next = 0;
	bool more = false;

	f->now = 1893456000000ll;
	struct eng_pushed a = push_new(f, job("q.gone", "g"));
	turn(f);
	struct eng_claimed c = claim_one(f, "q.gone", 0);
	assert_int_equal(ack(f, a.id, c.token, NULL), CUEQ_OK);
	turn(f);
	assert_int_equal(count(f, "q.gone", CUEQ_SUCCEEDED), 1); /* retained: kept */
	at_time(f, f->now + RETENTION_MS + 2000); /* the sweep deletes it */
	turn(f);
	assert_int_equal(f->eo->stats(f->e, "q.gone", 6, 0, 1, &s, &n, &next, &err), CUEQ_OK);
	assert_int_equal(n, 0);
	free(s);
	/* paused then resumed, with nothing in it: forgotten too */
	assert_int_equal(f->eo->pause(f->e, "q.idle", 6, true, &err), CUEQ_OK);
	turn(f);
	assert_int_equal(f->eo->pause(f->e, "q.idle", 6, false, &err), CUEQ_OK);
	turn(f);
	reopen(f, false);
	assert_int_equal(f->eo->stats(f->e, NULL, 0, 0, 100, &s, &n, &next, &err), CUEQ_OK);
	for (size_t i = 0; i < n; i++)
		if (strcmp(s[i].queue, "q.gone") == 0 || strcmp(s[i].queue, "q.idle") == 0)
			fail_msg("queue %s is still there after it emptied and a reopen", s[i].queue);
	free(s);
	/* and it comes back when used */
	struct eng_pushed b = push_new(f, job("q.gone", "again"));
	turn(f);
	assert_int_equal(count(f, "q.gone", CUEQ_READY), 1);
	struct eng_claimed cb = claim_one(f, "q.gone", 0);
	assert_true(cb.id == b.id);
	/* many queues coming and going reuse their slots */
	for (int i = 0; i < 200; i++) {
		char name[16];
		snprintf(name, sizeof(name), "q.churn%d", i);
		struct eng_pushed x = push_new(f, job(name, "x"));
		struct eng_claimed cx = claim_one(f, name, 0);
		assert_true(cx.id == x.id);
		assert_int_equal(finish(f, x.id, cx.token, ENG_NACK, NULL, -1, true).state, CUEQ_DEAD);
		size_t purged = 0;
		assert_int_equal(f->eo->purge(f->e, name, strlen(name), CUEQ_DEAD, 10, &purged, &more, &err),
				 CUEQ_OK);
		assert_int_equal(purged, 1);
		turn(f);
	}
	assert_int_equal(f->eo->stats(f->e, NULL, 0, 0, 1000, &s, &n, &next, &err), CUEQ_OK);
	assert_int_equal(n, 1); /* q.gone, with its leased job */
	assert_string_equal(s[0].queue, "q.gone");
	free(s);
}
