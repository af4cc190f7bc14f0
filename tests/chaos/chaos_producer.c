/*
 * chaos_producer.c - chaos-producer: pushes jobs to the chaos test's
 * broker at a steady rate until SIGTERM, each with its own idempotency
 * key, and logs every push the broker answered ok (chaos.h).
 *
 * Job I of producer slot K has the key and payload "pK-I".  A request
 * that fails as a whole (the broker was killed, is restarting) is sent
 * again with the same keys until it is answered, so a push applied
 * before its answer was lost is answered again with the same execution
 * ID (duplicate) and creates nothing.  A producer killed with SIGKILL and
 * started again reads its own log and goes on after the last job it
 * logged, pushing again the jobs of a batch it had not logged whole.
 * SIGTERM stops it after the batch in hand is answered and logged.
 *
 * usage: chaos-producer --url URL --slot K --log PATH [--rate JOBS_PER_S]
 *                       [--batch N] [--lease MS]
 */
#include "chaos.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cueq/cueq.h"

#define MAX_BATCH 64
#define GIVE_UP_MS 120000 /* a broker away this long is the conductor's failure */

struct producer {
	const char *url, *log_path;
	unsigned slot, batch;
	double rate;
	int64_t lease_ms;
	int fd;
	uint64_t next;
	cueq_client *c;
};

static volatile sig_atomic_t stop_asked;

static void on_term(int sig)
{
	(void)sig;
	stop_asked = 1;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_asked)
		;
}

static int usage(const char *why)
{
	fprintf(stderr,
		"chaos-producer: %s\n"
		"usage: chaos-producer --url URL --slot K --log PATH [--rate JOBS_PER_S] "
		"[--batch N] [--lease MS]\n",
		why);
	return 2;
}

static int parse_args(int argc, char **argv, struct producer *p)
{
	p->batch = 8, p->rate = 20, p->lease_ms = 1000;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];
		if (strcmp(a, "--url") == 0)
			p->url = v;
		else if (strcmp(a, "--log") == 0)
			p->log_path = v;
		else if (strcmp(a, "--slot") == 0)
			p->slot = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--rate") == 0)
			p->rate = strtod(v, NULL);
		else if (strcmp(a, "--batch") == 0)
			p->batch = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--lease") == 0)
			p->lease_ms = strtoll(v, NULL, 10);
		else
			return usage("unknown flag");
	}
	if (argc % 2 == 0)
		return usage("every flag needs a value");
	if (p->url == NULL || p->log_path == NULL)
		return usage("--url and --log are needed");
	if (p->batch < 1 || p->batch > MAX_BATCH || p->rate <= 0 || p->slot > 999)
		return usage("--batch takes 1 to 64, --rate more than 0, --slot 0 to 999");
	return 0;
}

/* Goes on after the last job this slot logged (a restart after a kill). */
static int resume(struct producer *p)
{
	chaos_logs logs = { 0 };
	char why[512];

	p->next = 0;
	if (access(p->log_path, F_OK) != 0)
		return 0;
	if (chaos_logs_read(&logs, p->log_path, why, sizeof(why)) != 0) {
		fprintf(stderr, "chaos-producer: %s\n", why);
		return -1;
	}
	for (size_t i = 0; i < logs.n; i++) {
		unsigned slot;
		uint64_t index;
		if (logs.recs[i].kind == CR_PUSH && chaos_parse_key(logs.recs[i].key, &slot, &index) &&
		    slot == p->slot && index >= p->next)
			p->next = index + 1;
	}
	chaos_logs_free(&logs);
	return 0;
}

static int connect_bounded(struct producer *p)
{
	int64_t end = chaos_mono_ms() + GIVE_UP_MS;
	int rc;

	while ((rc = cueq_connect(p->url, NULL, &p->c)) != CUEQ_OK) {
		if (chaos_mono_ms() > end) {
			fprintf(stderr, "chaos-producer: cannot reach %s: %s\n", p->url,
				cueq_last_error());
			return -1;
		}
		sleep_ms(100);
	}
	return 0;
}

/* Pushes one batch until the broker answers it; logs its results. */
static int push_batch(struct producer *p)
{
	char keys[MAX_BATCH][CHAOS_KEY_SIZE];
	cueq_job_spec jobs[MAX_BATCH];
	cueq_push_result res[MAX_BATCH];
	int64_t end = chaos_mono_ms() + GIVE_UP_MS;
	int rc;

	for (unsigned i = 0; i < p->batch; i++) {
		snprintf(keys[i], sizeof(keys[i]), "p%u-%llu", p->slot,
			 (unsigned long long)(p->next + i));
		jobs[i] = (cueq_job_spec){ .queue = CHAOS_QUEUE, .payload = keys[i],
					   .payload_len = strlen(keys[i]),
					   .opts = { .key = keys[i], .lease_ms = p->lease_ms,
						     .max_attempts = 1000, .max_expiries = 1000 } };
	}
	while ((rc = cueq_push_many(p->c, jobs, p->batch, res)) != CUEQ_OK) {
		if (chaos_mono_ms() > end) {
			fprintf(stderr, "chaos-producer: push of %s..: %s (%s); giving up\n", keys[0],
				cueq_strerror(rc), cueq_last_error());
			return -1;
		}
		sleep_ms(100);
	}
	for (unsigned i = 0; i < p->batch; i++) {
		if (res[i].err != CUEQ_OK) {
			fprintf(stderr, "chaos-producer: the broker refused %s: %s\n", keys[i],
				cueq_strerror(res[i].err));
			return -1;
		}
		if (chaos_log(p->fd, "push %s %s %d %lld %lld %d", keys[i], res[i].execution_id,
			      res[i].duplicate ? 1 : 0, (long long)chaos_mono_ms(),
			      (long long)chaos_real_ms(), (int)getpid()) != 0) {
			fprintf(stderr, "chaos-producer: cannot write %s\n", p->log_path);
			return -1;
		}
	}
	p->next += p->batch;
	return 0;
}

int main(int argc, char **argv)
{
	struct producer p = { 0 };
	struct sigaction sa = { .sa_handler = on_term };
	int rc;

	if ((rc = parse_args(argc, argv, &p)) != 0)
		return rc;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (resume(&p) != 0 || (p.fd = chaos_log_open(p.log_path)) < 0 || connect_bounded(&p) != 0)
		return 1;
	int64_t period = (int64_t)(p.batch * 1000.0 / p.rate), next = chaos_mono_ms();
	while (!stop_asked) {
		if (push_batch(&p) != 0) {
			rc = 1;
			break;
		}
		next += period;
		int64_t now = chaos_mono_ms();
		if (next > now)
			sleep_ms(next - now);
		else
			next = now; /* behind: no burst to catch up */
	}
	cueq_close(p.c);
	close(p.fd);
	return rc;
}
