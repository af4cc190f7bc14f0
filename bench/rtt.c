/*
 * rtt.c - cueq-rtt: the round-trip floor of the transport on this machine.
 *
 * One request per operation can go no faster than an empty request/reply
 * over the same transport.  This measures that floor: an nng REQ/REP echo
 * (REP contexts answering from their own callback, as the broker's server
 * does, with no core, no store and no sync behind them) beside a plain TCP
 * echo (one thread per connection, TCP_NODELAY), both on loopback TCP in
 * this process, with N clients doing round trips of B bytes one at a time.
 *
 *   cueq-rtt [--clients 1,4] [--count 20000] [--bytes 100]
 *
 * Prints one markdown row per transport and client count: round trips per
 * second, p50/p99 of one round trip, and the CPU of both sides (this
 * process) per round trip.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "latency.h"

#define REP_CTXS 64
#define MAX_CLIENTS 64

struct rctx {
	nng_socket sock;
	nng_ctx ctx;
	nng_aio *aio;
	int sending;
};

/* The broker's server cycle with nothing behind it: receive, send the
 * same message back, listen again. */
static void rep_cb(void *arg)
{
	struct rctx *c = arg;
	if (nng_aio_result(c->aio) != 0) {
		if (c->sending)
			nng_msg_free(nng_aio_get_msg(c->aio));
		if (nng_aio_result(c->aio) == NNG_ECLOSED)
			return;
		c->sending = 0;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	if (!c->sending) {
		c->sending = 1;
		nng_ctx_send(c->ctx, c->aio); /* the message received is in the aio */
	} else {
		c->sending = 0;
		nng_ctx_recv(c->ctx, c->aio);
	}
}

struct client {
	int kind; /* 0 nng, 1 tcp */
	int port;
	size_t count, bytes;
	struct lat *lat;
	int failed;
};

static int tcp_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int full_io(int fd, char *buf, size_t n, int out)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = out ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static void *tcp_echo(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (full_io(fd, buf, (size_t)n, 1) != 0)
			break;
	close(fd);
	return NULL;
}

static void *tcp_accept(void *arg)
{
	int lfd = (int)(intptr_t)arg, fd;
	while ((fd = accept(lfd, NULL, NULL)) >= 0) {
		int one = 1;
		pthread_t t;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (pthread_create(&t, NULL, tcp_echo, (void *)(intptr_t)fd) != 0)
			close(fd);
		else
			pthread_detach(t);
	}
	return NULL;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char *buf = calloc(1, c->bytes);
	nng_socket s = NNG_SOCKET_INITIALIZER;
	int fd = -1;
	char url[64];

	if (buf == NULL)
		goto fail;
	if (c->kind == 0) {
		snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", c->port);
		if (nng_req0_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0)
			goto fail;
	} else if ((fd = tcp_connect(c->port)) < 0) {
		goto fail;
	}
	for (size_t i = 0; i < c->count; i++) {
		uint64_t t0 = now_ns();
		if (c->kind == 0) {
			void *r;
			size_t rl;
			if (nng_send(s, buf, c->bytes, 0) != 0 ||
			    nng_recv(s, &r, &rl, NNG_FLAG_ALLOC) != 0)
				goto fail;
			nng_free(r, rl);
		} else if (full_io(fd, buf, c->bytes, 1) != 0 || full_io(fd, buf, c->bytes, 0) != 0) {
			goto fail;
		}
		lat_add(c->lat, now_ns() - t0);
	}
	goto out;
fail:
	c->failed = 1;
out:
	if (c->kind == 0)
		nng_close(s);
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int run(int kind, int port, int clients, size_t count, size_t bytes)
{
	struct client cl[MAX_CLIENTS];
	pthread_t th[MAX_CLIENTS];
	struct lat lat = { 0 };
	int failed = 0;

	if (lat_init(&lat, (size_t)clients * count) != 0) {
		fprintf(stderr, "cueq-rtt: out of memory\n");
		return -1;
	}
	double c0 = cpu_s();
	uint64_t t0 = now_ns();
	for (int i = 0; i < clients; i++) {
		cl[i] = (struct client){ kind, port, count, bytes, &lat, 0 };
		if (pthread_create(&th[i], NULL, client_main, &cl[i]) != 0) {
			fprintf(stderr, "cueq-rtt: cannot start a client thread\n");
			exit(1);
		}
	}
	for (int i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		failed |= cl[i].failed;
	}
	double secs = (double)(now_ns() - t0) / 1e9, cpu = cpu_s() - c0;
	double n = (double)clients * (double)count;
	if (failed) {
		fprintf(stderr, "cueq-rtt: a %s client failed\n", kind ? "TCP" : "nng");
		lat_free(&lat);
		return -1;
	}
	printf("| %s | %d | %.0f | %.1f / %.1f | %.1f |\n",
	       kind ? "plain TCP, thread per connection" : "nng 1.5.2 REQ/REP, answered in the callback",
	       clients, n / secs, (double)lat_pct(&lat, 50) / 1e3, (double)lat_pct(&lat, 99) / 1e3,
	       cpu / n * 1e6);
	lat_free(&lat);
	return 0;
}

static int listen_tcp(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: cueq-rtt [--clients 1,4] [--count 20000] [--bytes 100]\n"
			"The round trips per second of an empty nng REQ/REP echo and of a plain\n"
			"TCP echo on loopback: the floor under one request per operation.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *clients = "1,4";
	size_t count = 20000, bytes = 100;

	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--clients") == 0)
			clients = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--count") == 0)
			count = strtoul(argv[++i], NULL, 10);
		else if (i + 1 < argc && strcmp(argv[i], "--bytes") == 0)
			bytes = strtoul(argv[++i], NULL, 10);
		else
			usage();
	}
	if (count == 0 || bytes == 0 || bytes > 65536)
		usage();

	/* the nng echo server */
	nng_socket rep;
	int nport, tport, lfd;
	char url[64];
	struct rctx ctxs[REP_CTXS];
	if ((lfd = listen_tcp(&nport)) < 0)
		return perror("cueq-rtt: socket"), 1;
	close(lfd); /* a free port for nng */
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", nport);
	if (nng_rep0_open(&rep) != 0 || nng_listen(rep, url, NULL, 0) != 0) {
		fprintf(stderr, "cueq-rtt: cannot listen on %s\n", url);
		return 1;
	}
	for (int i = 0; i < REP_CTXS; i++) {
		ctxs[i] = (struct rctx){ .sock = rep };
		if (nng_aio_alloc(&ctxs[i].aio, rep_cb, &ctxs[i]) != 0 ||
		    nng_ctx_open(&ctxs[i].ctx, rep) != 0) {
			fprintf(stderr, "cueq-rtt: cannot open an nng context\n");
			return 1;
		}
		nng_ctx_recv(ctxs[i].ctx, ctxs[i].aio);
	}
	/* the plain TCP echo server */
	pthread_t at;
	if ((lfd = listen_tcp(&tport)) < 0 ||
	    pthread_create(&at, NULL, tcp_accept, (void *)(intptr_t)lfd) != 0)
		return perror("cueq-rtt: TCP echo"), 1;

	printf("%zu round trips of %zu bytes per client, loopback TCP, %ld CPUs\n\n", count, bytes,
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("| transport | clients | round trips/s | p50 / p99 µs | CPU of both sides per round trip, µs |\n");
	printf("|---|--:|--:|--:|--:|\n");
	int rc = 0;
	for (const char *p = clients; *p;) {
		char *end;
		long n = strtol(p, &end, 10);
		if (end == p || n < 1 || n > MAX_CLIENTS)
			usage();
		for (int kind = 0; kind < 2; kind++)
			rc |= run(kind, kind ? tport : nport, (int)n, count, bytes);
		p = *end == ',' ? end + 1 : end;
	}
	nng_close(rep);
	close(lfd);
	return rc ? 1 : 0;
}
