/*
 * bench.c - cueq-bench: throughput, latency and memory of a real cueqd.
 *
 * For each fsync policy and client mode asked for, starts a private broker
 * (brokerproc.c), drives N jobs through push -> claim -> ack (run_single.c,
 * run_sdk.c), checks that every job came back, and prints one row of a
 * markdown table: the output pastes straight into a note.  --memory N
 * instead measures broker memory per pending job (memory.c).  --tiny is the
 * smoke test ctest runs: it fails when a job is lost.
 */
#include "bench.h"
#include "brokerproc.h"
#include "memory.h"

#include <cueq/cueq.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const all_policies[] = { "always", "interval", "never" };
static const char *const all_modes[] = { "single", "sdk" };
#define N_POLICIES 3
#define N_MODES 2

struct opts {
	struct bench_cfg cfg;
	char cueqd[PATH_MAX];
	bool policy[N_POLICIES];
	bool mode[N_MODES];
	size_t memory; /* 0: throughput runs; else pending jobs to measure */
};

static void usage(FILE *f)
{
	fputs("usage: cueq-bench [--fsync always,interval,never] [--mode single,sdk]\n"
	      "                  [--producers N] [--workers N] [--concurrency N] [--jobs N]\n"
	      "                  [--payload BYTES] [--timeout SECONDS] [--cueqd PATH] [--tiny]\n"
	      "       cueq-bench --memory [N]   (bytes of broker memory per pending job)\n"
	      "Starts its own cueqd per run (a free loopback port, a temp data dir) and prints\n"
	      "a markdown table.  Defaults: all policies, both modes, 4 producers, 4 workers\n"
	      "(sdk: concurrency 4 each), 20000 jobs of 100 bytes; --memory: 200000 jobs.\n"
	      "--tiny: 300 jobs, fsync never, both modes (the smoke test).\n",
	      f);
}

/* Parses a comma-separated list of names into flags; -1 on an unknown one. */
static int parse_list(const char *arg, const char *const *names, bool *flags, size_t n)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int rc = 0;

	if (copy == NULL)
		return -1;
	memset(flags, 0, n * sizeof(*flags));
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < n && strcmp(tok, names[i]) != 0; i++)
			;
		if (i == n) {
			fprintf(stderr, "cueq-bench: unknown value \"%s\" in \"%s\"\n", tok, arg);
			rc = -1;
			break;
		}
		flags[i] = true;
	}
	free(copy);
	return rc;
}

static int parse_num(const char *flag, const char *arg, size_t min, size_t max, size_t *out)
{
	char *end;
	unsigned long long v;

	if (arg == NULL) {
		fprintf(stderr, "cueq-bench: %s needs a value\n", flag);
		return -1;
	}
	v = strtoull(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || *arg == '-' || v < min || v > max) {
		fprintf(stderr, "cueq-bench: %s wants a number from %zu to %zu, not \"%s\"\n", flag,
			min, max, arg);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	size_t v;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--tiny") == 0) {
			o->cfg.jobs = 300;
			o->cfg.timeout_s = 60;
			parse_list("never", all_policies, o->policy, N_POLICIES);
		} else if (strcmp(a, "--memory") == 0) {
			o->memory = 200000;
			if (next != NULL && next[0] >= '0' && next[0] <= '9') {
				if (parse_num(a, next, 1, 10000000, &o->memory) != 0)
					return -1;
				i++;
			}
		} else if (next == NULL) {
			fprintf(stderr, "cueq-bench: unknown option or missing value: %s\n", a);
			return -1;
		} else if (strcmp(a, "--fsync") == 0) {
			if (parse_list(argv[++i], all_policies, o->policy, N_POLICIES) != 0)
				return -1;
		} else if (strcmp(a, "--mode") == 0) {
			if (parse_list(argv[++i], all_modes, o->mode, N_MODES) != 0)
				return -1;
		} else if (strcmp(a, "--cueqd") == 0) {
			snprintf(o->cueqd, sizeof(o->cueqd), "%s", argv[++i]);
		} else if (strcmp(a, "--producers") == 0) {
			if (parse_num(a, argv[++i], 1, 256, &v) != 0)
				return -1;
			o->cfg.producers = (unsigned)v;
		} else if (strcmp(a, "--workers") == 0) {
			if (parse_num(a, argv[++i], 1, 256, &v) != 0)
				return -1;
			o->cfg.workers = (unsigned)v;
		} else if (strcmp(a, "--concurrency") == 0) {
			if (parse_num(a, argv[++i], 1, 256, &v) != 0)
				return -1;
			o->cfg.concurrency = (unsigned)v;
		} else if (strcmp(a, "--jobs") == 0) {
			if (parse_num(a, argv[++i], 1, 100000000, &o->cfg.jobs) != 0)
				return -1;
		} else if (strcmp(a, "--payload") == 0) {
			if (parse_num(a, argv[++i], 16, CUEQ_MAX_PAYLOAD, &o->cfg.payload) != 0)
				return -1;
		} else if (strcmp(a, "--timeout") == 0) {
			if (parse_num(a, argv[++i], 1, 86400, &v) != 0)
				return -1;
			o->cfg.timeout_s = (double)v;
		} else {
			fprintf(stderr, "cueq-bench: unknown option %s (try --help)\n", a);
			return -1;
		}
	}
	return 0;
}

static void ms_pair(char *buf, size_t len, const uint64_t v[2])
{
	if (v[0] == BENCH_NO_LAT)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2f / %.2f", (double)v[0] / 1e6, (double)v[1] / 1e6);
}

static void print_header(const struct opts *o)
{
	printf("cueq-bench: %zu jobs of %zu B; %u producers, %u workers (sdk: concurrency %u "
	       "each); %ld CPUs; broker %s\n\n",
	       o->cfg.jobs, o->cfg.payload, o->cfg.producers, o->cfg.workers, o->cfg.concurrency,
	       sysconf(_SC_NPROCESSORS_ONLN), o->cueqd);
	printf("| fsync | mode | jobs/s | secs | push p50/p99 ms | claim p50/p99 ms "
	       "| ack p50/p99 ms | push->handler p50/p99 ms | broker peak RSS MiB "
	       "| broker CPU s | bench CPU s | lost | dup | errors |\n");
	printf("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	fflush(stdout);
}

/* One (policy, mode) run on a fresh broker; returns 0 if no job was lost. */
static int run_one(const struct opts *o, const char *policy, const char *mode)
{
	cueqd_proc b = { 0 };
	struct bench_cfg cfg = o->cfg;
	struct bench_result r = { 0 };
	char push[40], claim[40], ack[40], e2e[40], rss[24];
	double bcpu0, ccpu0, bcpu, ccpu;
	long hwm;
	int rc, stopped;

	fprintf(stderr, "cueq-bench: fsync %s, mode %s ...\n", policy, mode);
	if (brokerproc_start(&b, o->cueqd, policy) != 0)
		return -1;
	cfg.broker_pid = b.pid;
	bcpu0 = proc_cpu_s(b.pid);
	ccpu0 = self_cpu_s();
	rc = strcmp(mode, "single") == 0 ? run_single(b.url, &cfg, &r) : run_sdk(b.url, &cfg, &r);
	bcpu = proc_cpu_s(b.pid) - bcpu0;
	ccpu = self_cpu_s() - ccpu0;
	hwm = proc_status_kb(b.pid, "VmHWM");
	stopped = brokerproc_stop(&b);
	if (rc != 0 && !r.broker_died)
		return -1;
	if (stopped != 0)
		rc = -1;
	ms_pair(push, sizeof(push), r.push);
	ms_pair(claim, sizeof(claim), r.claim);
	ms_pair(ack, sizeof(ack), r.ack);
	ms_pair(e2e, sizeof(e2e), r.e2e);
	if (hwm >= 0)
		snprintf(rss, sizeof(rss), "%.1f", (double)hwm / 1024.0);
	else
		snprintf(rss, sizeof(rss), "died");
	printf("| %s | %s | %.0f | %.2f | %s | %s | %s | %s | %s | %.2f | %.2f | %zu | %zu | "
	       "%zu |\n",
	       policy, mode, r.rate, r.secs, push, claim, ack, e2e, rss, bcpu,
	       ccpu, r.lost, r.dups, r.errors);
	fflush(stdout);
	if (r.dups > 0)
		fprintf(stderr, "cueq-bench: warning: %zu deliveries beyond the first (fsync %s, "
				"mode %s); at-least-once allows them, but nothing here expired a "
				"lease\n",
			r.dups, policy, mode);
	if (rc != 0 || r.lost > 0 || r.bad > 0 || r.timed_out) {
		fprintf(stderr, "cueq-bench: FAILED (fsync %s, mode %s): %zu of %zu jobs never "
				"reached a handler, %zu payloads were not ours%s\n",
			policy, mode, r.lost, o->cfg.jobs, r.bad,
			r.broker_died ? ", and the broker died"
			: r.timed_out ? ", and the run did not complete in time" : "");
		return -1;
	}
	return 0;
}

static int memory(const struct opts *o)
{
	const char *policy = "always";
	cueqd_proc b = { 0 };
	struct memory_result m;
	long grown;
	int rc;

	for (int i = 0; i < N_POLICIES; i++) {
		if (o->policy[i]) {
			policy = all_policies[i];
			break;
		}
	}
	fprintf(stderr, "cueq-bench: memory of %zu pending jobs, fsync %s ...\n", o->memory,
		policy);
	if (brokerproc_start(&b, o->cueqd, policy) != 0)
		return -1;
	rc = run_memory(b.url, b.pid, o->memory, o->cfg.payload, o->cfg.queue, &m);
	if (brokerproc_stop(&b) != 0)
		rc = -1;
	if (rc != 0)
		return -1;
	grown = m.rss_after_kb - m.rss_before_kb;
	printf("cueq-bench --memory: %zu pending jobs of %zu B pushed with one cueq_pusher, no "
	       "workers; broker VmRSS after minus before\n\n",
	       o->memory, o->cfg.payload);
	printf("| fsync | pending jobs | RSS before MiB | RSS halfway MiB | RSS after MiB "
	       "| peak RSS MiB | bytes per pending job | bytes per job, 2nd half | push s "
	       "| pushes/s |\n");
	printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	printf("| %s | %zu | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.2f | %.0f |\n", policy,
	       m.ready, (double)m.rss_before_kb / 1024.0, (double)m.rss_half_kb / 1024.0,
	       (double)m.rss_after_kb / 1024.0, (double)m.hwm_kb / 1024.0,
	       (double)grown * 1024.0 / (double)o->memory,
	       (double)(m.rss_after_kb - m.rss_half_kb) * 1024.0 /
		       (double)(o->memory - o->memory / 2),
	       m.push_secs, m.push_secs > 0 ? (double)o->memory / m.push_secs : 0);
	if (m.errors > 0 || m.ready != o->memory) {
		fprintf(stderr, "cueq-bench: FAILED: %zu pushes refused; the broker reports %zu "
				"pending jobs, not %zu\n",
			m.errors, m.ready, o->memory);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.cfg = { .producers = 4, .workers = 4, .concurrency = 4, .jobs = 20000,
			 .payload = 100, .timeout_s = 600, .queue = "bench" },
		.policy = { true, true, true },
		.mode = { true, true },
	};
	int failed = 0;

	if (parse_args(argc, argv, &o) != 0) {
		usage(stderr);
		return 2;
	}
	if (o.cueqd[0] == '\0' && brokerproc_default_path(o.cueqd, sizeof(o.cueqd)) != 0) {
		fprintf(stderr, "cueq-bench: cannot tell where this program is; pass --cueqd\n");
		return 2;
	}
	if (o.memory > 0)
		return memory(&o) == 0 ? 0 : 1;
	print_header(&o);
	for (int p = 0; p < N_POLICIES; p++)
		for (int m = 0; m < N_MODES; m++)
			if (o.policy[p] && o.mode[m] &&
			    run_one(&o, all_policies[p], all_modes[m]) != 0)
				failed++;
	if (failed > 0)
		fprintf(stderr, "cueq-bench: %d run(s) failed\n", failed);
	return failed > 0 ? 1 : 0;
}
