/*
 * test_ordersync.c - the order-sync examples (worker-sdk/examples) under
 * fire: every order gets exactly one customer, invoice, sync record and
 * mail although workers and the broker are killed in the middle.
 *
 * The C worker (cueq-example-order-sync) runs as several processes over
 * 500 orders; at random moments (seeded: ORDERSYNC_SEED replays a run) a
 * worker is killed with SIGKILL and started again, several times, and once
 * the broker is killed with kill -9 and restarted on the same data.  The
 * kills are tied to progress (random points between 5% and 85% of the
 * orders done), so they land mid-run on a fast machine as on a slow one.
 * When all 500 executions have succeeded, the fake APIs' logs must show
 * one creation per order and kind, made with the step key of that order's
 * execution, and each execution's ledger must hold the IDs of exactly
 * those objects.  Then the same, smaller, for order_sync.sh under
 * `cueq work`, with one kill of the worker.
 *
 * Side effects exactly once come from the ledger (a redelivery skips the
 * recorded steps) plus the third party honouring the step key (a crash
 * between a call and its record); this test checks the sum.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "cueq/cueq.h"
#include "harness.h"
#include "ordersync_util.h"

#ifndef ORDER_SYNC_PATH
#error "ORDER_SYNC_PATH must name cueq-example-order-sync (set by tests/CMakeLists.txt)"
#endif
#ifndef ORDER_SYNC_SH
#error "ORDER_SYNC_SH must name worker-sdk/examples/order_sync.sh (set by tests/CMakeLists.txt)"
#endif

#define MAX_WORKERS 4
#define N_STEPS 4
#define LEASE_MS 1500 /* a killed worker's orders come back this soon */

static const char *const step_names[N_STEPS] = { "ensure_customer", "create_invoice",
						 "mark_synced", "send_email" };
static const char *const kinds[N_STEPS] = { "customers", "invoices", "synced", "emails" };

/* The workers of one run. */
struct fleet {
	th_broker *b;
	const char *queue;
	bool shell; /* cueq work + order_sync.sh, else the C example */
	int n;
	pid_t pid[MAX_WORKERS];
	char store[PATH_MAX];
	char log[MAX_WORKERS][PATH_MAX + 32];
	int self_exits; /* workers that ended without being told */
};

static struct fleet *live; /* for the teardown after a failed assertion */

static int teardown(void **state)
{
	if (live != NULL)
		for (int k = 0; k < live->n; k++)
			if (live->pid[k] > 0)
				proc_kill9(live->pid[k]);
	live = NULL;
	return th_fixture_stop(state);
}

static void dump_logs(const struct fleet *f)
{
	for (int k = 0; k < f->n; k++)
		proc_dump_tail(f->log[k], 3000);
	th_broker_dump_log(f->b);
}

static pid_t start_worker(struct fleet *f, int k)
{
	char env_dir[PATH_MAX + 32], env_cueq[PATH_MAX + 32];
	pid_t pid;

	if (!f->shell) {
		char *argv[] = { (char *)ORDER_SYNC_PATH, "--url", f->b->url, "--queue",
				 (char *)f->queue, "--dir", f->store, "--concurrency", "4",
				 "--step-delay", "15ms", NULL };
		pid = proc_spawn(argv, &(proc_opts){ .log = f->log[k] });
	} else {
		char *argv[] = { (char *)th_cli_path, "work", (char *)f->queue, "--concurrency", "2",
				 "--url", f->b->url, "--", "/bin/sh", (char *)ORDER_SYNC_SH, NULL };
		snprintf(env_dir, sizeof(env_dir), "ORDER_SYNC_DIR=%s", f->store);
		snprintf(env_cueq, sizeof(env_cueq), "CUEQ=%s", th_cli_path);
		char *env[] = { env_dir, env_cueq, "ORDER_SYNC_STEP_DELAY=0.05", NULL };
		pid = proc_spawn(argv, &(proc_opts){ .env = env, .log = f->log[k] });
	}
	if (pid <= 0)
		fail_msg("could not start worker %d", k);
	f->pid[k] = pid;
	return pid;
}

/* Restarts workers that ended on their own; a crash fails the test. */
static void supervise(struct fleet *f)
{
	for (int k = 0; k < f->n; k++) {
		int status = 0;
		if (waitpid(f->pid[k], &status, WNOHANG) != f->pid[k])
			continue;
		f->pid[k] = 0;
		if (WIFSIGNALED(status)) {
			dump_logs(f);
			fail_msg("worker %d died of signal %d (not one of ours)", k, WTERMSIG(status));
		}
		fprintf(stderr, "ordersync: worker %d exited with status %d by itself; restarting it\n",
			k, WEXITSTATUS(status));
		proc_dump_tail(f->log[k], 800);
		f->self_exits++;
		start_worker(f, k);
	}
}

static void stop_workers(struct fleet *f)
{
	for (int k = 0; k < f->n; k++) {
		int status = 0;
		if (f->pid[k] <= 0)
			continue;
		int rc = proc_stop(f->pid[k], 15000, &status);
		f->pid[k] = 0;
		if (rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			dump_logs(f);
			fail_msg("worker %d did not stop cleanly on SIGTERM (status 0x%x%s)", k, status,
				 rc != 0 ? ", had to be killed" : "");
		}
	}
}

static th_counts counts(th_broker *b, const char *queue)
{
	th_raw r;
	th_counts c = { 0 };

	if (th_raw_open(&r, b->url, 10000) == 0) {
		th_raw_counts(&r, queue, &c);
		th_raw_close(&r);
	}
	return c;
}

static unsigned seed_from_env(unsigned dflt)
{
	const char *s = getenv("ORDERSYNC_SEED");
	return s != NULL && *s != '\0' ? (unsigned)strtoul(s, NULL, 10) : dflt;
}

/* Pushes orders order-0 .. order-(n-1), each with its name as the
 * idempotency key; ids[n] gets their execution IDs. */
static void push_orders(th_broker *b, const char *queue, size_t n, char (*ids)[CUEQ_ID_SIZE])
{
	cueq_client *c = th_sdk_connect(b);
	cueq_job_spec *jobs = calloc(n, sizeof(*jobs));
	cueq_push_result *res = calloc(n, sizeof(*res));
	char (*names)[32] = calloc(n, sizeof(*names));

	assert_non_null(jobs);
	assert_non_null(res);
	assert_non_null(names);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "order-%zu", i);
		jobs[i] = (cueq_job_spec){ .queue = queue, .payload = names[i],
					   .payload_len = strlen(names[i]),
					   .opts = { .key = names[i], .lease_ms = LEASE_MS,
						     .max_attempts = 100 } };
	}
	int rc = cueq_push_many(c, jobs, n, res);
	if (rc != CUEQ_OK)
		fail_msg("push of %zu orders: %s (%s)", n, cueq_strerror(rc), cueq_last_error());
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(res[i].err, CUEQ_OK);
		strcpy(ids[i], res[i].execution_id);
	}
	free(jobs);
	free(res);
	free(names);
	cueq_close(c);
}

/* Sorts a few random progress points (orders done) in [lo, hi]. */
static void pick_points(unsigned *seed, size_t n_orders, size_t *pts, size_t n, double lo,
			double hi)
{
	for (size_t i = 0; i < n; i++)
		pts[i] = (size_t)(n_orders * (lo + (hi - lo) * (rand_r(seed) / (double)RAND_MAX)));
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && pts[j - 1] > pts[j]; j--) {
			size_t t = pts[j];
			pts[j] = pts[j - 1];
			pts[j - 1] = t;
		}
}

/* ---- the check ------------------------------------------------------------- */

/* One creation per order and kind, under the order's step key, and the
 * ledger holding exactly the created objects' IDs. */
static void verify(struct fleet *f, size_t n, char (*ids)[CUEQ_ID_SIZE])
{
	os_entry *e[N_STEPS];
	char why[512], key[OS_KEY_SIZE], obj[OS_VALUE_SIZE];
	cueq_client *c = th_sdk_connect(f->b);
	cueq_execution *list = NULL;
	size_t got = 0, redelivered = 0, bad = 0;
	uint64_t deliveries = 0;

	th_counts cnt = counts(f->b, f->queue);
	if (cnt.succeeded != n || cnt.dead + cnt.ready + cnt.leased + cnt.scheduled + cnt.cancelled)
		fail_msg("queue %s: succeeded %llu of %zu, dead %llu, ready %llu, leased %llu", f->queue,
			 (unsigned long long)cnt.succeeded, n, (unsigned long long)cnt.dead,
			 (unsigned long long)cnt.ready, (unsigned long long)cnt.leased);
	int rc = cueq_list(c, f->queue, -1, 1000, NULL, &list, &got);
	if (rc != CUEQ_OK)
		fail_msg("list %s: %s (%s)", f->queue, cueq_strerror(rc), cueq_last_error());
	assert_int_equal(got, n);
	for (size_t i = 0; i < got; i++) {
		if (list[i].state != CUEQ_SUCCEEDED)
			fail_msg("%s is %s", list[i].execution_id, cueq_state_name(list[i].state));
		deliveries += list[i].attempt;
		redelivered += list[i].attempt > 1;
	}
	cueq_list_free(list, got);

	for (int s = 0; s < N_STEPS; s++) {
		e[s] = calloc(n, sizeof(os_entry));
		assert_non_null(e[s]);
		if (os_read_log(f->store, kinds[s], n, e[s], why, sizeof(why)) != 0)
			fail_msg("%s", why);
		for (size_t i = 0; i < n; i++) {
			snprintf(key, sizeof(key), "cueq-%s-%s", ids[i], step_names[s]);
			if (e[s][i].count != 1 || strcmp(e[s][i].key, key) != 0) {
				if (bad++ < 10)
					fprintf(stderr, "order-%zu (%s): %u %s created (expected 1), key %s\n",
						i, ids[i], e[s][i].count, kinds[s], e[s][i].key);
				continue;
			}
			if (os_object_id(f->store, kinds[s], key, obj, sizeof(obj)) != 0 ||
			    strcmp(obj, e[s][i].id) != 0)
				fail_msg("object %s/%s does not hold %s", kinds[s], key, e[s][i].id);
		}
	}
	if (bad > 0)
		fail_msg("%zu (order, kind) pairs were not created exactly once", bad);

	for (size_t i = 0; i < n; i++) {
		cueq_step *st = NULL;
		size_t ns = 0;
		if ((rc = cueq_steps(c, ids[i], &st, &ns)) != CUEQ_OK)
			fail_msg("steps of %s: %s (%s)", ids[i], cueq_strerror(rc), cueq_last_error());
		if (ns != N_STEPS)
			fail_msg("order-%zu (%s) has %zu steps, expected %d", i, ids[i], ns, N_STEPS);
		for (size_t k = 0; k < ns; k++) {
			int s = 0;
			while (s < N_STEPS && strcmp(st[k].name, step_names[s]) != 0)
				s++;
			if (s == N_STEPS)
				fail_msg("order-%zu has an unexpected step %s", i, st[k].name);
			if (strcmp(st[k].value, e[s][i].id) != 0)
				fail_msg("order-%zu: the ledger says %s = %s, the API created %s", i,
					 st[k].name, (char *)st[k].value, e[s][i].id);
		}
		cueq_steps_free(st, ns);
	}
	fprintf(stderr,
		"ordersync: %zu orders, %llu deliveries, %zu redelivered; one customer, invoice, "
		"record and mail each\n",
		n, (unsigned long long)deliveries, redelivered);
	if (redelivered == 0)
		fail_msg("no execution was redelivered: the kills hit no work in progress, so this "
			 "run proved nothing");
	for (int s = 0; s < N_STEPS; s++)
		free(e[s]);
	cueq_close(c);
}

/* Runs the fleet until n orders succeeded, killing workers when progress
 * passes kill_at[] and the broker when it passes broker_at (0: never). */
static void run(struct fleet *f, size_t n, const size_t *kill_at, size_t n_kills,
		size_t broker_at, unsigned *seed, int64_t limit_ms)
{
	int64_t t0 = th_now_ms();
	size_t kills = 0, done = 0;
	bool broker_killed = broker_at == 0;

	for (int k = 0; k < f->n; k++)
		start_worker(f, k);
	while (done < n) {
		if (th_now_ms() - t0 > limit_ms) {
			th_counts c = counts(f->b, f->queue);
			dump_logs(f);
			fail_msg("after %lld ms only %llu of %zu orders succeeded (ready %llu, leased "
				 "%llu, scheduled %llu, dead %llu)",
				 (long long)limit_ms, (unsigned long long)c.succeeded, n,
				 (unsigned long long)c.ready, (unsigned long long)c.leased,
				 (unsigned long long)c.scheduled, (unsigned long long)c.dead);
		}
		supervise(f);
		th_counts c = counts(f->b, f->queue);
		done = c.succeeded;
		if (c.dead > 0) {
			dump_logs(f);
			fail_msg("%llu orders went dead", (unsigned long long)c.dead);
		}
		if (kills < n_kills && done >= kill_at[kills] && done < n) {
			int k = (int)(rand_r(seed) % (unsigned)f->n);
			th_sleep_ms(rand_r(seed) % 40); /* a random point in the handler */
			fprintf(stderr, "ordersync: %zu/%zu done, kill -9 worker %d (pid %d)\n", done, n,
				k, (int)f->pid[k]);
			proc_kill9(f->pid[k]);
			start_worker(f, k);
			kills++;
		}
		if (!broker_killed && done >= broker_at && done < n) {
			char url[sizeof(f->b->url)];
			strcpy(url, f->b->url);
			fprintf(stderr, "ordersync: %zu/%zu done, kill -9 the broker\n", done, n);
			th_sleep_ms(rand_r(seed) % 40);
			assert_int_equal(th_broker_kill9(f->b), 0);
			th_sleep_ms(rand_r(seed) % 300);
			if (th_broker_restart(f->b) != 0) {
				dump_logs(f);
				fail_msg("the broker did not come back after kill -9");
			}
			broker_killed = true;
			if (strcmp(url, f->b->url) != 0) /* it had to take another port */
				for (int k = 0; k < f->n; k++) {
					proc_kill9(f->pid[k]);
					start_worker(f, k);
				}
		}
		th_sleep_ms(50);
	}
	if (kills < n_kills || !broker_killed)
		fail_msg("the run ended after %zu of %zu kills%s", kills, n_kills,
			 broker_killed ? "" : " and before the broker kill");
	fprintf(stderr, "ordersync: %zu orders done in %lld ms, %zu worker kills%s, %d self exits\n",
		n, (long long)(th_now_ms() - t0), kills, broker_at ? ", 1 broker kill" : "",
		f->self_exits);
}

static void fleet_init(struct fleet *f, th_broker *b, const char *queue, bool shell, int n)
{
	memset(f, 0, sizeof(*f));
	f->b = b, f->queue = queue, f->shell = shell, f->n = n;
	snprintf(f->store, sizeof(f->store), "%s/shop", b->dir);
	if (mkdir(f->store, 0755) != 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", f->store, strerror(errno));
	for (int k = 0; k < n; k++)
		snprintf(f->log[k], sizeof(f->log[k]), "%s/worker-%d.log", b->dir, k);
	live = f;
}

/* ---- the runs ------------------------------------------------------------- */

#define C_ORDERS 500
#define C_WORKERS 3
#define C_KILLS 6

static void test_c_workers_under_kills(void **state)
{
	th_broker *b = *state;
	struct fleet f;
	unsigned seed = seed_from_env(20251125);
	size_t kill_at[C_KILLS], broker_at[1];
	char(*ids)[CUEQ_ID_SIZE] = calloc(C_ORDERS, CUEQ_ID_SIZE);

	assert_non_null(ids);
	fprintf(stderr, "ordersync: seed %u (ORDERSYNC_SEED=%u replays it)\n", seed, seed);
	os_become_subreaper();
	fleet_init(&f, b, "orders", false, C_WORKERS);
	pick_points(&seed, C_ORDERS, kill_at, C_KILLS, 0.05, 0.85);
	pick_points(&seed, C_ORDERS, broker_at, 1, 0.3, 0.6);
	push_orders(b, f.queue, C_ORDERS, ids);
	run(&f, C_ORDERS, kill_at, C_KILLS, broker_at[0], &seed, 45000);
	stop_workers(&f);
	if (os_reap_strays(&b->pid, 1, 10000) > 0)
		fail_msg("API calls of killed workers were still running 10 s after the end");
	verify(&f, C_ORDERS, ids);
	live = NULL;
	free(ids);
}

#define SH_ORDERS 20

static void test_shell_worker_under_a_kill(void **state)
{
	th_broker *b = *state;
	struct fleet f;
	unsigned seed = seed_from_env(20251125);
	size_t kill_at[1] = { 4 };
	char(*ids)[CUEQ_ID_SIZE] = calloc(SH_ORDERS, CUEQ_ID_SIZE);

	assert_non_null(ids);
	os_become_subreaper();
	fleet_init(&f, b, "orders-sh", true, 1);
	push_orders(b, f.queue, SH_ORDERS, ids);
	run(&f, SH_ORDERS, kill_at, 1, 0, &seed, 45000);
	stop_workers(&f);
	/* The killed worker's commands run on (their own process group) and
	 * end by themselves. */
	if (os_reap_strays(&b->pid, 1, 15000) > 0)
		fail_msg("commands of the killed `cueq work` were still running 15 s after the end");
	verify(&f, SH_ORDERS, ids);
	live = NULL;
	free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_c_workers_under_kills, th_fixture_start, teardown),
		cmocka_unit_test_setup_teardown(test_shell_worker_under_a_kill, th_fixture_start,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
