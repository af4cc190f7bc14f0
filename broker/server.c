/*
 * server.c - REP contexts in a recv -> (core) -> send -> recv cycle.
 *
 * Each context owns one aio.  Its callback runs on an nng thread: after a
 * receive it hands the request to the core; after a send it listens again.
 * Replies are sent with nng_ctx_send from the core or syncer thread, which
 * nng allows from any thread.
 *
 * Connections are capped (--max-connections): a connection past the cap is
 * closed as it is added, so clients can never take the descriptors the
 * store needs.  The connections let in are kept in a small hash set of
 * pipe IDs, so a pipe closed before it counted is never uncounted.
 */
#include "server.h"

#include <errno.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "proto.h"

#define POOL_START 64
#define POOL_GROW 64
#define POOL_LOW 16
#define POOL_MAX 16384
/* Answers waiting to be sent to one connection at most: a client that
 * reads nothing gets its connection closed past them.  A client that reads
 * has few waiting at any time, but a turn may answer all its parked claims
 * at once (256 by default, --max-parked-per-connection) and more. */
#define MAX_UNREAD 512

enum { S_RECV, S_WAIT, S_SEND };

struct sctx {
	struct server *s;
	nng_ctx ctx;
	nng_aio *aio;
	int state;
	struct request req;
	struct sctx *next;
};

struct server {
	nng_socket sock;
	nng_listener *listeners;
	size_t n_listeners;
	server_deliver_fn deliver;
	server_pipe_fn gone;
	void *arg;
	pthread_mutex_t mu;
	struct sctx *all;
	size_t total, listening, sending;
	bool stopping;
	bool growing; /* a callback is opening more contexts (outside mu) */
	uint32_t *pipes; /* connections let in: open addressing, 0 = free */
	uint32_t *unread; /* per slot of pipes: answers handed to nng, not yet sent */
	size_t pipes_cap, n_pipes, max_pipes;
	uint64_t unread_closed; /* connections closed for not reading */
	int64_t unread_logged;
	uint64_t refused;
	int64_t refused_logged; /* monotonic ms of the last warning */
};

static void ctx_cb(void *arg);
static long pipes_find(const struct server *s, uint32_t id);

/* Opens one more context and starts it listening.  Call without mu: nng
 * takes its socket lock in nng_ctx_open, and the pipe callback holds that
 * lock while it takes mu, so holding mu here could deadlock the two. */
static int add_ctx(struct server *s)
{
	struct sctx *c = calloc(1, sizeof(*c));
	int rv;
	if (c == NULL)
		return NNG_ENOMEM;
	c->s = s;
	c->req.ctx = c;
	if ((rv = nng_aio_alloc(&c->aio, ctx_cb, c)) != 0) {
		free(c);
		return rv;
	}
	if ((rv = nng_ctx_open(&c->ctx, s->sock)) != 0) {
		nng_aio_free(c->aio);
		free(c);
		return rv;
	}
	c->state = S_RECV;
	pthread_mutex_lock(&s->mu);
	c->next = s->all;
	s->all = c;
	s->total++;
	s->listening++;
	pthread_mutex_unlock(&s->mu);
	nng_ctx_recv(c->ctx, c->aio);
	return 0;
}

static void listen_again(struct sctx *c)
{
	struct server *s = c->s;
	pthread_mutex_lock(&s->mu);
	c->state = S_RECV;
	s->listening++;
	pthread_mutex_unlock(&s->mu);
	nng_ctx_recv(c->ctx, c->aio);
}

uint64_t request_body_hash(nng_msg *m)
{
	/* at about 1 ns a byte: 5 ms for a frame of 4 MiB, which runs on the
	 * receiving thread beside the core */
	size_t len = nng_msg_len(m);
	return len <= PROTO_MAX_FRAME ? proto_hash(PROTO_HASH_INIT, nng_msg_body(m), len) : 0;
}

static void ctx_cb(void *arg)
{
	struct sctx *c = arg;
	struct server *s = c->s;
	int rv = nng_aio_result(c->aio);

	if (c->state == S_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(c->aio)); /* peer gone: reply dropped */
		pthread_mutex_lock(&s->mu);
		s->sending--;
		long k = pipes_find(s, c->req.pipe);
		if (k >= 0 && s->unread[k] > 0)
			s->unread[k]--;
		pthread_mutex_unlock(&s->mu);
		listen_again(c);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
			log_warn("receive failed: %s", nng_strerror(rv));
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	c->req.msg = nng_aio_get_msg(c->aio);
	c->req.pipe = nng_pipe_id(nng_msg_get_pipe(c->req.msg));
	c->req.next = NULL;
	c->req.flags = 0;
	c->req.arrived_ns = metrics_clock_ns();
	c->req.op = 0;
	c->req.code = 0;
	c->req.body_hash = request_body_hash(c->req.msg);
	pthread_mutex_lock(&s->mu);
	c->state = S_WAIT;
	s->listening--;
	int grow = 0; /* one callback at a time grows the pool */
	if (!s->stopping && !s->growing && s->listening < POOL_LOW && s->total < POOL_MAX) {
		s->growing = true;
		grow = POOL_GROW;
	}
	pthread_mutex_unlock(&s->mu);
	/* Requests arriving meanwhile may take the new contexts as fast as
	 * they open, and they grow nothing (one grower at a time): so the
	 * grower looks again before it stops, or a pool left with none
	 * listening would never receive, and never grow, again. */
	while (grow) {
		bool failed = false;
		for (int i = 0; i < grow && !failed; i++) {
			pthread_mutex_lock(&s->mu);
			bool enough = s->stopping || s->total >= POOL_MAX;
			pthread_mutex_unlock(&s->mu);
			if (enough)
				break;
			if (add_ctx(s) != 0) {
				log_warn("cannot open more REP contexts");
				failed = true;
			}
		}
		pthread_mutex_lock(&s->mu);
		if (failed || s->stopping || s->listening >= POOL_LOW || s->total >= POOL_MAX) {
			s->growing = false;
			grow = 0;
		}
		pthread_mutex_unlock(&s->mu);
	}
	s->deliver(s->arg, &c->req);
}

/* ---- the set of connections let in (call with mu held) ---- */

static size_t slot_of(const struct server *s, uint32_t id)
{
	return (id * 2654435761u) & (s->pipes_cap - 1);
}

static void pipes_add(struct server *s, uint32_t id)
{
	size_t i = slot_of(s, id);
	while (s->pipes[i])
		i = (i + 1) & (s->pipes_cap - 1);
	s->pipes[i] = id;
	s->unread[i] = 0;
	s->n_pipes++;
}

/* The slot of id, or -1. */
static long pipes_find(const struct server *s, uint32_t id)
{
	for (size_t i = slot_of(s, id); s->pipes[i] != 0; i = (i + 1) & (s->pipes_cap - 1))
		if (s->pipes[i] == id)
			return (long)i;
	return -1;
}

bool server_pipe_open(struct server *s, uint32_t pipe)
{
	pthread_mutex_lock(&s->mu);
	bool open = pipes_find(s, pipe) >= 0;
	pthread_mutex_unlock(&s->mu);
	return open;
}

size_t server_connections(struct server *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->n_pipes;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* Removes id (backward-shift deletion); false when it was not there. */
static bool pipes_remove(struct server *s, uint32_t id)
{
	size_t mask = s->pipes_cap - 1, i = slot_of(s, id);
	while (s->pipes[i] != id) {
		if (s->pipes[i] == 0)
			return false;
		i = (i + 1) & mask;
	}
	for (size_t j = (i + 1) & mask; s->pipes[j]; j = (j + 1) & mask) {
		size_t home = slot_of(s, s->pipes[j]);
		/* move j back into the hole at i unless its home lies in (i, j] */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			s->pipes[i] = s->pipes[j];
			s->unread[i] = s->unread[j];
			i = j;
		}
	}
	s->pipes[i] = 0;
	s->n_pipes--;
	return true;
}

/* Runs on an nng thread with the socket's lock held: touches no socket. */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct server *s = arg;
	uint32_t id = (uint32_t)nng_pipe_id(p);
	if (ev == NNG_PIPE_EV_ADD_PRE) {
		bool refuse;
		int64_t now = proto_mono_ms();
		bool warn = false;
		pthread_mutex_lock(&s->mu);
		refuse = s->n_pipes >= s->max_pipes;
		if (refuse) {
			s->refused++;
			warn = now - s->refused_logged >= 10000;
			if (warn)
				s->refused_logged = now;
		} else {
			pipes_add(s, id);
		}
		uint64_t refused = s->refused;
		pthread_mutex_unlock(&s->mu);
		if (refuse) {
			nng_pipe_close(p);
			if (warn)
				log_warn("refusing connections: %zu are open, the limit (--max-connections); %llu refused so far",
					 s->max_pipes, (unsigned long long)refused);
		}
		return;
	}
	if (ev == NNG_PIPE_EV_REM_POST) {
		pthread_mutex_lock(&s->mu);
		pipes_remove(s, id);
		pthread_mutex_unlock(&s->mu);
		s->gone(s->arg, id);
	}
}

/* The whole of a PEM file (1 MiB at most), NUL-terminated; NULL with a
 * sentence in err. */
static char *read_pem(const char *flag, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s %s: cannot open it (%s)", flag, path, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 20, n;
	char *buf = malloc(cap + 1);
	n = buf ? fread(buf, 1, cap + 1, f) : 0;
	bool bad = buf == NULL || ferror(f) || n > cap;
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "%s %s: cannot read it (%s)", flag, path,
			 buf == NULL ? "out of memory" : n > cap ? "bigger than 1 MiB" : "read error");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* Whether cert and key (PEM) are a certificate and its private key: TLS
 * would take a mismatched pair and fail every handshake.  Warns of a
 * certificate that has expired. */
static bool cert_key_pair(const struct server_tls *tls, const char *cert, const char *key,
			  char *err, size_t errlen)
{
	mbedtls_x509_crt crt;
	mbedtls_pk_context pk;
	bool ok = false;
	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&pk);
	if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert, strlen(cert) + 1) != 0)
		snprintf(err, errlen, "--tls-cert %s holds no PEM certificate", tls->cert_file);
	else if (mbedtls_pk_parse_key(&pk, (const unsigned char *)key, strlen(key) + 1, NULL, 0) != 0)
		snprintf(err, errlen, "--tls-key %s holds no unencrypted PEM private key", tls->key_file);
	else if (mbedtls_pk_check_pair(&crt.pk, &pk) != 0)
		snprintf(err, errlen,
			 "--tls-key %s is not the private key of --tls-cert %s: the key unencrypted and matching the certificate is needed",
			 tls->key_file, tls->cert_file);
	else
		ok = true;
	if (ok && mbedtls_x509_time_is_past(&crt.valid_to))
		log_warn("--tls-cert %s has expired: clients will refuse it", tls->cert_file);
	mbedtls_pk_free(&pk);
	mbedtls_x509_crt_free(&crt);
	return ok;
}

/* Gives listener l (of url, tls+tcp://) the certificate and key of tls. */
static int listen_tls(nng_listener l, const char *url, const struct server_tls *tls, char *err,
		      size_t errlen)
{
	if (tls == NULL || tls->cert_file == NULL || tls->key_file == NULL) {
		snprintf(err, errlen, "--listen %s needs --tls-cert FILE and --tls-key FILE (PEM)", url);
		return -1;
	}
	char *cert = read_pem("--tls-cert", tls->cert_file, err, errlen), *key = NULL;
	nng_tls_config *cfg = NULL;
	int rv = -1;
	if (cert == NULL || (key = read_pem("--tls-key", tls->key_file, err, errlen)) == NULL ||
	    !cert_key_pair(tls, cert, key, err, errlen))
		goto out;
	if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER)) != 0 ||
	    (rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0 ||
	    (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg)) != 0) {
		snprintf(err, errlen,
			 "cannot use --tls-cert %s and --tls-key %s for %s: %s (both must be PEM, the key unencrypted and matching the certificate)",
			 tls->cert_file, tls->key_file, url, nng_strerror(rv));
		rv = -1;
	}
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg); /* the listener holds it */
	if (key != NULL)
		memset(key, 0, strlen(key));
	free(cert);
	free(key);
	return rv;
}

int server_start(const char *const *urls, size_t n, int max_connections,
		 const struct server_tls *tls, server_deliver_fn deliver, server_pipe_fn gone,
		 void *arg, struct server **out, char *err, size_t errlen)
{
	struct server *s = calloc(1, sizeof(*s));
	int rv;

	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->deliver = deliver, s->gone = gone, s->arg = arg;
	s->max_pipes = max_connections > 0 ? (size_t)max_connections : 1;
	s->refused_logged = INT64_MIN / 2;
	for (s->pipes_cap = 16; s->pipes_cap < s->max_pipes * 2; s->pipes_cap *= 2)
		;
	s->pipes = calloc(s->pipes_cap, sizeof(*s->pipes));
	s->unread = calloc(s->pipes_cap, sizeof(*s->unread));
	s->unread_logged = INT64_MIN / 2;
	if (s->pipes == NULL || s->unread == NULL) {
		free(s->unread);
		snprintf(err, errlen, "out of memory");
		pthread_mutex_destroy(&s->mu);
		free(s);
		return -1;
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		snprintf(err, errlen, "cannot open the REP socket: %s", nng_strerror(rv));
		free(s->pipes);
		free(s->unread);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return -1;
	}
	nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s);
	nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);
	s->listeners = calloc(n, sizeof(*s->listeners));
	if (s->listeners == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		nng_listener l;
		if ((rv = nng_listener_create(&l, s->sock, urls[i])) != 0) {
			snprintf(err, errlen, "cannot listen on %s: %s (is the URL tcp://HOST:PORT, tls+tcp://HOST:PORT or ipc:///PATH?)",
				 urls[i], nng_strerror(rv));
			goto fail;
		}
		if (strncmp(urls[i], "tls+", 4) == 0 && listen_tls(l, urls[i], tls, err, errlen) != 0) {
			nng_listener_close(l);
			goto fail;
		}
		/* bigger messages close the connection; PROTO_MAX_FRAME..this
		 * gets a TOO_LARGE answer */
		nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, PROTO_TRANSPORT_MAX);
		if ((rv = nng_listener_start(l, 0)) != 0) {
			snprintf(err, errlen, "cannot listen on %s: %s%s", urls[i], nng_strerror(rv),
				 rv == NNG_EADDRINUSE ? " (another cueqd already running there?)" : "");
			nng_listener_close(l);
			goto fail;
		}
		s->listeners[s->n_listeners++] = l;
	}
	for (int i = 0; i < POOL_START; i++)
		if ((rv = add_ctx(s)) != 0)
			break;
	if (rv != 0) {
		snprintf(err, errlen, "cannot open REP contexts: %s", nng_strerror(rv));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	server_close(s);
	return -1;
}

void server_reply(struct server *s, struct request *r, nng_msg *reply)
{
	if (r->face != NULL) {
		r->face->reply(r, reply);
		return;
	}
	struct sctx *c = r->ctx;
	if (r->msg != NULL) /* a parked claim's frame is freed already */
		nng_msg_free(r->msg);
	r->msg = NULL;
	/* A connection whose client does not read its answers would hold a
	 * context for each of them, until the pool is gone and nobody else
	 * is served: past MAX_UNREAD answers waiting to leave, it is closed
	 * (which ends those sends and frees their contexts). */
	pthread_mutex_lock(&s->mu);
	s->sending++;
	long k = pipes_find(s, r->pipe);
	bool close_it = k >= 0 && ++s->unread[k] == MAX_UNREAD + 1;
	int64_t now = close_it ? proto_mono_ms() : 0;
	bool warn = close_it && now - s->unread_logged >= 10000;
	uint64_t closed = close_it ? ++s->unread_closed : 0;
	if (warn)
		s->unread_logged = now;
	pthread_mutex_unlock(&s->mu);
	/* once sent, the context may take its next request into r at once:
	 * what is needed of r after the send is read before it */
	uint32_t pipe = r->pipe;
	c->state = S_SEND;
	nng_aio_set_msg(c->aio, reply);
	nng_ctx_send(c->ctx, c->aio);
	if (close_it) {
		nng_pipe p = NNG_PIPE_INITIALIZER;
		p.id = pipe;
		nng_pipe_close(p);
		if (warn)
			log_warn("closed a connection with %d answers it did not read; %llu closed so far",
				 MAX_UNREAD, (unsigned long long)closed);
	}
}

void server_drop(struct server *s, struct request *r)
{
	(void)s;
	if (r->face != NULL) {
		r->face->drop(r);
		return;
	}
	if (r->msg != NULL)
		nng_msg_free(r->msg);
	r->msg = NULL;
	listen_again(r->ctx);
}

void server_stop(struct server *s)
{
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < s->n_listeners; i++)
		nng_listener_close(s->listeners[i]);
	s->n_listeners = 0;
}

void server_close(struct server *s)
{
	if (s == NULL)
		return;
	server_stop(s);
	/* let replies already handed to nng leave (up to 2 s), and a pool
	 * growing (stopping ends that) link its last context */
	for (int i = 0; i < 400; i++) {
		pthread_mutex_lock(&s->mu);
		bool busy = s->sending != 0 || s->growing;
		pthread_mutex_unlock(&s->mu);
		if (!busy)
			break;
		nng_msleep(5);
	}
	/* stop every aio first: callbacks may still run until then */
	for (struct sctx *c = s->all; c; c = c->next) {
		nng_aio_stop(c->aio);
		nng_ctx_close(c->ctx);
	}
	nng_close(s->sock);
	while (s->all) {
		struct sctx *c = s->all;
		s->all = c->next;
		if (c->state == S_WAIT && c->req.msg)
			nng_msg_free(c->req.msg);
		nng_aio_free(c->aio);
		free(c);
	}
	free(s->listeners);
	free(s->pipes);
	free(s->unread);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
