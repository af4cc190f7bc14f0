/*
 * http_load.c - cueq-http-bench: pushes over the HTTP face beside the same
 * pushes over nng, one request per job, against one private cueqd.
 *
 * Each client thread keeps one connection and pushes COUNT/N jobs of B
 * bytes one at a time: over HTTP, POST /v1/queues/Q/jobs on a keep-alive
 * connection (plain HTTP/1.1 on a socket, so the client costs little);
 * over nng, cueq_push of the SDK.  Both wait for each answer, which with
 * --fsync always leaves after the sync that covers it, so this measures
 * what a producer pushing one job per request gets from each face.
 *
 *   cueq-http-bench [--clients 1,8] [--count 20000] [--bytes 100]
 *                   [--fsync always|never] [--cueqd PATH]
 *
 * Prints one markdown row per face and client count: jobs/s, p50/p99 of
 * one push, and the broker's CPU per push.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cueq/cueq.h>

#include "brokerproc.h"
#include "latency.h"

#define MAX_CLIENTS 64

struct run {
	const char *url; /* nng */
	int http_port;
	size_t per_client, bytes;
	bool http;
	struct lat lat;
	atomic_size_t failed;
};

static int http_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Reads one answer (headers, then Content-Length bytes): its status, or -1. */
static int http_read(int fd, char *buf, size_t size)
{
	size_t got = 0;
	char *end = NULL;
	while (end == NULL) {
		ssize_t n = read(fd, buf + got, size - got - 1);
		if (n <= 0)
			return -1;
		got += (size_t)n;
		buf[got] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end == NULL && got + 1 >= size)
			return -1;
	}
	const char *cl = strstr(buf, "Content-Length: ");
	size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
	while (got < want) {
		ssize_t n = read(fd, buf + got, size - got - 1 < want - got ? size - got - 1 : want - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return strncmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : -1;
}

static void *http_client(void *arg)
{
	struct run *r = arg;
	char req[512 + 4096], resp[8192];
	int fd = http_connect(r->http_port);
	if (fd < 0) {
		atomic_fetch_add(&r->failed, r->per_client);
		return NULL;
	}
	int hl = snprintf(req, sizeof(req),
			  "POST /v1/queues/bench/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			  "Content-Length: %zu\r\n\r\n",
			  r->bytes);
	memset(req + hl, 'x', r->bytes);
	size_t len = (size_t)hl + r->bytes;
	for (size_t i = 0; i < r->per_client; i++) {
		uint64_t t0 = now_ns();
		if (write(fd, req, len) != (ssize_t)len || http_read(fd, resp, sizeof(resp)) != 201) {
			atomic_fetch_add(&r->failed, r->per_client - i);
			break;
		}
		lat_add(&r->lat, now_ns() - t0);
	}
	close(fd);
	return NULL;
}

static void *nng_client(void *arg)
{
	struct run *r = arg;
	cueq_client *c;
	char payload[4096];
	memset(payload, 'x', r->bytes);
	if (cueq_connect(r->url, NULL, &c) != CUEQ_OK) {
		atomic_fetch_add(&r->failed, r->per_client);
		return NULL;
	}
	for (size_t i = 0; i < r->per_client; i++) {
		uint64_t t0 = now_ns();
		if (cueq_push(c, "bench", payload, r->bytes, NULL, NULL) != CUEQ_OK) {
			atomic_fetch_add(&r->failed, r->per_client - i);
			break;
		}
		lat_add(&r->lat, now_ns() - t0);
	}
	cueq_close(c);
	return NULL;
}

static int run_one(cueqd_proc *b, bool http, int clients, size_t count, size_t bytes)
{
	struct run r = {.url = b->url, .http_port = b->http_port, .bytes = bytes, .http = http,
			.per_client = count / (size_t)clients};
	pthread_t t[MAX_CLIENTS];
	if (lat_init(&r.lat, r.per_client * (size_t)clients) != 0)
		return -1;
	double cpu0 = proc_cpu_s(b->pid);
	uint64_t t0 = now_ns();
	for (int i = 0; i < clients; i++)
		pthread_create(&t[i], NULL, http ? http_client : nng_client, &r);
	for (int i = 0; i < clients; i++)
		pthread_join(t[i], NULL);
	double secs = (double)(now_ns() - t0) / 1e9, cpu = proc_cpu_s(b->pid) - cpu0;
	size_t done = lat_count(&r.lat);
	lat_sort(&r.lat);
	printf("| %s | %d | %.0f | %.1f / %.1f | %.1f |%s\n", http ? "HTTP POST /v1/queues/Q/jobs" : "nng, cueq_push",
	       clients, (double)done / secs, (double)lat_pct(&r.lat, 0.50) / 1e3,
	       (double)lat_pct(&r.lat, 0.99) / 1e3, done ? cpu * 1e6 / (double)done : 0.0,
	       atomic_load(&r.failed) ? " (some failed)" : "");
	fflush(stdout);
	size_t failed = atomic_load(&r.failed);
	lat_free(&r.lat);
	return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
	char clients_s[128] = "1,8", path[4096] = "";
	const char *policy = "always";
	size_t count = 20000, bytes = 100;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--clients") == 0 && v)
			snprintf(clients_s, sizeof(clients_s), "%s", v), i++;
		else if (strcmp(argv[i], "--count") == 0 && v)
			count = strtoul(v, NULL, 10), i++;
		else if (strcmp(argv[i], "--bytes") == 0 && v)
			bytes = strtoul(v, NULL, 10), i++;
		else if (strcmp(argv[i], "--fsync") == 0 && v)
			policy = v, i++;
		else if (strcmp(argv[i], "--cueqd") == 0 && v)
			snprintf(path, sizeof(path), "%s", v), i++;
		else {
			fprintf(stderr, "usage: cueq-http-bench [--clients 1,8] [--count N] [--bytes B] [--fsync always|never] [--cueqd PATH]\n");
			return 1;
		}
	}
	if (bytes == 0 || bytes > 4096 || count == 0) {
		fprintf(stderr, "cueq-http-bench: --bytes must be 1-4096 and --count at least 1\n");
		return 1;
	}
	if (path[0] == '\0' && brokerproc_default_path(path, sizeof(path)) != 0)
		return 1;
	cueqd_proc b = {.http = true};
	if (brokerproc_start(&b, path, policy) != 0)
		return 1;
	printf("| face | clients | jobs/s | p50 / p99 µs | broker CPU µs/job |\n|---|--:|--:|--:|--:|\n");
	int rc = 0;
	for (char *save = NULL, *tok = strtok_r(clients_s, ",", &save); tok && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		int n = atoi(tok);
		if (n < 1 || n > MAX_CLIENTS) {
			fprintf(stderr, "cueq-http-bench: --clients takes 1-%d each\n", MAX_CLIENTS);
			rc = 1;
			break;
		}
		rc |= run_one(&b, true, n, count, bytes) != 0;
		rc |= run_one(&b, false, n, count, bytes) != 0;
	}
	brokerproc_stop(&b);
	cueqd_cleanup(&b);
	return rc;
}
