/*
 * server.h - the nng side of the broker: a REP socket with a growing pool
 * of contexts, each holding at most one request.
 *
 * Received requests are handed to the core (loop.c) and answered later from
 * any thread with server_reply().  A parked long poll keeps its context, so
 * the pool grows whenever few contexts are left listening: parked claims
 * never starve other clients.  nng callbacks never block.
 */
#ifndef CUEQ_SERVER_H
#define CUEQ_SERVER_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;

/* One received request: owned by the core until answered or dropped. */
struct request {
	nng_msg *msg;
	uint32_t pipe; /* connection it came on */
	/* proto_hash of the frame (0 for one over PROTO_MAX_FRAME), worked
	 * out on nng's thread so that the core does not walk big frames */
	uint64_t body_hash;
	struct request *next;
	void *ctx; /* the server's context */
};

typedef void (*server_deliver_fn)(void *arg, struct request *r);
typedef void (*server_pipe_fn)(void *arg, uint32_t pipe);

/* The certificate and key (PEM files) of tls+tcp:// listeners. */
struct server_tls {
	const char *cert_file; /* the certificate, or its chain, leaf first */
	const char *key_file;  /* its private key, unencrypted */
};

/* Listens on every URL, serving at most max_connections connections at
 * once (more are closed as they connect); tls+tcp:// ones with tls (which
 * may be NULL when there are none).  deliver gets each request (from
 * nng's threads); gone is told when a connection closes.  -1 with a
 * sentence in err. */
int server_start(const char *const *urls, size_t n, int max_connections,
		 const struct server_tls *tls, server_deliver_fn deliver, server_pipe_fn gone,
		 void *arg, struct server **out, char *err, size_t errlen);
/* Sends reply (ownership passes) for r; r is finished.  Any thread. */
void server_reply(struct server *s, struct request *r, nng_msg *reply);
/* Finishes r without an answer. */
void server_drop(struct server *s, struct request *r);
/* Whether connection pipe is still open (any thread). */
bool server_pipe_open(struct server *s, uint32_t pipe);
/* Stops accepting connections and requests. */
void server_stop(struct server *s);
/* Closes the socket and frees everything; no request may be outstanding. */
void server_close(struct server *s);

#endif /* CUEQ_SERVER_H */
