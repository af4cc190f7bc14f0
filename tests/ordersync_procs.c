/*
 * ordersync_procs.c - worker processes for test_ordersync: start with a
 * log file and an environment, SIGKILL, stop gracefully, and clean up the
 * orphans a killed worker leaves (a `cueq work` command still running, a
 * fake-API call in flight).
 *
 * Every process started here dies with the test (PR_SET_PDEATHSIG).  The
 * grandchildren of a killed worker are not ours to start with; as a child
 * subreaper the test inherits them and waits for them (bounded) at the end,
 * so no test leaves processes behind.  Strays are found in /proc by parent
 * pid, and only those are waited for: the broker, also our child, is left
 * to the harness.
 */
#include "ordersync_util.h"
#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_STRAYS 256

pid_t os_spawn(char *const argv[], char *const env_extra[], const char *log_path)
{
	char **env = th_make_env(env_extra);
	int logfd;
	pid_t pid;

	if (env == NULL)
		return -1;
	logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0) {
		fprintf(stderr, "ordersync: cannot open %s: %s\n", log_path, strerror(errno));
		free(env);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execve(argv[0], argv, env);
		_exit(127);
	}
	if (pid < 0)
		fprintf(stderr, "ordersync: fork: %s\n", strerror(errno));
	close(logfd);
	free(env);
	return pid;
}

void os_kill9(pid_t pid)
{
	int status;

	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

int os_stop(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = th_now_ms() + timeout_ms;

	*status = 0;
	kill(pid, SIGTERM);
	while (th_now_ms() < deadline) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return 0;
		th_sleep_ms(10);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return -1;
}

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
		os_kill9(strays[i]);
		killed++;
	}
	return killed;
}

void os_dump_tail(const char *path, size_t bytes)
{
	char *buf = malloc(bytes + 1);
	FILE *f = fopen(path, "r");

	if (f != NULL && buf != NULL) {
		fseek(f, 0, SEEK_END);
		long size = ftell(f);
		fseek(f, size > (long)bytes ? size - (long)bytes : 0, SEEK_SET);
		size_t n = fread(buf, 1, bytes, f);
		buf[n] = '\0';
		fprintf(stderr, "---- end of %s ----\n%s\n----\n", path, buf);
	}
	if (f != NULL)
		fclose(f);
	free(buf);
}
