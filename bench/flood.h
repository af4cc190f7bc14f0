/*
 * flood.h - the loads of cueq-flood (flood_load.c): one hostile client at
 * a time, each started against a broker's URL and stopped after a while,
 * counting what it achieved and what it was answered.
 *
 * A request flood is one raw nng REQ socket (the request ID header is
 * ours, so any number of requests may be in flight on its one
 * connection) that keeps `window` requests in flight as fast as the
 * broker answers; a connection flood opens nng connections until the
 * broker refuses them; a bare flood holds plain TCP sockets that never
 * finish (or never start) the SP handshake.  Each runs on its own
 * threads; stop joins them.
 */
#ifndef CUEQ_BENCH_FLOOD_H
#define CUEQ_BENCH_FLOOD_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cueq/defs.h"

/* Answers by code: [0] ok, [1..9] the broker's error codes (defs.h). */
#define FLOOD_CODES (CUEQ_ERR_INTERNAL + 1)

enum flood_kind {
	FLOOD_CLAIM_WAIT, /* claims with a long wait_ms on an empty queue */
	FLOOD_PUSH,	  /* pushes: batches of 100 jobs and single jobs, by turns */
	FLOOD_PING_PAD,	  /* pings padded with an unknown key to near the frame limit */
	FLOOD_PUSH_PAD,	  /* one-job pushes padded so */
	FLOOD_PUSH_BIG,	  /* one-job pushes of 64 KiB payloads (a writer) */
	FLOOD_PING_UNREAD, /* pings sent without end, the answers never read */
};

struct reqflood {
	enum flood_kind kind;
	size_t window;
	nng_socket s;
	pthread_t sender, receiver;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t in_flight;
	atomic_bool stop;
	uint32_t serial;
	void *pad; /* the padding or payload, shared by every request */
	size_t pad_len;
	/* results */
	atomic_size_t sent, answered, jobs;
	atomic_size_t by_code[FLOOD_CODES];
	atomic_size_t undecodable, send_failed;
};

/* Starts a flood of kind on one connection to url, window requests in
 * flight.  0, or -1 with a line on stderr.  halt stops sending and
 * receiving (the counts then stay), close closes the socket (see
 * flood_load.c for when). */
int reqflood_start(struct reqflood *f, const char *url, enum flood_kind kind, size_t window);
void reqflood_halt(struct reqflood *f);
void reqflood_close(struct reqflood *f);

/* nng connections to url, opened until the broker refuses them. */
struct connflood {
	nng_socket s;
	pthread_t thr;
	bool started;
	atomic_bool stop;
	const char *url;
	atomic_size_t added, removed; /* pipes up and gone (refused or closed) */
	atomic_size_t peak;	      /* most open at once */
	size_t dialers;
};

int connflood_start(struct connflood *f, const char *url);
void connflood_halt(struct connflood *f);
void connflood_close(struct connflood *f);
static inline size_t connflood_open(struct connflood *f)
{
	return atomic_load(&f->added) - atomic_load(&f->removed);
}

/* Plain TCP sockets to the broker's port, held open: BARE_SILENT sends
 * nothing, BARE_HALF half of a REQ socket's 8-byte SP header.  One the
 * broker closes is opened again, so `target` stay up. */
enum bare_mode { BARE_SILENT, BARE_HALF };

struct bareflood {
	int port;
	size_t target;
	enum bare_mode mode;
	pthread_t thr;
	bool started;
	atomic_bool stop;
	atomic_size_t opened;	    /* connections established */
	atomic_size_t now_open, peak; /* established and not closed */
	atomic_size_t closed_by_peer; /* the broker closed them (handshake timeout) */
	atomic_size_t refused;	    /* reset or refused by the broker */
	atomic_size_t failed;	    /* our side could not (descriptors, timeouts) */
};

int bareflood_start(struct bareflood *f, int port, size_t target, enum bare_mode mode);
void bareflood_stop(struct bareflood *f);

#endif
