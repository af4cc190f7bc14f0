/*
 * http_int.h - what the files of the HTTP face share: one request's state
 * (struct hreq), the call a route makes of it for the core (struct call),
 * and the helpers that answer it.  Private to http*.c.
 */
#ifndef CUEQ_HTTP_INT_H
#define CUEQ_HTTP_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "server.h"

#define HTTP_KEY_DIGEST 32 /* an Idempotency-Key's digest, with its token */

/* How a route's answer is made from the core's reply. */
enum answer_kind {
	A_PLAIN, /* the reply's fields */
	A_PUSH,	 /* the one job's result: 201, or 200 for a duplicate */
	A_BATCH, /* a push of many (Idempotency-Key too): the reply's fields */
	A_ITEM,	 /* the one item's result (ack, nack, extend) */
	A_QUEUE, /* the one queue of stats; 404 when there is none */
	A_HOOK,	 /* webhook: 202 with the execution, 200 for a duplicate */
	A_METRICS
};

/* How the route's fields go into the wire request. */
enum wrap { W_PLAIN, W_JOB, W_ITEM };

/* What a route asks of the core. */
struct call {
	const char *op;
	json_t *fields; /* the op's fields (owned) */
	int wrap;	/* enum wrap: the fields themselves, or jobs: [them], items: [them] */
	const char *raw_key; /* a bin field beside fields: the body as payload or value */
	const void *raw;
	size_t raw_len;
	int answer; /* enum answer_kind */
	bool verified; /* a webhook checked by its signature (REQ_VERIFIED) */
};

enum hstate { H_READ, H_CORE, H_ANSWERED, H_DONE };

struct hreq {
	struct request req; /* handed to the core */
	struct http *h;
	struct MHD_Connection *conn;
	int state; /* enum hstate */
	char *body;
	size_t len, cap;
	bool too_big;
	nng_msg *reply;	 /* the core's answer (NULL: dropped) */
	unsigned flags;	 /* the request's REQ_* when answered */
	int answer;	 /* enum answer_kind */
	bool idem;	 /* carries an Idempotency-Key */
	bool inflight;	 /* its digest is in the set of keys in progress */
	uint8_t digest[HTTP_KEY_DIGEST];
	char where[160]; /* Location of a created execution */
	const char *hook_queue; /* the webhook's queue */
	char opname[33];	/* POST /v1/ops/{op}'s op */
};

struct http {
	struct MHD_Daemon *d;
	struct loop *loop;
	struct http_config cfg;
	pthread_mutex_t mu;
	size_t outstanding; /* requests handed to the core whose answer is not yet sent */
	uint8_t (*keys)[HTTP_KEY_DIGEST]; /* Idempotency-Keys in progress */
	size_t n_keys, cap_keys;
};

/* ---- http_api.c ---- */
/* Fills c for the request (method, path, body); 0, or an HTTP status with
 * a problem answer queued already. */
int api_route(struct hreq *hr, const char *method, const char *url, struct call *c);
/* Queues the answer made from the core's reply. */
enum MHD_Result api_answer(struct hreq *hr);

/* ---- http_hooks.c ---- */
const struct http_hook *hooks_find(const struct http *h, const char *queue);
/* Checks a webhook's signature and finds its delivery ID: 0, or a status
 * with a problem queued. */
int hooks_check(struct hreq *hr, const struct http_hook *hook, char *key, size_t keylen);

/* ---- http.c ---- */
/* Queues status with a JSON body (v is consumed). */
enum MHD_Result http_json(struct hreq *hr, unsigned status, json_t *v, const char *extra_header,
			  const char *extra_value);
/* Queues an RFC 9457 problem: code is the cueq error name; extra (may be
 * NULL, consumed) adds its fields. */
enum MHD_Result http_problem(struct hreq *hr, unsigned status, const char *code,
			     const char *detail, json_t *extra);
/* Queues the Prometheus text of a metrics op's reply. */
enum MHD_Result http_metrics(struct hreq *hr, const void *reply, size_t len);
/* The HTTP status of a cueq error name. */
unsigned http_status_of(const char *code);
/* A request header (case-insensitive name) or NULL. */
const char *http_header(const struct hreq *hr, const char *name);

#endif /* CUEQ_HTTP_INT_H */
