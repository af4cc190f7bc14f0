/*
 * engine_fx.h - the fixture of the engine conformance suite (test_engine.c
 * and the scenarios beside it): the engines under test, a scenario's
 * engine on a fresh location with a clock the scenario may drive, and the
 * calls that drive it as the core loop does, each checking what every
 * answer must hold.
 */
#ifndef CUEQ_ENGINE_FX_H
#define CUEQ_ENGINE_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define RETENTION_MS 60000
#define SHORT_LEASE_MS 100
#define LONG_LEASE_MS 60000
#define DAY_MS 86400000ll

/* An engine under test and where its state may live. */
struct target {
	const char *name;
	const struct engine_ops *eo;
	int (*make)(char *loc, size_t size); /* a new, empty location; 0 or -1 */
	void (*destroy)(const char *loc);    /* removes it and all it holds */
	/* The engine opened next fails its first write (on) or none (off). */
	void (*fail_first_write)(bool on);
};

/* One scenario's engine. */
struct fx {
	const struct target *t;
	const struct engine_ops *eo;
	struct engine *e;
	char loc[512];
	int64_t now; /* the engine's clock (Unix ms); 0: the real one */
};

extern const struct target targets[];
extern const size_t fx_n_targets;

/* Opens f's engine at f->loc, on f's clock. */
struct engine *open_at(const struct fx *f);
/* Closes f's engine and opens it again on the same location, its first
 * write failing when fail is set. */
void reopen(struct fx *f, bool fail);
int setup(void **state);
int teardown(void **state);
/* Sets f's clock to t (from then on the engine's time stands still but
 * for these calls) and ticks: what is due at t happens. */
void at_time(struct fx *f, int64_t t);
/* The end of a loop turn: write, and sync what must be durable.  Returns
 * whether the turn's writes needed the sync. */
bool turn(struct fx *f);

struct eng_push job(const char *queue, const char *payload);
struct eng_push keyed(struct eng_push p, const char *key, uint64_t hash);
struct eng_push unique(struct eng_push p, const char *key);
/* Pushes n jobs in one call (one request). */
void push_many(struct fx *f, const struct eng_push *jobs, size_t n, struct eng_pushed *out);
struct eng_pushed push(struct fx *f, struct eng_push p);
/* A push that must create an execution. */
struct eng_pushed push_new(struct fx *f, struct eng_push p);
/* Claims up to max of queue into out (payloads to claimed_free). */
size_t claim(struct fx *f, const char *queue, size_t max, uint32_t lease_ms,
	     struct eng_claimed *out);
/* Claims exactly one execution of queue; its payload is released. */
struct eng_claimed claim_one(struct fx *f, const char *queue, uint32_t lease_ms);
struct eng_outcome finish(struct fx *f, uint64_t id, uint64_t token, int kind, const char *text,
			  int64_t retry_in_ms, bool terminal);
int ack(struct fx *f, uint64_t id, uint64_t token, const char *result);
struct eng_extend extend(struct fx *f, uint64_t id, uint64_t token, uint32_t lease_ms);
int step_set(struct fx *f, uint64_t id, uint64_t token, const char *name, const char *value);
/* Reads the steps of id (name NULL: all) into v, zeroed first; the caller
 * releases v with view_free whatever the answer. */
int steps(struct fx *f, uint64_t id, const char *name, struct eng_view *v);
/* Reads id into v, zeroed first; the caller releases v with view_free
 * whatever the answer.  A refusal carries a sentence. */
int get(struct fx *f, uint64_t id, struct eng_view *v);
/* The state of id (which must exist). */
int state_of(struct fx *f, uint64_t id);
void expect_gone(struct fx *f, uint64_t id);
/* How many executions of queue are in state, by stats. */
uint64_t count(struct fx *f, const char *queue, int state);
void expect_text(const char *s, size_t len, const char *want);

/* ---- scenarios of other files ---- */
/* engine_time.c: recurring cues, retries and expiries on a driven clock */
void test_every_fires_once_per_slot(void **state);
void test_cron_fires_and_survives_reopen(void **state);
void test_catch_up_policies(void **state);
void test_overlap_skip(void **state);
void test_backoff_policy(void **state);
void test_expiries_apart_from_failures(void **state);
void test_history_is_bounded(void **state);
/* engine_operate.c: the operator */
void test_cancel_fences_a_lease(void **state);
void test_cancel_a_cue(void **state);
void test_retry_dead_keeps_id_and_steps(void **state);
void test_purge(void **state);
void test_pause_survives_reopen(void **state);
void test_release_ends_live_leases(void **state);
void test_stats_in_pages(void **state);
void test_empty_queues_are_forgotten(void **state);

#endif /* CUEQ_ENGINE_FX_H */
