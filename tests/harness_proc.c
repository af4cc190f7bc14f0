/*
 * harness_proc.c - runs the cueq CLI (or any program) as a subprocess with
 * given stdin and extra environment, capturing stdout, stderr and the exit
 * code, with a hard time limit; and a minimal JSON field reader for the
 * CLI's --json lines.
 *
 * stdin is written and both outputs are read through one poll loop, so a
 * child that writes a lot before reading cannot deadlock the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CUEQ_CLI_PATH
#error "CUEQ_CLI_PATH must name the cueq CLI binary (set by tests/CMakeLists.txt)"
#endif

const char th_cli_path[] = CUEQ_CLI_PATH;

/* A pipe whose ends close on exec (pipe2 needs _GNU_SOURCE). */
static int cloexec_pipe(int fd[2])
{
	if (pipe(fd) != 0)
		return -1;
	fcntl(fd[0], F_SETFD, FD_CLOEXEC);
	fcntl(fd[1], F_SETFD, FD_CLOEXEC);
	return 0;
}

struct capture {
	char *buf;
	size_t len, cap;
};

static int grab(int fd, struct capture *c)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n <= 0)
		return n == 0 || (errno != EINTR && errno != EAGAIN) ? -1 : 0;
	if (c->len + (size_t)n + 1 > c->cap) {
		size_t cap = (c->cap ? c->cap * 2 : 8192) + (size_t)n;
		char *b = realloc(c->buf, cap);
		if (b == NULL)
			return -1;
		c->buf = b, c->cap = cap;
	}
	memcpy(c->buf + c->len, tmp, (size_t)n);
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	return 0;
}

static void finish_capture(struct capture *c, char **out, size_t *len)
{
	if (c->buf == NULL)
		c->buf = calloc(1, 1);
	*out = c->buf;
	*len = c->len;
}

int th_run(th_proc *p, const char *stdin_data, int timeout_ms, char *const argv[],
	   char *const env_extra[])
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	struct capture co = { 0 }, ce = { 0 };
	size_t in_len = stdin_data ? strlen(stdin_data) : 0, in_off = 0;
	int64_t deadline = th_now_ms() + timeout_ms;
	int status = 0, rc = -1;
	pid_t pid;

	memset(p, 0, sizeof(*p));
	p->exit_code = -1;
	signal(SIGPIPE, SIG_IGN);
	if (cloexec_pipe(in) || cloexec_pipe(out) || cloexec_pipe(err))
		goto out;
	pid = proc_spawn(argv, &(proc_opts){ .env = env_extra,
					     .stdio = (const int[3]){ in[0], out[1], err[1] } });
	if (pid < 0)
		goto out;
	close(in[0]), close(out[1]), close(err[1]);
	in[0] = out[1] = err[1] = -1;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (in_len == 0)
		close(in[1]), in[1] = -1;
	while (out[0] >= 0 || err[0] >= 0) {
		struct pollfd fds[3] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 }, { in[1], POLLOUT, 0 } };
		int64_t left = deadline - th_now_ms();
		if (left <= 0) {
			p->timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		if (poll(fds, 3, (int)(left > 100 ? 100 : left)) < 0 && errno != EINTR)
			break;
		if (fds[0].revents && grab(out[0], &co) < 0)
			close(out[0]), out[0] = -1;
		if (fds[1].revents && grab(err[0], &ce) < 0)
			close(err[0]), err[0] = -1;
		if (in[1] >= 0 && fds[2].revents) {
			ssize_t n = write(in[1], stdin_data + in_off, in_len - in_off);
			if (n > 0)
				in_off += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len)
				close(in[1]), in[1] = -1;
		}
	}
	/* Outputs closed: the child is exiting; reap it within the deadline. */
	int64_t left = deadline - th_now_ms();
	if (proc_wait(pid, left > 0 ? (int)left : 0, &status) != 0) {
		p->timed_out = true;
		proc_kill9(pid);
	}
	if (!p->timed_out && WIFEXITED(status))
		p->exit_code = WEXITSTATUS(status);
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	finish_capture(&co, &p->out, &p->out_len);
	finish_capture(&ce, &p->err, &p->err_len);
	return rc;
}

int th_cli(th_proc *p, const char *stdin_data, int timeout_ms, const char *const *args)
{
	const char *argv[64];
	size_t n = 0;

	argv[n++] = th_cli_path;
	for (size_t i = 0; args[i] != NULL && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return th_run(p, stdin_data, timeout_ms, (char *const *)argv, NULL);
}

void th_proc_free(th_proc *p)
{
	free(p->out);
	free(p->err);
	p->out = p->err = NULL;
}

void th_proc_dump(const char *what, const th_proc *p)
{
	fprintf(stderr, "%s: exit %d%s\n  stdout: %s\n  stderr: %s\n", what, p->exit_code,
		p->timed_out ? " (timed out)" : "", p->out ? p->out : "", p->err ? p->err : "");
}

/* ---- JSON ---------------------------------------------------------- */

/* Points at the value of "key" (a key: followed by ':'), or NULL. */
static const char *json_value(const char *json, const char *key)
{
	size_t kl = strlen(key);
	const char *p = json;

	while ((p = strchr(p, '"')) != NULL) {
		if (strncmp(p + 1, key, kl) == 0 && p[1 + kl] == '"') {
			const char *v = p + 2 + kl;
			while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
				v++;
			if (*v == ':') {
				v++;
				while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
					v++;
				return v;
			}
		}
		/* Skip this string entirely, escapes included. */
		p++;
		while (*p != '\0' && *p != '"') {
			if (*p == '\\' && p[1] != '\0')
				p++;
			p++;
		}
		if (*p == '\0')
			return NULL;
		p++;
	}
	return NULL;
}

bool th_json_str(const char *json, const char *key, char *out, size_t size)
{
	const char *v = json_value(json, key);
	size_t n = 0;

	if (v == NULL || *v != '"')
		return false;
	for (v++; *v != '\0' && *v != '"'; v++) {
		char c = *v;
		if (c == '\\') {
			v++;
			switch (*v) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'u': {
				unsigned x = 0;
				if (sscanf(v + 1, "%4x", &x) != 1)
					return false;
				c = (char)(x < 0x80 ? x : '?');
				v += 4;
				break;
			}
			case '\0': return false;
			default: c = *v; break;
			}
		}
		if (n + 1 < size)
			out[n++] = c;
	}
	if (*v != '"')
		return false;
	out[n] = '\0';
	return true;
}

bool th_json_int(const char *json, const char *key, int64_t *out)
{
	const char *v = json_value(json, key);
	char *end;
	long long x;

	if (v == NULL)
		return false;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (end == v || errno != 0)
		return false;
	*out = x;
	return true;
}

void th_cli_expect(th_proc *p, const char *stdin_data, int want_exit, const char *const *args)
{
	if (th_cli(p, stdin_data, TH_CLI_MS, args) != 0)
		fail_msg("could not start %s", th_cli_path);
	if (p->exit_code != want_exit) {
		char what[512] = "cueq";
		for (size_t i = 0; args[i] != NULL && strlen(what) < 400; i++) {
			strcat(what, " ");
			strncat(what, args[i], 40);
		}
		th_proc_dump(what, p);
		fail_msg("%s: exit %d, expected %d", what, p->exit_code, want_exit);
	}
}

void th_first_line(const th_proc *p, char *out, size_t size)
{
	size_t n = strcspn(p->out, "\r\n");
	if (n >= size)
		n = size - 1;
	memcpy(out, p->out, n);
	out[n] = '\0';
}
