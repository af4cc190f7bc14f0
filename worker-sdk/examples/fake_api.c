/*
 * fake_api.c - the directory-backed stand-in for third-party APIs (see
 * fake_api.h for what it promises).
 *
 * Each request is served by a child process, as a real API is served by
 * another machine: when the worker is killed in the middle of a call (the
 * order-sync test does that with SIGKILL at random moments), the request
 * still completes or never starts, exactly as it would over HTTP.  The
 * child makes only async-signal-safe calls (the worker is multi-threaded)
 * and does the creation in this order:
 *   1. create DIR/KIND/KEY with O_CREAT|O_EXCL (the key's one winner);
 *   2. append "ORDER KEY ID" to DIR/KIND.log;
 *   3. write "ID\nBODY\n" into the object.
 * A later request with the key waits (bounded) until the object is
 * complete, so anyone who has been answered knows the creation is already
 * in the log: once every order has finished, the logs are final.
 */
#include "fake_api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_WAIT_MS 5000 /* how long a replay waits for a creation in progress */
#define MAX_BODY 1024

enum { SERVED = 0, EXISTS = 10, STORE_FAILED = 11 };

static atomic_uint counter;

static int fail(char *err, size_t size, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t size, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && size > 0) {
		va_start(ap, fmt);
		vsnprintf(err, size, fmt, ap);
		va_end(ap);
	}
	return code;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Async-signal-safe: used in the child. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The API's side of one request, in the child: never returns. */
static void serve(const char *obj, const char *log, const char *line, const char *content)
{
	int fd = open(obj, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), lfd;

	if (fd < 0)
		_exit(errno == EEXIST ? EXISTS : STORE_FAILED);
	lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0 || write_all(lfd, line, strlen(line)) != 0) {
		unlink(obj); /* not created after all */
		_exit(STORE_FAILED);
	}
	close(lfd);
	if (write_all(fd, content, strlen(content)) != 0 || close(fd) != 0)
		_exit(STORE_FAILED);
	_exit(SERVED);
}

/* Reads an object created by an earlier request, waiting while its
 * creation is still in progress. */
static int read_existing(const char *obj, const char *body, char *id, size_t size, char *err,
			 size_t errsize)
{
	int64_t deadline = now_ms() + READ_WAIT_MS;
	char buf[MAX_BODY + 128];

	for (;;) {
		ssize_t n = -1;
		int fd = open(obj, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
		}
		if (n < 0)
			return fail(err, errsize, FAKE_API_ERROR, "cannot read %s: %s", obj,
				    strerror(errno));
		buf[n] = '\0';
		char *nl = strchr(buf, '\n');
		char *end = nl != NULL ? strchr(nl + 1, '\n') : NULL;
		if (end != NULL) {
			*nl = *end = '\0';
			if (strcmp(nl + 1, body) != 0)
				return fail(err, errsize, FAKE_API_MISMATCH,
					    "Idempotency-Key %s was first used for '%s', now for '%s'",
					    strrchr(obj, '/') + 1, nl + 1, body);
			if (strlen(buf) >= size)
				return fail(err, errsize, FAKE_API_ERROR, "no room for the ID");
			strcpy(id, buf);
			return FAKE_API_OK;
		}
		if (now_ms() > deadline)
			return fail(err, errsize, FAKE_API_ERROR,
				    "%s stayed incomplete for %d ms: its creator died mid-write", obj,
				    READ_WAIT_MS);
		sleep_ms(2);
	}
}

int fake_api_create(const char *dir, const char *kind, const char *key, const char *order,
		    const char *body, char *id, size_t size, bool *created, char *err,
		    size_t errsize)
{
	char obj[4096], log[4096], line[512], content[MAX_BODY + 128], newid[64];
	int status = 0;
	pid_t pid;

	if (created != NULL)
		*created = false;
	if (strchr(body, '\n') != NULL || strlen(body) > MAX_BODY || strchr(key, '/') != NULL)
		return fail(err, errsize, FAKE_API_ERROR, "bad request to the fake API");
	snprintf(obj, sizeof(obj), "%s/%s", dir, kind);
	if (mkdir(obj, 0755) != 0 && errno != EEXIST)
		return fail(err, errsize, FAKE_API_ERROR, "cannot make %s: %s", obj, strerror(errno));
	snprintf(obj, sizeof(obj), "%s/%s/%s", dir, kind, key);
	snprintf(log, sizeof(log), "%s/%s.log", dir, kind);
	snprintf(newid, sizeof(newid), "%.3s_%llx_%lx_%x", kind, (unsigned long long)now_ms(),
		 (long)getpid(), atomic_fetch_add(&counter, 1));
	snprintf(line, sizeof(line), "%s %s %s\n", order, key, newid);
	snprintf(content, sizeof(content), "%s\n%s\n", newid, body);

	pid = fork();
	if (pid < 0)
		return fail(err, errsize, FAKE_API_ERROR, "fork: %s", strerror(errno));
	if (pid == 0)
		serve(obj, log, line, content);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return fail(err, errsize, FAKE_API_ERROR, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) == STORE_FAILED)
		return fail(err, errsize, FAKE_API_ERROR, "the store at %s failed", dir);
	if (WEXITSTATUS(status) == EXISTS)
		return read_existing(obj, body, id, size, err, errsize);
	if (strlen(newid) >= size)
		return fail(err, errsize, FAKE_API_ERROR, "no room for the ID");
	strcpy(id, newid);
	if (created != NULL)
		*created = true;
	return FAKE_API_OK;
}
