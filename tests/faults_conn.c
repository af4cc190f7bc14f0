/*
 * faults_conn.c - many connections at once (see faults_conn.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faults_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void pinger_cb(void *arg)
{
	fx_pinger *p = arg;
	int rv = nng_aio_result(p->aio);
	msgpack_unpacked up;
	proto_error e;
	nng_msg *m;
	bool ok = false;

	if (p->stage == 0) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(p->aio));
			atomic_store(&p->result, -1);
			return;
		}
		p->stage = 1;
		nng_recv_aio(p->r.s, p->aio);
		return;
	}
	if (rv != 0) {
		atomic_store(&p->result, -1);
		return;
	}
	m = nng_aio_get_msg(p->aio);
	if (proto_decode(nng_msg_body(m), nng_msg_len(m), &up, &e) == CUEQ_OK)
		th_bool(&up.data, "ok", &ok);
	msgpack_unpacked_destroy(&up);
	nng_msg_free(m);
	atomic_store(&p->result, ok ? 1 : -1);
}

void fx_open_all(fx_pinger *ps, size_t n, const char *url)
{
	for (size_t i = 0; i < n; i++)
		if (th_raw_open(&ps[i].r, url, 1000) != 0)
			fail_msg("cannot open connection %zu to %s", i, url);
}

void fx_close_all(fx_pinger *ps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		th_raw_close(&ps[i].r);
}

size_t fx_ping_all(fx_pinger *ps, size_t n, int timeout_ms)
{
	int64_t deadline = th_now_ms() + timeout_ms;
	size_t answered = 0, done;

	for (size_t i = 0; i < n; i++) {
		th_req q;
		ps[i].stage = 0;
		atomic_store(&ps[i].result, 0);
		assert_int_equal(nng_aio_alloc(&ps[i].aio, pinger_cb, &ps[i]), 0);
		nng_aio_set_timeout(ps[i].aio, timeout_ms);
		assert_int_equal(th_req_begin(&q, "ping", 0), 0);
		nng_aio_set_msg(ps[i].aio, q.msg);
		q.msg = NULL;
		nng_send_aio(ps[i].r.s, ps[i].aio);
	}
	do {
		done = 0;
		for (size_t i = 0; i < n; i++)
			done += atomic_load(&ps[i].result) != 0;
		if (done < n)
			th_sleep_ms(5);
	} while (done < n && th_now_ms() < deadline);
	for (size_t i = 0; i < n; i++) {
		nng_aio_free(ps[i].aio); /* stops what still waits */
		ps[i].aio = NULL;
		answered += atomic_load(&ps[i].result) == 1;
	}
	return answered;
}

static int tcp_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int fx_bare_connect(int port)
{
	return tcp_connect(port);
}

int fx_bare_connect_start(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

int fx_closed_within(int fd, int timeout_ms)
{
	int64_t deadline = th_now_ms() + timeout_ms;
	char buf[64];

	while (th_now_ms() < deadline) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, (int)(deadline - th_now_ms())) <= 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf)); /* the broker's handshake, then EOF */
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return 1;
	}
	return 0;
}

int fx_sp_connect_closed(int port, int timeout_ms)
{
	static const unsigned char hello[8] = { 0, 'S', 'P', 0, 0, 0x30, 0, 0 }; /* REQ0 */
	int fd = tcp_connect(port), closed;

	if (fd < 0)
		return 1; /* not even accepted: refused too */
	closed = write(fd, hello, sizeof(hello)) != (ssize_t)sizeof(hello) ||
		 fx_closed_within(fd, timeout_ms);
	close(fd);
	return closed;
}

long fx_log_number(const th_broker *b, const char *prefix)
{
	FILE *f = fopen(b->log, "r");
	char line[1024];
	long n = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, prefix);
		if (p != NULL)
			n = strtol(p + strlen(prefix), NULL, 10);
	}
	fclose(f);
	return n;
}

