/*
 * brokerproc.c - start, watch and stop a private cueqd (see brokerproc.h).
 *
 * The port is found by binding 127.0.0.1:0 and closing the socket again;
 * another process could take it in between, so a start whose broker exits
 * at once is tried again on a new port.  Readiness is a ping through the
 * public SDK, the same path the benchmark then uses.
 */
#define _XOPEN_SOURCE 700
#include "brokerproc.h"
#include "latency.h"

#include <cueq/cueq.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void print_log_tail(const char *log)
{
	char buf[2048];
	FILE *f = fopen(log, "r");
	long size;
	size_t n;

	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	if (n > 0)
		fprintf(stderr, "--- last lines of %s ---\n%s%s---\n", log, buf,
			buf[n - 1] == '\n' ? "" : "\n");
}

static pid_t spawn(const char *path, const char *data, const char *url, const char *policy,
		   const char *log)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* Child: the broker must not outlive the benchmark. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	execl(path, path, "--data", data, "--listen", url, "--fsync", policy, (char *)NULL);
	fprintf(stderr, "cannot run %s: %s\n", path, strerror(errno));
	_exit(127);
}

/* 1: answered, 0: not yet. */
static int ping_once(const char *url)
{
	cueq_client_opts o = {
		.connect_timeout_ms = 300, .request_timeout_ms = 1000, .retry_deadline_ms = 1000
	};
	cueq_client *c = NULL;
	int ok = 0;

	if (cueq_connect(url, &o, &c) == CUEQ_OK) {
		ok = cueq_ping(c, NULL) == CUEQ_OK;
		cueq_close(c);
	}
	return ok;
}

/* 0: ready; 1: the child exited (maybe lost the port); -1: timed out. */
static int wait_ready(struct brokerproc *b)
{
	uint64_t deadline = now_ns() + 15000000000ull;
	int status;

	while (now_ns() < deadline) {
		if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
			b->pid = 0;
			return 1;
		}
		if (ping_once(b->url))
			return 0;
		sleep_ms(50);
	}
	return -1;
}

int brokerproc_start(struct brokerproc *b, const char *path, const char *policy)
{
	char data[PATH_MAX + 8];
	int tries, rc = -1;

	if (access(path, X_OK) != 0) {
		fprintf(stderr, "cueq-bench: cannot run the broker %s: %s (build it, or pass "
				"--cueqd PATH)\n",
			path, strerror(errno));
		return -1;
	}
	snprintf(b->dir, sizeof(b->dir), "%s/cueq-bench-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(b->dir) == NULL) {
		fprintf(stderr, "cueq-bench: cannot make a temp dir %s: %s\n", b->dir,
			strerror(errno));
		b->dir[0] = '\0';
		return -1;
	}
	snprintf(data, sizeof(data), "%s/data", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/cueqd.log", b->dir);
	for (tries = 0; tries < 3; tries++) {
		int port = free_port();

		if (port < 0) {
			fprintf(stderr, "cueq-bench: cannot find a free loopback port: %s\n",
				strerror(errno));
			break;
		}
		snprintf(b->url, sizeof(b->url), "tcp://127.0.0.1:%d", port);
		b->pid = spawn(path, data, b->url, policy, b->log);
		if (b->pid < 0) {
			fprintf(stderr, "cueq-bench: fork failed: %s\n", strerror(errno));
			b->pid = 0;
			break;
		}
		rc = wait_ready(b);
		if (rc == 0)
			return 0;
		if (rc < 0) {
			fprintf(stderr, "cueq-bench: %s did not answer a ping on %s within 15 s\n",
				path, b->url);
			break;
		}
		/* Exited: maybe the port was taken meanwhile; try another. */
	}
	fprintf(stderr, "cueq-bench: could not start %s --fsync %s\n", path, policy);
	print_log_tail(b->log);
	brokerproc_stop(b);
	return -1;
}

/* Describes an exit status: "exit status 1", "signal 11 (Segmentation fault)". */
static void describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
			 WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "status 0x%x", (unsigned)status);
}

int brokerproc_stop(struct brokerproc *b)
{
	char how[96];
	int status = 0, rc = 0;

	if (b->pid > 0) {
		uint64_t deadline = now_ns() + 10000000000ull;

		if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
			describe(status, how, sizeof(how));
			fprintf(stderr, "cueq-bench: BROKER DIED during the run (pid %d, %s)\n",
				(int)b->pid, how);
			print_log_tail(b->log);
			rc = -1;
		} else {
			kill(b->pid, SIGTERM);
			while (waitpid(b->pid, &status, WNOHANG) == 0) {
				if (now_ns() > deadline) {
					fprintf(stderr, "cueq-bench: broker %d ignored SIGTERM for 10 "
							"s; killing it\n",
						(int)b->pid);
					kill(b->pid, SIGKILL);
					waitpid(b->pid, &status, 0);
					rc = -1;
					break;
				}
				sleep_ms(10);
			}
			if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
				describe(status, how, sizeof(how));
				fprintf(stderr, "cueq-bench: the broker ended with %s on SIGTERM\n",
					how);
				print_log_tail(b->log);
				rc = -1;
			}
		}
		b->pid = 0;
	}
	if (b->dir[0] != '\0') {
		nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		b->dir[0] = '\0';
	}
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
