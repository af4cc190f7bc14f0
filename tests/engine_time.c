/*
 * engine_time.c - conformance scenarios on a driven clock: recurring cues
 * (one execution per fire, its ID derived from the cue and the fire time,
 * never fired twice by a reopen or by a crash before the write, catch-up
 * and overlap policies), the retry policy and the expiry limit.  The
 * clock is the fixture's (at_time): no scenario sleeps.
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

#define T0 1893456000000ll /* 2030-01-01T00:00:00Z */
#define MIN_MS 60000ll

static struct eng_push every(const char *queue, int64_t every_ms, int catch_up, int overlap)
{
	struct eng_push p = job(queue, "tick");
	p.every_ms = every_ms;
	p.catch_up = (uint8_t)catch_up;
	p.overlap = (uint8_t)overlap;
	return p;
}

static struct eng_pushed push_cue(struct fx *f, struct eng_push p)
{
	struct eng_pushed o = push(f, p);
	if (o.err.code != CUEQ_OK)
		fail_msg("recurring push to %s refused: %s", p.queue, o.err.msg);
	assert_true(o.recurring);
	assert_true(o.cue_id != 0);
	assert_true(o.id == 0);
	assert_int_equal(o.state, CUEQ_SCHEDULED);
	return o;
}

/* The cue id as get shows it; the caller frees q->payload. */
static void cue(struct fx *f, uint64_t id, struct eng_cue *q)
{
	proto_error err = {0};
	memset(q, 0, sizeof(*q));
	if (f->eo->cue_get(f->e, id, q, &err) != CUEQ_OK)
		fail_msg("cue_get: %s", err.msg);
}

/* The executions of queue not finished yet. */
static uint64_t unfinished(struct fx *f, const char *queue)
{
	return count(f, queue, CUEQ_SCHEDULED) + count(f, queue, CUEQ_READY) +
	       count(f, queue, CUEQ_LEASED);
}

/* The newest fire of the cue, read from its list entry (what cues() shows
 * without writing the turn). */
static uint64_t newest_fire(struct fx *f, const char *queue, uint64_t cue_id)
{
	struct eng_cue *v = NULL;
	size_t n = 0;
	proto_error err = {0};
	uint64_t id = 0;
	assert_int_equal(f->eo->cues(f->e, queue, strlen(queue), 100, &v, &n, &err), CUEQ_OK);
	for (size_t i = 0; i < n; i++)
		if (v[i].id == cue_id && v[i].n_last > 0)
			id = v[i].last[0].id;
	free(v);
	return id;
}

/* An every-minute cue fires once per slot, not before, not twice; each
 * fire is a new execution whose ID comes from the cue and the slot; a
 * fire written is not made again after a reopen, and one lost before its
 * write is made again with the same ID. */
void test_every_fires_once_per_slot(void **state)
{
	struct fx *f = *state;
	struct eng_claimed c[4];
	f->now = T0;
	struct eng_pushed p = push_cue(f, every("q.every", MIN_MS, ENG_CATCH_UP_ONE, ENG_OVERLAP_ALLOW));
	assert_true(p.run_at == T0 + MIN_MS);
	turn(f);

	at_time(f, T0 + MIN_MS - 1);
	turn(f);
	assert_int_equal(claim(f, "q.every", 4, 0, c), 0);
	at_time(f, T0 + MIN_MS);
	at_time(f, T0 + MIN_MS + 500); /* the same slot again: nothing new */
	turn(f);
	assert_int_equal(unfinished(f, "q.every"), 1);
	struct eng_claimed c1 = claim_one(f, "q.every", 0);
	assert_true(c1.cue_id == p.cue_id);
	assert_true(c1.id != p.cue_id);
	assert_true(c1.id >> 63); /* the derived kind of ID */
	assert_int_equal(c1.attempt, 1);
	assert_int_equal(ack(f, c1.id, c1.token, NULL), CUEQ_OK);
	turn(f);

	at_time(f, T0 + 2 * MIN_MS);
	turn(f);
	struct eng_claimed c2 = claim_one(f, "q.every", 0);
	assert_true(c2.id != c1.id);
	assert_true(c2.cue_id == p.cue_id);
	turn(f);

	/* a written fire stays made: reopening fires nothing more */
	reopen(f, false);
	at_time(f, T0 + 2 * MIN_MS + 1000);
	turn(f);
	assert_int_equal(unfinished(f, "q.every"), 1); /* c2, still leased */

	/* a fire lost before its write comes back with the same ID */
	at_time(f, T0 + 3 * MIN_MS);
	uint64_t lost = newest_fire(f, "q.every", p.cue_id);
	assert_true(lost != 0 && lost != c2.id);
	f->eo->close(f->e); /* what was not committed is gone, as in a crash */
	f->e = open_at(f);
	assert_true(newest_fire(f, "q.every", p.cue_id) == c2.id);
	at_time(f, T0 + 3 * MIN_MS);
	turn(f);
	assert_true(newest_fire(f, "q.every", p.cue_id) == lost);
	assert_int_equal(unfinished(f, "q.every"), 2);

	struct eng_cue q;
	cue(f, p.cue_id, &q);
	assert_int_equal(q.fires, 3);
	assert_false(q.cancelled);
	assert_true(q.next[0] == T0 + 4 * MIN_MS);
	assert_true(q.next[1] == T0 + 5 * MIN_MS);
	assert_int_equal(q.n_last, 3);
	assert_true(q.last[0].id == lost && q.last[0].fire_at == T0 + 3 * MIN_MS);
	assert_int_equal(q.last[0].state, CUEQ_READY);
	assert_int_equal(q.last[2].state, -1); /* c1: deleted after the retention window */
	expect_text(q.payload, q.payload_len, "tick");
	free(q.payload);
}

/* A cron cue in a zone fires at its wall-clock times, and its schedule and
 * state survive a reopen. */
void test_cron_fires_and_survives_reopen(void **state)
{
	struct fx *f = *state;
	struct eng_claimed c[2];
	/* 2030-01-01 00:00 UTC is 01:00 in Berlin (CET) */
	f->now = T0 + 1000;
	struct eng_push p = job("q.cron", "report");
	p.cron = "30 1 * * *";
	p.cron_len = strlen(p.cron);
	p.tz = "Europe/Berlin";
	p.tz_len = strlen(p.tz);
	struct eng_pushed o = push_cue(f, p);
	assert_true(o.run_at == T0 + 30 * MIN_MS);
	turn(f);
	reopen(f, false);
	at_time(f, T0 + 30 * MIN_MS - 1);
	turn(f);
	assert_int_equal(claim(f, "q.cron", 2, 0, c), 0);
	at_time(f, T0 + 30 * MIN_MS);
	turn(f);
	assert_int_equal(claim(f, "q.cron", 2, 0, c), 1);
	f->eo->claimed_free(f->e, &c[0]);
	assert_true(c[0].cue_id == o.cue_id);
	struct eng_cue q;
	cue(f, o.cue_id, &q);
	assert_string_equal(q.cron, "30 1 * * *");
	assert_string_equal(q.tz, "Europe/Berlin");
	assert_true(q.next[0] == T0 + 30 * MIN_MS + 86400000ll);
	assert_int_equal(q.fires, 1);
	free(q.payload);
}

/* Missed slots (the broker was down for ten minutes): all fires each, one
 * only the latest, none none (and the next slot on time fires). */
void test_catch_up_policies(void **state)
{
	struct fx *f = *state;
	f->now = T0;
	struct eng_pushed all = push_cue(f, every("q.all", MIN_MS, ENG_CATCH_UP_ALL, ENG_OVERLAP_ALLOW));
	struct eng_pushed one = push_cue(f, every("q.one", MIN_MS, ENG_CATCH_UP_ONE, ENG_OVERLAP_ALLOW));
	struct eng_pushed none = push_cue(f, every("q.none", MIN_MS, ENG_CATCH_UP_NONE, ENG_OVERLAP_ALLOW));
	turn(f);
	reopen(f, false);
	at_time(f, T0 + 10 * MIN_MS + 30000);
	turn(f);
	assert_int_equal(unfinished(f, "q.all"), 10);
	assert_int_equal(unfinished(f, "q.one"), 1);
	assert_int_equal(unfinished(f, "q.none"), 0);

	struct eng_cue q;
	cue(f, one.cue_id, &q);
	assert_true(q.last[0].fire_at == T0 + 10 * MIN_MS);
	assert_int_equal(q.skipped, 9);
	free(q.payload);
	cue(f, none.cue_id, &q);
	assert_int_equal(q.skipped, 10);
	assert_true(q.next[0] == T0 + 11 * MIN_MS);
	free(q.payload);
	cue(f, all.cue_id, &q);
	assert_int_equal(q.fires, 10);
	assert_int_equal(q.skipped, 0);
	free(q.payload);

	at_time(f, T0 + 11 * MIN_MS);
	turn(f);
	assert_int_equal(unfinished(f, "q.none"), 1);
	assert_int_equal(unfinished(f, "q.one"), 2);
}

/* overlap skip: no fire while the previous one is unfinished. */
void test_overlap_skip(void **state)
{
	struct fx *f = *state;
	f->now = T0;
	struct eng_pushed o = push_cue(f, every("q.skip", MIN_MS, ENG_CATCH_UP_ONE, ENG_OVERLAP_SKIP));
	turn(f);
	at_time(f, T0 + MIN_MS);
	turn(f);
	struct eng_claimed c1 = claim_one(f, "q.skip", 600000);
	at_time(f, T0 + 2 * MIN_MS); /* c1 still runs: skipped */
	turn(f);
	assert_int_equal(unfinished(f, "q.skip"), 1);
	assert_int_equal(ack(f, c1.id, c1.token, NULL), CUEQ_OK);
	turn(f);
	at_time(f, T0 + 3 * MIN_MS);
	turn(f);
	assert_int_equal(unfinished(f, "q.skip"), 1);
	struct eng_cue q;
	cue(f, o.cue_id, &q);
	assert_int_equal(q.fires, 2);
	assert_int_equal(q.skipped, 1);
	free(q.payload);
}

/* The retry delay grows by the factor up to the cap; with jitter it is
 * drawn from [0, that]; failures reaching max_attempts end it dead with
 * the reason. */
void test_backoff_policy(void **state)
{
	struct fx *f = *state;
	static const int64_t want[] = {1000, 2000, 4000, 5000};
	f->now = T0;
	struct eng_push p = job("q.backoff", "b");
	p.backoff = (struct eng_backoff){.base_ms = 1000, .max_ms = 5000, .factor_milli = 2000,
					 .no_jitter = true};
	p.max_attempts = 5;
	struct eng_pushed a = push_new(f, p);
	turn(f);
	int64_t now = T0;
	for (size_t i = 0; i < 4; i++) {
		struct eng_claimed c = claim_one(f, "q.backoff", 0);
		assert_true(c.id == a.id);
		struct eng_outcome o = finish(f, a.id, c.token, ENG_NACK, "boom", -1, false);
		assert_int_equal(o.err.code, CUEQ_OK);
		assert_int_equal(o.state, CUEQ_SCHEDULED);
		if (o.run_at - now != want[i])
			fail_msg("failure %zu: retry in %lld ms, expected %lld", i + 1,
				 (long long)(o.run_at - now), (long long)want[i]);
		turn(f);
		now = o.run_at;
		at_time(f, now);
	}
	struct eng_claimed c = claim_one(f, "q.backoff", 0);
	struct eng_outcome o = finish(f, a.id, c.token, ENG_NACK, "boom", -1, false);
	assert_int_equal(o.state, CUEQ_DEAD);
	turn(f);
	struct eng_view v;
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.failures, 5);
	assert_non_null(v.exec.reason);
	assert_non_null(strstr(v.exec.reason, "failed 5 times"));
	f->eo->view_free(f->e, &v);

	/* full jitter: uniform in [0, base], not all the same */
	int64_t lo = INT64_MAX, hi = -1;
	for (int i = 0; i < 20; i++) {
		char q[32];
		snprintf(q, sizeof(q), "q.jitter.%d", i); /* a delay of 0 is ready at once */
		struct eng_push j = job(q, "j");
		j.backoff = (struct eng_backoff){.base_ms = 10000, .max_ms = 10000, .factor_milli = 2000};
		struct eng_pushed x = push_new(f, j);
		struct eng_claimed cx = claim_one(f, q, 0);
		assert_true(cx.id == x.id);
		struct eng_outcome ox = finish(f, x.id, cx.token, ENG_NACK, NULL, -1, false);
		int64_t d = ox.run_at - now;
		assert_true(d >= 0 && d <= 10000);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	turn(f);
	if (hi - lo < 1000)
		fail_msg("20 jittered delays all within %lld ms of each other", (long long)(hi - lo));
}

/* A lease that runs out is not a failure: max_attempts 1 survives two
 * expiries, max_expiries 3 ends it at the third, saying why. */
void test_expiries_apart_from_failures(void **state)
{
	struct fx *f = *state;
	f->now = T0;
	struct eng_push p = job("q.exp", "e");
	p.max_attempts = 1;
	p.max_expiries = 3;
	struct eng_pushed a = push_new(f, p);
	turn(f);
	for (int i = 1; i <= 3; i++) {
		struct eng_claimed c = claim_one(f, "q.exp", 1000);
		assert_int_equal(c.attempt, i);
		turn(f);
		at_time(f, c.deadline);
		turn(f);
		assert_int_equal(state_of(f, a.id), i < 3 ? CUEQ_READY : CUEQ_DEAD);
	}
	struct eng_view v;
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.exec.expiries, 3);
	assert_int_equal(v.exec.failures, 0);
	assert_int_equal(v.exec.max_expiries, 3);
	assert_non_null(v.exec.reason);
	assert_non_null(strstr(v.exec.reason, "lease expired 3 times"));
	f->eo->view_free(f->e, &v);
	/* the engine's own counts for metrics say the same, and its store
	 * names what it shows */
	struct eng_metrics m = {0};
	f->eo->metrics(f->e, &m);
	assert_int_equal(m.counted.claimed, 3);
	assert_int_equal(m.counted.expired, 3);
	assert_int_equal(m.counted.dead, 1);
	assert_int_equal(m.counted.nacked + m.counted.released + m.counted.succeeded, 0);
	assert_true(m.n_fig > 0 && m.n_fig <= ENG_MAX_FIGURES);
	for (size_t i = 0; i < m.n_fig; i++)
		assert_true(m.fig[i].name != NULL && m.fig[i].name[0] && m.fig[i].help != NULL);
}

/* History is bounded: a run of extensions is one event (the newest), and
 * past 1000 events the oldest go, get saying how many. */
void test_history_is_bounded(void **state)
{
	struct fx *f = *state;
	f->now = T0;
	struct eng_pushed a = push_new(f, job("q.hist", "h"));
	turn(f);
	struct eng_claimed c = claim_one(f, "q.hist", 0);
	for (int i = 0; i < 5; i++) {
		f->now += 1000;
		assert_int_equal(extend(f, a.id, c.token, 60000).err.code, CUEQ_OK);
	}
	turn(f);
	struct eng_view v;
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.n_hist, 2); /* claimed, extended */
	assert_int_equal(v.hist[1].kind, ENG_EV_EXTENDED);
	assert_true(v.hist[1].at == T0 + 5000); /* the newest */
	assert_int_equal(v.hist_dropped, 0);
	f->eo->view_free(f->e, &v);

	for (int i = 0; i < 1100; i++)
		assert_int_equal(step_set(f, a.id, c.token, "s", "v"), CUEQ_OK);
	turn(f);
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.n_hist, 1000);
	assert_int_equal(v.hist_dropped, 102); /* claimed, extended, 1100 steps: 1102 */
	assert_int_equal(v.hist[0].kind, ENG_EV_STEP);
	assert_int_equal(v.hist[999].kind, ENG_EV_STEP);
	f->eo->view_free(f->e, &v);
	reopen(f, false);
	assert_int_equal(get(f, a.id, &v), CUEQ_OK);
	assert_int_equal(v.n_hist, 1000);
	assert_int_equal(v.hist_dropped, 102);
	f->eo->view_free(f->e, &v);
}
