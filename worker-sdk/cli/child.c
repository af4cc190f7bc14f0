/*
 * child.c - run one command per execution for `cueq work`.
 *
 * The worker is multi-threaded (SDK threads, one handler thread per
 * concurrent job), so the child is started with posix_spawnp: glibc does the
 * fork and execvp in one step (clone with CLONE_VFORK), and nothing that is
 * unsafe after fork in a threaded program runs in between.  Its environment
 * is an array built per job (setenv would race with the other threads).
 * Every pipe is created close-on-exec, so a child never inherits another
 * job's pipes and every EOF arrives when it should.
 *
 * One poll() loop then feeds standard input (EPIPE just means the command
 * did not read all of it; SIGPIPE is ignored by the worker and reset to the
 * default for the child), keeps standard output up to a cap and passes
 * standard error through in whole lines, remembering the last one for the
 * nack.  The child gets a process group of its own, so a terminal's Ctrl-C
 * reaches only the worker (which then lets running jobs finish), and a lost
 * lease can stop the command with everything it started: SIGTERM to the
 * group, SIGKILL a grace period later.  A pidfd in the poll set wakes the
 * loop the moment the child exits; where pidfds are not available the loop
 * checks with a growing interval (1 ms up to 100 ms).
 */
#define _GNU_SOURCE /* pipe2: close-on-exec from the start, no race with other spawns */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 100
#define DRAIN_MS 500 /* after it exited, how long its pipes may stay open */
#define ERR_LINE 4096

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

/* Standard error of the child, passed on in whole lines. */
struct errbuf {
	char buf[ERR_LINE];
	size_t len;
};

static void remember(struct child_result *r, const char *line, size_t len)
{
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
			   line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return;
	if (len >= sizeof(r->last_err))
		len = sizeof(r->last_err) - 1;
	memcpy(r->last_err, line, len);
	r->last_err[len] = '\0';
}

static void err_flush(struct errbuf *e, struct child_result *r)
{
	if (e->len == 0)
		return;
	if (e->buf[e->len - 1] != '\n' && e->len < sizeof(e->buf))
		e->buf[e->len++] = '\n';
	write_all(STDERR_FILENO, e->buf, e->len);
	remember(r, e->buf, e->len);
	e->len = 0;
}

static void err_feed(struct errbuf *e, struct child_result *r, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		e->buf[e->len++] = p[i];
		if (p[i] == '\n' || e->len == sizeof(e->buf))
			err_flush(e, r);
	}
}

static int spawn(const struct child_spec *s, int in, int out, int err, pid_t *pid)
{
	static const int reset[] = { SIGPIPE, SIGINT,  SIGTERM, SIGQUIT, SIGHUP,
				     SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD, SIGXFSZ };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	int rc;

	rc = posix_spawn_file_actions_init(&fa);
	if (rc != 0)
		return rc;
	rc = posix_spawnattr_init(&at);
	if (rc != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
		sigaddset(&dfl, reset[i]);
	if ((rc = posix_spawn_file_actions_adddup2(&fa, in, STDIN_FILENO)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, err, STDERR_FILENO)) == 0 &&
	    (rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
							POSIX_SPAWN_SETSIGDEF)) == 0 &&
	    (rc = posix_spawnattr_setpgroup(&at, 0)) == 0 &&
	    (rc = posix_spawnattr_setsigmask(&at, &none)) == 0 &&
	    (rc = posix_spawnattr_setsigdefault(&at, &dfl)) == 0)
		rc = posix_spawnp(pid, s->argv[0], &fa, &at, s->argv, s->envp);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Reads what is there from *fd into out (up to cap) or the error lines. */
static void drain(int *fd, struct child_result *r, size_t cap, struct errbuf *e)
{
	char tmp[16384];

	for (;;) {
		ssize_t n = read(*fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			close_fd(fd);
			return;
		}
		if (e != NULL) {
			err_feed(e, r, tmp, (size_t)n);
		} else if (r->out_len < cap) {
			size_t take = (size_t)n < cap - r->out_len ? (size_t)n : cap - r->out_len;
			memcpy(r->out + r->out_len, tmp, take);
			r->out_len += take;
			r->out[r->out_len] = '\0';
		}
	}
}

/* Writes the next part of the input; closes the pipe when done or refused. */
static void feed(int *fd, const struct child_spec *s, size_t *off)
{
	while (*off < s->input_len) {
		ssize_t w = write(*fd, (const char *)s->input + *off, s->input_len - *off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w < 0) /* EPIPE: it did not read all of its input */
			break;
		*off += (size_t)w;
	}
	close_fd(fd);
}

static void pump(const struct child_spec *s, struct child_result *r, pid_t pid, int in, int out,
		 int err)
{
	struct errbuf *e = calloc(1, sizeof(*e));
	int64_t term_at = -1, exited_at = -1;
	bool killed = false, reaped = false;
	int pfd = pidfd_open(pid, 0), idle_ms = 1;
	size_t off = 0;

	if (s->input_len == 0)
		close_fd(&in);
	while (!reaped || out >= 0 || err >= 0) {
		struct pollfd p[4];
		int np = 0, st, timeout = POLL_MS;

		if (in >= 0)
			p[np++] = (struct pollfd){ .fd = in, .events = POLLOUT };
		if (out >= 0)
			p[np++] = (struct pollfd){ .fd = out, .events = POLLIN };
		if (err >= 0)
			p[np++] = (struct pollfd){ .fd = err, .events = POLLIN };
		if (pfd >= 0 && !reaped)
			p[np++] = (struct pollfd){ .fd = pfd, .events = POLLIN };
		if (pfd < 0 && !reaped && in < 0 && out < 0 && err < 0) {
			timeout = idle_ms; /* it is about to exit: look again soon */
			idle_ms = idle_ms * 2 < POLL_MS ? idle_ms * 2 : POLL_MS;
		}
		if (poll(p, (nfds_t)np, timeout) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < np; i++) {
			if (p[i].revents == 0 || p[i].fd == pfd)
				continue;
			if (p[i].fd == in)
				feed(&in, s, &off);
			else if (p[i].fd == out)
				drain(&out, r, s->out_cap, NULL);
			else if (e != NULL)
				drain(&err, r, 0, e);
			else
				close_fd(&err);
		}
		if (!reaped && waitpid(pid, &st, WNOHANG) == pid) {
			reaped = true;
			r->status = st;
			exited_at = now_ms();
			close_fd(&in);
			close_fd(&pfd);
		}
		if (reaped) {
			/* Something it started may hold the pipes open. */
			if (now_ms() - exited_at > DRAIN_MS)
				break;
			continue;
		}
		if (term_at < 0 && s->should_stop != NULL && s->should_stop(s->arg)) {
			kill(-pid, SIGTERM);
			r->stopped = true;
			term_at = now_ms();
		} else if (term_at >= 0 && !killed && now_ms() - term_at >= s->kill_after_ms) {
			kill(-pid, SIGKILL);
			killed = true;
		}
	}
	if (!reaped) { /* poll failed: do not leave a zombie or a runaway */
		kill(-pid, SIGKILL);
		while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
			;
	}
	if (e != NULL)
		err_flush(e, r);
	free(e);
	close_fd(&pfd);
	close_fd(&in);
	close_fd(&out);
	close_fd(&err);
}

int child_run(const struct child_spec *s, struct child_result *r)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	pid_t pid;
	int rc;

	memset(r, 0, sizeof(*r));
	r->out = malloc(s->out_cap + 1);
	if (r->out == NULL) {
		r->spawn_err = ENOMEM;
		return -1;
	}
	r->out[0] = '\0';
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
	    pipe2(err, O_CLOEXEC) != 0) {
		rc = errno;
		goto fail;
	}
	rc = spawn(s, in[0], out[1], err[1], &pid);
	if (rc != 0)
		goto fail;
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	set_nonblock(in[1]);
	set_nonblock(out[0]);
	set_nonblock(err[0]);
	pump(s, r, pid, in[1], out[0], err[0]);
	return 0;
fail:
	r->spawn_err = rc;
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&err[i]);
	}
	return -1;
}

void child_result_free(struct child_result *r)
{
	free(r->out);
	r->out = NULL;
}
