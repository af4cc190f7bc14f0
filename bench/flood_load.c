/*
 * flood_load.c - the hostile clients of cueq-flood (see flood.h).
 *
 * These speak the wire protocol with the proto/ codec on raw nng sockets
 * and plain TCP, not through the SDK: the SDK keeps one request in flight
 * per context and finishes every handshake, which is exactly what a
 * hostile client does not do.
 */
#include "flood.h"

#include <nng/protocol/reqrep0/req.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "latency.h"
#include "proto.h"

#define PUSH_BATCH 100
#define PUSH_PAYLOAD 100
#define BIG_PAYLOAD (64u << 10)
/* Padding of a padded frame: the frame stays just under PROTO_MAX_FRAME. */
#define PAD_BYTES (PROTO_MAX_FRAME - 4096)

/* ---- closing ------------------------------------------------------- */

/* nng 1.5.2's nng_close can wait for ever on a raw REQ socket whose peer
 * still holds its requests (a flood's parked claims, seen here; nng's
 * issue 1543), and every nng_close after it then waits too.  So such a
 * socket is closed only once its broker is gone (flood.c), and every
 * flood's socket on a thread of its own, waited for up to CLOSE_WAIT_MS
 * and left to nng if it takes longer. */
#define CLOSE_WAIT_MS 2000

struct closing {
	nng_socket s;
	atomic_bool done;
};

static void *close_main(void *arg)
{
	struct closing *c = arg;
	nng_close(c->s);
	atomic_store(&c->done, true);
	return NULL;
}

static void close_bounded(nng_socket s, const char *what)
{
	struct closing *c = malloc(sizeof(*c));
	pthread_t thr;

	if (c == NULL) {
		nng_close(s);
		return;
	}
	c->s = s;
	atomic_init(&c->done, false);
	if (pthread_create(&thr, NULL, close_main, c) != 0) {
		free(c);
		nng_close(s);
		return;
	}
	for (int ms = 0; ms < CLOSE_WAIT_MS && !atomic_load(&c->done); ms += 10)
		sleep_ms(10);
	if (atomic_load(&c->done)) {
		pthread_join(thr, NULL);
		free(c);
		return;
	}
	fprintf(stderr, "cueq-flood: closing %s took more than %d ms in nng; left to finish\n",
		what, CLOSE_WAIT_MS);
	pthread_detach(thr); /* c leaks with it: the thread may still use it */
}

/* ---- request floods -------------------------------------------------- */

static void pack_job(msgpack_packer *pk, const char *queue, const void *payload, size_t n)
{
	msgpack_pack_map(pk, 2);
	proto_kv_cstr(pk, "queue", queue);
	proto_kv_bin(pk, "payload", payload, n);
}

/* The next request of f's kind, with its REQ header (request ID, top bit
 * set), or NULL when out of memory. */
static nng_msg *next_request(struct reqflood *f)
{
	static const char small[PUSH_PAYLOAD] = "flood";
	proto_writer w;
	nng_msg *m;
	char rid[24];
	uint32_t n = ++f->serial;
	int len = snprintf(rid, sizeof(rid), "f%u", n);

	if (nng_msg_alloc(&m, 0) != 0)
		return NULL;
	proto_writer_init(&w, m);
	switch (f->kind) {
	case FLOOD_CLAIM_WAIT:
		proto_request_begin(&w.pk, "claim", rid, (size_t)len, NULL, 0, NULL, 3);
		proto_kv_cstr(&w.pk, "queue", "flood.claim");
		proto_kv_uint(&w.pk, "max", 1);
		proto_kv_uint(&w.pk, "wait_ms", PROTO_MAX_WAIT_MS);
		break;
	case FLOOD_PUSH: {
		size_t jobs = n % 2 ? PUSH_BATCH : 1;
		proto_request_begin(&w.pk, "push", rid, (size_t)len, NULL, 0, NULL, 1);
		proto_key(&w.pk, "jobs");
		msgpack_pack_array(&w.pk, jobs);
		for (size_t i = 0; i < jobs; i++)
			pack_job(&w.pk, "flood.push", small, sizeof(small));
		break;
	}
	case FLOOD_PING_UNREAD:
		proto_request_begin(&w.pk, "ping", rid, (size_t)len, NULL, 0, NULL, 0);
		break;
	case FLOOD_PING_PAD:
		proto_request_begin(&w.pk, "ping", rid, (size_t)len, NULL, 0, NULL, 1);
		proto_kv_bin(&w.pk, "pad", f->pad, f->pad_len);
		break;
	case FLOOD_PUSH_PAD:
		proto_request_begin(&w.pk, "push", rid, (size_t)len, NULL, 0, NULL, 2);
		proto_key(&w.pk, "jobs");
		msgpack_pack_array(&w.pk, 1);
		pack_job(&w.pk, "flood.pad", small, sizeof(small));
		proto_kv_bin(&w.pk, "pad", f->pad, f->pad_len);
		break;
	case FLOOD_PUSH_BIG:
		proto_request_begin(&w.pk, "push", rid, (size_t)len, NULL, 0, NULL, 1);
		proto_key(&w.pk, "jobs");
		msgpack_pack_array(&w.pk, 1);
		pack_job(&w.pk, "flood.big", f->pad, f->pad_len);
		break;
	}
	if (w.failed || nng_msg_header_append_u32(m, 0x80000000u | n) != 0) {
		nng_msg_free(m);
		return NULL;
	}
	return m;
}

static void *flood_sender(void *arg)
{
	struct reqflood *f = arg;

	while (!atomic_load(&f->stop)) {
		pthread_mutex_lock(&f->mu);
		while (f->in_flight >= f->window && !atomic_load(&f->stop)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000000L;
			if (ts.tv_nsec >= 1000000000L)
				ts.tv_sec++, ts.tv_nsec -= 1000000000L;
			pthread_cond_timedwait(&f->cv, &f->mu, &ts);
		}
		f->in_flight++;
		pthread_mutex_unlock(&f->mu);
		if (atomic_load(&f->stop))
			break;
		nng_msg *m = next_request(f);
		int rv = m ? nng_sendmsg(f->s, m, 0) : NNG_ENOMEM;
		if (rv == 0) {
			atomic_fetch_add(&f->sent, 1);
			continue;
		}
		nng_msg_free(m);
		atomic_fetch_add(&f->send_failed, 1);
		pthread_mutex_lock(&f->mu);
		f->in_flight--;
		pthread_mutex_unlock(&f->mu);
		if (rv == NNG_ECLOSED)
			break;
		sleep_ms(10);
	}
	return NULL;
}

/* Tallies one answer: its code, and the jobs an ok push created. */
static void tally_answer(struct reqflood *f, nng_msg *m)
{
	msgpack_unpacked up;
	proto_error e;
	const msgpack_object *ok, *err, *results;

	if (proto_decode(nng_msg_body(m), nng_msg_len(m), &up, &e) != CUEQ_OK ||
	    (ok = proto_get(&up.data, "ok")) == NULL || ok->type != MSGPACK_OBJECT_BOOLEAN) {
		atomic_fetch_add(&f->undecodable, 1);
	} else if (ok->via.boolean) {
		atomic_fetch_add(&f->by_code[0], 1);
		results = proto_get(&up.data, "results");
		if (results != NULL && results->type == MSGPACK_OBJECT_ARRAY)
			atomic_fetch_add(&f->jobs, results->via.array.size);
	} else {
		err = proto_get(&up.data, "err");
		int code = err && err->type == MSGPACK_OBJECT_STR
				   ? proto_err_code(err->via.str.ptr, err->via.str.size)
				   : -1;
		if (code > 0 && code < FLOOD_CODES)
			atomic_fetch_add(&f->by_code[code], 1);
		else
			atomic_fetch_add(&f->undecodable, 1);
	}
	msgpack_unpacked_destroy(&up);
}

static void *flood_receiver(void *arg)
{
	struct reqflood *f = arg;
	nng_msg *m;

	while (!atomic_load(&f->stop)) {
		if (f->kind == FLOOD_PING_UNREAD) { /* the answers pile up */
			sleep_ms(50);
			continue;
		}
		int rv = nng_recvmsg(f->s, &m, 0);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0)
			break;
		tally_answer(f, m);
		nng_msg_free(m);
		atomic_fetch_add(&f->answered, 1);
		pthread_mutex_lock(&f->mu);
		if (f->in_flight > 0)
			f->in_flight--;
		pthread_cond_signal(&f->cv);
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

int reqflood_start(struct reqflood *f, const char *url, enum flood_kind kind, size_t window)
{
	int rv;

	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->window = window;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (kind == FLOOD_PING_PAD || kind == FLOOD_PUSH_PAD || kind == FLOOD_PUSH_BIG) {
		f->pad_len = kind == FLOOD_PUSH_BIG ? BIG_PAYLOAD : PAD_BYTES;
		if ((f->pad = malloc(f->pad_len)) == NULL)
			return -1;
		memset(f->pad, 'p', f->pad_len);
	}
	if ((rv = nng_req0_open_raw(&f->s)) != 0 ||
	    (rv = nng_socket_set_size(f->s, NNG_OPT_RECVMAXSZ, 0)) != 0 ||
	    (rv = nng_socket_set_int(f->s, NNG_OPT_RECVBUF, 1024)) != 0 ||
	    (rv = nng_socket_set_ms(f->s, NNG_OPT_SENDTIMEO, 1000)) != 0 ||
	    (rv = nng_socket_set_ms(f->s, NNG_OPT_RECVTIMEO, 200)) != 0 ||
	    (rv = nng_dial(f->s, url, NULL, 0)) != 0) {
		fprintf(stderr, "cueq-flood: cannot open a flood connection to %s: %s\n", url,
			nng_strerror(rv));
		free(f->pad);
		return -1;
	}
	if (pthread_create(&f->receiver, NULL, flood_receiver, f) != 0) {
		nng_close(f->s);
		free(f->pad);
		return -1;
	}
	if (pthread_create(&f->sender, NULL, flood_sender, f) != 0) {
		atomic_store(&f->stop, true);
		pthread_join(f->receiver, NULL);
		nng_close(f->s);
		free(f->pad);
		return -1;
	}
	f->started = true;
	return 0;
}

void reqflood_halt(struct reqflood *f)
{
	if (!f->started || atomic_load(&f->stop))
		return;
	atomic_store(&f->stop, true);
	pthread_mutex_lock(&f->mu);
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->sender, NULL);
	pthread_join(f->receiver, NULL);
}

void reqflood_close(struct reqflood *f)
{
	if (!f->started)
		return;
	reqflood_halt(f);
	close_bounded(f->s, "a flood's socket");
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f->pad);
	f->pad = NULL;
	f->started = false;
}

/* ---- connection floods ----------------------------------------------- */

#define CONN_BATCH 32
#define CONN_MAX_DIALERS 8192
/* Dialers kept beyond the first refusals: each retries about once a
 * second, as a crowd of clients refused at the cap would. */
#define CONN_REFUSED_ENOUGH 64

static void conn_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct connflood *f = arg;
	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		size_t open = atomic_fetch_add(&f->added, 1) + 1 - atomic_load(&f->removed);
		size_t peak = atomic_load(&f->peak);
		while (open > peak && !atomic_compare_exchange_weak(&f->peak, &peak, open))
			;
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_add(&f->removed, 1);
	}
}

static void *conn_main(void *arg)
{
	struct connflood *f = arg;

	while (!atomic_load(&f->stop)) {
		if (atomic_load(&f->removed) < CONN_REFUSED_ENOUGH && f->dialers < CONN_MAX_DIALERS)
			for (int i = 0; i < CONN_BATCH; i++, f->dialers++)
				if (nng_dial(f->s, f->url, NULL, NNG_FLAG_NONBLOCK) != 0)
					break;
		sleep_ms(50);
	}
	return NULL;
}

int connflood_start(struct connflood *f, const char *url)
{
	int rv;

	memset(f, 0, sizeof(*f));
	f->url = url;
	if ((rv = nng_req0_open(&f->s)) != 0 ||
	    (rv = nng_pipe_notify(f->s, NNG_PIPE_EV_ADD_POST, conn_cb, f)) != 0 ||
	    (rv = nng_pipe_notify(f->s, NNG_PIPE_EV_REM_POST, conn_cb, f)) != 0 ||
	    (rv = nng_socket_set_ms(f->s, NNG_OPT_RECONNMINT, 250)) != 0 ||
	    (rv = nng_socket_set_ms(f->s, NNG_OPT_RECONNMAXT, 1000)) != 0) {
		fprintf(stderr, "cueq-flood: cannot open the connection flood: %s\n", nng_strerror(rv));
		return -1;
	}
	if (pthread_create(&f->thr, NULL, conn_main, f) != 0) {
		nng_close(f->s);
		return -1;
	}
	f->started = true;
	return 0;
}

void connflood_halt(struct connflood *f)
{
	if (!f->started || atomic_load(&f->stop))
		return;
	atomic_store(&f->stop, true);
	pthread_join(f->thr, NULL);
}

void connflood_close(struct connflood *f)
{
	if (!f->started)
		return;
	connflood_halt(f);
	close_bounded(f->s, "the connection flood's socket");
	f->started = false;
}

/* ---- bare TCP floods ------------------------------------------------- */

#define BARE_PER_ROUND 256	 /* connects started between two polls */
#define BARE_CONNECT_MS 3000 /* a connect not done by then is given up */

enum { SLOT_FREE, SLOT_CONNECTING, SLOT_OPEN };

struct slot {
	int state;
	int64_t since; /* ms, when the connect began */
};

static int64_t mono_ms(void)
{
	return (int64_t)(now_ns() / 1000000u);
}

static void bump_peak(struct bareflood *f)
{
	size_t open = atomic_fetch_add(&f->now_open, 1) + 1, peak = atomic_load(&f->peak);
	while (open > peak && !atomic_compare_exchange_weak(&f->peak, &peak, open))
		;
}

/* Ends slot i: its descriptor closed, counted once. */
static void slot_end(struct bareflood *f, struct pollfd *p, struct slot *s)
{
	if (s->state == SLOT_OPEN)
		atomic_fetch_sub(&f->now_open, 1);
	close(p->fd);
	p->fd = -1;
	s->state = SLOT_FREE;
}

/* A non-blocking connect into slot i; false when no descriptor is left. */
static bool bare_connect(struct bareflood *f, struct pollfd *p, struct slot *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		atomic_fetch_add(&f->failed, 1);
		return false;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
		atomic_fetch_add(errno == ECONNREFUSED || errno == ECONNRESET ? &f->refused : &f->failed,
				 1);
		close(fd);
		return true;
	}
	p->fd = fd;
	p->events = POLLOUT;
	s->state = SLOT_CONNECTING;
	s->since = mono_ms();
	return true;
}

static void bare_event(struct bareflood *f, struct pollfd *p, struct slot *s)
{
	static const unsigned char half[4] = {0, 'S', 'P', 0}; /* of 0 S P 0 proto(2) 0 0 */
	char buf[256];

	if (s->state == SLOT_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			atomic_fetch_add(err == ECONNREFUSED || err == ECONNRESET ? &f->refused
										  : &f->failed,
					 1);
			slot_end(f, p, s);
			return;
		}
		s->state = SLOT_OPEN;
		p->events = POLLIN;
		atomic_fetch_add(&f->opened, 1);
		bump_peak(f);
		if (f->mode == BARE_HALF && write(p->fd, half, sizeof(half)) != (ssize_t)sizeof(half)) {
			atomic_fetch_add(&f->closed_by_peer, 1);
			slot_end(f, p, s);
		}
		return;
	}
	/* open: the broker's own header arrives (read and dropped), then EOF
	 * or a reset when it gives up on the handshake */
	ssize_t n = read(p->fd, buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		atomic_fetch_add(&f->closed_by_peer, 1);
		slot_end(f, p, s);
	}
}

static void *bare_main(void *arg)
{
	struct bareflood *f = arg;
	struct pollfd *p = calloc(f->target, sizeof(*p));
	struct slot *s = calloc(f->target, sizeof(*s));
	size_t next = 0;

	if (p == NULL || s == NULL) {
		atomic_fetch_add(&f->failed, 1);
		free(p);
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < f->target; i++)
		p[i].fd = -1;
	while (!atomic_load(&f->stop)) {
		int started = 0;
		for (size_t k = 0; k < f->target && started < BARE_PER_ROUND; k++) {
			size_t i = (next + k) % f->target;
			if (s[i].state != SLOT_FREE)
				continue;
			started++;
			if (!bare_connect(f, &p[i], &s[i])) {
				sleep_ms(10); /* out of descriptors here: wait for some */
				break;
			}
			next = i + 1;
		}
		if (poll(p, f->target, 20) < 0 && errno != EINTR)
			break;
		int64_t now = mono_ms();
		for (size_t i = 0; i < f->target; i++) {
			if (s[i].state == SLOT_FREE)
				continue;
			if (p[i].revents != 0)
				bare_event(f, &p[i], &s[i]);
			else if (s[i].state == SLOT_CONNECTING && now - s[i].since > BARE_CONNECT_MS) {
				atomic_fetch_add(&f->failed, 1);
				slot_end(f, &p[i], &s[i]);
			}
			p[i].revents = 0;
		}
	}
	for (size_t i = 0; i < f->target; i++)
		if (s[i].state != SLOT_FREE)
			slot_end(f, &p[i], &s[i]);
	free(p);
	free(s);
	return NULL;
}

int bareflood_start(struct bareflood *f, int port, size_t target, enum bare_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->port = port;
	f->target = target;
	f->mode = mode;
	if (pthread_create(&f->thr, NULL, bare_main, f) != 0)
		return -1;
	f->started = true;
	return 0;
}

void bareflood_stop(struct bareflood *f)
{
	if (!f->started)
		return;
	atomic_store(&f->stop, true);
	pthread_join(f->thr, NULL);
	f->started = false;
}
