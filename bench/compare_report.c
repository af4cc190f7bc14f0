/*
 * compare_report.c - cueq-compare --report RAW.csv --out DIR: medians over
 * the rounds of every (workload, server) in the raw rows, as markdown
 * tables on stdout (also DIR/tables.md), DIR/summary.csv, and the
 * jobs/s per server per workload in DIR/plot.dat with DIR/plot.gp to draw
 * it (gnuplot plot.gp -> compare.png).
 *
 * Rows whose status is not "ok" or "partial" are left out of the medians
 * and listed under the tables.  Each cueq row gets its ratio to each peer
 * row of the same workload: cueq jobs/s / peer jobs/s (restart: cueq
 * seconds / peer seconds, so there below 1 is better).
 */
#include "compare.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 32
#define MAX_ROWS 4096
#define FIELD 160

struct row {
	char f[MAX_COLS][FIELD];
	int n;
};

static struct row *rows;
static size_t n_rows;
static char head[MAX_COLS][FIELD];
static int n_head;

static const struct {
	const char *id, *name, *short_name;
} known[] = {
	{ "beanstalkd-f0", "beanstalkd, binlog fsync every write (-f0)", "beanstalkd -f0" },
	{ "beanstalkd-mem", "beanstalkd in memory", "beanstalkd mem" },
	{ "redis-always", "Redis streams, AOF always", "Redis always" },
	{ "redis-everysec", "Redis streams, AOF everysec", "Redis everysec" },
	{ "postgres", "PostgreSQL SKIP LOCKED, synchronous_commit on", "PostgreSQL" },
	{ "cueq-always-op", "cueq --fsync always, one request per op", "cueq always op" },
	{ "cueq-always-sdk", "cueq --fsync always, SDK pusher + worker", "cueq always SDK" },
	{ "cueq-never-op", "cueq --fsync never, one request per op", "cueq never op" },
	{ "cueq-never-sdk", "cueq --fsync never, SDK pusher + worker", "cueq never SDK" },
	{ "cueq-always", "cueq --fsync always", "cueq always" },
	{ "cueq-never", "cueq --fsync never", "cueq never" },
};
#define N_KNOWN (sizeof(known) / sizeof(*known))

static const struct {
	const char *id, *title;
} workloads[] = {
	{ "single", "(a) 1 client, one job at a time: push, claim, ack in sequence" },
	{ "capped", "(b) producers + workers, producers held to the backlog cap" },
	{ "uncapped", "(c) producers + workers, producers never wait" },
	{ "drain", "(d) workers drain a pre-filled backlog" },
	{ "restart", "(e) kill -9 with the backlog pending, start again: time to the first claim" },
};
#define N_WL (sizeof(workloads) / sizeof(*workloads))

/* The workload ids of the rows ("drain@100000": a base and a job count),
 * in the order of workloads[], then by count. */
static char wl_ids[64][FIELD];
static size_t n_wl_ids;

static int wl_base(const char *id, long *count)
{
	size_t len = strcspn(id, "@");

	*count = id[len] == '@' ? strtol(id + len + 1, NULL, 10) : 0;
	for (size_t i = 0; i < N_WL; i++)
		if (strlen(workloads[i].id) == len && strncmp(workloads[i].id, id, len) == 0)
			return (int)i;
	return (int)N_WL;
}

static int wl_order(const void *a, const void *b)
{
	long ca, cb;
	int ba = wl_base(a, &ca), bb = wl_base(b, &cb);

	if (ba != bb)
		return ba - bb;
	if (ca != cb)
		return ca < cb ? -1 : 1;
	return strcmp(a, b);
}

static void collect_workloads(void);
static const char *display(const char *id, bool short_name)
{
	for (size_t i = 0; i < N_KNOWN; i++)
		if (strcmp(known[i].id, id) == 0)
			return short_name ? known[i].short_name : known[i].name;
	return id;
}

static int col(const char *name)
{
	for (int i = 0; i < n_head; i++)
		if (strcmp(head[i], name) == 0)
			return i;
	return -1;
}

static const char *get(const struct row *r, const char *name)
{
	int c = col(name);

	return c >= 0 && c < r->n ? r->f[c] : "";
}

static int split(char *line, char out[][FIELD])
{
	int n = 0;
	char *s = line, *comma;

	line[strcspn(line, "\r\n")] = '\0';
	for (;;) {
		comma = strchr(s, ',');
		if (comma != NULL)
			*comma = '\0';
		if (n < MAX_COLS)
			snprintf(out[n++], FIELD, "%s", s);
		if (comma == NULL)
			return n;
		s = comma + 1;
	}
}

static int load(const char *path)
{
	char line[4096];
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		perror(path);
		return -1;
	}
	rows = calloc(MAX_ROWS, sizeof(*rows));
	if (rows == NULL) {
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "round,", 6) == 0) {
			n_head = split(line, head);
			continue;
		}
		if (line[0] == '\n' || line[0] == '\0' || n_rows == MAX_ROWS)
			continue;
		rows[n_rows].n = split(line, rows[n_rows].f);
		n_rows++;
	}
	fclose(f);
	if (n_head == 0) {
		fprintf(stderr, "cueq-compare: %s has no header line\n", path);
		return -1;
	}
	return 0;
}

static bool row_ok(const struct row *r)
{
	const char *s = get(r, "status");

	return strcmp(s, "ok") == 0 || strncmp(s, "partial", 7) == 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of column name over the ok rows of (wl, server); -1 if none. */
static double median(const char *wl, const char *server, const char *name, int *count)
{
	double v[MAX_ROWS];
	size_t n = 0;

	for (size_t i = 0; i < n_rows; i++) {
		const struct row *r = &rows[i];
		const char *s;

		if (strcmp(get(r, "workload"), wl) != 0 || strcmp(get(r, "server"), server) != 0 ||
		    !row_ok(r))
			continue;
		s = get(r, name);
		if (*s != '\0')
			v[n++] = strtod(s, NULL);
	}
	if (count != NULL)
		*count = (int)n;
	if (n == 0)
		return -1;
	qsort(v, n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int rounds(const char *wl, const char *server, bool ok)
{
	int n = 0;

	for (size_t i = 0; i < n_rows; i++)
		if (strcmp(get(&rows[i], "workload"), wl) == 0 &&
		    strcmp(get(&rows[i], "server"), server) == 0 && row_ok(&rows[i]) == ok)
			n++;
	return n;
}

/* Servers in display order: the known ones, then others as they came. */
static size_t servers(const char *wl, const char *out[], size_t max)
{
	size_t n = 0;

	for (size_t k = 0; k < N_KNOWN && n < max; k++)
		for (size_t i = 0; i < n_rows; i++)
			if ((wl == NULL || strcmp(get(&rows[i], "workload"), wl) == 0) &&
			    strcmp(get(&rows[i], "server"), known[k].id) == 0) {
				out[n++] = known[k].id;
				break;
			}
	for (size_t i = 0; i < n_rows && n < max; i++) {
		const char *s = get(&rows[i], "server");
		bool seen = false;

		if (wl != NULL && strcmp(get(&rows[i], "workload"), wl) != 0)
			continue;
		for (size_t k = 0; k < n; k++)
			seen = seen || strcmp(out[k], s) == 0;
		if (!seen)
			out[n++] = s;
	}
	return n;
}

static void collect_workloads(void)
{
	n_wl_ids = 0;
	for (size_t i = 0; i < n_rows; i++) {
		const char *w = get(&rows[i], "workload");
		bool seen = false;

		for (size_t k = 0; k < n_wl_ids; k++)
			seen = seen || strcmp(wl_ids[k], w) == 0;
		if (!seen && n_wl_ids < sizeof(wl_ids) / sizeof(*wl_ids))
			snprintf(wl_ids[n_wl_ids++], FIELD, "%s", w);
	}
	qsort(wl_ids, n_wl_ids, sizeof(*wl_ids), wl_order);
}

static bool is_cueq(const char *id)
{
	return strncmp(id, "cueq", 4) == 0;
}

/* Thousands separated, no decimals. */
static void fmt_rate(char *buf, size_t len, double v)
{
	char digits[32];
	size_t n, o = 0;

	if (v < 0) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(digits, sizeof(digits), "%.0f", v);
	n = strlen(digits);
	for (size_t i = 0; i < n && o + 2 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
}

static void fmt(char *buf, size_t len, const char *f, double v)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, f, v);
}

static void pair(char *buf, size_t len, double a, double b)
{
	if (a < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2f / %.2f", a, b);
}

static void out2(FILE *a, FILE *b, const char *fmtstr, ...) __attribute__((format(printf, 3, 4)));
static void out2(FILE *a, FILE *b, const char *fmtstr, ...)
{
	va_list ap;

	va_start(ap, fmtstr);
	vfprintf(a, fmtstr, ap);
	va_end(ap);
	if (b != NULL) {
		va_start(ap, fmtstr);
		vfprintf(b, fmtstr, ap);
		va_end(ap);
	}
}

static void table(FILE *md, const char *wl)
{
	const char *srv[64], *peers[64];
	size_t n = servers(wl, srv, 64), np = 0;
	long count;
	int base = wl_base(wl, &count);
	bool restart = base < (int)N_WL && strcmp(workloads[base].id, "restart") == 0;
	bool uncapped = strcmp(wl, "uncapped") == 0;
	const char *key = restart ? "restart_s" : "jobs_per_s";
	int cnt;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (!is_cueq(srv[i]) && median(wl, srv[i], key, NULL) > 0)
			peers[np++] = srv[i];
	if (base == (int)N_WL)
		out2(stdout, md, "\n### %s\n\n", wl);
	else if (count > 0)
		out2(stdout, md, "\n### %s: %ld jobs\n\n", workloads[base].title, count);
	else
		out2(stdout, md, "\n### %s\n\n", workloads[base].title);
	if (restart)
		out2(stdout, md, "| server / mode | first claim after restart s | jobs pending "
				 "| server peak RSS MiB | rounds");
	else
		out2(stdout, md, "| server / mode | jobs/s |%s push p50 / p99 ms | claim p50 / p99 ms "
				 "| ack p50 / p99 ms | push->ack p50 ms | server CPU µs/job "
				 "| server peak RSS MiB | rounds",
		     uncapped ? " producers jobs/s | workers acks/s while pushing |" : "");
	for (size_t k = 0; k < np; k++)
		out2(stdout, md, " | vs %s", display(peers[k], true));
	out2(stdout, md, " |\n|---|");
	for (size_t k = 0; k < (restart ? 4u : uncapped ? 10u : 8u) + np; k++)
		out2(stdout, md, "--:|");
	out2(stdout, md, "\n");
	for (size_t i = 0; i < n; i++) {
		char a[48], b[48], c[48], d[48], e[48], g[48], h[48], x[48], y[48];
		double mine = median(wl, srv[i], key, &cnt);
		int bad = rounds(wl, srv[i], false);

		out2(stdout, md, "| %s |", display(srv[i], false));
		if (restart) {
			fmt(a, sizeof(a), "%.2f", mine);
			fmt_rate(b, sizeof(b), median(wl, srv[i], "jobs", NULL));
			fmt(c, sizeof(c), "%.1f", median(wl, srv[i], "peak_rss_mib", NULL));
			out2(stdout, md, " %s | %s | %s |", a, b, c);
		} else {
			fmt_rate(a, sizeof(a), mine);
			pair(b, sizeof(b), median(wl, srv[i], "push_p50_ms", NULL),
			     median(wl, srv[i], "push_p99_ms", NULL));
			pair(c, sizeof(c), median(wl, srv[i], "claim_p50_ms", NULL),
			     median(wl, srv[i], "claim_p99_ms", NULL));
			pair(d, sizeof(d), median(wl, srv[i], "ack_p50_ms", NULL),
			     median(wl, srv[i], "ack_p99_ms", NULL));
			fmt(e, sizeof(e), "%.2f", median(wl, srv[i], "e2e_p50_ms", NULL));
			fmt(g, sizeof(g), "%.0f", median(wl, srv[i], "cpu_us_per_job", NULL));
			fmt(h, sizeof(h), "%.1f", median(wl, srv[i], "peak_rss_mib", NULL));
			out2(stdout, md, " %s |", a);
			if (uncapped) {
				fmt_rate(x, sizeof(x), median(wl, srv[i], "push_rate", NULL));
				fmt_rate(y, sizeof(y),
					 median(wl, srv[i], "ack_rate_while_pushing", NULL));
				out2(stdout, md, " %s | %s |", x, y);
			}
			out2(stdout, md, " %s | %s | %s | %s | %s | %s |", b, c, d, e, g, h);
		}
		if (bad > 0)
			out2(stdout, md, " %d (%d FAILED) |", cnt, bad);
		else
			out2(stdout, md, " %d |", cnt);
		for (size_t k = 0; k < np; k++) {
			double theirs = median(wl, peers[k], key, NULL);

			if (is_cueq(srv[i]) && mine > 0 && theirs > 0)
				out2(stdout, md, " %.2fx |", mine / theirs);
			else
				out2(stdout, md, " |");
		}
		out2(stdout, md, "\n");
	}
	if (np > 0 && restart)
		out2(stdout, md, "\nvs PEER: this row's seconds / PEER's seconds (below 1: faster).\n");
	else if (np > 0)
		out2(stdout, md, "\nvs PEER: this row's jobs/s / PEER's jobs/s.");
	if (!restart)
		out2(stdout, md, "%sSDK rows: push is add -> result; push->ack is push -> handler "
				 "(the coalesced ack follows).\n",
		     np > 0 ? "  " : "\n");
}

static void summary_csv(const char *dir)
{
	static const char *const cols[] = { "jobs",
					    "secs",
					    "jobs_per_s",
					    "push_rate",
					    "ack_rate_while_pushing",
					    "push_p50_ms",
					    "push_p99_ms",
					    "claim_p50_ms",
					    "claim_p99_ms",
					    "ack_p50_ms",
					    "ack_p99_ms",
					    "e2e_p50_ms",
					    "e2e_p99_ms",
					    "cpu_us_per_job",
					    "peak_rss_mib",
					    "restart_s" };
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/summary.csv", dir);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		return;
	}
	fprintf(f, "workload,server,rounds_ok,rounds_failed");
	for (size_t c = 0; c < sizeof(cols) / sizeof(*cols); c++)
		fprintf(f, ",%s", cols[c]);
	fprintf(f, "\n");
	for (size_t w = 0; w < n_wl_ids; w++) {
		const char *srv[64];
		size_t n = servers(wl_ids[w], srv, 64);

		for (size_t i = 0; i < n; i++) {
			fprintf(f, "%s,%s,%d,%d", wl_ids[w], srv[i], rounds(wl_ids[w], srv[i], true),
				rounds(wl_ids[w], srv[i], false));
			for (size_t c = 0; c < sizeof(cols) / sizeof(*cols); c++) {
				double v = median(wl_ids[w], srv[i], cols[c], NULL);
				if (v < 0)
					fprintf(f, ",");
				else
					fprintf(f, ",%g", v);
			}
			fprintf(f, "\n");
		}
	}
	fclose(f);
}

/* Servers with a jobs/s in some workload other than restart. */
static size_t plotted(const char *out[], size_t max)
{
	const char *all[64];
	size_t n = servers(NULL, all, 64), k = 0;

	for (size_t i = 0; i < n && k < max; i++)
		for (size_t w = 0; w < n_wl_ids; w++)
			if (strncmp(wl_ids[w], "restart", 7) != 0 &&
			    median(wl_ids[w], all[i], "jobs_per_s", NULL) > 0) {
				out[k++] = all[i];
				break;
			}
	return k;
}

static void plot_files(const char *dir)
{
	const char *srv[64];
	size_t n = plotted(srv, 64);
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/plot.dat", dir);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		return;
	}
	fprintf(f, "workload");
	for (size_t i = 0; i < n; i++)
		fprintf(f, " \"%s\"", display(srv[i], true));
	fprintf(f, "\n");
	for (size_t w = 0; w < n_wl_ids; w++) {
		long count;
		int base = wl_base(wl_ids[w], &count);

		if (strncmp(wl_ids[w], "restart", 7) == 0)
			continue;
		if (base < (int)N_WL && count > 0)
			fprintf(f, "\"(%c) %s %ld\"", 'a' + base, workloads[base].id, count);
		else if (base < (int)N_WL)
			fprintf(f, "\"(%c) %s\"", 'a' + base, workloads[base].id);
		else
			fprintf(f, "\"%s\"", wl_ids[w]);
		for (size_t i = 0; i < n; i++) {
			double v = median(wl_ids[w], srv[i], "jobs_per_s", NULL);
			if (v > 0)
				fprintf(f, " %.1f", v);
			else
				fprintf(f, " ?");
		}
		fprintf(f, "\n");
	}
	fclose(f);
	snprintf(path, sizeof(path), "%s/plot.gp", dir);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		return;
	}
	fprintf(f, "# gnuplot plot.gp (in this directory) draws compare.png from plot.dat\n"
		   "set terminal pngcairo size 1400,720 noenhanced font ',11'\n"
		   "set output 'compare.png'\n"
		   "set title 'jobs/s per server and workload, median over the rounds (log scale)'\n"
		   "set style data histograms\n"
		   "set style histogram clustered gap 1\n"
		   "set style fill solid 0.85 border -1\n"
		   "set boxwidth 0.9\n"
		   "set logscale y\n"
		   "set yrange [100:*]\n"
		   "set grid ytics\n"
		   "set ylabel 'jobs/s'\n"
		   "set key outside right top\n"
		   "set datafile missing '?'\n"
		   "# peers in warm colours and grey, cueq in blues and greens\n"
		   "set linetype 1 lc rgb '#8c510a'\n"
		   "set linetype 2 lc rgb '#d8b365'\n"
		   "set linetype 3 lc rgb '#b2182b'\n"
		   "set linetype 4 lc rgb '#ef8a62'\n"
		   "set linetype 5 lc rgb '#999999'\n"
		   "set linetype 6 lc rgb '#2166ac'\n"
		   "set linetype 7 lc rgb '#67a9cf'\n"
		   "set linetype 8 lc rgb '#1b7837'\n"
		   "set linetype 9 lc rgb '#7fbf7b'\n"
		   "plot for [i=2:%zu] 'plot.dat' using i:xtic(1) title columnheader(i)\n",
		n + 1);
	fclose(f);
}

int cmp_report(const char *raw_csv, const char *out_dir)
{
	char path[4096];
	FILE *md;
	bool any_failed = false;

	if (load(raw_csv) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/tables.md", out_dir);
	md = fopen(path, "w");
	if (md == NULL)
		perror(path);
	collect_workloads();
	for (size_t w = 0; w < n_wl_ids; w++)
		table(md, wl_ids[w]);
	for (size_t i = 0; i < n_rows; i++) {
		if (row_ok(&rows[i]))
			continue;
		if (!any_failed)
			out2(stdout, md, "\nFAILED runs (left out of the medians):\n");
		any_failed = true;
		out2(stdout, md, "- round %s, %s, %s: %s\n", get(&rows[i], "round"),
		     get(&rows[i], "workload"), get(&rows[i], "server"), get(&rows[i], "status"));
	}
	if (md != NULL)
		fclose(md);
	summary_csv(out_dir);
	plot_files(out_dir);
	free(rows);
	return 0;
}
