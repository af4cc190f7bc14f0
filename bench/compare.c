/*
 * compare.c - cueq-compare: one run of one workload against one server,
 * printed as one CSV row; and the report that turns the rows of a whole
 * bench/compare run into markdown tables, a summary CSV and plot data.
 *
 * bench/compare starts each server (fresh data dir, free loopback port),
 * runs this once per workload, stops the server, and calls --report at the
 * end.  The run itself is compare_core.c (one request per operation, any
 * server) or compare_sdk.c (cueq's SDK defaults).
 *
 * Exit status: 0 the run was carried out and every job came back once;
 * 1 it was carried out and something was lost, doubled or refused, or the
 * server died; 2 it could not be carried out (usage, no server).
 */
#include "compare.h"
#include "proc.h"

#include <cueq/cueq.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const workload_names[] = {
	[WL_SINGLE] = "single", [WL_CAPPED] = "capped",	    [WL_UNCAPPED] = "uncapped",
	[WL_DRAIN] = "drain",	[WL_FILL] = "fill",	    [WL_FIRST_CLAIM] = "restart",
};

static void usage(FILE *f)
{
	fputs("usage: cueq-compare --server beanstalkd|redis|postgres|cueq --port N\n"
	      "         --workload single|capped|uncapped|drain|fill|restart [--mode op|sdk]\n"
	      "         [--host 127.0.0.1] [--pid PID | --pid-file FILE] [--pss-tree]\n"
	      "         [--jobs N] [--producers 4] [--workers 4] [--cap 1000] [--payload 100]\n"
	      "         [--max-secs 120] [--lease-ms 30000] [--queue cmp] [--since NS]\n"
	      "         [--groups N] [--group-limit C]   (cueq: jobs over N groups, each\n"
	      "         group limited to C leases at once)\n"
	      "         [--round R] [--label NAME]\n"
	      "       cueq-compare --report RAW.csv --out DIR   (tables, summary, plot data)\n"
	      "       cueq-compare --csv-header | --free-port\n"
	      "One run against a server already listening (bench/compare starts them): prints\n"
	      "one CSV row on stdout, says what went wrong on stderr.  restart: claims from a\n"
	      "server started again at --since (CLOCK_REALTIME ns) until a job comes, then\n"
	      "checks it still holds --jobs jobs.  fill: pushes --jobs jobs and exits.\n",
	      f);
}

static int num(const char *flag, const char *arg, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = arg ? strtod(arg, &end) : 0;
	if (arg == NULL || *arg == '\0' || *end != '\0' || errno || v < min || v > max) {
		fprintf(stderr, "cueq-compare: %s wants a number from %g to %g, not \"%s\"\n", flag,
			min, max, arg ? arg : "");
		return -1;
	}
	*out = v;
	return 0;
}

const char *cmp_csv_header(void)
{
	return "round,workload,server,jobs,secs,jobs_per_s,push_rate,ack_rate_while_pushing,"
	       "push_p50_ms,push_p99_ms,claim_p50_ms,claim_p99_ms,ack_p50_ms,ack_p99_ms,"
	       "e2e_p50_ms,e2e_p99_ms,server_cpu_s,cpu_us_per_job,peak_rss_mib,restart_s,"
	       "lost,dups,errors,status";
}

static void ms(FILE *f, uint64_t ns)
{
	if (ns == CMP_NO_LAT)
		fputs(",", f);
	else
		fprintf(f, ",%.3f", (double)ns / 1e6);
}

static void print_row(const char *round, const char *label, const struct cmp_cfg *c,
		      const struct cmp_result *r, const char *status)
{
	bool restart = c->workload == WL_FIRST_CLAIM;

	printf("%s,%s,%s,%zu", round, workload_names[c->workload], label,
	       restart ? c->jobs : r->acked);
	if (restart)
		printf(",,,,");
	else
		printf(",%.3f,%.1f", r->secs, r->rate);
	if ((c->workload == WL_CAPPED || c->workload == WL_UNCAPPED) && r->push_secs > 0)
		printf(",%.1f,%.1f", r->push_rate, r->ack_rate_push);
	else if (!restart)
		printf(",,");
	ms(stdout, r->push[0]);
	ms(stdout, r->push[1]);
	ms(stdout, r->claim[0]);
	ms(stdout, r->claim[1]);
	ms(stdout, r->ack[0]);
	ms(stdout, r->ack[1]);
	ms(stdout, r->e2e[0]);
	ms(stdout, r->e2e[1]);
	if (restart || r->server_died)
		printf(",,");
	else
		printf(",%.3f,%.1f", r->server_cpu_s, r->cpu_us_per_job);
	if (r->rss_mib > 0)
		printf(",%.1f", r->rss_mib);
	else
		printf(",");
	if (restart)
		printf(",%.3f", r->restart_s);
	else
		printf(",");
	printf(",%zu,%zu,%zu,%s\n", r->lost, r->dups, r->errors + r->bad, status);
	fflush(stdout);
}

static const struct peer *find_peer(const char *name)
{
	if (strcmp(name, "beanstalkd") == 0)
		return &peer_beanstalkd;
	if (strcmp(name, "redis") == 0)
		return &peer_redis;
	if (strcmp(name, "postgres") == 0)
		return &peer_postgres;
	if (strcmp(name, "cueq") == 0)
		return &peer_cueq;
	return NULL;
}

/* Waits until a fresh connection answers a ping. */
static int wait_ready(const struct peer *p, const struct cmp_cfg *cfg, double secs)
{
	uint64_t deadline = now_ns() + (uint64_t)(secs * 1e9);

	for (;;) {
		void *conn;
		int ok = 0;

		cmp_quiet = now_ns() < deadline;
		conn = p->open(cfg);
		if (conn != NULL) {
			ok = p->ping(conn) == 0;
			p->close(conn);
		}
		cmp_quiet = false;
		if (ok)
			return 0;
		if (now_ns() >= deadline) {
			cmp_err("%s on port %d did not answer within %.0f s", p->name, cfg->port, secs);
			return -1;
		}
		sleep_ms(20);
	}
}

int main(int argc, char **argv)
{
	struct cmp_cfg cfg = {
		.host = "127.0.0.1",
		.workload = WL_SINGLE,
		.jobs = 2000,
		.payload = 100,
		.producers = 4,
		.workers = 4,
		.cap = 1000,
		.max_secs = 120,
		.lease_ms = 30000,
		.queue = "cmp",
	};
	const char *round = "1", *label = NULL, *report = NULL, *out = NULL, *mode = "op";
	const struct peer *p = NULL;
	struct cmp_result res;
	bool have_workload = false;
	char status[160];
	double v;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--csv-header") == 0) {
			puts(cmp_csv_header());
			return 0;
		} else if (strcmp(a, "--free-port") == 0) {
			int port = proc_free_port();
			if (port <= 0)
				return 2;
			printf("%d\n", port);
			return 0;
		} else if (strcmp(a, "--pss-tree") == 0) {
			cfg.pss_tree = true;
			continue;
		} else if (next == NULL) {
			fprintf(stderr, "cueq-compare: unknown option or missing value: %s\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--server") == 0) {
			cfg.server = next;
		} else if (strcmp(a, "--mode") == 0) {
			mode = next;
		} else if (strcmp(a, "--host") == 0) {
			cfg.host = next;
		} else if (strcmp(a, "--port") == 0) {
			if (num(a, next, 1, 65535, &v) != 0)
				return 2;
			cfg.port = (int)v;
		} else if (strcmp(a, "--pid") == 0) {
			if (num(a, next, 1, 1e9, &v) != 0)
				return 2;
			cfg.pid = (pid_t)v;
		} else if (strcmp(a, "--pid-file") == 0) {
			cfg.pid_file = next;
		} else if (strcmp(a, "--workload") == 0) {
			size_t k;
			for (k = 0; k < sizeof(workload_names) / sizeof(*workload_names); k++)
				if (strcmp(next, workload_names[k]) == 0)
					break;
			if (k == sizeof(workload_names) / sizeof(*workload_names)) {
				fprintf(stderr, "cueq-compare: unknown workload %s\n", next);
				return 2;
			}
			cfg.workload = (enum cmp_workload)k;
			have_workload = true;
		} else if (strcmp(a, "--jobs") == 0) {
			if (num(a, next, 1, 1e8, &v) != 0)
				return 2;
			cfg.jobs = (size_t)v;
		} else if (strcmp(a, "--producers") == 0) {
			if (num(a, next, 1, 256, &v) != 0)
				return 2;
			cfg.producers = (unsigned)v;
		} else if (strcmp(a, "--workers") == 0) {
			if (num(a, next, 1, 256, &v) != 0)
				return 2;
			cfg.workers = (unsigned)v;
		} else if (strcmp(a, "--cap") == 0) {
			if (num(a, next, 1, 1e9, &v) != 0)
				return 2;
			cfg.cap = (size_t)v;
		} else if (strcmp(a, "--payload") == 0) {
			if (num(a, next, PAYLOAD_HEADER, 65000, &v) != 0)
				return 2;
			cfg.payload = (size_t)v;
		} else if (strcmp(a, "--max-secs") == 0) {
			if (num(a, next, 1, 86400, &cfg.max_secs) != 0)
				return 2;
		} else if (strcmp(a, "--groups") == 0) {
			if (num(a, next, 0, 1e6, &v) != 0)
				return 2;
			cfg.groups = (unsigned)v;
		} else if (strcmp(a, "--group-limit") == 0) {
			if (num(a, next, 0, 100000, &v) != 0)
				return 2;
			cfg.group_limit = (unsigned)v;
		} else if (strcmp(a, "--lease-ms") == 0) {
			if (num(a, next, 1000, 86400000, &v) != 0)
				return 2;
			cfg.lease_ms = (int64_t)v;
		} else if (strcmp(a, "--queue") == 0) {
			cfg.queue = next;
		} else if (strcmp(a, "--since") == 0) {
			cfg.since_ns = strtoll(next, NULL, 10);
		} else if (strcmp(a, "--round") == 0) {
			round = next;
		} else if (strcmp(a, "--label") == 0) {
			label = next;
		} else if (strcmp(a, "--report") == 0) {
			report = next;
		} else if (strcmp(a, "--out") == 0) {
			out = next;
		} else {
			fprintf(stderr, "cueq-compare: unknown option %s (try --help)\n", a);
			return 2;
		}
	}
	if (report != NULL)
		return cmp_report(report, out ? out : ".") == 0 ? 0 : 2;
	if (cfg.server == NULL || (p = find_peer(cfg.server)) == NULL || cfg.port == 0 ||
	    !have_workload) {
		fprintf(stderr, "cueq-compare: need --server (beanstalkd, redis, postgres, cueq), "
				"--port and --workload\n");
		usage(stderr);
		return 2;
	}
	if (strcmp(mode, "sdk") == 0 && p == &peer_cueq) {
		cfg.sdk = true;
	} else if (strcmp(mode, "op") != 0) {
		fprintf(stderr, "cueq-compare: --mode sdk is cueq's alone; op is one request per "
				"operation\n");
		return 2;
	}
	snprintf(cfg.url, sizeof(cfg.url), "tcp://%s:%d", cfg.host, cfg.port);
	if (label == NULL)
		label = cfg.server;
	if (cfg.workload == WL_FIRST_CLAIM) {
		if (cfg.since_ns <= 0) {
			fprintf(stderr, "cueq-compare: restart needs --since NS\n");
			return 2;
		}
		cfg.connect_timeout_ms = 100; /* our loop retries, not the SDK's */
	} else {
		if (wait_ready(p, &cfg, 30) != 0)
			return 2;
		cfg.pid = cmp_server_pid(&cfg);
	}
	fprintf(stderr, "cueq-compare: %s %s: %s, %zu jobs of %zu B\n", label, mode,
		workload_names[cfg.workload], cfg.jobs, cfg.payload);
	rc = cfg.sdk ? cmp_sdk_run(&cfg, &res) : cmp_op_run(p, &cfg, &res);
	if (rc != 0) {
		cmp_err("%s: the %s run could not be carried out", label,
			workload_names[cfg.workload]);
		return 2;
	}
	if (cfg.workload == WL_FILL)
		return 0;
	bool failed = res.lost || res.dups || res.bad || res.errors || res.server_died;
	if (failed) {
		snprintf(status, sizeof(status), "FAIL: %zu lost; %zu delivered twice; %zu errors%s%s",
			 res.lost, res.dups, res.errors + res.bad,
			 res.server_died ? "; server died" : "", res.timed_out ? "; timed out" : "");
		fprintf(stderr, "cueq-compare: %s %s: %s\n", label, workload_names[cfg.workload],
			status);
	} else if (res.timed_out) {
		snprintf(status, sizeof(status), "partial: time limit after %zu of %zu jobs",
			 res.acked, cfg.jobs);
	} else {
		snprintf(status, sizeof(status), "ok");
	}
	print_row(round, label, &cfg, &res, status);
	if (cfg.workload == WL_FIRST_CLAIM)
		fprintf(stderr, "cueq-compare: %s: first claim %.3f s after the restart\n", label,
			res.restart_s);
	else
		fprintf(stderr,
			"cueq-compare: %s: %zu jobs in %.2f s, %.0f jobs/s, server CPU %.0f us/job, "
			"peak RSS %.1f MiB, %s\n",
			label, res.acked, res.secs, res.rate, res.cpu_us_per_job, res.rss_mib, status);
	return failed ? 1 : 0;
}
