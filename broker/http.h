/*
 * http.h - the broker's HTTP face: a JSON API over the same core as the
 * nng socket, webhook intake, Prometheus metrics and the dashboard.
 *
 * libmicrohttpd serves it on threads of its own.  Each /v1 request is made
 * into one request of the wire protocol (proto/PROTOCOL.md) and handed to
 * the core with loop_deliver, exactly as the nng server hands its own, so
 * group commit, fencing, request IDs, keys and --auth hold the same on both
 * faces; the connection is suspended meanwhile (a long poll holds no
 * thread) and resumed when the core answers.  docs/HTTP.md is the user's
 * description of every path.
 */
#ifndef CUEQ_HTTP_H
#define CUEQ_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct http;

/* How a webhook proves it comes from its sender (--hook ...,signature=). */
enum hook_signature {
	HOOK_SIG_NONE,
	HOOK_SIG_GITHUB, /* X-Hub-Signature-256: sha256=HEX of the body */
	HOOK_SIG_STRIPE, /* Stripe-Signature: t=TIME,v1=HEX of "TIME.body" */
	HOOK_SIG_HMAC	 /* HEADER: HEX or sha256=HEX of the body */
};

/* One webhook intake, POST /v1/hooks/QUEUE (--hook QUEUE:...). */
struct http_hook {
	char queue[129];
	char key_header[129]; /* the delivery ID is this header's value, */
	char key_field[129];  /* or this (dotted) field of the JSON body */
	int signature;	      /* enum hook_signature */
	char sig_header[129]; /* HOOK_SIG_HMAC's header */
	char secret_file[512];
	unsigned char *secret; /* read from secret_file at start */
	size_t secret_len;
};

struct http_config {
	const char *addr;	 /* HOST:PORT or [V6]:PORT */
	int max_connections;	 /* at once; more are refused */
	size_t max_body;	 /* bytes of a request body (--max-frame) */
	int64_t idem_window_ms;	 /* how long an Idempotency-Key is remembered */
	bool auth;		 /* the broker runs with --auth */
	const struct http_hook *hooks;
	size_t n_hooks;
};

/* Parses the value of one --hook flag, QUEUE:OPT=VALUE[,OPT=VALUE...].
 * -1 with a sentence in err. */
int http_hook_parse(const char *spec, struct http_hook *out, char *err, size_t errlen);
/* Reads each hook's secret file.  -1 with a sentence in err. */
int http_hooks_load(struct http_hook *hooks, size_t n, char *err, size_t errlen);
void http_hooks_free(struct http_hook *hooks, size_t n);

/* Whether addr is HOST:PORT (an IP address or localhost). */
bool http_addr_ok(const char *addr);

/* Starts serving cfg->addr, handing requests to l.  -1 with a sentence. */
int http_start(const struct http_config *cfg, struct loop *l, struct http **out, char *err,
	       size_t errlen);
/* Stops taking connections; those open are still answered. */
void http_quiesce(struct http *h);
/* Stops the server once the core has answered or dropped every request
 * handed to it (after loop_run returned).  NULL is fine. */
void http_stop(struct http *h);

#endif /* CUEQ_HTTP_H */
