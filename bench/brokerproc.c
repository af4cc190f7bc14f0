/*
 * brokerproc.c - the benchmark's settings for its private cueqd (see
 * brokerproc.h): the --fsync flag, an SDK ping, SIGTERM if the benchmark
 * dies, and what to say when the broker did not last the run; plus the
 * /proc readers of the broker's memory and CPU time.
 *
 * The temp dir, the port (tried again on a clash) and the bounded waits
 * are cueqd_proc.c's, shared with the test suite.
 */
#include "brokerproc.h"

#include <cueq/cueq.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int brokerproc_default_path(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash == NULL)
		return -1;
	*slash = '\0';
	if ((size_t)snprintf(buf, len, "%s/cueqd", exe) >= len)
		return -1;
	return 0;
}

/* 1: a broker at url answered a ping. */
static int sdk_ping(const char *url, void *arg)
{
	cueq_client_opts o = {
		.connect_timeout_ms = 300, .request_timeout_ms = 1000, .retry_deadline_ms = 1000
	};
	cueq_client *c = NULL;
	int ok = 0;

	(void)arg;
	if (cueq_connect(url, &o, &c) == CUEQ_OK) {
		ok = cueq_ping(c, NULL) == CUEQ_OK;
		cueq_close(c);
	}
	return ok;
}

int brokerproc_start(cueqd_proc *b, const char *path, const char *policy)
{
	if (access(path, X_OK) != 0) {
		fprintf(stderr, "cueq-bench: cannot run the broker %s: %s (build it, or pass "
				"--cueqd PATH)\n",
			path, strerror(errno));
		return -1;
	}
	b->path = path;
	b->tag = "cueq-bench";
	b->extra[0] = "--fsync";
	b->extra[1] = policy;
	b->n_extra = 2;
	b->death_signal = SIGTERM; /* the broker must not outlive the benchmark */
	b->ready_ms = 15000;
	b->ping = sdk_ping;
	if (cueqd_start(b) == 0)
		return 0;
	fprintf(stderr, "cueq-bench: could not start %s --fsync %s\n", path, policy);
	cueqd_cleanup(b);
	return -1;
}

int brokerproc_stop(cueqd_proc *b)
{
	char how[96];
	int status = 0, rc = 0;
	pid_t pid = b->pid;

	if (pid > 0) {
		if (cueqd_wait(b, 0, &status) == 0) {
			proc_describe(status, how, sizeof(how));
			fprintf(stderr, "cueq-bench: BROKER DIED during the run (pid %d, %s)\n",
				(int)pid, how);
			cueqd_dump_log(b);
			rc = -1;
		} else if (cueqd_stop(b, 10000, &status) != 0) {
			rc = -1;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			proc_describe(status, how, sizeof(how));
			fprintf(stderr, "cueq-bench: the broker ended with %s on SIGTERM\n", how);
			cueqd_dump_log(b);
			rc = -1;
		}
	}
	cueqd_cleanup(b);
	return rc;
}

bool proc_alive(pid_t pid)
{
	char path[64], buf[512], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

long proc_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			kb = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces: fields count from the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	/* After ")": state(3) ... utime(14) stime(15). */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
