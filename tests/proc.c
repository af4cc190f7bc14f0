/*
 * proc.c - start, wait for, stop and kill child processes (see proc.h).
 *
 * Everything a child needs is prepared before fork (the environment
 * array, the log descriptor, /dev/null), because tests fork from
 * processes that run threads: between fork and exec the child makes only
 * async-signal-safe calls.  Waits poll waitpid(WNOHANG) against a
 * deadline instead of blocking, so a child stuck in the kernel cannot
 * hang a test past its bound.
 */
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define KILL_WAIT_MS 10000

int64_t proc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void proc_sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

char **proc_make_env(char *const extra[])
{
	size_t n = 0, m = 0, k = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	while (extra != NULL && extra[m] != NULL)
		m++;
	env = calloc(n + m + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool replaced = false;
		for (size_t j = 0; j < m; j++) {
			const char *eq = strchr(extra[j], '=');
			size_t kl = eq ? (size_t)(eq - extra[j]) + 1 : strlen(extra[j]);
			if (strncmp(environ[i], extra[j], kl) == 0)
				replaced = true;
		}
		if (!replaced)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		env[k++] = extra[j];
	env[k] = NULL;
	return env;
}

/* Writes a, b and a newline to stderr from the child (no stdio after fork). */
static void child_say(const char *a, const char *b)
{
	ssize_t ignored;

	ignored = write(2, a, strlen(a));
	ignored = write(2, b, strlen(b));
	ignored = write(2, "\n", 1);
	(void)ignored;
}

/* Makes fd the child's descriptor `to`, open across exec. */
static void give_fd(int fd, int to)
{
	if (fd == to)
		fcntl(fd, F_SETFD, 0);
	else
		dup2(fd, to);
}

/* Between fork and exec: async-signal-safe calls only. */
_Noreturn static void child(char *const argv[], char **env, const proc_opts *o,
			    pid_t parent, const int fds[3], long open_max)
{
	prctl(PR_SET_PDEATHSIG, o->death_signal > 0 ? o->death_signal : SIGKILL);
	if (getppid() != parent) /* the parent ended before prctl */
		_exit(127);
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			give_fd(fds[i], i);
	if (o->nofile > 0) {
		struct rlimit rl = { .rlim_cur = (rlim_t)o->nofile, .rlim_max = (rlim_t)o->nofile };

#ifdef SYS_close_range
		if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
			for (long fd = 3; fd < open_max; fd++)
				close((int)fd);
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			child_say("cannot set RLIMIT_NOFILE for ", argv[0]);
			_exit(127);
		}
	}
	execve(argv[0], argv, env);
	child_say("cannot exec ", argv[0]);
	_exit(127);
}

pid_t proc_spawn(char *const argv[], const proc_opts *o)
{
	static const proc_opts none = { 0 };
	char **env;
	int nul = -1, logfd = -1, fds[3];
	long open_max = sysconf(_SC_OPEN_MAX);
	pid_t pid, parent = getpid();

	if (o == NULL)
		o = &none;
	env = proc_make_env(o->env);
	if (env == NULL) {
		fprintf(stderr, "proc: out of memory for the environment of %s\n", argv[0]);
		return -1;
	}
	if (o->stdio != NULL) {
		memcpy(fds, o->stdio, sizeof(fds));
	} else {
		if (o->log != NULL) {
			logfd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (logfd < 0) {
				fprintf(stderr, "proc: cannot open %s: %s\n", o->log,
					strerror(errno));
				free(env);
				return -1;
			}
		}
		nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		fds[0] = nul, fds[1] = logfd, fds[2] = logfd;
	}
	pid = fork();
	if (pid == 0)
		child(argv, env, o, parent, fds, open_max > 0 ? open_max : 1024);
	if (pid < 0)
		fprintf(stderr, "proc: fork for %s: %s\n", argv[0], strerror(errno));
	if (nul >= 0)
		close(nul);
	if (logfd >= 0)
		close(logfd);
	free(env);
	return pid;
}

int proc_wait(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = proc_now_ms() + timeout_ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "proc: waitpid %d: %s\n", (int)pid, strerror(errno));
			return -1;
		}
		if (proc_now_ms() >= deadline)
			return -1;
		proc_sleep_ms(5);
	}
}

int proc_stop(pid_t pid, int timeout_ms, int *status)
{
	*status = 0;
	kill(pid, SIGTERM);
	if (proc_wait(pid, timeout_ms, status) == 0)
		return 0;
	kill(pid, SIGKILL);
	if (proc_wait(pid, KILL_WAIT_MS, status) != 0)
		fprintf(stderr, "proc: %d did not end %d ms after SIGKILL\n", (int)pid,
			KILL_WAIT_MS);
	return -1;
}

int proc_kill9(pid_t pid)
{
	int status;

	if (pid <= 0)
		return 0;
	kill(pid, SIGKILL);
	if (proc_wait(pid, KILL_WAIT_MS, &status) == 0)
		return 0;
	fprintf(stderr, "proc: %d did not end %d ms after SIGKILL\n", (int)pid, KILL_WAIT_MS);
	return -1;
}

void proc_describe(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "signal %d (%s)%s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, size, "wait status 0x%x", (unsigned)status);
}

void proc_dump_tail(const char *path, size_t bytes)
{
	char *buf = malloc(bytes + 1);
	FILE *f = fopen(path, "r");

	if (f != NULL && buf != NULL) {
		fseek(f, 0, SEEK_END);
		long size = ftell(f);
		fseek(f, size > (long)bytes ? size - (long)bytes : 0, SEEK_SET);
		size_t n = fread(buf, 1, bytes, f);
		buf[n] = '\0';
		if (n == 0)
			fprintf(stderr, "---- %s is empty ----\n", path);
		else
			fprintf(stderr, "---- end of %s ----\n%s%s----\n", path, buf,
				buf[n - 1] == '\n' ? "" : "\n");
	}
	if (f != NULL)
		fclose(f);
	free(buf);
}

int proc_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}
