/*
 * chaos_worker.c - chaos-worker: an SDK worker (cueq_worker) whose
 * handler logs everything it does (chaos.h), for the chaos test.
 *
 * Each job's handler, after a little random work between its parts:
 *   - logs its start (execution ID, lease token, attempt, key);
 *   - does step "reserve" with cueq_job_step_once and step "charge" with
 *     the ledger calls (cueq_step_get, cueq_step_set), each a side effect
 *     (an "effect" line) recorded in the ledger unless the ledger already
 *     has it;
 *   - acks the job itself (cueq_ack under its token) and logs the answer,
 *     then returns CUEQ_OK with the same result, so the worker loop's own
 *     ack is the same outcome sent again.
 * The handler is stubborn on purpose: a worker that was stopped with
 * SIGSTOP past its lease goes on as if nothing happened, so its late step
 * records and acks reach the broker, which must refuse them with
 * STALE_LEASE (when the SDK already knows the lease is lost,
 * cueq_job_step_once does not run the step; the handler then does it
 * through the ledger calls anyway).  It acks only after both steps were
 * recorded or refused: a step that failed otherwise (the broker away past
 * the SDK's retry deadline) is logged as a give-up and the job nacked.
 *
 * usage: chaos-worker --url URL --log PATH [--concurrency N] [--work-ms MS]
 * SIGTERM stops it after the jobs in hand (exit 0).
 */
#include "chaos.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cueq/cueq.h"

#define GIVE_UP_MS 120000

struct app {
	const char *url, *log_path;
	unsigned concurrency;
	int64_t work_ms;
	int fd;
	cueq_client *c;
};

/* One handler run: the job and what its lines repeat. */
struct run {
	struct app *app;
	cueq_job *j;
	const char *id, *token;
	uint32_t attempt;
};

enum outcome { OUT_OK, OUT_SKIPPED, OUT_STALE, OUT_ERR };
static const char *const outcome_words[] = { "ok", "skipped", "stale", "err" };

/* A step's work in progress (cueq_job_step_once's fn argument). */
struct step_call {
	struct run *r;
	const char *name;
	bool called;
	int64_t s_mono, s_rt; /* when its record left */
};

static cueq_worker *volatile running_worker;
static atomic_uint effects;
static _Thread_local unsigned rng;

static void on_term(int sig)
{
	(void)sig;
	if (running_worker != NULL)
		cueq_worker_stop(running_worker); /* async-signal-safe */
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Up to max ms of the handler's own work. */
static void work(int64_t max)
{
	if (rng == 0)
		rng = (unsigned)getpid() ^ (unsigned)(uintptr_t)&rng ^ (unsigned)chaos_mono_ms();
	if (max > 0)
		sleep_ms(rand_r(&rng) % (max + 1));
}

static void say(struct run *r, const char *fmt, const char *a, int rc)
{
	fprintf(stderr, fmt, r->id, r->attempt, a, cueq_strerror(rc), cueq_last_error());
}

/* The side effect of a step: a new value, logged as done. */
static void do_effect(struct step_call *sc, char *value, size_t size, size_t *len)
{
	struct run *r = sc->r;
	char key[CUEQ_MAX_STEP_NAME + 24];

	work(r->app->work_ms / 4);
	cueq_job_step_key(r->j, sc->name, key, sizeof(key)); /* what a third party would get */
	snprintf(value, size, "%s-%d-%u", sc->name, (int)getpid(), atomic_fetch_add(&effects, 1));
	*len = strlen(value);
	chaos_log(r->app->fd, "effect %s %s %u %s %s %lld %lld %d", r->id, r->token, r->attempt,
		  sc->name, value, (long long)chaos_mono_ms(), (long long)chaos_real_ms(),
		  (int)getpid());
	sc->called = true;
	sc->s_mono = chaos_mono_ms(), sc->s_rt = chaos_real_ms();
}

static int effect_fn(cueq_job *j, void *arg, char *value, size_t size, size_t *len)
{
	(void)j;
	do_effect(arg, value, size, len);
	return CUEQ_OK;
}

static void log_step(struct step_call *sc, enum outcome o, int rc, const char *value)
{
	struct run *r = sc->r;
	char word[16];

	if (o == OUT_ERR)
		snprintf(word, sizeof(word), "err-%d", rc);
	chaos_log(r->app->fd, "step %s %s %u %s %s %s %lld %lld %lld %lld %d", r->id, r->token,
		  r->attempt, sc->name, o == OUT_ERR ? word : outcome_words[o],
		  value[0] != '\0' ? value : "-", (long long)sc->s_mono, (long long)sc->s_rt,
		  (long long)chaos_mono_ms(), (long long)chaos_real_ms(), (int)getpid());
	if (o == OUT_ERR)
		say(r, "chaos-worker: %s attempt %u: step %s: %s (%s)\n", sc->name, rc);
}

/* A step through the ledger calls: read it, else do it and record it. */
static enum outcome step_by_hand(struct step_call *sc, char *value, size_t size)
{
	struct run *r = sc->r;
	void *got = NULL;
	size_t len = 0;
	int rc = cueq_step_get(r->app->c, r->id, sc->name, &got, &len);

	if (rc == CUEQ_OK) {
		snprintf(value, size, "%.*s", (int)len, (const char *)got);
		cueq_value_free(got);
		log_step(sc, OUT_SKIPPED, rc, value);
		return OUT_SKIPPED;
	}
	if (rc != CUEQ_ERR_NO_STEP) {
		log_step(sc, OUT_ERR, rc, "");
		return OUT_ERR;
	}
	do_effect(sc, value, size, &len);
	rc = cueq_step_set(r->app->c, r->id, r->token, sc->name, value, len);
	enum outcome o = rc == CUEQ_OK ? OUT_OK : rc == CUEQ_ERR_STALE_LEASE ? OUT_STALE : OUT_ERR;
	log_step(sc, o, rc, value);
	return o;
}

/* A step through cueq_job_step_once; by hand when the SDK would not. */
static enum outcome step_once(struct step_call *sc, char *value, size_t size)
{
	size_t len = 0;
	bool skipped = false;
	int rc = cueq_job_step_once(sc->r->j, sc->name, effect_fn, sc, value, size - 1, &len,
				    &skipped);
	enum outcome o;

	if (rc == CUEQ_ERR_LEASE_LOST && !sc->called)
		return step_by_hand(sc, value, size); /* the SDK gave up before the work */
	if (rc == CUEQ_OK)
		value[len] = '\0';
	else if (!sc->called)
		value[0] = '\0'; /* else it holds the value the effect made */
	if (rc == CUEQ_OK)
		o = skipped ? OUT_SKIPPED : OUT_OK;
	else
		o = rc == CUEQ_ERR_LEASE_LOST ? OUT_STALE : OUT_ERR;
	log_step(sc, o, rc, value);
	return o;
}

static enum outcome step(struct run *r, int k)
{
	char value[CHAOS_WORD];
	struct step_call sc = { .r = r, .name = chaos_steps[k] };

	sc.s_mono = chaos_mono_ms(), sc.s_rt = chaos_real_ms();
	value[0] = '\0';
	return k == 0 ? step_once(&sc, value, sizeof(value)) : step_by_hand(&sc, value, sizeof(value));
}

static void ack(struct run *r)
{
	int64_t s_mono = chaos_mono_ms(), s_rt = chaos_real_ms();
	int rc = cueq_ack(r->app->c, r->id, r->token, CHAOS_RESULT);
	char word[16];

	snprintf(word, sizeof(word), "err-%d", rc);
	chaos_log(r->app->fd, "ack %s %s %u %s %lld %lld %lld %lld %d", r->id, r->token, r->attempt,
		  rc == CUEQ_OK		     ? "ok"
		  : rc == CUEQ_ERR_STALE_LEASE ? "stale"
		  : rc == CUEQ_ERR_CONFLICT    ? "conflict"
		  : rc == CUEQ_ERR_NOT_FOUND   ? "notfound"
					       : word,
		  (long long)s_mono, (long long)s_rt, (long long)chaos_mono_ms(),
		  (long long)chaos_real_ms(), (int)getpid());
	if (rc != CUEQ_OK && rc != CUEQ_ERR_STALE_LEASE)
		say(r, "chaos-worker: %s attempt %u: ack%s: %s (%s)\n", "", rc);
}

static int handle(cueq_job *j, void *arg)
{
	struct run r = { .app = arg, .j = j, .id = cueq_job_id(j), .token = cueq_job_token(j),
			 .attempt = cueq_job_attempt(j) };
	size_t n = 0;
	const char *payload = cueq_job_payload(j, &n);
	char key[CHAOS_KEY_SIZE];

	snprintf(key, sizeof(key), "%.*s", n > 0 && n < sizeof(key) ? (int)n : 1,
		 n > 0 ? payload : "?");
	chaos_log(r.app->fd, "start %s %s %u %s %lld %lld %lld %d", r.id, r.token, r.attempt, key,
		  (long long)cueq_job_lease_deadline(j), (long long)chaos_mono_ms(),
		  (long long)chaos_real_ms(), (int)getpid());
	for (int k = 0; k < CHAOS_N_STEPS; k++) {
		work(r.app->work_ms);
		if (step(&r, k) == OUT_ERR) {
			chaos_log(r.app->fd, "giveup %s %s %u %s %lld %lld %d", r.id, r.token,
				  r.attempt, chaos_steps[k], (long long)chaos_mono_ms(),
				  (long long)chaos_real_ms(), (int)getpid());
			cueq_job_fail(j, "a step could not be recorded", 0, false);
			return CUEQ_ERR_UNAVAILABLE;
		}
	}
	ack(&r);
	cueq_job_set_result(j, CHAOS_RESULT);
	return CUEQ_OK;
}

static int usage(const char *why)
{
	fprintf(stderr,
		"chaos-worker: %s\n"
		"usage: chaos-worker --url URL --log PATH [--concurrency N] [--work-ms MS]\n",
		why);
	return 2;
}

static int parse_args(int argc, char **argv, struct app *a)
{
	a->concurrency = 3, a->work_ms = 10;
	if (argc % 2 == 0)
		return usage("every flag needs a value");
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *f = argv[i], *v = argv[i + 1];
		if (strcmp(f, "--url") == 0)
			a->url = v;
		else if (strcmp(f, "--log") == 0)
			a->log_path = v;
		else if (strcmp(f, "--concurrency") == 0)
			a->concurrency = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(f, "--work-ms") == 0)
			a->work_ms = strtoll(v, NULL, 10);
		else
			return usage("unknown flag");
	}
	if (a->url == NULL || a->log_path == NULL)
		return usage("--url and --log are needed");
	if (a->concurrency < 1 || a->concurrency > 64 || a->work_ms < 0 || a->work_ms > 10000)
		return usage("--concurrency takes 1 to 64, --work-ms 0 to 10000");
	return 0;
}

static int connect_bounded(struct app *a)
{
	int64_t end = chaos_mono_ms() + GIVE_UP_MS;

	while (cueq_connect(a->url, NULL, &a->c) != CUEQ_OK) {
		if (chaos_mono_ms() > end) {
			fprintf(stderr, "chaos-worker: cannot reach %s: %s\n", a->url,
				cueq_last_error());
			return -1;
		}
		sleep_ms(100);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct app a = { 0 };
	cueq_worker_opts wo = { 0 };
	cueq_worker *w = NULL;
	struct sigaction sa = { .sa_handler = on_term };
	int rc;

	if ((rc = parse_args(argc, argv, &a)) != 0)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	if ((a.fd = chaos_log_open(a.log_path)) < 0 || connect_bounded(&a) != 0)
		return 1;
	wo.concurrency = a.concurrency;
	wo.wait_ms = 500;
	if ((rc = cueq_worker_new(a.c, CHAOS_QUEUE, handle, &a, &wo, &w)) != CUEQ_OK) {
		fprintf(stderr, "chaos-worker: %s\n", cueq_last_error());
		return 1;
	}
	running_worker = w;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	rc = cueq_worker_run(w);
	running_worker = NULL;
	if (rc != CUEQ_OK)
		fprintf(stderr, "chaos-worker: the worker stopped: %s\n", cueq_last_error());
	cueq_worker_free(w);
	cueq_close(a.c);
	close(a.fd);
	return rc == CUEQ_OK ? 0 : 1;
}
