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

struct request;

/* Where a request came from when not from this server's socket (the HTTP
 * face, http.c): server_reply and server_drop hand it back there.  Both
 * are called once per request, from any thread, and must not block. */
struct request_face {
	void (*reply)(struct request *r, nng_msg *reply); /* ownership passes */
	void (*drop)(struct request *r);
};

/* What the core tells a face about the answer it sent (request.flags). */
enum {
	REQ_REPLAYED = 1,  /* the answer is the one remembered for its request ID */
	REQ_RID_REUSED = 2, /* refused: the request ID was used for other bytes */
	/* set by a face: the sender of this push was proven by the signature
	 * of a configured webhook, which stands for --auth's token */
	REQ_VERIFIED = 4,
	/* refused UNAUTHORIZED although its token is known: its role or
	 * queue prefixes do not allow it (HTTP's 403, not 401) */
	REQ_FORBIDDEN = 8
};

/* One received request: owned by the core until answered or dropped. */
struct request {
	nng_msg *msg;
	uint32_t pipe; /* connection it came on; 0 for a face's */
	const struct request_face *face; /* NULL: this server's */
	unsigned flags;			 /* REQ_*, set by the core before answering */
	/* proto_hash of the frame (0 for one over PROTO_MAX_FRAME), worked
	 * out on nng's thread so that the core does not walk big frames */
	uint64_t body_hash;
	/* CLOCK_MONOTONIC ns when it arrived (metrics_clock_ns: server.c's
	 * receive callback, a face when it hands it over); 0: unknown */
	int64_t arrived_ns;
	uint8_t op;   /* the op's place in the op table + 1, 0: none known
		       * (set by the core, for metrics) */
	uint8_t code; /* the answer's code, CUEQ_OK or an error (the core's) */
	struct request *next;
	void *ctx; /* the server's context */
};

/* request.body_hash of a frame m: what binds a request ID to its bytes
 * (loop.c); 0 for one over PROTO_MAX_FRAME.  Any thread. */
uint64_t request_body_hash(nng_msg *m);

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
/* Connections open now (any thread). */
size_t server_connections(struct server *s);
/* Stops accepting connections and requests. */
void server_stop(struct server *s);
/* Closes the socket and frees everything; no request may be outstanding. */
void server_close(struct server *s);

#endif /* CUEQ_SERVER_H */
