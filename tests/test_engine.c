/*
 * test_engine.c - conformance of a storage engine to engine.h, through
 * struct engine_ops alone (no broker, no sockets).
 *
 * Each scenario opens an engine on a fresh location and drives it as the
 * core loop does: calls, then commit and, when commit asks for it, sync at
 * the end of every turn.  It checks what the protocol layer relies on: one
 * live lease per execution, expiry and redelivery, fencing, replayed
 * outcomes (also within one turn and one request), idempotency and unique
 * keys, remembered requests, a claim asked again, the step ledger,
 * retention, and state that survives close and reopen (among many
 * finished executions too).  Nothing here knows how an engine
 * stores anything: a target is an ops table and a way to make and remove an
 * empty location, so another engine runs the same scenarios by adding one
 * line to targets[].  Leases are real and short; instead of waiting for
 * one, a scenario passes its deadline to tick().
 *
 * A target also says how to make its next write fail (the embedded engine:
 * the CUEQ_FAULT hook of its store, read at open): the fault scenario checks
 * that a turn whose write failed leaves nothing of itself behind, that the
 * engine then refuses every later commit and sync (fail-stop), and that a
 * reopened engine is wholly before that turn.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "engine.h"

#include "engine_fx.h"

/* ---- the scenarios ---- */

/* A ready execution goes to one claimer: highest priority first, then in
 * push order; a leased one is not handed out again. */
static void test_claim_is_exclusive(void **state)
{
	struct fx *f = *state;
	struct eng_push in[3] = {job("q.excl", "p0"), job("q.excl", "p1"), job("q.excl", "p2")};
	struct eng_pushed out[3];
	struct eng_claimed c[3];

	assert_int_equal(f->eo->version, ENGINE_OPS_VERSION);
	assert_non_null(f->eo->name);
	in[2].priority = 5;
	push_many(f, in, 3, out);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(out[i].err.code, CUEQ_OK);
		assert_int_equal(out[i].state, CUEQ_READY);
		for (int k = 0; k < i; k++)
			assert_true(out[i].id != out[k].id);
	}
	assert_true(turn(f)); /* an answered push must be durable */
	assert_true(f->eo->has_ready(f->e, "q.excl", 6));
	assert_int_equal(count(f, "q.excl", CUEQ_READY), 3);

	assert_int_equal(claim(f, "q.excl", 2, 0, c), 2);
	assert_int_equal(claim(f, "q.excl", 2, 0, c + 2), 1);
	turn(f);
	const uint64_t want[3] = {out[2].id, out[0].id, out[1].id};
	const char *payload[3] = {"p2", "p0", "p1"};
	for (int i = 0; i < 3; i++) {
		assert_true(c[i].id == want[i]);
		expect_text(c[i].payload, c[i].payload_len, payload[i]);
		assert_int_equal(c[i].attempt, 1);
		assert_int_equal(c[i].lease_ms, LONG_LEASE_MS);
		assert_true(c[i].token != 0);
		for (int k = 0; k < i; k++)
			assert_true(c[i].token != c[k].token);
		f->eo->claimed_free(f->e, &c[i]);
	}
	assert_int_equal(claim(f, "q.excl", 3, 0, c), 0);
	assert_false(f->eo->has_ready(f->e, "q.excl", 6));
	assert_int_equal(count(f, "q.excl", CUEQ_LEASED), 3);
	assert_int_equal(count(f, "q.excl", CUEQ_READY), 0);

	struct eng_view v;
	assert_int_equal(get(f, c[0].id, &v), CUEQ_OK);
	assert_int_equal(v.exec.state, CUEQ_LEASED);
	assert_true(v.exec.token == c[0].token);
	assert_true(v.exec.deadline == c[0].deadline);
	assert_int_equal(v.exec.attempt, 1);
	expect_text(v.payload, v.payload_len, "p2");
	f->eo->view_free(f->e, &v);
}

/* A lease whose deadline passed ends at the next tick: the same execution
 * is delivered again with attempt + 1 and a new token; on its last attempt
 * it is dead instead. */
static void test_reclaim_after_expiry(void **state)
{
	struct fx *f = *state;
	struct eng_pushed a = push_new(f, job("q.expiry", "a"));
	struct eng_claimed c[1];
	turn(f);

	struct eng_claimed c1 = claim_one(f, "q.expiry", SHORT_LEASE_MS);
	turn(f);
	assert_true(c1.id == a.id);
	assert_true(c1.deadline > 0);
	f->eo->tick(f->e, c1.deadline - 1);
	turn(f);
	assert_int_equal(claim(f, "q.expiry", 1, 0, c), 0);
	assert_int_equal(state_of(f, a.id), CUEQ_LEASED);

	f->eo->tick(f->e, c1.deadline);
	turn(f);
	struct eng_view v;
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.state, CUEQ_READY);
	assert_int_equal(v.exec.expiries, 1);
	assert_true(v.exec.token == 0);
	f->eo->view_free(f->e, &v);

	struct eng_claimed c2 = claim_one(f, "q.expiry", SHORT_LEASE_MS);
	turn(f);
	assert_true(c2.id == a.id);
	assert_int_equal(c2.attempt, 2);
	assert_true(c2.token != c1.token);

	/* the history tells it: claimed, expired, claimed */
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.n_hist, 3);
	assert_int_equal(v.hist[0].kind, ENG_EV_CLAIMED);
	assert_true(v.hist[0].token == c1.token);
	assert_int_equal(v.hist[1].kind, ENG_EV_EXPIRED);
	assert_true(v.hist[1].token == c1.token);
	assert_int_equal(v.hist[2].kind, ENG_EV_CLAIMED);
	assert_true(v.hist[2].token == c2.token);
	assert_int_equal(v.hist[2].attempt, 2);
	assert_string_equal(eng_event_name(v.hist[1].kind), "expired");
	f->eo->view_free(f->e, &v);

	/* one expiry allowed: the expiry ends it (max_attempts counts
	 * failures, which an expiry is not) */
	struct eng_push p = job("q.expiry1", "b");
	p.max_expiries = 1;
	struct eng_pushed b = push_new(f, p);
	turn(f);
	struct eng_claimed cb = claim_one(f, "q.expiry1", SHORT_LEASE_MS);
	turn(f);
	f->eo->tick(f->e, cb.deadline);
	turn(f);
	assert_int_equal(get(f, b.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.state, CUEQ_DEAD);
	assert_true(v.exec.finished_at != 0);
	assert_int_equal(v.exec.expiries, 1);
	f->eo->view_free(f->e, &v);
	assert_int_equal(claim(f, "q.expiry1", 1, 0, c), 0);
	assert_int_equal(count(f, "q.expiry1", CUEQ_DEAD), 1);
}

/* A token that is no longer the live lease is refused with STALE_LEASE by
 * every write (ack, nack, extend, step) and changes nothing. */
static void test_stale_token_is_fenced(void **state)
{
	struct fx *f = *state;
	struct eng_pushed a = push_new(f, job("q.fence", "a"));
	turn(f);
	struct eng_claimed c1 = claim_one(f, "q.fence", SHORT_LEASE_MS);
	turn(f);
	f->eo->tick(f->e, c1.deadline);
	turn(f);
	struct eng_claimed c2 = claim_one(f, "q.fence", SHORT_LEASE_MS);
	turn(f);

	struct eng_view before, after;
	assert_int_equal(get(f, a.id, &before), CUEQ_OK);
	assert_int_equal(ack(f, a.id, c1.token, "late"), CUEQ_ERR_STALE_LEASE);
	assert_int_equal(finish(f, a.id, c1.token, ENG_NACK, "late", 0, false).err.code,
			 CUEQ_ERR_STALE_LEASE);
	assert_int_equal(finish(f, a.id, c1.token, ENG_NACK, NULL, -1, true).err.code,
			 CUEQ_ERR_STALE_LEASE);
	assert_int_equal(extend(f, a.id, c1.token, LONG_LEASE_MS).err.code, CUEQ_ERR_STALE_LEASE);
	assert_int_equal(step_set(f, a.id, c1.token, "charge", "x"), CUEQ_ERR_STALE_LEASE);
	assert_int_equal(ack(f, a.id, 0, "none"), CUEQ_ERR_STALE_LEASE);
	turn(f);

	assert_int_equal(get(f, a.id, &after), CUEQ_OK);
	assert_int_equal(after.exec.state, CUEQ_LEASED);
	assert_true(after.exec.token == c2.token);
	assert_true(after.exec.deadline == before.exec.deadline);
	assert_int_equal(after.exec.attempt, 2);
	assert_int_equal(after.exec.failures, 0);
	assert_null(after.exec.result);
	assert_null(after.exec.error);
	assert_int_equal(after.n_hist, before.n_hist);
	assert_int_equal(after.n_steps, 0);
	f->eo->view_free(f->e, &before);
	f->eo->view_free(f->e, &after);

	/* an execution that never was */
	assert_int_equal(ack(f, a.id + 1000000, c2.token, NULL), CUEQ_ERR_NOT_FOUND);

	/* the live token still works */
	struct eng_extend x = extend(f, a.id, c2.token, LONG_LEASE_MS);
	assert_int_equal(x.err.code, CUEQ_OK);
	assert_true(x.deadline > c2.deadline);
	turn(f);
	f->eo->tick(f->e, c2.deadline); /* the old deadline no longer ends it */
	turn(f);
	assert_int_equal(state_of(f, a.id), CUEQ_LEASED);
	assert_int_equal(ack(f, a.id, c2.token, "done"), CUEQ_OK);
	turn(f);
	assert_int_equal(state_of(f, a.id), CUEQ_SUCCEEDED);
}

/* The same outcome sent again gets the first answer; a different one for
 * a finished execution is a CONFLICT and changes nothing. */
static void test_outcome_replay(void **state)
{
	struct fx *f = *state;
	struct eng_pushed a = push_new(f, job("q.replay", "a"));
	struct eng_pushed b = push_new(f, job("q.replay", "b"));
	turn(f);
	struct eng_claimed ca = claim_one(f, "q.replay", LONG_LEASE_MS);
	struct eng_claimed cb = claim_one(f, "q.replay", LONG_LEASE_MS);
	turn(f);
	assert_true(ca.id == a.id && cb.id == b.id);

	struct eng_outcome o = finish(f, a.id, ca.token, ENG_ACK, "done", -1, false);
	assert_int_equal(o.err.code, CUEQ_OK);
	assert_int_equal(o.state, CUEQ_SUCCEEDED);
	assert_true(turn(f)); /* an answered ack must be durable */
	o = finish(f, a.id, ca.token, ENG_ACK, "done", -1, false);
	assert_int_equal(o.err.code, CUEQ_OK);
	assert_int_equal(o.state, CUEQ_SUCCEEDED);
	assert_int_equal(ack(f, a.id, ca.token, "other"), CUEQ_ERR_CONFLICT);
	assert_int_equal(ack(f, a.id, ca.token, NULL), CUEQ_ERR_CONFLICT);
	assert_int_equal(finish(f, a.id, ca.token, ENG_NACK, "done", -1, false).err.code,
			 CUEQ_ERR_CONFLICT);
	turn(f);
	struct eng_view v;
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.state, CUEQ_SUCCEEDED);
	expect_text(v.exec.result, v.exec.result_len, "done");
	assert_true(v.exec.finished_at != 0);
	f->eo->view_free(f->e, &v);

	/* a nack replayed gets the same state and time to run again */
	o = finish(f, b.id, cb.token, ENG_NACK, "boom", 60000, false);
	assert_int_equal(o.err.code, CUEQ_OK);
	assert_int_equal(o.state, CUEQ_SCHEDULED);
	assert_true(o.run_at > 0);
	turn(f);
	struct eng_outcome again = finish(f, b.id, cb.token, ENG_NACK, "boom", 60000, false);
	assert_int_equal(again.err.code, CUEQ_OK);
	assert_int_equal(again.state, CUEQ_SCHEDULED);
	assert_true(again.run_at == o.run_at);
	/* the lease ended: another outcome under it is refused */
	assert_int_equal(finish(f, b.id, cb.token, ENG_NACK, "bang", 60000, false).err.code,
			 CUEQ_ERR_STALE_LEASE);
	assert_int_equal(ack(f, b.id, cb.token, NULL), CUEQ_ERR_STALE_LEASE);
	turn(f);
	assert_int_equal(get(f, b.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.state, CUEQ_SCHEDULED);
	assert_int_equal(v.exec.failures, 1);
	expect_text(v.exec.error, v.exec.error_len, "boom");
	assert_true(v.exec.run_at == o.run_at);
	f->eo->view_free(f->e, &v);

	/* within one turn, before anything is written: the same outcome twice
	 * in one request, and again in a later request of the turn */
	struct eng_pushed c = push_new(f, job("q.replay", "c"));
	turn(f);
	struct eng_claimed cc = claim_one(f, "q.replay", LONG_LEASE_MS);
	turn(f);
	assert_true(cc.id == c.id);
	struct eng_outcome two[3] = {
		{.id = c.id, .token = cc.token, .kind = ENG_ACK, .text = "r", .text_len = 1},
		{.id = c.id, .token = cc.token, .kind = ENG_ACK, .text = "r", .text_len = 1},
		{.id = c.id, .token = cc.token, .kind = ENG_NACK, .text = "x", .text_len = 1},
	};
	f->eo->finish(f->e, two, 3);
	assert_int_equal(two[0].err.code, CUEQ_OK);
	assert_int_equal(two[1].err.code, CUEQ_OK);
	assert_int_equal(two[1].state, CUEQ_SUCCEEDED);
	assert_int_equal(two[2].err.code, CUEQ_ERR_CONFLICT);
	o = finish(f, c.id, cc.token, ENG_ACK, "r", -1, false);
	assert_int_equal(o.err.code, CUEQ_OK);
	assert_int_equal(o.state, CUEQ_SUCCEEDED);
	assert_int_equal(ack(f, c.id, cc.token, "other"), CUEQ_ERR_CONFLICT);
	assert_int_equal(step_set(f, c.id, cc.token, "late", "v"), CUEQ_ERR_STALE_LEASE);
	turn(f);
	assert_int_equal(state_of(f, c.id), CUEQ_SUCCEEDED);
}

/* An idempotency key answers the same request with the first answer and
 * refuses another request; keys belong to their queue. */
static void test_idempotency_keys(void **state)
{
	struct fx *f = *state;
	struct eng_pushed first = push_new(f, keyed(job("q.idem", "a"), "k1", 11));
	turn(f);

	struct eng_pushed dup = push(f, keyed(job("q.idem", "a"), "k1", 11));
	assert_int_equal(dup.err.code, CUEQ_OK);
	assert_true(dup.duplicate);
	assert_true(dup.id == first.id);
	assert_int_equal(dup.state, first.state);
	assert_true(dup.created_at == first.created_at);
	struct eng_pushed other = push(f, keyed(job("q.idem", "b"), "k1", 12));
	assert_int_equal(other.err.code, CUEQ_ERR_IDEMPOTENCY_MISMATCH);
	assert_true(other.err.msg[0] != '\0');
	turn(f);
	assert_int_equal(count(f, "q.idem", CUEQ_READY), 1);

	/* within one request too */
	struct eng_push in[3] = {keyed(job("q.idem", "c"), "k2", 21),
				 keyed(job("q.idem", "c"), "k2", 21),
				 keyed(job("q.idem", "d"), "k2", 22)};
	struct eng_pushed out[3];
	push_many(f, in, 3, out);
	assert_int_equal(out[0].err.code, CUEQ_OK);
	assert_false(out[0].duplicate);
	assert_int_equal(out[1].err.code, CUEQ_OK);
	assert_true(out[1].duplicate);
	assert_true(out[1].id == out[0].id);
	assert_int_equal(out[2].err.code, CUEQ_ERR_IDEMPOTENCY_MISMATCH);
	turn(f);

	/* the same key in another queue is another key */
	struct eng_pushed elsewhere = push_new(f, keyed(job("q.idem2", "b"), "k1", 12));
	assert_true(elsewhere.id != first.id);
	turn(f);
	assert_int_equal(count(f, "q.idem", CUEQ_READY), 2);
	assert_int_equal(count(f, "q.idem2", CUEQ_READY), 1);

	/* the key outlives the execution's end within its window */
	struct eng_claimed c = claim_one(f, "q.idem", LONG_LEASE_MS);
	assert_true(c.id == first.id);
	assert_int_equal(ack(f, c.id, c.token, NULL), CUEQ_OK);
	turn(f);
	dup = push(f, keyed(job("q.idem", "a"), "k1", 11));
	assert_true(dup.duplicate);
	assert_true(dup.id == first.id);
	turn(f);
	assert_int_equal(count(f, "q.idem", CUEQ_READY), 1);

	/* the digest decides, not the 64-bit hash: a request crafted to share
	 * the first one's hash is a mismatch, stored or in the same batch */
	struct eng_push forged = keyed(job("q.idem", "a"), "k1", 11);
	forged.req_digest[31] ^= 1;
	struct eng_pushed fo = push(f, forged);
	assert_int_equal(fo.err.code, CUEQ_ERR_IDEMPOTENCY_MISMATCH);
	struct eng_push pair[2] = {keyed(job("q.idem", "e"), "k3", 31), keyed(job("q.idem", "e"), "k3", 31)};
	pair[1].req_digest[0] ^= 1;
	push_many(f, pair, 2, out);
	assert_int_equal(out[0].err.code, CUEQ_OK);
	assert_int_equal(out[1].err.code, CUEQ_ERR_IDEMPOTENCY_MISMATCH);
	turn(f);
}

/* A unique key is refused with CONFLICT while the execution holding it is
 * unfinished, and free again once it finished. */
static void test_unique_keys(void **state)
{
	struct fx *f = *state;
	struct eng_pushed holder = push_new(f, unique(job("q.uniq", "a"), "u1"));
	turn(f);

	struct eng_pushed again = push(f, unique(job("q.uniq", "b"), "u1"));
	assert_int_equal(again.err.code, CUEQ_ERR_CONFLICT);
	assert_true(again.holder == holder.id);
	turn(f);
	assert_int_equal(count(f, "q.uniq", CUEQ_READY), 1);
	push_new(f, unique(job("q.uniq2", "b"), "u1")); /* another queue's key */
	turn(f);

	struct eng_claimed c = claim_one(f, "q.uniq", LONG_LEASE_MS);
	turn(f);
	assert_true(c.id == holder.id);
	again = push(f, unique(job("q.uniq", "b"), "u1"));
	assert_int_equal(again.err.code, CUEQ_ERR_CONFLICT);
	assert_true(again.holder == holder.id);
	assert_int_equal(ack(f, c.id, c.token, NULL), CUEQ_OK);
	turn(f);

	struct eng_pushed next = push_new(f, unique(job("q.uniq", "c"), "u1"));
	assert_true(next.id != holder.id);
	turn(f);
	struct eng_view v;
	assert_int_equal(get(f, next.id, &v), CUEQ_OK);
	expect_text(v.unique, v.unique_len, "u1");
	f->eo->view_free(f->e, &v);

	/* within one request: the second is refused, held by the first */
	struct eng_push in[2] = {unique(job("q.uniq", "d"), "u2"), unique(job("q.uniq", "e"), "u2")};
	struct eng_pushed out[2];
	push_many(f, in, 2, out);
	assert_int_equal(out[0].err.code, CUEQ_OK);
	assert_int_equal(out[1].err.code, CUEQ_ERR_CONFLICT);
	assert_true(out[1].holder == out[0].id);
	turn(f);
	assert_int_equal(count(f, "q.uniq", CUEQ_READY), 2);
}

/* Steps are written under the live lease only and are kept across
 * redeliveries. */
static void test_steps(void **state)
{
	struct fx *f = *state;
	struct eng_pushed a = push_new(f, job("q.steps", "a"));
	turn(f);
	struct eng_claimed c1 = claim_one(f, "q.steps", SHORT_LEASE_MS);
	turn(f);

	assert_int_equal(step_set(f, a.id, c1.token, "charge", "ch_1"), CUEQ_OK);
	assert_true(turn(f)); /* an answered step must be durable */
	assert_int_equal(step_set(f, a.id, c1.token + 1, "charge", "ch_x"), CUEQ_ERR_STALE_LEASE);
	turn(f);
	struct eng_view v;
	assert_int_equal(steps(f, a.id, "charge", &v), CUEQ_OK);
	assert_int_equal(v.n_steps, 1);
	expect_text(v.steps[0].name, v.steps[0].name_len, "charge");
	expect_text(v.steps[0].value, v.steps[0].value_len, "ch_1");
	assert_true(v.steps[0].at > 0);
	f->eo->view_free(f->e, &v);
	assert_int_equal(steps(f, a.id, "ship", &v), CUEQ_ERR_NOT_FOUND);
	f->eo->view_free(f->e, &v);
	assert_int_equal(steps(f, a.id + 1000000, NULL, &v), CUEQ_ERR_NOT_FOUND);
	f->eo->view_free(f->e, &v);

	/* redelivered: the ledger is still there, the old lease may not write */
	f->eo->tick(f->e, c1.deadline);
	turn(f);
	struct eng_claimed c2 = claim_one(f, "q.steps", LONG_LEASE_MS);
	turn(f);
	assert_int_equal(c2.attempt, 2);
	assert_int_equal(steps(f, a.id, NULL, &v), CUEQ_OK);
	assert_int_equal(v.n_steps, 1);
	expect_text(v.steps[0].value, v.steps[0].value_len, "ch_1");
	f->eo->view_free(f->e, &v);
	assert_int_equal(step_set(f, a.id, c1.token, "charge", "ch_2"), CUEQ_ERR_STALE_LEASE);
	assert_int_equal(step_set(f, a.id, c2.token, "ship", "sh_1"), CUEQ_OK);
	assert_int_equal(step_set(f, a.id, c2.token, "charge", "ch_2"), CUEQ_OK);
	turn(f);

	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.n_steps, 2);
	expect_text(v.steps[0].name, v.steps[0].name_len, "charge"); /* in name order */
	expect_text(v.steps[0].value, v.steps[0].value_len, "ch_2");
	expect_text(v.steps[1].name, v.steps[1].name_len, "ship");
	/* the history names each write and the lease it was made under */
	const uint64_t by[3] = {c1.token, c2.token, c2.token};
	const char *names[3] = {"charge", "ship", "charge"};
	size_t n = 0;
	for (size_t i = 0; i < v.n_hist; i++) {
		if (v.hist[i].kind != ENG_EV_STEP)
			continue;
		assert_true(n < 3);
		assert_true(v.hist[i].token == by[n]);
		expect_text(v.hist[i].detail, v.hist[i].detail_len, names[n]);
		n++;
	}
	assert_int_equal(n, 3);
	f->eo->view_free(f->e, &v);
}

/* Time far past the retention window deletes finished executions (and
 * forgets idempotency keys whose time ran out); unfinished ones stay. */
static void test_retention(void **state)
{
	struct fx *f = *state;
	struct eng_push pa = keyed(job("q.ret", "a"), "rk", 1);
	pa.key_ttl_ms = 1000;
	struct eng_pushed a = push_new(f, pa);
	struct eng_pushed b = push_new(f, job("q.ret", "b"));
	turn(f);
	struct eng_claimed ca = claim_one(f, "q.ret", LONG_LEASE_MS);
	struct eng_claimed cb = claim_one(f, "q.ret", LONG_LEASE_MS);
	struct eng_pushed c = push_new(f, job("q.ret", "c"));
	turn(f);
	assert_true(ca.id == a.id && cb.id == b.id);
	assert_int_equal(step_set(f, a.id, ca.token, "s", "v"), CUEQ_OK);
	assert_int_equal(ack(f, a.id, ca.token, "ok"), CUEQ_OK);
	assert_int_equal(finish(f, b.id, cb.token, ENG_NACK, "bad", -1, true).err.code, CUEQ_OK);
	turn(f);

	struct eng_view v;
	int64_t finished = 0;
	uint64_t done[2] = {a.id, b.id};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(get(f, done[i], &v), CUEQ_OK);
		assert_true(v.exec.finished_at != 0);
		if (v.exec.finished_at > finished)
			finished = v.exec.finished_at;
		f->eo->view_free(f->e, &v);
	}
	assert_int_equal(state_of(f, b.id), CUEQ_DEAD);

	/* within the window they are kept */
	f->eo->tick(f->e, finished + RETENTION_MS / 2);
	turn(f);
	assert_int_equal(state_of(f, a.id), CUEQ_SUCCEEDED);
	assert_int_equal(state_of(f, b.id), CUEQ_DEAD);

	f->eo->tick(f->e, finished + 30 * DAY_MS);
	turn(f);
	expect_gone(f, a.id);
	expect_gone(f, b.id);
	assert_int_equal(steps(f, a.id, NULL, &v), CUEQ_ERR_NOT_FOUND);
	f->eo->view_free(f->e, &v);
	assert_int_equal(state_of(f, c.id), CUEQ_READY);
	assert_int_equal(count(f, "q.ret", CUEQ_SUCCEEDED), 0);
	assert_int_equal(count(f, "q.ret", CUEQ_DEAD), 0);
	assert_int_equal(count(f, "q.ret", CUEQ_READY), 1);

	struct eng_view list[4];
	size_t n = SIZE_MAX;
	uint64_t next = 1;
	proto_error err = {0};
	assert_int_equal(f->eo->list(f->e, "q.ret", 5, CUEQ_SUCCEEDED, 0, 4, list, &n, &next, &err),
			 CUEQ_OK);
	assert_int_equal(n, 0);
	assert_true(next == 0);

	/* the key's time ran out with it: another request may use it */
	struct eng_pushed reuse = push_new(f, keyed(job("q.ret", "z"), "rk", 2));
	assert_true(reuse.id != a.id);
	turn(f);
}

/* What was committed and synced is there after close and open: states,
 * live leases, results, steps, keys and counts; the new start has a new
 * boot ID and hands out tokens and IDs never seen before. */
static void test_close_and_reopen(void **state)
{
	struct fx *f = *state;
	struct eng_pushed b = push_new(f, job("q.reopen", "b"));
	struct eng_pushed c = push_new(f, job("q.reopen", "c"));
	turn(f);
	struct eng_claimed cb = claim_one(f, "q.reopen", LONG_LEASE_MS);
	struct eng_claimed cc = claim_one(f, "q.reopen", LONG_LEASE_MS);
	turn(f);
	assert_int_equal(step_set(f, b.id, cb.token, "s1", "v1"), CUEQ_OK);
	assert_int_equal(ack(f, c.id, cc.token, "res"), CUEQ_OK);
	turn(f);
	struct eng_pushed a = push_new(f, keyed(job("q.reopen", "a"), "ik", 7));
	struct eng_push pd = job("q.reopen", "d");
	pd.run_at = proto_now_ms() + 3600000;
	struct eng_pushed d = push_new(f, pd);
	assert_int_equal(d.state, CUEQ_SCHEDULED);
	struct eng_pushed u = push_new(f, unique(job("q.reopen", "u"), "ru"));
	turn(f);

	uint64_t boot1 = f->eo->boot_id(f->e);
	f->eo->close(f->e);
	f->e = NULL;
	f->e = open_at(f);
	assert_true(f->eo->boot_id(f->e) != boot1);

	assert_int_equal(state_of(f, a.id), CUEQ_READY);
	assert_int_equal(state_of(f, u.id), CUEQ_READY);
	struct eng_view v;
	assert_int_equal(get(f, b.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.state, CUEQ_LEASED);
	assert_true(v.exec.token == cb.token);
	assert_true(v.exec.deadline == cb.deadline);
	assert_int_equal(v.exec.attempt, 1);
	assert_int_equal(v.n_steps, 1);
	expect_text(v.steps[0].value, v.steps[0].value_len, "v1");
	f->eo->view_free(f->e, &v);
	assert_int_equal(get(f, c.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.state, CUEQ_SUCCEEDED);
	expect_text(v.exec.result, v.exec.result_len, "res");
	f->eo->view_free(f->e, &v);
	assert_int_equal(get(f, d.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.state, CUEQ_SCHEDULED);
	assert_true(v.exec.run_at == d.run_at);
	f->eo->view_free(f->e, &v);
	assert_int_equal(count(f, "q.reopen", CUEQ_READY), 2);
	assert_int_equal(count(f, "q.reopen", CUEQ_LEASED), 1);
	assert_int_equal(count(f, "q.reopen", CUEQ_SCHEDULED), 1);
	assert_int_equal(count(f, "q.reopen", CUEQ_SUCCEEDED), 1);

	/* keys, outcomes and leases hold across the restart */
	struct eng_pushed dup = push(f, keyed(job("q.reopen", "a"), "ik", 7));
	assert_true(dup.duplicate);
	assert_true(dup.id == a.id);
	struct eng_pushed held = push(f, unique(job("q.reopen", "u"), "ru"));
	assert_int_equal(held.err.code, CUEQ_ERR_CONFLICT);
	assert_true(held.holder == u.id);
	assert_int_equal(ack(f, c.id, cc.token, "res"), CUEQ_OK);
	assert_int_equal(ack(f, c.id, cc.token, "other"), CUEQ_ERR_CONFLICT);
	assert_int_equal(ack(f, b.id, cb.token, "fine"), CUEQ_OK);
	turn(f);

	/* IDs and tokens of the new start were never handed out before */
	struct eng_pushed e = push_new(f, job("q.reopen", "e"));
	struct eng_claimed got[3];
	assert_int_equal(claim(f, "q.reopen", 3, 0, got), 3);
	turn(f);
	const uint64_t old_ids[] = {a.id, b.id, c.id, d.id, u.id};
	const uint64_t want[] = {a.id, u.id, e.id};
	for (size_t i = 0; i < sizeof(old_ids) / sizeof(old_ids[0]); i++)
		assert_true(e.id != old_ids[i]);
	for (int i = 0; i < 3; i++) {
		assert_true(got[i].id == want[i]);
		assert_true(got[i].token != cb.token && got[i].token != cc.token);
		for (int k = 0; k < i; k++)
			assert_true(got[i].token != got[k].token);
		f->eo->claimed_free(f->e, &got[i]);
	}
}

/* A turn whose write fails is not there after reopening, in any of its
 * parts (the finished record, the active index, the counts, the unique key,
 * an idempotency key, a step), and the engine refuses to commit or sync
 * anything after it. */
static void test_failed_write_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct eng_pushed a = push_new(f, unique(keyed(job("q.fault", "a"), "ka", 11), "ua"));
	turn(f);
	struct eng_claimed c = claim_one(f, "q.fault", LONG_LEASE_MS);
	assert_int_equal(step_set(f, c.id, c.token, "s1", "v1"), CUEQ_OK);
	turn(f);

	reopen(f, true);
	/* one turn: an ack that retires a unique key holder, a step, a push */
	assert_int_equal(step_set(f, c.id, c.token, "s2", "v2"), CUEQ_OK);
	assert_int_equal(ack(f, c.id, c.token, "done"), CUEQ_OK);
	struct eng_pushed b = push_new(f, keyed(job("q.fault", "b"), "kb", 22));
	bool durable = false;
	assert_int_not_equal(f->eo->commit(f->e, true, &durable), 0);
	/* fail-stop: nothing is written or synced any more */
	push_new(f, job("q.fault", "c"));
	assert_int_not_equal(f->eo->commit(f->e, true, &durable), 0);
	assert_int_not_equal(f->eo->commit(f->e, true, &durable), 0);
	assert_int_not_equal(f->eo->sync(f->e), 0);

	reopen(f, false);
	/* wholly before the failed turn */
	assert_int_equal(state_of(f, a.id), CUEQ_LEASED);
	assert_int_equal(count(f, "q.fault", CUEQ_LEASED), 1);
	assert_int_equal(count(f, "q.fault", CUEQ_SUCCEEDED), 0);
	assert_int_equal(count(f, "q.fault", CUEQ_READY), 0);
	expect_gone(f, b.id);
	struct eng_view v;
	assert_int_equal(steps(f, a.id, NULL, &v), CUEQ_OK);
	assert_int_equal(v.n_steps, 1);
	expect_text(v.steps[0].name, v.steps[0].name_len, "s1");
	f->eo->view_free(f->e, &v);
	struct eng_pushed u = push(f, unique(job("q.fault", "x"), "ua"));
	assert_int_equal(u.err.code, CUEQ_ERR_CONFLICT);
	assert_true(u.holder == a.id);
	struct eng_pushed kb = push_new(f, keyed(job("q.fault", "b"), "kb", 22));
	assert_true(kb.id != b.id);
	turn(f);

	/* the lease survived: the same ack now goes through, wholly */
	assert_int_equal(ack(f, c.id, c.token, "done"), CUEQ_OK);
	turn(f);
	reopen(f, false);
	assert_int_equal(state_of(f, a.id), CUEQ_SUCCEEDED);
	assert_int_equal(count(f, "q.fault", CUEQ_LEASED), 0);
	assert_int_equal(count(f, "q.fault", CUEQ_SUCCEEDED), 1);
	push_new(f, unique(job("q.fault", "y"), "ua"));
	turn(f);
}

/* A read in the middle of a turn may write the turn so far first (get
 * and list do, to see every change of the turn): when that write fails the
 * read is refused, the turn is not there after reopening, and nothing
 * commits after it. */
static void test_failed_write_inside_a_read(void **state)
{
	struct fx *f = *state;
	struct eng_pushed a = push_new(f, job("q.rfault", "a"));
	turn(f);
	struct eng_claimed c = claim_one(f, "q.rfault", LONG_LEASE_MS);
	turn(f);

	reopen(f, true);
	assert_int_equal(ack(f, c.id, c.token, "done"), CUEQ_OK);
	struct eng_view v;
	assert_int_equal(get(f, a.id, &v), CUEQ_ERR_UNAVAILABLE);
	f->eo->view_free(f->e, &v);
	bool durable = false;
	assert_int_not_equal(f->eo->commit(f->e, true, &durable), 0);
	assert_int_not_equal(f->eo->sync(f->e), 0);

	reopen(f, false);
	assert_int_equal(state_of(f, a.id), CUEQ_LEASED);
	assert_int_equal(count(f, "q.rfault", CUEQ_SUCCEEDED), 0);
	assert_int_equal(ack(f, c.id, c.token, "done"), CUEQ_OK);
	turn(f);
	assert_int_equal(state_of(f, a.id), CUEQ_SUCCEEDED);
}

/* A late lease token is answered from the stored record, so its request
 * first writes the turn so far: when that write fails, the token gets
 * UNAVAILABLE (not a guess), and nothing of the turn is there after
 * reopening. */
static void test_failed_write_before_a_late_token(void **state)
{
	struct fx *f = *state;
	struct eng_pushed a = push_new(f, job("q.lfault", "a"));
	turn(f);
	struct eng_claimed c = claim_one(f, "q.lfault", LONG_LEASE_MS);
	turn(f);
	assert_int_equal(ack(f, a.id, c.token, "done"), CUEQ_OK);
	turn(f);

	reopen(f, true);
	struct eng_pushed b = push_new(f, job("q.lfault", "b")); /* the turn so far */
	assert_int_equal(ack(f, a.id, c.token, "done"), CUEQ_ERR_UNAVAILABLE);
	/* the failed turn is gone: what is read now is what is on disk */
	struct eng_extend x = extend(f, a.id, c.token, LONG_LEASE_MS);
	assert_int_equal(x.err.code, CUEQ_ERR_STALE_LEASE);
	bool durable = false;
	assert_int_not_equal(f->eo->commit(f->e, true, &durable), 0);

	reopen(f, false);
	expect_gone(f, b.id);
	assert_int_equal(state_of(f, a.id), CUEQ_SUCCEEDED);
	assert_int_equal(ack(f, a.id, c.token, "done"), CUEQ_OK); /* the first answer again */
	turn(f);
}

/* A claim asked again gets the leases it gave that are still live, and
 * takes no other. */
static void test_claimed_again(void **state)
{
	struct fx *f = *state;
	struct eng_pushed a = push_new(f, job("q.again", "a"));
	struct eng_pushed b = push_new(f, job("q.again", "b"));
	push_new(f, job("q.again", "c"));
	turn(f);
	struct eng_claimed got[2], again[2];
	assert_int_equal(claim(f, "q.again", 2, LONG_LEASE_MS, got), 2);
	turn(f);
	uint64_t ids[2] = {got[0].id, got[1].id}, tokens[2] = {got[0].token, got[1].token};
	size_t n = 9;
	proto_error err = {0};
	assert_int_equal(f->eo->claimed_again(f->e, ids, tokens, 2, again, &n, &err), CUEQ_OK);
	assert_int_equal(n, 2);
	for (int i = 0; i < 2; i++) {
		assert_true(again[i].id == got[i].id && again[i].token == got[i].token);
		assert_true(again[i].attempt == got[i].attempt && again[i].deadline == got[i].deadline);
		assert_int_equal(again[i].payload_len, got[i].payload_len);
		assert_memory_equal(again[i].payload, got[i].payload, got[i].payload_len);
		f->eo->claimed_free(f->e, &again[i]);
	}
	assert_true(got[0].id == a.id && got[1].id == b.id);
	assert_int_equal(ack(f, a.id, got[0].token, NULL), CUEQ_OK);
	turn(f);
	tokens[1] = got[1].token + 1; /* not the live token */
	assert_int_equal(f->eo->claimed_again(f->e, ids, tokens, 2, again, &n, &err), CUEQ_OK);
	assert_int_equal(n, 0);
	tokens[1] = got[1].token;
	assert_int_equal(f->eo->claimed_again(f->e, ids, tokens, 2, again, &n, &err), CUEQ_OK);
	assert_int_equal(n, 1);
	assert_true(again[0].id == b.id);
	f->eo->claimed_free(f->e, &again[0]);
	assert_int_equal(count(f, "q.again", CUEQ_READY), 1);
	assert_int_equal(count(f, "q.again", CUEQ_LEASED), 1);
	for (int i = 0; i < 2; i++)
		f->eo->claimed_free(f->e, &got[i]);
}

/* A claimed job says whether what made it claimable is durable: not
 * before the sync that follows its push, then yes; not after a nack. */
static void test_claimed_job_says_if_durable(void **state)
{
	struct fx *f = *state;
	bool durable = false;
	push_new(f, job("q.dur", "a"));
	struct eng_claimed c = claim_one(f, "q.dur", LONG_LEASE_MS); /* the same turn */
	assert_false(c.durable);
	f->eo->claimed_free(f->e, &c);
	push_new(f, job("q.dur", "b"));
	assert_int_equal(f->eo->commit(f->e, true, &durable), 0); /* written, not synced */
	c = claim_one(f, "q.dur", LONG_LEASE_MS);
	assert_false(c.durable);
	f->eo->claimed_free(f->e, &c);
	push_new(f, job("q.dur", "c"));
	turn(f); /* written and synced */
	c = claim_one(f, "q.dur", LONG_LEASE_MS);
	assert_true(c.durable);
	f->eo->claimed_free(f->e, &c);
	turn(f);
	/* ready again by a nack: not a durable creation that made it so */
	assert_int_equal(finish(f, c.id, c.token, ENG_NACK, "again", 0, false).err.code, CUEQ_OK);
	turn(f);
	c = claim_one(f, "q.dur", LONG_LEASE_MS);
	assert_int_equal(c.attempt, 2);
	assert_false(c.durable);
	f->eo->claimed_free(f->e, &c);
	turn(f);
}

/* Start-up finds every unfinished execution among many finished ones
 * (runs of finished records longer than the recovery's look-ahead). */
static void test_reopen_among_finished(void **state)
{
	struct fx *f = *state;
	struct eng_pushed p[40];
	for (int i = 0; i < 40; i++)
		p[i] = push_new(f, job("q.gaps", "g"));
	turn(f);
	struct eng_claimed got[40];
	assert_int_equal(claim(f, "q.gaps", 40, LONG_LEASE_MS, got), 40);
	turn(f);
	for (int i = 0; i < 40; i++) {
		assert_true(got[i].id == p[i].id);
		bool keep = i < 3 || i == 20 || i >= 37;
		if (!keep)
			assert_int_equal(ack(f, got[i].id, got[i].token, NULL), CUEQ_OK);
		f->eo->claimed_free(f->e, &got[i]);
	}
	turn(f);
	f->eo->close(f->e);
	f->e = open_at(f);
	assert_int_equal(count(f, "q.gaps", CUEQ_LEASED), 7);
	assert_int_equal(count(f, "q.gaps", CUEQ_SUCCEEDED), 33);
	for (int i = 0; i < 40; i++) {
		bool keep = i < 3 || i == 20 || i >= 37;
		assert_int_equal(state_of(f, p[i].id), keep ? CUEQ_LEASED : CUEQ_SUCCEEDED);
		if (keep)
			assert_int_equal(ack(f, got[i].id, got[i].token, NULL), CUEQ_OK);
	}
	turn(f);
}

/* A remembered request: recalled with its bytes' hash after a reopen, in
 * the same write as the push it answered (a failed write has neither),
 * refused for other bytes, forgotten when its time runs out. */
static void test_remembered_requests(void **state)
{
	struct fx *f = *state;
	static const char answer[] = "the first answer, byte for byte; the first answer, byte for byte";
	void *got = NULL;
	size_t len = 0;
	proto_error err = {0};
	int64_t now = proto_now_ms();

	struct eng_pushed a = push_new(f, job("q.rid", "a"));
	f->eo->remember(f->e, "rid-1", 5, 42, answer, sizeof(answer), now + 60000);
	f->eo->remember(f->e, "rid-short", 9, 7, "x", 1, now + 1000);
	/* seen within the turn, before the write */
	assert_int_equal(f->eo->recall(f->e, "rid-1", 5, 42, &got, &len, &err), 1);
	free(got);
	turn(f);
	reopen(f, true);
	push_new(f, job("q.rid", "lost"));
	f->eo->remember(f->e, "rid-lost", 8, 9, "y", 1, now + 60000);
	bool durable = false;
	assert_int_not_equal(f->eo->commit(f->e, true, &durable), 0); /* fails: neither is there */
	reopen(f, false);

	assert_int_equal(f->eo->recall(f->e, "rid-1", 5, 42, &got, &len, &err), 1);
	assert_int_equal(len, sizeof(answer));
	assert_memory_equal(got, answer, sizeof(answer));
	free(got);
	assert_int_equal(f->eo->recall(f->e, "rid-1", 5, 43, &got, &len, &err), 2);
	assert_null(got);
	assert_int_equal(f->eo->recall(f->e, "rid-2", 5, 42, &got, &len, &err), 0);
	assert_int_equal(f->eo->recall(f->e, "rid-lost", 8, 9, &got, &len, &err), 0);
	assert_int_equal(count(f, "q.rid", CUEQ_READY), 1);
	assert_int_equal(state_of(f, a.id), CUEQ_READY);

	/* its time runs out: recalled no more, and the sweep removes it */
	nanosleep(&(struct timespec){ .tv_sec = 1, .tv_nsec = 100000000 }, NULL);
	assert_int_equal(f->eo->recall(f->e, "rid-short", 9, 7, &got, &len, &err), 0);
	f->eo->tick(f->e, proto_now_ms() + 120000);
	turn(f);
	assert_int_equal(f->eo->recall(f->e, "rid-1", 5, 42, &got, &len, &err), 0);
}

static const struct CMUnitTest scenarios[] = {
	cmocka_unit_test_setup_teardown(test_claim_is_exclusive, setup, teardown),
	cmocka_unit_test_setup_teardown(test_reclaim_after_expiry, setup, teardown),
	cmocka_unit_test_setup_teardown(test_stale_token_is_fenced, setup, teardown),
	cmocka_unit_test_setup_teardown(test_outcome_replay, setup, teardown),
	cmocka_unit_test_setup_teardown(test_idempotency_keys, setup, teardown),
	cmocka_unit_test_setup_teardown(test_unique_keys, setup, teardown),
	cmocka_unit_test_setup_teardown(test_steps, setup, teardown),
	cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
	cmocka_unit_test_setup_teardown(test_close_and_reopen, setup, teardown),
	cmocka_unit_test_setup_teardown(test_failed_write_leaves_nothing, setup, teardown),
	cmocka_unit_test_setup_teardown(test_failed_write_inside_a_read, setup, teardown),
	cmocka_unit_test_setup_teardown(test_failed_write_before_a_late_token, setup, teardown),
	cmocka_unit_test_setup_teardown(test_remembered_requests, setup, teardown),
	cmocka_unit_test_setup_teardown(test_reopen_among_finished, setup, teardown),
	cmocka_unit_test_setup_teardown(test_claimed_again, setup, teardown),
	cmocka_unit_test_setup_teardown(test_claimed_job_says_if_durable, setup, teardown),
	cmocka_unit_test_setup_teardown(test_every_fires_once_per_slot, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cron_fires_and_survives_reopen, setup, teardown),
	cmocka_unit_test_setup_teardown(test_catch_up_policies, setup, teardown),
	cmocka_unit_test_setup_teardown(test_overlap_skip, setup, teardown),
	cmocka_unit_test_setup_teardown(test_backoff_policy, setup, teardown),
	cmocka_unit_test_setup_teardown(test_expiries_apart_from_failures, setup, teardown),
	cmocka_unit_test_setup_teardown(test_history_is_bounded, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cancel_fences_a_lease, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cancel_a_cue, setup, teardown),
	cmocka_unit_test_setup_teardown(test_retry_dead_keeps_id_and_steps, setup, teardown),
	cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
	cmocka_unit_test_setup_teardown(test_pause_survives_reopen, setup, teardown),
	cmocka_unit_test_setup_teardown(test_release_ends_live_leases, setup, teardown),
	cmocka_unit_test_setup_teardown(test_stats_in_pages, setup, teardown),
	cmocka_unit_test_setup_teardown(test_empty_queues_are_forgotten, setup, teardown),
};

#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* Runs every scenario against t; returns how many failed. */
static int run_target(const struct target *t)
{
	struct CMUnitTest tests[N_SCENARIOS];
	for (size_t i = 0; i < N_SCENARIOS; i++) {
		tests[i] = scenarios[i];
		tests[i].initial_state = (void *)t;
	}
	return cmocka_run_group_tests_name(t->name, tests, NULL, NULL);
}

int main(void)
{
	int failed = 0;
	for (size_t i = 0; i < fx_n_targets; i++)
		failed += run_target(&targets[i]);
	return failed != 0;
}
