/*
 * compare_proc.c - CPU time and memory of a server and the processes it
 * forked, from /proc.
 *
 * beanstalkd, Redis and cueqd are one process each; PostgreSQL is a
 * postmaster with a backend per connection and helpers (WAL writer,
 * checkpointer, autovacuum).  So a server's CPU time is that of the whole
 * tree: every live process's utime + stime, plus cutime + cstime, which
 * hold the children already reaped (a backend that exited, an autovacuum
 * worker).  Memory of a tree is the sum of each process's Pss, which
 * shares the common shared_buffers out instead of counting them per
 * process.
 */
#include "compare.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pstat {
	pid_t pid, ppid;
	unsigned long long ticks; /* utime + stime + cutime + cstime */
};

static int read_pstat(pid_t pid, struct pstat *out)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	long cut, cst;
	int ppid;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command may hold spaces and parentheses: count from the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	if (sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld", &ppid,
		   &ut, &st, &cut, &cst) != 5)
		return -1;
	out->pid = pid;
	out->ppid = ppid;
	out->ticks = ut + st + (unsigned long long)(cut > 0 ? cut : 0) +
		     (unsigned long long)(cst > 0 ? cst : 0);
	return 0;
}

/* pid and its live descendants, into *out (malloc'd); returns the count. */
static size_t tree(pid_t root, struct pstat **out)
{
	struct pstat *all = NULL, *mine;
	size_t n = 0, cap = 0, m = 0;
	struct dirent *e;
	DIR *d = opendir("/proc");

	*out = NULL;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		struct pstat ps;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		if (read_pstat((pid_t)atoi(e->d_name), &ps) != 0)
			continue;
		if (n == cap) {
			struct pstat *g = realloc(all, (cap = cap ? cap * 2 : 256) * sizeof(*all));
			if (g == NULL)
				break;
			all = g;
		}
		all[n++] = ps;
	}
	closedir(d);
	mine = calloc(n ? n : 1, sizeof(*mine));
	if (mine == NULL) {
		free(all);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (all[i].pid == root)
			mine[m++] = all[i];
	/* Descendants: whoever's parent is already in, until nothing changes. */
	for (bool grew = m > 0; grew;) {
		grew = false;
		for (size_t i = 0; i < n; i++) {
			bool in = false, parent_in = false;

			for (size_t k = 0; k < m; k++) {
				in = in || mine[k].pid == all[i].pid;
				parent_in = parent_in || mine[k].pid == all[i].ppid;
			}
			if (!in && parent_in) {
				mine[m++] = all[i];
				grew = true;
			}
		}
	}
	free(all);
	*out = mine;
	return m;
}

double tree_cpu_s(pid_t pid)
{
	struct pstat *t;
	size_t n = tree(pid, &t);
	unsigned long long ticks = 0;

	for (size_t i = 0; i < n; i++)
		ticks += t[i].ticks;
	free(t);
	return n ? (double)ticks / (double)sysconf(_SC_CLK_TCK) : -1;
}

static long pss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Pss:", 4) == 0) {
			kb = strtol(line + 4, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

long tree_pss_kb(pid_t pid)
{
	struct pstat *t;
	size_t n = tree(pid, &t);
	long sum = 0;

	for (size_t i = 0; i < n; i++) {
		long kb = pss_kb(t[i].pid);
		if (kb > 0)
			sum += kb;
	}
	free(t);
	return n ? sum : -1;
}

pid_t cmp_server_pid(const struct cmp_cfg *cfg)
{
	char line[32];
	FILE *f;
	long v;

	if (cfg->pid > 0 || cfg->pid_file == NULL)
		return cfg->pid;
	if ((f = fopen(cfg->pid_file, "r")) == NULL)
		return 0;
	v = fgets(line, sizeof(line), f) != NULL ? strtol(line, NULL, 10) : 0;
	fclose(f);
	return v > 0 ? (pid_t)v : 0;
}
