/*
 * peer_beanstalkd.c - beanstalkd through its text protocol, spoken directly
 * over a TCP socket (protocol.txt in beanstalkd's sources).
 *
 *   push   put <pri> 0 <ttr> <bytes>\r\n<data>\r\n  -> INSERTED <id>
 *   claim  reserve-with-timeout <s>                -> RESERVED <id> <bytes>\r\n<data>
 *          (the lease is the job's TTR, set at put from cfg.lease_ms)
 *   ack    delete <id>                             -> DELETED
 *   fill   puts pipelined, a chunk at a time
 *   count  stats-tube: current-jobs-ready + -reserved + -delayed
 *
 * Every reply is checked against the one expected; anything else fails the
 * call with the server's words.
 */
#include "compare.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define IO_TIMEOUT_S 15
#define LINE_MAX_LEN 256

struct bs {
	int fd;
	unsigned ttr;	 /* seconds */
	char tube[128];
	char in[1 << 16]; /* received, not yet consumed: in[off, have) */
	size_t off, have;
	unsigned char *job; /* the last reserved job's body */
	size_t job_cap;
};

static int send_all(struct bs *b, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(b->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			cmp_err("beanstalkd: send: %s", n < 0 ? strerror(errno) : "closed");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads more into the buffer (moving what is left to the front). */
static int fill_buf(struct bs *b)
{
	ssize_t n;

	if (b->off > 0) {
		memmove(b->in, b->in + b->off, b->have - b->off);
		b->have -= b->off;
		b->off = 0;
	}
	if (b->have == sizeof(b->in)) {
		cmp_err("beanstalkd: reply too long");
		return -1;
	}
	do
		n = recv(b->fd, b->in + b->have, sizeof(b->in) - b->have, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		cmp_err("beanstalkd: recv: %s",
			n == 0 ? "connection closed" : errno == EAGAIN ? "timed out" : strerror(errno));
		return -1;
	}
	b->have += (size_t)n;
	return 0;
}

/* One reply line without its \r\n, into line[LINE_MAX_LEN]. */
static int read_line(struct bs *b, char *line)
{
	for (;;) {
		char *s = b->in + b->off, *crlf = NULL;
		size_t avail = b->have - b->off;

		for (size_t i = 0; i + 1 < avail; i++)
			if (s[i] == '\r' && s[i + 1] == '\n') {
				crlf = s + i;
				break;
			}
		if (crlf != NULL) {
			size_t len = (size_t)(crlf - s);

			if (len >= LINE_MAX_LEN) {
				cmp_err("beanstalkd: reply line too long");
				return -1;
			}
			memcpy(line, s, len);
			line[len] = '\0';
			b->off += len + 2;
			return 0;
		}
		if (avail >= LINE_MAX_LEN) {
			cmp_err("beanstalkd: reply line too long");
			return -1;
		}
		if (fill_buf(b) != 0)
			return -1;
	}
}

static int read_exact(struct bs *b, void *dst, size_t len)
{
	unsigned char *d = dst;

	while (len > 0) {
		size_t avail = b->have - b->off, k = avail < len ? avail : len;

		if (k == 0) {
			if (fill_buf(b) != 0)
				return -1;
			continue;
		}
		memcpy(d, b->in + b->off, k);
		b->off += k;
		d += k;
		len -= k;
	}
	return 0;
}

/* Sends cmd (with its \r\n) and checks that the reply line is want. */
static int command(struct bs *b, const char *cmd, const char *want)
{
	char line[LINE_MAX_LEN];

	if (send_all(b, cmd, strlen(cmd)) != 0 || read_line(b, line) != 0)
		return -1;
	if (strcmp(line, want) != 0) {
		cmp_err("beanstalkd: \"%.*s\" answered \"%s\", not \"%s\"", (int)strcspn(cmd, "\r"),
			cmd, line, want);
		return -1;
	}
	return 0;
}

static void bs_close(void *conn)
{
	struct bs *b = conn;

	if (b == NULL)
		return;
	if (b->fd >= 0)
		close(b->fd);
	free(b->job);
	free(b);
}

static void *bs_open(const struct cmp_cfg *c)
{
	struct bs *b = calloc(1, sizeof(*b));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	char cmd[192];
	int one = 1;

	if (b == NULL)
		return NULL;
	b->fd = -1;
	b->ttr = (unsigned)((c->lease_ms + 999) / 1000);
	snprintf(b->tube, sizeof(b->tube), "%s", c->queue);
	if (inet_pton(AF_INET, c->host, &sa.sin_addr) != 1) {
		cmp_err("beanstalkd: bad host %s", c->host);
		goto fail;
	}
	if ((b->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(b->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		cmp_err("beanstalkd: connect to %s:%d: %s", c->host, c->port, strerror(errno));
		goto fail;
	}
	setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(b->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(b->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* Produce into and consume from our tube only. */
	snprintf(cmd, sizeof(cmd), "use %s\r\n", b->tube);
	char want[160];
	snprintf(want, sizeof(want), "USING %s", b->tube);
	if (command(b, cmd, want) != 0)
		goto fail;
	snprintf(cmd, sizeof(cmd), "watch %s\r\n", b->tube);
	if (command(b, cmd, "WATCHING 2") != 0 || command(b, "ignore default\r\n", "WATCHING 1") != 0)
		goto fail;
	return b;
fail:
	bs_close(b);
	return NULL;
}

static int bs_setup(void *conn)
{
	(void)conn; /* tubes exist while used */
	return 0;
}

/* Writes "put ..." for one job; the caller sends it. */
static int put_cmd(struct bs *b, char *hdr, size_t hdr_len, size_t len)
{
	return snprintf(hdr, hdr_len, "put 0 0 %u %zu\r\n", b->ttr, len);
}

static int check_inserted(struct bs *b)
{
	char line[LINE_MAX_LEN];
	unsigned long long id;
	char extra;

	if (read_line(b, line) != 0)
		return -1;
	if (sscanf(line, "INSERTED %llu%c", &id, &extra) != 1) {
		cmp_err("beanstalkd: put answered \"%s\"", line);
		return -1;
	}
	return 0;
}

static int bs_push(void *conn, const void *payload, size_t len)
{
	struct bs *b = conn;
	char hdr[64];
	int h = put_cmd(b, hdr, sizeof(hdr), len);
	struct iovec iov[3] = { { hdr, (size_t)h }, { (void *)payload, len }, { "\r\n", 2 } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
	size_t total = (size_t)h + len + 2;
	ssize_t n;

	do
		n = sendmsg(b->fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)total) {
		cmp_err("beanstalkd: put: %s", n < 0 ? strerror(errno) : "short send");
		return -1;
	}
	return check_inserted(b);
}

static int bs_claim(void *conn, int wait_ms, struct job_ref *j)
{
	struct bs *b = conn;
	char cmd[64], line[LINE_MAX_LEN], extra;
	unsigned long long id;
	size_t len;

	snprintf(cmd, sizeof(cmd), "reserve-with-timeout %d\r\n", (wait_ms + 999) / 1000);
	if (send_all(b, cmd, strlen(cmd)) != 0 || read_line(b, line) != 0)
		return -1;
	if (strcmp(line, "TIMED_OUT") == 0 || strcmp(line, "DEADLINE_SOON") == 0)
		return 0;
	if (sscanf(line, "RESERVED %llu %zu%c", &id, &len, &extra) != 2) {
		cmp_err("beanstalkd: reserve answered \"%s\"", line);
		return -1;
	}
	if (len + 2 > b->job_cap) {
		unsigned char *g = realloc(b->job, len + 2);
		if (g == NULL) {
			cmp_err("beanstalkd: out of memory");
			return -1;
		}
		b->job = g;
		b->job_cap = len + 2;
	}
	if (read_exact(b, b->job, len + 2) != 0)
		return -1;
	if (b->job[len] != '\r' || b->job[len + 1] != '\n') {
		cmp_err("beanstalkd: job %llu's body does not end in \\r\\n", id);
		return -1;
	}
	j->num = id;
	j->payload = b->job;
	j->len = len;
	return 1;
}

static int bs_ack(void *conn, struct job_ref *j)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "delete %llu\r\n", (unsigned long long)j->num);
	return command(conn, cmd, "DELETED");
}

static void bs_drop(void *conn, struct job_ref *j)
{
	(void)conn; /* reserved until its TTR, or until this connection closes */
	(void)j;
}

static int bs_fill(void *conn, const struct tally *t, size_t first, size_t end)
{
	struct bs *b = conn;
	size_t one = 64 + t->payload + 2, n = end - first, at = 0;
	char *buf = malloc(one * (n ? n : 1));
	int rc = -1;

	if (buf == NULL) {
		cmp_err("beanstalkd: out of memory");
		return -1;
	}
	for (size_t seq = first; seq < end; seq++) {
		at += (size_t)put_cmd(b, buf + at, 64, t->payload);
		payload_fill(t, buf + at, seq, now_ns());
		at += t->payload;
		memcpy(buf + at, "\r\n", 2);
		at += 2;
	}
	if (send_all(b, buf, at) != 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (check_inserted(b) != 0)
			goto out;
	rc = 0;
out:
	free(buf);
	return rc;
}

static int bs_pending(void *conn, size_t *n)
{
	struct bs *b = conn;
	char cmd[160], line[LINE_MAX_LEN], *body, *s;
	size_t len;

	snprintf(cmd, sizeof(cmd), "stats-tube %s\r\n", b->tube);
	if (send_all(b, cmd, strlen(cmd)) != 0 || read_line(b, line) != 0)
		return -1;
	if (strcmp(line, "NOT_FOUND") == 0) {
		*n = 0;
		return 0;
	}
	if (sscanf(line, "OK %zu", &len) != 1 || len > (1u << 20)) {
		cmp_err("beanstalkd: stats-tube answered \"%s\"", line);
		return -1;
	}
	if ((body = malloc(len + 3)) == NULL || read_exact(b, body, len + 2) != 0) {
		free(body);
		return -1;
	}
	body[len] = '\0';
	*n = 0;
	for (s = body; s != NULL && *s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
		static const char *const keys[] = { "current-jobs-ready: ", "current-jobs-reserved: ",
						    "current-jobs-delayed: " };
		for (size_t k = 0; k < 3; k++)
			if (strncmp(s, keys[k], strlen(keys[k])) == 0)
				*n += (size_t)strtoull(s + strlen(keys[k]), NULL, 10);
	}
	free(body);
	return 0;
}

static int bs_ping(void *conn)
{
	size_t n;

	return bs_pending(conn, &n);
}

const struct peer peer_beanstalkd = {
	.name = "beanstalkd",
	.polls = false,
	.open = bs_open,
	.close = bs_close,
	.setup = bs_setup,
	.ping = bs_ping,
	.push = bs_push,
	.claim = bs_claim,
	.ack = bs_ack,
	.drop = bs_drop,
	.fill = bs_fill,
	.pending = bs_pending,
};
