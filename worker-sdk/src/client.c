/*
 * client.c - the connection to a broker and the request engine.
 *
 * One nng REQ socket per client, with nng's own resend turned off: a long
 * poll would otherwise be resent every minute.  Each call borrows a request
 * context (nng_ctx + nng_aio) from a small pool, so calls from many threads
 * run at once on one connection.  A request gets a random 16-byte request ID
 * and, when its answer does not come in time or the broker says UNAVAILABLE,
 * the very same bytes are sent again until the retry deadline: the broker
 * answers a repeated ID with its first answer and applies nothing twice.
 * (When a connection drops, nng itself resends the pending request on the
 * next connection, again the same bytes.)  A call can belong to a group
 * that another thread cuts short (sdk_cut: a worker that is told to stop);
 * only an attempt that has not left yet is aborted, so no answer the
 * broker may have given is thrown away.
 */
#include "sdk.h"

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_AUTH 256 /* the broker's limit */

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	cueq_client *c = arg;

	(void)p;
	if (ev != NNG_PIPE_EV_ADD_POST && ev != NNG_PIPE_EV_REM_POST)
		return;
	pthread_mutex_lock(&c->mu);
	if (ev == NNG_PIPE_EV_ADD_POST)
		c->pipes_added++, c->pipes_live++;
	else if (c->pipes_live > 0)
		c->pipes_live--;
	pthread_cond_broadcast(&c->cv);
	sdk_watch_fn fn = c->watch;
	void *arg2 = c->watch_arg;
	pthread_mutex_unlock(&c->mu);
	if (fn != NULL)
		fn(arg2, ev == NNG_PIPE_EV_ADD_POST);
}

void sdk_client_watch(cueq_client *c, sdk_watch_fn fn, void *arg)
{
	pthread_mutex_lock(&c->mu);
	c->watch = fn;
	c->watch_arg = arg;
	bool up = c->pipes_live > 0;
	pthread_mutex_unlock(&c->mu);
	if (fn != NULL && up)
		fn(arg, true);
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

static void slot_free(struct ctx_slot *s)
{
	if (s == NULL)
		return;
	if (s->aio != NULL)
		nng_aio_free(s->aio);
	nng_ctx_close(s->ctx);
	free(s);
}

/* Takes an idle request context, or opens one. */
static int slot_get(cueq_client *c, struct ctx_slot **out)
{
	struct ctx_slot *s = NULL;
	int rv;

	pthread_mutex_lock(&c->mu);
	if (c->n_pool > 0)
		s = c->pool[--c->n_pool];
	pthread_mutex_unlock(&c->mu);
	if (s != NULL) {
		*out = s;
		return CUEQ_OK;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory opening a request context");
	if ((rv = nng_ctx_open(&s->ctx, c->sock)) != 0) {
		free(s);
		if (rv == NNG_ECLOSED)
			return sdk_fail(CUEQ_ERR_CLOSED, "the client is closed");
		return sdk_fail(CUEQ_ERR_NOMEM, "cannot open a request context: %s",
				nng_strerror(rv));
	}
	nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if ((rv = nng_aio_alloc(&s->aio, NULL, NULL)) != 0) {
		slot_free(s);
		return sdk_fail(CUEQ_ERR_NOMEM, "cannot allocate an nng aio: %s", nng_strerror(rv));
	}
	*out = s;
	return CUEQ_OK;
}

static void slot_put(cueq_client *c, struct ctx_slot *s)
{
	pthread_mutex_lock(&c->mu);
	if (c->n_pool < SDK_POOL_MAX) {
		c->pool[c->n_pool++] = s;
		s = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	slot_free(s);
}

static nng_duration duration(int64_t ms)
{
	if (ms < 1)
		return 1;
	if (ms > INT32_MAX)
		return INT32_MAX;
	return (nng_duration)ms;
}

/* ---- cutting calls short ---------------------------------------------- */

int sdk_cut_init(struct sdk_cut *g)
{
	memset(g, 0, sizeof(*g));
	return pthread_mutex_init(&g->mu, NULL) == 0 ? 0 : -1;
}

void sdk_cut_destroy(struct sdk_cut *g)
{
	pthread_mutex_destroy(&g->mu);
}

void sdk_cut(struct sdk_cut *g, int64_t grace_ms)
{
	pthread_mutex_lock(&g->mu);
	if (g->at == 0) {
		g->at = proto_mono_ms();
		g->grace_ms = grace_ms > 0 ? grace_ms : 0;
		/* Under mu, so only a send that has not left is aborted:
		 * sent_in takes an attempt off the list before its receive. */
		for (struct ctx_slot *s = g->sending; s != NULL; s = s->cut_next)
			nng_aio_abort(s->aio, NNG_ECANCELED);
	}
	pthread_mutex_unlock(&g->mu);
}

void sdk_cut_reset(struct sdk_cut *g)
{
	pthread_mutex_lock(&g->mu);
	g->at = 0;
	pthread_mutex_unlock(&g->mu);
}

/* When a call of g (NULL: none) that started at start and would end at end
 * must end; *seen gets the cut this is based on. */
static int64_t cut_end(struct sdk_cut *g, int64_t start, int64_t end, int64_t *seen)
{
	int64_t e;

	*seen = 0;
	if (g == NULL)
		return end;
	pthread_mutex_lock(&g->mu);
	*seen = g->at;
	e = g->at == 0 ? end : (g->at > start ? g->at : start) + g->grace_ms;
	pthread_mutex_unlock(&g->mu);
	return e < end ? e : end;
}

/* Starts the send of s as a member of g, unless g was cut since the caller
 * looked (seen): then false, and nothing was started. */
static bool send_in(struct sdk_cut *g, int64_t seen, struct ctx_slot *s)
{
	pthread_mutex_lock(&g->mu);
	if (g->at != seen) {
		pthread_mutex_unlock(&g->mu);
		return false;
	}
	s->cut_next = g->sending;
	g->sending = s;
	nng_ctx_send(s->ctx, s->aio);
	pthread_mutex_unlock(&g->mu);
	return true;
}

/* The send of s is over: a cut can no longer abort it. */
static void sent_in(struct sdk_cut *g, struct ctx_slot *s)
{
	pthread_mutex_lock(&g->mu);
	for (struct ctx_slot **p = &g->sending; *p != NULL; p = &(*p)->cut_next) {
		if (*p == s) {
			*p = s->cut_next;
			break;
		}
	}
	s->cut_next = NULL;
	pthread_mutex_unlock(&g->mu);
}

/* ---- requests --------------------------------------------------------- */

/* One send and receive on s within timeout_ms, as a member of g (may be
 * NULL) that saw cut seen; returns an nng error, NNG_ECANCELED when cut
 * before it left. */
static int attempt(struct ctx_slot *s, nng_msg *req, int64_t timeout_ms, struct sdk_cut *g,
		   int64_t seen, nng_msg **rep)
{
	int64_t end = proto_mono_ms() + timeout_ms;
	nng_msg *m;
	int rv;

	if ((rv = nng_msg_dup(&m, req)) != 0)
		return rv;
	nng_aio_set_msg(s->aio, m);
	nng_aio_set_timeout(s->aio, duration(timeout_ms));
	if (g == NULL) {
		nng_ctx_send(s->ctx, s->aio);
	} else if (!send_in(g, seen, s)) {
		nng_aio_set_msg(s->aio, NULL);
		nng_msg_free(m);
		return NNG_ECANCELED;
	}
	nng_aio_wait(s->aio);
	if (g != NULL)
		sent_in(g, s);
	if ((rv = nng_aio_result(s->aio)) != 0) {
		if ((m = nng_aio_get_msg(s->aio)) != NULL)
			nng_msg_free(m);
		nng_aio_set_msg(s->aio, NULL);
		return rv;
	}
	nng_aio_set_timeout(s->aio, duration(end - proto_mono_ms()));
	nng_ctx_recv(s->ctx, s->aio);
	nng_aio_wait(s->aio);
	if ((rv = nng_aio_result(s->aio)) != 0)
		return rv;
	*rep = nng_aio_get_msg(s->aio);
	nng_aio_set_msg(s->aio, NULL);
	return *rep != NULL ? 0 : NNG_EPROTO;
}

/* Decodes a reply to rq into rp: CUEQ_OK for a good one, the broker's
 * error code (last error = its sentence), or PROTOCOL. */
static int read_reply(struct sdk_request *rq, nng_msg *msg, struct sdk_reply *rp)
{
	const char *rid = NULL, *name = NULL, *text = NULL;
	size_t rid_n = 0, name_n = 0, text_n = 0;
	uint64_t v = 0;
	proto_error e = { 0 };
	bool ok = false;
	int code;

	rp->msg = msg;
	rp->up_init = true;
	if (proto_decode(nng_msg_body(msg), nng_msg_len(msg), &rp->up, &e) != CUEQ_OK)
		return sdk_bad_reply(rq->op, &e);
	rp->root = &rp->up.data;
	if (proto_uint(rp->root, "v", true, 0, UINT32_MAX, &v, &e) != CUEQ_OK ||
	    proto_bytes(rp->root, "rid", false, PROTO_MAX_RID, &rid, &rid_n, &e) != CUEQ_OK ||
	    proto_bool(rp->root, "ok", true, &ok, &e) != CUEQ_OK)
		return sdk_bad_reply(rq->op, &e);
	if (v != PROTO_VERSION)
		return sdk_fail(CUEQ_ERR_PROTOCOL,
				"the broker speaks protocol version %llu, this client %d: upgrade "
				"the older side",
				(unsigned long long)v, PROTO_VERSION);
	if (rid != NULL && (rid_n != SDK_RID_LEN || memcmp(rid, rq->rid, SDK_RID_LEN) != 0)) {
		proto_fail(&e, CUEQ_ERR_BAD_REQUEST, "it answers another request ID");
		return sdk_bad_reply(rq->op, &e);
	}
	if (ok)
		return CUEQ_OK;
	if (proto_str(rp->root, "err", true, 64, &name, &name_n, &e) != CUEQ_OK ||
	    proto_str(rp->root, "msg", false, CUEQ_MAX_TEXT, &text, &text_n, &e) != CUEQ_OK)
		return sdk_bad_reply(rq->op, &e);
	code = proto_err_code(name, name_n);
	const char *missing = NULL;
	size_t missing_n = 0;
	if (code == CUEQ_ERR_NOT_FOUND &&
	    proto_str(rp->root, "missing", false, 16, &missing, &missing_n, &e) == CUEQ_OK &&
	    missing != NULL && missing_n == 4 && memcmp(missing, "step", 4) == 0)
		code = CUEQ_ERR_NO_STEP;
	if (code == CUEQ_ERR_PROTOCOL)
		return sdk_fail(code, "the broker answered %s with unknown error '%.*s': %.*s", rq->op,
				(int)(name_n > 64 ? 64 : name_n), name,
				(int)(text_n > 800 ? 800 : text_n), text ? text : "");
	if (text != NULL && text_n > 0)
		return sdk_fail(code, "%.*s", (int)(text_n > 900 ? 900 : text_n), text);
	return sdk_fail(code, "the broker refused %s with %s", rq->op, name);
}

void sdk_reply_free(struct sdk_reply *rp)
{
	if (rp->up_init)
		msgpack_unpacked_destroy(&rp->up);
	if (rp->msg != NULL)
		nng_msg_free(rp->msg);
	memset(rp, 0, sizeof(*rp));
}

int sdk_request_begin(cueq_client *c, struct sdk_request *rq, const char *op, size_t n_fields)
{
	memset(rq, 0, sizeof(*rq));
	rq->op = op;
	if (nng_msg_alloc(&rq->msg, 0) != 0)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory building a %s request", op);
	sdk_random(rq->rid, sizeof(rq->rid));
	proto_writer_init(&rq->w, rq->msg);
	proto_request_begin(&rq->w.pk, op, rq->rid, sizeof(rq->rid), c->cid, sizeof(c->cid), c->auth,
			    n_fields);
	return CUEQ_OK;
}

int sdk_call(cueq_client *c, struct sdk_request *rq, int64_t extra_ms, int64_t deadline,
	     struct sdk_reply *rp)
{
	int64_t start = proto_mono_ms(), end, backoff = 50;
	struct ctx_slot *s = NULL;
	size_t len = nng_msg_len(rq->msg);
	int rc, rv = 0;
	bool unavailable = false;

	memset(rp, 0, sizeof(*rp));
	if (rq->w.failed) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory building a %s request", rq->op);
		goto out;
	}
	if (len > PROTO_MAX_FRAME) {
		rc = sdk_fail(CUEQ_ERR_TOO_LARGE,
			      "the %s request is %zu bytes; the limit is %u (4 MiB): send fewer or "
			      "smaller items per request",
			      rq->op, len, PROTO_MAX_FRAME);
		goto out;
	}
	if ((rc = slot_get(c, &s)) != CUEQ_OK)
		goto out;
	end = start + c->retry_deadline_ms + extra_ms;
	if (deadline > 0 && deadline < end)
		end = deadline;
	for (;;) {
		int64_t now = proto_mono_ms(), per = c->request_timeout_ms + extra_ms, seen;
		int64_t until = cut_end(rq->cut, start, end, &seen);
		nng_msg *msg = NULL;

		if (now >= until)
			break;
		if (per > until - now)
			per = until - now;
		rv = attempt(s, rq->msg, per, rq->cut, seen, &msg);
		if (rv == 0) {
			rc = read_reply(rq, msg, rp);
			if (rc != CUEQ_ERR_UNAVAILABLE)
				goto out;
			/* The broker is busy or starting: back off, same rid. */
			sdk_reply_free(rp);
			unavailable = true;
			now = proto_mono_ms();
			sdk_sleep_ms(backoff < until - now ? backoff : until - now);
			backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
		} else if (rv == NNG_ECLOSED) {
			rc = sdk_fail(CUEQ_ERR_CLOSED, "the client was closed during %s", rq->op);
			goto out;
		} else if (rv == NNG_ENOMEM) {
			rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory sending %s", rq->op);
			goto out;
		} else if (rv != NNG_ETIMEDOUT) {
			/* Anything else (refused, cancelled, cut: the next turn
			 * sees the new end): pause, then resend. */
			now = proto_mono_ms();
			sdk_sleep_ms(50 < until - now ? 50 : until - now);
		}
	}
	if (unavailable)
		rc = CUEQ_ERR_UNAVAILABLE; /* its sentence is already the last error */
	else
		rc = sdk_fail(CUEQ_ERR_UNREACHABLE,
			      "no answer from the broker at %s within %lld ms: is cueqd running?",
			      c->url, (long long)(proto_mono_ms() - start));
out:
	if (rc != CUEQ_OK)
		sdk_reply_free(rp);
	if (s != NULL)
		slot_put(c, s);
	nng_msg_free(rq->msg);
	rq->msg = NULL;
	return rc;
}

static int64_t or_default(int64_t v, int64_t def)
{
	return v == 0 ? def : v;
}

#define SYSTEM_CAS "/etc/ssl/certs/ca-certificates.crt"

/* The host of a tls+tcp://HOST:PORT URL into out ("" when it has none). */
static void url_host(const char *url, char *out, size_t size)
{
	const char *h = strstr(url, "://"), *end;
	out[0] = '\0';
	if (h == NULL)
		return;
	h += 3;
	if (*h == '[') { /* [v6]:port */
		h++;
		end = strchr(h, ']');
	} else {
		end = strrchr(h, ':');
	}
	if (end == NULL || (size_t)(end - h) >= size)
		return;
	memcpy(out, h, (size_t)(end - h));
	out[end - h] = '\0';
}

/* Dials a tls+tcp:// url: the broker's certificate must verify against
 * the CA file and carry the server name. */
static int dial_tls(cueq_client *c, const char *url, const cueq_client_opts *o)
{
	const char *ca = o->tls_ca_file != NULL ? o->tls_ca_file : SYSTEM_CAS;
	char host[256];
	nng_dialer d;
	nng_tls_config *cfg = NULL;
	int rv;

	url_host(url, host, sizeof(host));
	if (o->tls_server_name != NULL)
		snprintf(host, sizeof(host), "%s", o->tls_server_name);
	if ((rv = nng_dialer_create(&d, c->sock, url)) != 0)
		return sdk_fail(CUEQ_ERR_INVALID, "cannot dial '%s' (%s): use tls+tcp://host:port", url,
				nng_strerror(rv));
	if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0 ||
	    (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
	    (rv = nng_tls_config_server_name(cfg, host)) != 0) {
		if (cfg != NULL)
			nng_tls_config_free(cfg);
		return sdk_fail(CUEQ_ERR_NOMEM, "cannot set up TLS for '%s': %s", url, nng_strerror(rv));
	}
	if ((rv = nng_tls_config_ca_file(cfg, ca)) != 0) {
		nng_tls_config_free(cfg);
		return sdk_fail(CUEQ_ERR_INVALID,
				"cannot read the CA certificates %s (%s): give a PEM file of the CA that signed the broker's certificate",
				ca, nng_strerror(rv));
	}
	rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg); /* the dialer holds it */
	if (rv == 0)
		rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	if (rv != 0)
		return sdk_fail(CUEQ_ERR_INVALID, "cannot dial '%s' (%s)", url, nng_strerror(rv));
	return CUEQ_OK;
}

int cueq_connect(const char *url, const cueq_client_opts *opts, cueq_client **out)
{
	cueq_client_opts o = { 0 };
	cueq_client *c;
	char host[64];
	int64_t deadline;
	int rv, rc;

	if (out == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_connect needs somewhere to put the client");
	*out = NULL;
	if (url == NULL || *url == '\0')
		return sdk_fail(CUEQ_ERR_INVALID, "no broker URL given: use tcp://host:port");
	if (opts != NULL)
		o = *opts;
	if (o.connect_timeout_ms < 0 || o.request_timeout_ms < 0 || o.retry_deadline_ms < 0)
		return sdk_fail(CUEQ_ERR_INVALID, "client timeouts must not be negative");
	if (o.auth != NULL && strlen(o.auth) > MAX_AUTH)
		return sdk_fail(CUEQ_ERR_INVALID, "the auth token is longer than %d bytes", MAX_AUTH);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory creating a client");
	c->connect_timeout_ms = or_default(o.connect_timeout_ms, 5000);
	c->request_timeout_ms = or_default(o.request_timeout_ms, 10000);
	c->retry_deadline_ms = or_default(o.retry_deadline_ms, 30000);
	c->detach_claims = o.detach_claims;
	sdk_random(c->cid, sizeof(c->cid)); /* the broker scopes our request IDs by it */
	if ((c->url = dup_str(url)) == NULL || (o.auth != NULL && (c->auth = dup_str(o.auth)) == NULL)) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory creating a client");
		goto fail;
	}
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(c->worker_name, sizeof(c->worker_name), "%s:%ld", host, (long)getpid());
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "cannot create a mutex");
		goto fail;
	}
	if (sdk_cond_init(&c->cv) != 0) {
		pthread_mutex_destroy(&c->mu);
		rc = sdk_fail(CUEQ_ERR_NOMEM, "cannot create a condition variable");
		goto fail;
	}
	c->mu_init = true;
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "cannot open an nng REQ socket: %s", nng_strerror(rv));
		goto fail;
	}
	c->sock_open = true;
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, PROTO_TRANSPORT_MAX);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 1000);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, on_pipe, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, on_pipe, c);
	bool tls = strncmp(url, "tls+", 4) == 0;
	if (tls && (rc = dial_tls(c, url, &o)) != CUEQ_OK)
		goto fail;
	if (!tls && (rv = nng_dial(c->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		rc = sdk_fail(CUEQ_ERR_INVALID,
			      "cannot dial '%s' (%s): use tcp://host:port, tls+tcp://host:port or ipc:///path",
			      url, nng_strerror(rv));
		goto fail;
	}
	deadline = proto_mono_ms() + c->connect_timeout_ms;
	pthread_mutex_lock(&c->mu);
	while (c->pipes_added == 0 && proto_mono_ms() < deadline)
		sdk_cond_wait_until(&c->cv, &c->mu, deadline);
	rv = c->pipes_added > 0;
	pthread_mutex_unlock(&c->mu);
	if (!rv) {
		long long waited = (long long)c->connect_timeout_ms;
		cueq_close(c);
		if (tls)
			return sdk_fail(CUEQ_ERR_UNREACHABLE,
					"no answer from the broker at %s within %lld ms: does cueqd run there, with a certificate for its host name signed by the CA given (--tls-ca, CUEQ_TLS_CA)?",
					url, waited);
		return sdk_fail(CUEQ_ERR_UNREACHABLE,
				"no answer from the broker at %s within %lld ms: is cueqd running?",
				url, waited);
	}
	*out = c;
	return CUEQ_OK;
fail:
	cueq_close(c);
	return rc;
}

void cueq_close(cueq_client *c)
{
	if (c == NULL)
		return;
	if (c->mu_init) {
		for (size_t i = 0; i < c->n_pool; i++)
			slot_free(c->pool[i]);
		c->n_pool = 0;
	}
	if (c->sock_open)
		nng_close(c->sock);
	if (c->mu_init) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
	}
	free(c->url);
	free(c->auth);
	free(c);
}

int cueq_ping(cueq_client *c, int64_t *server_time_ms)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	proto_error e = { 0 };
	uint64_t t = 0;
	int rc;

	if (c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_ping needs a client");
	if ((rc = sdk_request_begin(c, &rq, "ping", 0)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_uint(rp.root, "time", false, 0, INT64_MAX, &t, &e) != CUEQ_OK)
		rc = sdk_bad_reply("ping", &e);
	else if (server_time_ms != NULL)
		*server_time_ms = (int64_t)t;
	sdk_reply_free(&rp);
	return rc;
}
