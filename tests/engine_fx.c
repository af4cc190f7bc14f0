/*
 * engine_fx.c - the engine conformance suite's fixture (engine_fx.h): the
 * targets, their locations, and the calls a scenario drives an engine
 * with, each checking what every answer must hold.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "engine_fx.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* ---- the embedded engine's locations: temp directories ---- */

static int make_dir(char *loc, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(loc, size, "%s/cueq-engine-XXXXXX", tmp);
	if (mkdtemp(loc) == NULL) {
		fprintf(stderr, "test_engine: mkdtemp under %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void remove_dir(const char *loc)
{
	nftw(loc, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void fault_env(bool on)
{
	if (on)
		setenv("CUEQ_FAULT", "write:1:fail", 1);
	else
		unsetenv("CUEQ_FAULT");
}

const struct target targets[] = {
	{"embedded", &embedded_engine, make_dir, remove_dir, fault_env},
};
const size_t fx_n_targets = sizeof(targets) / sizeof(targets[0]);

/* ---- driving an engine ---- */

static int64_t fx_clock(void *arg)
{
	const struct fx *f = arg;
	if (f->now != 0)
		return f->now;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct engine *open_at(const struct fx *f)
{
	struct eng_config cfg = {
		.location = f->loc,
		.retention_ms = RETENTION_MS,
		.idem_window_ms = DAY_MS,
		.clock = fx_clock,
		.clock_arg = (void *)f,
	};
	struct engine *e = NULL;
	char err[512] = "";
	if (f->eo->open(&cfg, &e, err, sizeof(err)) != 0)
		fail_msg("%s engine: cannot open %s: %s", f->t->name, f->loc, err);
	assert_non_null(e);
	return e;
}

int setup(void **state)
{
	const struct target *t = *state;
	struct fx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	f->t = t;
	f->eo = t->eo;
	if (t->make(f->loc, sizeof(f->loc)) != 0) {
		free(f);
		return -1;
	}
	f->e = open_at(f);
	*state = f;
	return 0;
}

int teardown(void **state)
{
	struct fx *f = *state;
	f->eo->close(f->e);
	f->t->destroy(f->loc);
	free(f);
	return 0;
}

/* The end of a loop turn: write, and sync what must be durable.  Returns
 * whether the turn's writes needed the sync. */
void at_time(struct fx *f, int64_t t)
{
	f->now = t;
	f->eo->tick(f->e, t);
}

bool turn(struct fx *f)
{
	bool durable = false;
	assert_int_equal(f->eo->commit(f->e, true, &durable), 0);
	if (durable)
		assert_int_equal(f->eo->sync(f->e), 0);
	return durable;
}

struct eng_push job(const char *queue, const char *payload)
{
	return (struct eng_push){
		.queue = queue,
		.queue_len = strlen(queue),
		.payload = payload,
		.payload_len = strlen(payload),
		.max_attempts = 5,
		.lease_ms = LONG_LEASE_MS,
	};
}

struct eng_push keyed(struct eng_push p, const char *key, uint64_t hash)
{
	p.key = key;
	p.key_len = strlen(key);
	p.req_hash = hash;
	memset(p.req_digest, 0, sizeof(p.req_digest));
	memcpy(p.req_digest, &hash, sizeof(hash)); /* a digest as distinct as the hash */
	return p;
}

struct eng_push unique(struct eng_push p, const char *key)
{
	p.unique = key;
	p.unique_len = strlen(key);
	return p;
}

/* Pushes n jobs in one call (one request). */
void push_many(struct fx *f, const struct eng_push *jobs, size_t n, struct eng_pushed *out)
{
	proto_error err = {0};
	int rc = f->eo->push(f->e, jobs, n, out, &err);
	if (rc != CUEQ_OK)
		fail_msg("push of %zu jobs: %d %s", n, rc, err.msg);
}

struct eng_pushed push(struct fx *f, struct eng_push p)
{
	struct eng_pushed out;
	push_many(f, &p, 1, &out);
	return out;
}

/* A push that must create an execution. */
struct eng_pushed push_new(struct fx *f, struct eng_push p)
{
	struct eng_pushed o = push(f, p);
	if (o.err.code != CUEQ_OK)
		fail_msg("push to %s refused: %d %s", p.queue, o.err.code, o.err.msg);
	assert_false(o.duplicate);
	assert_true(o.id != 0);
	return o;
}

/* Claims up to max of queue into out (payloads to claimed_free). */
size_t claim(struct fx *f, const char *queue, size_t max, uint32_t lease_ms,
		    struct eng_claimed *out)
{
	proto_error err = {0};
	size_t n = SIZE_MAX;
	int rc = f->eo->claim(f->e, queue, strlen(queue), max, lease_ms, "w1", 2, out, &n, &err);
	if (rc != CUEQ_OK)
		fail_msg("claim on %s: %d %s", queue, rc, err.msg);
	assert_true(n <= max);
	return n;
}

/* Claims exactly one execution of queue; its payload is released. */
struct eng_claimed claim_one(struct fx *f, const char *queue, uint32_t lease_ms)
{
	struct eng_claimed c;
	assert_int_equal(claim(f, queue, 1, lease_ms, &c), 1);
	assert_true(c.token != 0);
	f->eo->claimed_free(f->e, &c);
	return c;
}

struct eng_outcome finish(struct fx *f, uint64_t id, uint64_t token, int kind,
				 const char *text, int64_t retry_in_ms, bool terminal)
{
	struct eng_outcome o = {
		.id = id,
		.token = token,
		.kind = kind,
		.text = text,
		.text_len = text ? strlen(text) : 0,
		.retry_in_ms = retry_in_ms,
		.terminal = terminal,
	};
	f->eo->finish(f->e, &o, 1);
	return o;
}

int ack(struct fx *f, uint64_t id, uint64_t token, const char *result)
{
	return finish(f, id, token, ENG_ACK, result, -1, false).err.code;
}

struct eng_extend extend(struct fx *f, uint64_t id, uint64_t token, uint32_t lease_ms)
{
	struct eng_extend x = {.id = id, .token = token, .lease_ms = lease_ms};
	f->eo->extend(f->e, &x, 1);
	return x;
}

int step_set(struct fx *f, uint64_t id, uint64_t token, const char *name, const char *value)
{
	proto_error err = {0};
	int64_t at = 0;
	int rc = f->eo->step_set(f->e, id, token, name, strlen(name), value, strlen(value), &at,
				 &err);
	if (rc == CUEQ_OK)
		assert_true(at > 0);
	else
		assert_int_equal(err.code, rc);
	return rc;
}

/* Reads the steps of id (name NULL: all) into v, zeroed first; the caller
 * releases v with view_free whatever the answer. */
int steps(struct fx *f, uint64_t id, const char *name, struct eng_view *v)
{
	proto_error err = {0};
	memset(v, 0, sizeof(*v));
	return f->eo->steps(f->e, id, name, name ? strlen(name) : 0, v, &err);
}

/* Reads id into v, zeroed first; the caller releases v with view_free
 * whatever the answer.  A refusal carries a sentence. */
int get(struct fx *f, uint64_t id, struct eng_view *v)
{
	proto_error err = {0};
	memset(v, 0, sizeof(*v));
	int rc = f->eo->get(f->e, id, v, &err);
	if (rc != CUEQ_OK) {
		assert_int_equal(err.code, rc);
		assert_true(err.msg[0] != '\0');
	}
	return rc;
}

/* The state of id (which must exist). */
int state_of(struct fx *f, uint64_t id)
{
	struct eng_view v;
	assert_int_equal(get(f, id, &v), CUEQ_OK);
	assert_true(v.exec.id == id);
	int state = v.exec.state;
	f->eo->view_free(f->e, &v);
	return state;
}

void expect_gone(struct fx *f, uint64_t id)
{
	struct eng_view v;
	assert_int_equal(get(f, id, &v), CUEQ_ERR_NOT_FOUND);
	f->eo->view_free(f->e, &v);
}

/* How many executions of queue are in state, by stats. */
uint64_t count(struct fx *f, const char *queue, int state)
{
	struct eng_stats *s = NULL;
	size_t n = SIZE_MAX;
	proto_error err = {0};
	uint64_t next = 1;
	assert_int_equal(f->eo->stats(f->e, queue, strlen(queue), 0, 1, &s, &n, &next, &err),
			 CUEQ_OK);
	assert_true(next == 0);
	assert_true(n <= 1);
	uint64_t c = 0;
	if (n == 1) {
		assert_string_equal(s[0].queue, queue);
		c = s[0].count[state];
	}
	free(s);
	return c;
}

void expect_text(const char *s, size_t len, const char *want)
{
	assert_non_null(s);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(s, want, len);
}

/* Closes f's engine and opens it again on the same location, its first
 * write failing when fail is set. */
void reopen(struct fx *f, bool fail)
{
	f->eo->close(f->e);
	f->t->fail_first_write(fail);
	f->e = open_at(f);
	f->t->fail_first_write(false);
}

