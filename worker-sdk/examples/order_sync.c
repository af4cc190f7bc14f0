/*
 * order_sync.c - cueq-example-order-sync: the classic order-sync workflow
 * as a cueq worker that keeps its progress in the step ledger.
 *
 * Each job's payload names an order ("order-17").  Syncing it takes four
 * side effects in other systems, one step each:
 *   ensure_customer  find or create the customer in the CRM  -> customer ID
 *   create_invoice   create the invoice in billing           -> invoice ID
 *   mark_synced      mark the order as synced in the shop    -> record ID
 *   send_email       mail the invoice to the customer        -> message ID
 * A worker can die between any two steps, or inside one; the execution then
 * comes back, with the same execution ID, to another worker.  Two things
 * make every side effect happen once all the same:
 *   - cueq_job_step_once() records each step's result in the execution's
 *     ledger under the lease, so a redelivery skips the steps already done
 *     and gets their recorded values (the mail names the first invoice);
 *   - for a crash after a side effect but before its record, the third
 *     party deduplicates: each call carries cueq_job_step_key() as its
 *     Idempotency-Key, which is the same on every delivery.
 * The third-party APIs are simulated by a directory (fake_api.c), so the
 * order-sync test can count the invoices and mails really made.
 *
 * usage: cueq-example-order-sync [--url URL] [--queue Q] [--dir DIR]
 *                                [--concurrency N] [--step-delay D]
 * URL defaults to $CUEQ_URL, else tcp://127.0.0.1:7700; DIR to
 * $ORDER_SYNC_DIR; Q to "orders".  --step-delay (e.g. 20ms) pauses before
 * each call, as a slow network would.  SIGINT or SIGTERM stops the worker
 * after the jobs in hand.
 */
#include "fake_api.h"

#include <cueq/cueq.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ORDER 64
#define VALUE_SIZE 256 /* our values are IDs; the ledger allows CUEQ_MAX_STEP_VALUE */

struct app {
	const char *url;
	const char *queue;
	const char *dir;
	unsigned concurrency;
	int64_t step_delay_ms;
};

/* One step's call to a third party: what step_once's fn needs. */
struct call {
	const struct app *app;
	const char *step;  /* step name, and the Idempotency-Key's suffix */
	const char *kind;  /* the API's object kind: its directory */
	const char *order;
	char body[1024];   /* the request: at most fake_api's 1024 bytes */
};

static cueq_worker *volatile running_worker;

static void on_signal(int sig)
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

/* The step's work, run by cueq_job_step_once only when the ledger does not
 * have the step yet: one call to the third party. */
static int call_api(cueq_job *j, void *arg, char *value, size_t size, size_t *len)
{
	struct call *c = arg;
	char key[CUEQ_MAX_STEP_NAME + 24], err[1024];
	int rc;

	if (c->app->step_delay_ms > 0)
		sleep_ms(c->app->step_delay_ms);
	if (cueq_job_lease_lost(j))
		return CUEQ_ERR_LEASE_LOST; /* someone else has the job now */
	if ((rc = cueq_job_step_key(j, c->step, key, sizeof(key))) != CUEQ_OK)
		return rc;
	rc = fake_api_create(c->app->dir, c->kind, key, c->order, c->body, value, size, NULL, err,
			     sizeof(err));
	if (rc != FAKE_API_OK) {
		fprintf(stderr, "%s (%s): %s failed: %s\n", c->order, cueq_job_id(j), c->step, err);
		/* A reused key is a bug, not bad luck: retrying cannot help. */
		cueq_job_fail(j, err, -1, rc == FAKE_API_MISMATCH);
		return rc == FAKE_API_MISMATCH ? CUEQ_ERR_CONFLICT : CUEQ_ERR_UNAVAILABLE;
	}
	*len = strlen(value);
	return CUEQ_OK;
}

/* Runs one step once per execution; out gets its value (NUL-terminated). */
static int step(cueq_job *j, struct call *c, const char *name, const char *kind, char *out)
{
	size_t len = 0;
	bool skipped = false;
	int rc;

	c->step = name;
	c->kind = kind;
	rc = cueq_job_step_once(j, name, call_api, c, out, VALUE_SIZE - 1, &len, &skipped);
	if (rc != CUEQ_OK) {
		fprintf(stderr, "%s (%s, attempt %u): step %s: %s (%s)\n", c->order, cueq_job_id(j),
			cueq_job_attempt(j), name, cueq_strerror(rc), cueq_last_error());
		return rc;
	}
	out[len] = '\0';
	if (skipped)
		printf("%s (%s, attempt %u): %s was done before: %s\n", c->order, cueq_job_id(j),
		       cueq_job_attempt(j), name, out);
	return CUEQ_OK;
}

static bool order_ok(const char *s, size_t n)
{
	if (n == 0 || n > MAX_ORDER)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      (ch != '\0' && strchr("._:-", ch) != NULL)))
			return false;
	}
	return true;
}

static int sync_order(cueq_job *j, void *arg)
{
	const struct app *app = arg;
	char order[MAX_ORDER + 1], customer[VALUE_SIZE], invoice[VALUE_SIZE], record[VALUE_SIZE],
		message[VALUE_SIZE], result[4 * VALUE_SIZE];
	struct call c = { .app = app, .order = order };
	size_t n = 0;
	const char *p = cueq_job_payload(j, &n);
	int rc;

	if (!order_ok(p, n)) {
		cueq_job_fail(j, "the payload is not an order name like order-17", -1, true);
		return CUEQ_ERR_INVALID;
	}
	memcpy(order, p, n);
	order[n] = '\0';

	snprintf(c.body, sizeof(c.body), "name=customer of %s", order);
	if ((rc = step(j, &c, "ensure_customer", "customers", customer)) != CUEQ_OK)
		return rc;
	snprintf(c.body, sizeof(c.body), "customer=%s order=%s", customer, order);
	if ((rc = step(j, &c, "create_invoice", "invoices", invoice)) != CUEQ_OK)
		return rc;
	snprintf(c.body, sizeof(c.body), "order=%s invoice=%s", order, invoice);
	if ((rc = step(j, &c, "mark_synced", "synced", record)) != CUEQ_OK)
		return rc;
	snprintf(c.body, sizeof(c.body), "to=%s invoice=%s", customer, invoice);
	if ((rc = step(j, &c, "send_email", "emails", message)) != CUEQ_OK)
		return rc;

	snprintf(result, sizeof(result), "customer %s invoice %s mail %s", customer, invoice,
		 message);
	cueq_job_set_result(j, result);
	return CUEQ_OK;
}

static int usage(const char *why)
{
	fprintf(stderr,
		"cueq-example-order-sync: %s\n"
		"usage: cueq-example-order-sync [--url URL] [--queue Q] [--dir DIR] "
		"[--concurrency N] [--step-delay D]\n",
		why);
	return 1;
}

static int parse_args(int argc, char **argv, struct app *app)
{
	app->url = getenv("CUEQ_URL");
	if (app->url == NULL || *app->url == '\0')
		app->url = "tcp://127.0.0.1:7700";
	app->dir = getenv("ORDER_SYNC_DIR");
	app->queue = "orders";
	app->concurrency = 1;
	for (int i = 1; i < argc; i += 2) { /* every flag takes a value */
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL)
			return usage("every flag needs a value");
		if (strcmp(a, "--url") == 0) {
			app->url = v;
		} else if (strcmp(a, "--queue") == 0) {
			app->queue = v;
		} else if (strcmp(a, "--dir") == 0) {
			app->dir = v;
		} else if (strcmp(a, "--concurrency") == 0) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*end != '\0' || n < 1 || n > 256)
				return usage("--concurrency takes 1 to 256");
			app->concurrency = (unsigned)n;
		} else if (strcmp(a, "--step-delay") == 0) {
			if (cueq_parse_duration(v, &app->step_delay_ms) != CUEQ_OK)
				return usage("--step-delay takes a duration such as 20ms");
		} else {
			return usage("unknown flag");
		}
	}
	if (app->dir == NULL || *app->dir == '\0')
		return usage("give --dir DIR or set ORDER_SYNC_DIR: where the fake APIs keep data");
	if (mkdir(app->dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "cueq-example-order-sync: cannot make %s: %s\n", app->dir,
			strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct app app = { 0 };
	cueq_worker_opts wo = { 0 };
	cueq_worker_counts counts;
	cueq_client *c = NULL;
	cueq_worker *w = NULL;
	struct sigaction sa;
	int rc;

	if (parse_args(argc, argv, &app) != 0)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((rc = cueq_connect(app.url, NULL, &c)) != CUEQ_OK) {
		fprintf(stderr, "cueq-example-order-sync: cannot reach %s: %s\n", app.url,
			cueq_last_error());
		return 6;
	}
	wo.concurrency = app.concurrency;
	if ((rc = cueq_worker_new(c, app.queue, sync_order, &app, &wo, &w)) != CUEQ_OK) {
		fprintf(stderr, "cueq-example-order-sync: %s\n", cueq_last_error());
		cueq_close(c);
		return 1;
	}
	running_worker = w;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	rc = cueq_worker_run(w);
	if (rc != CUEQ_OK)
		fprintf(stderr, "cueq-example-order-sync: the worker stopped: %s\n",
			cueq_last_error());
	cueq_worker_get_counts(w, &counts);
	printf("orders synced %llu, failed %llu, lost %llu\n", (unsigned long long)counts.succeeded,
	       (unsigned long long)counts.failed, (unsigned long long)counts.lost);
	running_worker = NULL;
	cueq_worker_free(w);
	cueq_close(c);
	return rc == CUEQ_OK ? 0 : 1;
}
