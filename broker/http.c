/*
 * http.c - the HTTP face's server: libmicrohttpd, one request's life, and
 * its hand-off to the core (http.h).
 *
 * A request is read whole (its body bounded by --max-frame), routed
 * (http_api.c) into a call of one wire op, packed as the nng face's
 * clients pack theirs, and delivered to the core; its connection is
 * suspended until the core answers through the face's reply hook (from
 * the core or syncer thread, after the sync that makes a write durable),
 * which resumes it; libmicrohttpd then calls us again on its own thread and
 * the answer is made into JSON there.  Nothing of the core runs here.
 *
 * An Idempotency-Key (IETF draft "The Idempotency-Key HTTP Header Field")
 * becomes the request's ID under a client ID of this face's own, sent
 * with retry_ttl_ms: so the core remembers the first answer on disk for the
 * window (--idempotency-window), replays it byte for byte to the same key
 * and bytes, even after a restart, and refuses the key with other bytes.
 * While the first is still in the core, a repeat is 409 (the draft's
 * rule), from the set of keys in progress kept here.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dashboard.h"
#include "http_int.h"
#include "http_json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "prom.h"
#include "proto.h"

/* The client ID under which Idempotency-Keys are request IDs: every HTTP
 * client shares it (with --auth, the core scopes it by principal too). */
static const char face_cid[] = "cueq-http-face";
#define IDEM_KEY_MAX 255

static void face_done(struct request *r, nng_msg *reply);
static void face_drop(struct request *r);
static const struct request_face face = {.reply = face_done, .drop = face_drop};

/* ---- answers ---- */

static const struct {
	const char *code;
	unsigned status;
	const char *title;
} statuses[] = {
	{"BAD_REQUEST", 400, "Bad Request"},
	{"UNAUTHORIZED", 401, "Unauthorized"},
	{"FORBIDDEN", 403, "Forbidden"},
	{"NOT_FOUND", 404, "Not Found"},
	{"METHOD_NOT_ALLOWED", 405, "Method Not Allowed"},
	{"CONFLICT", 409, "Conflict"},
	{"STALE_LEASE", 409, "Conflict"},
	{"IDEMPOTENCY_MISMATCH", 422, "Unprocessable Content"},
	{"TOO_LARGE", 413, "Content Too Large"},
	{"UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported Media Type"},
	{"UNAVAILABLE", 503, "Service Unavailable"},
	{"INTERNAL", 500, "Internal Server Error"},
};

unsigned http_status_of(const char *code)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(*statuses); i++)
		if (strcmp(statuses[i].code, code) == 0)
			return statuses[i].status;
	return 500;
}

static const char *title_of(unsigned status)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(*statuses); i++)
		if (statuses[i].status == status)
			return statuses[i].title;
	return "Error";
}

static enum MHD_Result queue_text(struct hreq *hr, unsigned status, char *text, size_t len,
				  const char *type, const char *extra_header,
				  const char *extra_value)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (extra_header != NULL)
		MHD_add_response_header(resp, extra_header, extra_value);
	if (hr->where[0] != '\0' && status == 201)
		MHD_add_response_header(resp, "Location", hr->where);
	if (hr->idem && (hr->flags & REQ_REPLAYED))
		MHD_add_response_header(resp, "Idempotent-Replayed", "true");
	if (status == 401)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"cueq\"");
	if (status == 503)
		MHD_add_response_header(resp, "Retry-After", "1");
	enum MHD_Result r = MHD_queue_response(hr->conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

enum MHD_Result http_metrics(struct hreq *hr, const void *reply, size_t len)
{
	size_t n = 0;
	char *text = prom_render(reply, len, &n);
	if (text == NULL)
		return http_problem(hr, 500, "INTERNAL", "the metrics could not be rendered", NULL);
	return queue_text(hr, 200, text, n, PROM_CONTENT_TYPE, NULL, NULL);
}

enum MHD_Result http_json(struct hreq *hr, unsigned status, json_t *v, const char *extra_header,
			  const char *extra_value)
{
	size_t len = 0;
	char *text = v != NULL ? hj_dump(v, &len) : NULL;
	json_decref(v);
	if (text == NULL)
		return MHD_NO; /* out of memory: the connection is closed */
	const char *type = status >= 400 ? "application/problem+json" : "application/json";
	return queue_text(hr, status, text, len, type, extra_header, extra_value);
}

enum MHD_Result http_problem(struct hreq *hr, unsigned status, const char *code,
			     const char *detail, json_t *extra)
{
	char type[64];
	json_t *p = json_object();
	if (p == NULL) {
		json_decref(extra);
		return MHD_NO;
	}
	snprintf(type, sizeof(type), "urn:cueq:error:%s", code);
	json_object_set_new(p, "type", json_string(type));
	json_object_set_new(p, "title", json_string(title_of(status)));
	json_object_set_new(p, "status", json_integer(status));
	json_object_set_new(p, "detail", json_string(detail));
	json_object_set_new(p, "code", json_string(code));
	if (extra != NULL) {
		const char *k;
		json_t *v;
		json_object_foreach(extra, k, v)
			if (json_object_get(p, k) == NULL)
				json_object_set(p, k, v);
		json_decref(extra);
	}
	return http_json(hr, status, p, NULL, NULL);
}

const char *http_header(const struct hreq *hr, const char *name)
{
	return MHD_lookup_connection_value(hr->conn, MHD_HEADER_KIND, name);
}

/* ---- the core's answers (any thread) ---- */

/* Where digest is in the set of keys in progress, or -1 (mu held). */
static long key_at(const struct http *h, const uint8_t *digest)
{
	for (size_t i = 0; i < h->n_keys; i++)
		if (memcmp(h->keys[i], digest, HTTP_KEY_DIGEST) == 0)
			return (long)i;
	return -1;
}

static void forget_key(struct http *h, struct hreq *hr)
{
	if (!hr->inflight)
		return;
	long i = key_at(h, hr->digest);
	if (i >= 0)
		memcpy(h->keys[i], h->keys[--h->n_keys], HTTP_KEY_DIGEST);
	hr->inflight = false;
}

static void face_done(struct request *r, nng_msg *reply)
{
	struct hreq *hr = (struct hreq *)r; /* req is its first member */
	struct http *h = hr->h;
	if (r->msg != NULL)
		nng_msg_free(r->msg);
	r->msg = NULL;
	pthread_mutex_lock(&h->mu);
	hr->reply = reply;
	hr->flags = r->flags;
	hr->state = H_ANSWERED;
	forget_key(h, hr);
	pthread_mutex_unlock(&h->mu);
	MHD_resume_connection(hr->conn);
}

static void face_drop(struct request *r)
{
	face_done(r, NULL);
}

/* ---- handing a call to the core ---- */

static size_t pack_count(const struct call *c)
{
	return json_object_size(c->fields) + (c->raw_key != NULL ? 1 : 0);
}

static void pack_fields(msgpack_packer *pk, const struct call *c, char *err, size_t errlen,
			int *bad)
{
	if (hj_pack_pairs(pk, c->fields, err, errlen) != 0)
		*bad = 1;
	if (c->raw_key != NULL) {
		proto_kv_bin(pk, c->raw_key, c->raw, c->raw_len);
	}
}

/* The bearer token of Authorization, or NULL (and *bad when malformed). */
static const char *bearer(const struct hreq *hr, bool *bad)
{
	const char *a = http_header(hr, "Authorization");
	*bad = false;
	if (a == NULL)
		return NULL;
	if (strncasecmp(a, "Bearer ", 7) != 0) {
		*bad = true;
		return NULL;
	}
	a += 7;
	while (*a == ' ')
		a++;
	return a;
}

/* The Idempotency-Key: a structured-field string ("...") or, as most
 * clients send it, the bare text.  NULL when none; *bad when unusable. */
static const char *idem_key(const struct hreq *hr, char *buf, size_t size, bool *bad)
{
	const char *k = http_header(hr, "Idempotency-Key");
	*bad = false;
	if (k == NULL)
		return NULL;
	size_t n = strlen(k);
	if (n >= 2 && k[0] == '"' && k[n - 1] == '"')
		k++, n -= 2;
	if (n == 0 || n > IDEM_KEY_MAX || n >= size) {
		*bad = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)k[i] < 0x20 || (unsigned char)k[i] > 0x7e || k[i] == '"') {
			*bad = true;
			return NULL;
		}
	memcpy(buf, k, n);
	buf[n] = '\0';
	return buf;
}

static enum MHD_Result deliver(struct hreq *hr, struct call *c)
{
	struct http *h = hr->h;
	char err[256] = "", keybuf[IDEM_KEY_MAX + 1];
	bool bad_auth, bad_key;
	const char *token = bearer(hr, &bad_auth), *key = NULL;
	uint8_t rid[32];
	size_t rid_len = 16;

	if (bad_auth)
		return http_problem(hr, 401, "UNAUTHORIZED",
				    "the Authorization header must be 'Bearer TOKEN' (a token of the broker's --auth file)",
				    NULL);
	if (c->answer == A_PUSH || c->answer == A_BATCH) {
		key = idem_key(hr, keybuf, sizeof(keybuf), &bad_key);
		if (bad_key)
			return http_problem(hr, 400, "BAD_REQUEST",
					    "the Idempotency-Key must be 1-255 printable ASCII characters", NULL);
	}
	if (key != NULL) {
		/* the request ID: the key's digest; the set of keys in
		 * progress tells tokens apart as the core's scopes do */
		crypto_generichash(rid, sizeof(rid), (const uint8_t *)key, strlen(key), NULL, 0);
		rid_len = sizeof(rid);
		crypto_generichash_state st;
		crypto_generichash_init(&st, NULL, 0, HTTP_KEY_DIGEST);
		crypto_generichash_update(&st, rid, sizeof(rid));
		if (token != NULL)
			crypto_generichash_update(&st, (const uint8_t *)token, strlen(token));
		crypto_generichash_final(&st, hr->digest, HTTP_KEY_DIGEST);
		hr->idem = true;
	} else {
		randombytes_buf(rid, rid_len);
	}

	nng_msg *m;
	proto_writer w;
	int bad = 0;
	if (nng_msg_alloc(&m, 0) != 0)
		return MHD_NO;
	proto_writer_init(&w, m);
	size_t n = c->wrap == W_PLAIN ? pack_count(c) : 1;
	proto_request_begin(&w.pk, c->op, rid, rid_len, key ? face_cid : NULL,
			    key ? sizeof(face_cid) - 1 : 0, token, n + (key ? 1 : 0));
	if (key != NULL)
		proto_kv_uint(&w.pk, "retry_ttl_ms", (uint64_t)h->cfg.idem_window_ms);
	if (c->wrap != W_PLAIN) {
		proto_key(&w.pk, c->wrap == W_JOB ? "jobs" : "items");
		msgpack_pack_array(&w.pk, 1);
		msgpack_pack_map(&w.pk, pack_count(c));
	}
	pack_fields(&w.pk, c, err, sizeof(err), &bad);
	if (bad || w.failed) {
		nng_msg_free(m);
		if (!bad)
			return MHD_NO;
		return http_problem(hr, 400, "BAD_REQUEST", err, NULL);
	}
	hr->req.msg = m;
	hr->req.pipe = 0; /* no connection of the core's to hold leases by */
	hr->req.face = &face;
	hr->req.flags = c->verified ? REQ_VERIFIED : 0;
	hr->req.next = NULL;
	hr->req.arrived_ns = metrics_clock_ns();
	hr->req.body_hash = request_body_hash(m);
	hr->answer = c->answer;

	pthread_mutex_lock(&h->mu);
	if (key != NULL) {
		if (key_at(h, hr->digest) >= 0) {
			pthread_mutex_unlock(&h->mu);
			nng_msg_free(m);
			hr->req.msg = NULL;
			hr->idem = false; /* this answer is no replay */
			return http_problem(hr, 409, "CONFLICT",
					    "a request with this Idempotency-Key is still being processed; retry once it has been answered",
					    NULL);
		}
		if (h->n_keys == h->cap_keys) {
			size_t cap = h->cap_keys ? h->cap_keys * 2 : 64;
			void *k = realloc(h->keys, cap * HTTP_KEY_DIGEST);
			if (k == NULL) {
				pthread_mutex_unlock(&h->mu);
				nng_msg_free(m);
				hr->req.msg = NULL;
				return MHD_NO;
			}
			h->keys = k;
			h->cap_keys = cap;
		}
		memcpy(h->keys[h->n_keys++], hr->digest, HTTP_KEY_DIGEST);
		hr->inflight = true;
	}
	h->outstanding++;
	hr->state = H_CORE;
	pthread_mutex_unlock(&h->mu);
	MHD_suspend_connection(hr->conn);
	loop_deliver(h->loop, &hr->req);
	return MHD_YES;
}

/* ---- who may send requests here ---- */

/* Whether host (a Host header) names this machine by an address or as
 * localhost: what a page of another site, rebinding its own name to
 * 127.0.0.1, cannot send. */
static bool host_literal(const char *host)
{
	char h[128];
	size_t n = strlen(host);
	if (n == 0 || n >= sizeof(h))
		return false;
	memcpy(h, host, n + 1);
	if (h[0] == '[') { /* [v6]:port */
		char *end = strchr(h, ']');
		struct in6_addr a6;
		if (end == NULL)
			return false;
		*end = '\0';
		return inet_pton(AF_INET6, h + 1, &a6) == 1;
	}
	char *colon = strrchr(h, ':');
	if (colon != NULL)
		*colon = '\0';
	struct in_addr a4;
	return strcasecmp(h, "localhost") == 0 || inet_pton(AF_INET, h, &a4) == 1;
}

/* Refuses what a browser sends on behalf of another site: a state-changing
 * request whose Origin is not this server's, and, without --auth, any
 * request whose Host is a name (DNS rebinding).  0, or answered. */
static int guard(struct hreq *hr, const char *method, enum MHD_Result *res)
{
	const char *host = http_header(hr, "Host");
	if (!hr->h->cfg.auth && host != NULL && !host_literal(host)) {
		*res = http_problem(hr, 403, "FORBIDDEN",
				    "this broker has no --auth, so it answers only requests addressed to an IP address or localhost (a page of another site could otherwise reach it under its own name); use http://127.0.0.1:PORT or start cueqd with --auth",
				    NULL);
		return -1;
	}
	const char *origin = http_header(hr, "Origin");
	if (origin != NULL && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		const char *o = strncmp(origin, "http://", 7) == 0 ? origin + 7 : NULL;
		if (o == NULL || host == NULL || strcmp(o, host) != 0) {
			*res = http_problem(hr, 403, "FORBIDDEN",
					    "a request from a page of another origin was refused: the HTTP API takes state-changing requests only from its own pages or from clients that send no Origin",
					    NULL);
			return -1;
		}
	}
	return 0;
}

/* ---- libmicrohttpd's callbacks (its threads) ---- */

static enum MHD_Result serve_asset(struct hreq *hr, const struct dashboard_asset *a)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", a->type);
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Content-Security-Policy",
				"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
	enum MHD_Result r = MHD_queue_response(hr->conn, 200, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct hreq *hr = *con_cls;
	(void)version;

	if (hr == NULL) {
		if ((hr = calloc(1, sizeof(*hr))) == NULL)
			return MHD_NO;
		hr->h = h;
		hr->conn = conn;
		*con_cls = hr;
		return MHD_YES;
	}
	pthread_mutex_lock(&h->mu); /* the core's thread wrote it last, once delivered */
	int state = hr->state;
	if (state == H_ANSWERED)
		hr->state = H_DONE;
	pthread_mutex_unlock(&h->mu);
	if (state == H_READ && *upload_size > 0) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (hr->too_big || hr->len + n > h->cfg.max_body) {
			hr->too_big = true; /* read on, keep nothing: then 413 */
			free(hr->body);
			hr->body = NULL;
			hr->len = hr->cap = 0;
			return MHD_YES;
		}
		if (hr->len + n + 1 > hr->cap) {
			size_t cap = hr->cap ? hr->cap : 4096;
			while (cap < hr->len + n + 1)
				cap *= 2;
			char *b = realloc(hr->body, cap);
			if (b == NULL)
				return MHD_NO;
			hr->body = b;
			hr->cap = cap;
		}
		memcpy(hr->body + hr->len, upload, n);
		hr->len += n;
		hr->body[hr->len] = '\0';
		return MHD_YES;
	}
	if (state == H_READ) {
		enum MHD_Result res;
		char msg[128];
		if (hr->too_big) {
			snprintf(msg, sizeof(msg), "the request body is over %zu bytes (cueqd --max-frame)",
				 h->cfg.max_body);
			return http_problem(hr, 413, "TOO_LARGE", msg, NULL);
		}
		if (guard(hr, method, &res) != 0)
			return res;
		if ((strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) &&
		    strncmp(url, "/v1/", 4) != 0 && strcmp(url, "/metrics") != 0) {
			const struct dashboard_asset *a = dashboard_find(url);
			if (a != NULL)
				return serve_asset(hr, a);
		}
		struct call c = {0};
		int rc = api_route(hr, method, url, &c);
		if (rc != 0) {
			json_decref(c.fields);
			return rc > 0 ? MHD_YES : MHD_NO;
		}
		res = deliver(hr, &c);
		json_decref(c.fields);
		return res;
	}
	if (state != H_ANSWERED)
		return MHD_YES; /* called again before the core answered */
	return api_answer(hr);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct hreq *hr = *con_cls;
	(void)conn;
	(void)toe;
	if (hr == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	forget_key(h, hr); /* never delivered: refused on the way */
	if (hr->state != H_READ)
		h->outstanding--; /* delivered, answered, and its answer sent (or the client gone) */
	pthread_mutex_unlock(&h->mu);
	if (hr->reply != NULL)
		nng_msg_free(hr->reply);
	if (hr->req.msg != NULL && hr->state == H_READ)
		nng_msg_free(hr->req.msg);
	free(hr->body);
	free(hr);
	*con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	(void)cls, (void)conn, (void)socket_context;
	metrics_http_connection(toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_warn("http: %s", line);
}

/* ---- start and stop ---- */

/* HOST:PORT or [V6]:PORT into a socket address.  -1 when it is not one. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, bool *v6)
{
	char host[128];
	const char *colon;
	memset(ss, 0, sizeof(*ss));
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (end == NULL || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof(host))
			return -1;
		memcpy(host, addr + 1, (size_t)(end - addr - 1));
		host[end - addr - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
			return -1;
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
	}
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535 || errno != 0)
		return -1;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*v6 = false;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*v6 = true;
		return 0;
	}
	return -1;
}

bool http_addr_ok(const char *addr)
{
	struct sockaddr_storage ss;
	bool v6;
	return parse_addr(addr, &ss, &v6) == 0;
}

int http_start(const struct http_config *cfg, struct loop *l, struct http **out, char *err,
	       size_t errlen)
{
	struct sockaddr_storage ss;
	bool v6;
	if (parse_addr(cfg->addr, &ss, &v6) != 0) {
		snprintf(err, errlen, "--http %s is not HOST:PORT (e.g. 127.0.0.1:7701, [::1]:7701) or off",
			 cfg->addr);
		return -1;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium did not start");
		return -1;
	}
	struct http *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->cfg = *cfg;
	h->loop = l;
	pthread_mutex_init(&h->mu, NULL);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
	/* the logger first, or libmicrohttpd prints what comes before it */
	h->d = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_log, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
		h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_END);
	if (h->d == NULL) {
		snprintf(err, errlen, "cannot serve HTTP on %s (is the port taken by another cueqd? give --http HOST:PORT, or --http off)",
			 cfg->addr);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return -1;
	}
	*out = h;
	return 0;
}

void http_quiesce(struct http *h)
{
	if (h != NULL)
		MHD_quiesce_daemon(h->d);
}

void http_stop(struct http *h)
{
	if (h == NULL)
		return;
	/* every request the core had is answered by now (loop_free drops
	 * the rest); let the resumed connections send their answers (up to
	 * 2 s: a client that does not read loses its answer) */
	for (int i = 0; i < 400; i++) {
		pthread_mutex_lock(&h->mu);
		size_t left = h->outstanding;
		pthread_mutex_unlock(&h->mu);
		if (left == 0)
			break;
		usleep(5000);
	}
	MHD_stop_daemon(h->d);
	free(h->keys);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
