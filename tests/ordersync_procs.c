/*
 * ordersync_procs.c - cleaning up after the workers of test_ordersync: the
 * orphans a killed worker leaves (a `cueq work` command still running, a
 * fake-API call in flight).  The workers themselves are started, killed
 * and stopped with proc.h, like every child of the tests.
 *
 * The grandchildren of a killed worker are not ours to start with; as a child
 * subreaper the test inherits them and waits for them (bounded) at the end,
 * so no test leaves processes behind.  Strays are found in /proc by parent
 * pid, and only those are waited for: the broker, also our child, is left
 * to the harness.
 */
#include "ordersync_util.h"
#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_STRAYS 256

void os_become_subreaper(void)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1);
}

/* Children of ours (by /proc/N/stat's ppid) other than keep[]. */
static size_t find_strays(const pid_t *keep, size_t n_keep, pid_t *out, size_t max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t self = getpid();
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && n < max) {
		char path[300], buf[512], *rp;
		int ppid = 0;
		bool kept = false;
		FILE *f;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		/* "pid (comm) state ppid ...": comm may hold spaces and parens. */
		if ((rp = strrchr(buf, ')')) == NULL || sscanf(rp + 1, " %*c %d", &ppid) != 1 ||
		    ppid != self)
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		for (size_t i = 0; i < n_keep; i++)
			kept = kept || keep[i] == pid;
		if (!kept)
			out[n++] = pid;
	}
	closedir(d);
	return n;
}

size_t os_reap_strays(const pid_t *keep, size_t n_keep, int timeout_ms)
{
	int64_t deadline = th_now_ms() + timeout_ms;
	pid_t strays[MAX_STRAYS];
	size_t n, killed = 0;
	int status;

	for (;;) {
		n = find_strays(keep, n_keep, strays, MAX_STRAYS);
		for (size_t i = 0; i < n; i++)
			waitpid(strays[i], &status, WNOHANG);
		if (n == 0)
			return killed;
		if (th_now_ms() > deadline)
			break;
		th_sleep_ms(20);
	}
	for (size_t i = 0; i < n; i++) {
		fprintf(stderr, "ordersync: stray process %d still runs after %d ms: killing it\n",
			(int)strays[i], timeout_ms);
		proc_kill9(strays[i]);
		killed++;
	}
	return killed;
}
