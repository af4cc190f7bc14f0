/*
 * test_chaos.c - the chaos test: a real cueqd on loopback tcp under load
 * from producer and worker processes (chaos-producer, chaos-worker, on
 * libcueq), while the broker is killed with kill -9 and restarted on the
 * same data, workers are killed with kill -9 and started again, stopped
 * with SIGSTOP past their lease and let go with SIGCONT (so their late
 * step records and acks must be refused: fencing), and producers are
 * killed and started again.
 *
 * The blows come in a random order drawn from the seed (cycles of one
 * broker kill, one worker kill and one stop each, and a producer kill
 * every fourth cycle), with random pauses between them; what they hit
 * depends on timing, so a seed replays the order, not every interleaving.
 * After the last blow the producers stop, every job drains, the workers
 * stop, and chaos_check.c holds the logs of every process against the
 * broker's histories (get on every execution): every answered push
 * finished, leases never overlapped, one ID per key, no unknown ID ran,
 * no stale write was accepted.  The figures are printed; one violation
 * fails the test.
 *
 * usage: test_chaos [--cycles N] [--seed S] [--producers N] [--workers N]
 *                   [--concurrency N] [--rate JOBS_PER_S] [--lease-ms MS]
 *                   [--work-ms MS] [--drain-ms MS] [--break NAME]
 * Without flags (as ctest runs it) a short run of 6 cycles.  --break
 * spoils one input of the checks on purpose (push, key, overlap, step,
 * fence, ledger, finish) to see them fail.  CUEQ_TEST_KEEP=1 keeps the
 * temp dir (the logs are in its chaos/); a failed run keeps it anyway.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chaos.h"
#include "chaos_fleet.h"
#include "cueq/cueq.h"
#include "harness.h"

struct cfg {
	unsigned cycles, seed, producers, workers, concurrency;
	double rate;
	int64_t lease_ms, work_ms, gap_min_ms, gap_max_ms, drain_ms;
	const char *breaks;
};

static struct cfg cfg = {
	.cycles = 6, .seed = 20260301, .producers = 2, .workers = 3, .concurrency = 3,
	.rate = 40, .lease_ms = 1000, .work_ms = 40, .gap_min_ms = 100, .gap_max_ms = 600,
	.drain_ms = 60000, .breaks = "",
};

#define BUSY_TRIES 100	/* 2 s: a stop waits so long for a busy worker */
#define TARGET_TRIES 250 /* 5 s: any blow waits so long for a target */

enum blow { BLOW_BROKER, BLOW_WORKER_KILL, BLOW_WORKER_STOP, BLOW_PRODUCER_KILL };

static chaos_fleet *live; /* for the teardown after a failed assertion */

static int teardown(void **state)
{
	if (live != NULL)
		chaos_fleet_kill_all(live);
	live = NULL;
	return th_fixture_stop(state);
}

/* The blows of the run in a random order. */
static enum blow *make_plan(unsigned *seed, size_t *n)
{
	size_t per = cfg.cycles, pk = (cfg.cycles + 3) / 4, k = 0;
	enum blow *p = calloc(3 * per + pk + 1, sizeof(*p));

	assert_non_null(p);
	for (size_t i = 0; i < per; i++) {
		p[k++] = BLOW_BROKER;
		p[k++] = BLOW_WORKER_KILL;
		p[k++] = BLOW_WORKER_STOP;
	}
	for (size_t i = 0; i < pk; i++)
		p[k++] = BLOW_PRODUCER_KILL;
	for (size_t i = k; i > 1; i--) {
		size_t j = (size_t)rand_r(seed) % i;
		enum blow t = p[i - 1];
		p[i - 1] = p[j];
		p[j] = t;
	}
	*n = k;
	return p;
}

static void fail_run(chaos_fleet *fl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_run(chaos_fleet *fl, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	chaos_fleet_dump(fl);
	fl->b->keep_dir = true;
	fail_msg("%s (seed %u, %u cycles; the logs are kept in %s)", msg, cfg.seed, cfg.cycles,
		 fl->dir);
}

/* Lets the fleet run for ms, doing what falls due. */
static void run_for(chaos_fleet *fl, int64_t ms)
{
	int64_t end = th_now_ms() + ms;

	do {
		if (chaos_fleet_supervise(fl) != 0)
			fail_run(fl, "a producer or worker ended without being told");
		if (chaos_fleet_tick(fl) != 0)
			fail_run(fl, "a worker could not be started again");
		th_sleep_ms(10);
	} while (th_now_ms() < end);
}

/* Deals blow b; 1 when it has no target now.  Tries counts the attempts
 * before: a stop first waits for a worker with jobs in hand. */
static int deal(chaos_fleet *fl, enum blow b, unsigned *seed, int tries)
{
	switch (b) {
	case BLOW_BROKER:
		return chaos_kill_broker(fl, seed);
	case BLOW_WORKER_KILL:
		return chaos_kill_worker(fl, seed);
	case BLOW_WORKER_STOP:
		return chaos_stop_worker(fl, seed, tries < BUSY_TRIES);
	default:
		return chaos_kill_producer(fl, seed);
	}
}

/* Deals every blow of the plan, a random pause before each; a blow with
 * no target now waits for one (every worker stopped or down), a while. */
static void deal_all(chaos_fleet *fl, unsigned *seed)
{
	size_t n = 0;
	enum blow *plan = make_plan(seed, &n);

	for (size_t i = 0; i < n; i++) {
		int rc, tries = 0;
		run_for(fl, cfg.gap_min_ms + rand_r(seed) % (cfg.gap_max_ms - cfg.gap_min_ms + 1));
		while ((rc = deal(fl, plan[i], seed, tries)) == 1 && ++tries < TARGET_TRIES)
			run_for(fl, 20);
		if (rc == 1) {
			fprintf(stderr, "chaos: blow %zu of %zu (kind %d) found no target in %d ms; "
					"skipped\n",
				i + 1, n, (int)plan[i], TARGET_TRIES * 20);
			continue;
		}
		if (rc != 0) {
			int what = (int)plan[i];
			free(plan);
			fail_run(fl, "blow %zu of %zu (kind %d) failed", i + 1, n, what);
		}
	}
	free(plan);
}

static void check(chaos_fleet *fl, chaos_figures *f, int64_t t0)
{
	chaos_logs logs = { 0 };
	char why[1024];
	cueq_client *c = th_sdk_connect(fl->b);

	if (chaos_fleet_read_logs(fl, &logs, why, sizeof(why)) != 0 ||
	    chaos_check(c, &logs, cfg.breaks, f, why, sizeof(why)) != 0) {
		cueq_close(c);
		chaos_logs_free(&logs);
		fail_run(fl, "the check could not run: %s", why);
	}
	cueq_close(c);
	chaos_logs_free(&logs);
	chaos_print_figures(f, cfg.seed, th_now_ms() - t0);
	if (f->violations > 0)
		fail_run(fl, "%llu violations", (unsigned long long)f->violations);
	if (f->redeliveries == 0 || f->steps_refused + f->acks_refused == 0)
		fail_run(fl, "%llu redeliveries and %llu fenced writes: the blows hit no work in "
			     "progress, so this run proved nothing",
			 (unsigned long long)f->redeliveries,
			 (unsigned long long)(f->steps_refused + f->acks_refused));
}

static void test_chaos(void **state)
{
	th_broker *b = *state;
	chaos_figures f = { 0 };
	chaos_fleet fl = { .b = b, .n_prod = cfg.producers, .n_work = cfg.workers,
			   .concurrency = cfg.concurrency, .rate = cfg.rate,
			   .lease_ms = cfg.lease_ms, .work_ms = cfg.work_ms, .f = &f };
	unsigned seed = cfg.seed;
	uint64_t jobs = 0;
	int64_t t0 = th_now_ms();

	fprintf(stderr, "chaos: seed %u, %u cycles (test_chaos --seed %u --cycles %u replays the "
			"order of the blows)\n",
		cfg.seed, cfg.cycles, cfg.seed, cfg.cycles);
	live = &fl;
	if (chaos_fleet_start(&fl) != 0)
		fail_run(&fl, "the producers and workers could not start");
	deal_all(&fl, &seed);
	if (chaos_fleet_end_pushes(&fl, &jobs) != 0)
		fail_run(&fl, "the producers did not end cleanly");
	if (chaos_fleet_drain(&fl, jobs, cfg.drain_ms) != 0)
		fail_run(&fl, "the jobs did not drain");
	if (chaos_fleet_stop_workers(&fl) != 0)
		fail_run(&fl, "the workers did not stop cleanly");
	check(&fl, &f, t0);
	chaos_fleet_kill_all(&fl);
	live = NULL;
}

/* ---- options ---- */

static _Noreturn void usage(const char *why)
{
	fprintf(stderr,
		"test_chaos: %s\n"
		"usage: test_chaos [--cycles N] [--seed S] [--producers N] [--workers N] "
		"[--concurrency N] [--rate JOBS_PER_S] [--lease-ms MS] [--work-ms MS] "
		"[--drain-ms MS] [--break NAME]\n",
		why);
	exit(2);
}

static unsigned long number(const char *flag, const char *v, unsigned long lo, unsigned long hi)
{
	char *end, why[128];
	unsigned long n = strtoul(v, &end, 10);

	if (*end != '\0' || end == v || n < lo || n > hi) {
		snprintf(why, sizeof(why), "%s takes %lu to %lu, not %s", flag, lo, hi, v);
		usage(why);
	}
	return n;
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL)
			usage("every flag needs a value");
		if (strcmp(a, "--cycles") == 0)
			cfg.cycles = (unsigned)number(a, v, 1, 100000);
		else if (strcmp(a, "--seed") == 0)
			cfg.seed = (unsigned)number(a, v, 0, UINT32_MAX);
		else if (strcmp(a, "--producers") == 0)
			cfg.producers = (unsigned)number(a, v, 1, CHAOS_MAX_CHILDREN);
		else if (strcmp(a, "--workers") == 0)
			cfg.workers = (unsigned)number(a, v, 1, CHAOS_MAX_CHILDREN);
		else if (strcmp(a, "--concurrency") == 0)
			cfg.concurrency = (unsigned)number(a, v, 1, 64);
		else if (strcmp(a, "--rate") == 0)
			cfg.rate = (double)number(a, v, 1, 100000);
		else if (strcmp(a, "--lease-ms") == 0)
			cfg.lease_ms = (int64_t)number(a, v, 100, 60000);
		else if (strcmp(a, "--work-ms") == 0)
			cfg.work_ms = (int64_t)number(a, v, 0, 10000);
		else if (strcmp(a, "--drain-ms") == 0)
			cfg.drain_ms = (int64_t)number(a, v, 1000, 86400000);
		else if (strcmp(a, "--break") == 0)
			cfg.breaks = v;
		else
			usage("unknown flag");
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chaos, th_fixture_start, teardown),
	};

	parse_args(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
