/*
 * flood.c - cueq-flood: what one hostile client does to everyone else.
 *
 * For each case a fresh cueqd (brokerproc.c: a temp dir, a loopback port)
 * is started, a well-behaved client opens its own connection and pings,
 * one ping at a time (paced to --pings over --secs), while one flood of
 * flood_load.c runs; another thread opens a fresh connection twice a
 * second and pings once on it, as a client arriving meanwhile would.  One
 * markdown row per case: what the flood achieved, the pings' p50, p99 and
 * max, the fresh connections', the broker's peak RSS (VmHWM: the broker
 * is new for each case), the flood's answers by code, and whether the
 * broker lived.  These are figures for the notes: nothing here fails on
 * a latency; the exit status is 1 when a case could not run or its broker
 * died.
 */
#include "brokerproc.h"
#include "flood.h"
#include "latency.h"

#include <nng/protocol/reqrep0/req.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"

#define PING_TIMEOUT_MS 2000
#define FRESH_EVERY_MS 500
#define PAD_CONNS 4
#define PAD_WINDOW 4
/* The flood of answers never read runs up to this long before the pings,
 * until one of its sends waits a second (the broker no longer reads it). */
#define UNREAD_WARMUP_S 30

enum case_id {
	C_IDLE,
	C_CLAIMS,
	C_PUSHES,
	C_CONNS,
	C_BARE,
	C_HALF,
	C_BARE_FDS,
	C_PAD_PING,
	C_PAD_PUSH,
	C_UNREAD,
	N_CASES
};

static const char *const case_names[N_CASES] = {"idle", "claims", "pushes", "conns", "bare",
						"half", "bare-fds", "pad-ping", "pad-push",
						"unread"};
static const char *const case_text[N_CASES] = {
	"1 idle",
	"2 long-poll claims, 1 conn, 1024 in flight",
	"3 pushes (100-job batches and singles), 1 conn, 256 in flight",
	"4 idle nng connections up to the cap",
	"5a bare TCP, no handshake",
	"5b bare TCP, half a handshake",
	"5c bare TCP past the broker's descriptor limit, a 64 KiB pusher beside",
	"6a pings padded to 4 MiB, 4 conns x 4 in flight",
	"6b pushes padded to 4 MiB, 4 conns x 4 in flight",
	"7 pings sent without end on 1 conn, the answers never read (from its first send refused)",
};

struct opts {
	char cueqd[PATH_MAX];
	const char *fsync;
	unsigned secs;
	size_t pings;
	size_t bare;
	int fd_limit;
	bool run[N_CASES];
};

/* ---- the well-behaved clients ----------------------------------------- */

static int req_open(nng_socket *s, const char *url, int timeout_ms, bool wait)
{
	int rv;
	if ((rv = nng_req0_open(s)) != 0)
		return rv;
	nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, timeout_ms);
	if ((rv = nng_dial(*s, url, NULL, wait ? 0 : NNG_FLAG_NONBLOCK)) != 0)
		nng_close(*s);
	return rv;
}

/* One ping on s: 0 when answered ok, else an nng error or -1. */
static int ping_once(nng_socket s)
{
	static atomic_uint serial;
	proto_writer w;
	nng_msg *m;
	char rid[24];
	int len = snprintf(rid, sizeof(rid), "p%u", atomic_fetch_add(&serial, 1));
	int rv;

	if ((rv = nng_msg_alloc(&m, 0)) != 0)
		return rv;
	proto_writer_init(&w, m);
	proto_request_begin(&w.pk, "ping", rid, (size_t)len, NULL, 0, NULL, 0);
	if (w.failed) {
		nng_msg_free(m);
		return -1;
	}
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return rv;
	}
	if ((rv = nng_recvmsg(s, &m, 0)) != 0)
		return rv;
	msgpack_unpacked up;
	proto_error e;
	const msgpack_object *ok = NULL;
	if (proto_decode(nng_msg_body(m), nng_msg_len(m), &up, &e) == CUEQ_OK)
		ok = proto_get(&up.data, "ok");
	rv = ok != NULL && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean ? 0 : -1;
	msgpack_unpacked_destroy(&up);
	nng_msg_free(m);
	return rv;
}

/* A client arriving during the flood: a fresh connection and one ping,
 * every FRESH_EVERY_MS. */
struct fresh {
	const char *url;
	pthread_t thr;
	atomic_bool stop;
	struct lat ok; /* connect + ping of the ones answered */
	size_t failed;
};

static void *fresh_main(void *arg)
{
	struct fresh *f = arg;
	while (!atomic_load(&f->stop)) {
		uint64_t t0 = now_ns();
		nng_socket s;
		if (req_open(&s, f->url, PING_TIMEOUT_MS, false) != 0) {
			f->failed++;
		} else {
			if (ping_once(s) == 0)
				lat_add(&f->ok, now_ns() - t0);
			else
				f->failed++;
			nng_close(s);
		}
		uint64_t spent = (now_ns() - t0) / 1000000u;
		if (spent < FRESH_EVERY_MS)
			sleep_ms((unsigned)(FRESH_EVERY_MS - spent));
	}
	return NULL;
}

/* ---- one case ------------------------------------------------------- */

struct row {
	char flood[160];
	char answers[200];
	struct lat ping;
	size_t ping_lost;
	struct fresh fresh;
	long hwm_kb;
	char broker[64];
	bool died;
	double load;
};

static double load1(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f != NULL) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static void add_counts(size_t *into, const struct reqflood *f)
{
	for (int c = 0; c < FLOOD_CODES; c++)
		into[c] += atomic_load(&f->by_code[c]);
}

/* The answers by code, "ok 12, UNAVAILABLE 3456" ("-": none at all). */
static void answers_text(char *buf, size_t len, const size_t *by_code, size_t undecodable,
			 size_t send_failed)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int c = 0; c < FLOOD_CODES; c++) {
		if (by_code[c] == 0)
			continue;
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s %zu", n ? ", " : "",
				      c == 0 ? "ok" : proto_err_name(c), by_code[c]);
	}
	if (undecodable)
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%sundecodable %zu",
				      n ? ", " : "", undecodable);
	if (send_failed)
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%ssends failed %zu",
				      n ? ", " : "", send_failed);
	if (n == 0)
		snprintf(buf, len, "-");
}

/* The running flood of one case, whichever kind it is. */
struct load {
	struct reqflood req[PAD_CONNS];
	size_t n_req;
	struct reqflood writer; /* C_BARE_FDS: the pusher beside */
	bool with_writer;
	struct connflood conns;
	struct bareflood bare;
	uint64_t t0;
};

static int load_start(struct load *L, enum case_id c, const cueqd_proc *b, const struct opts *o)
{
	memset(L, 0, sizeof(*L));
	L->t0 = now_ns();
	switch (c) {
	case C_IDLE:
		return 0;
	case C_CLAIMS:
		L->n_req = 1;
		return reqflood_start(&L->req[0], b->url, FLOOD_CLAIM_WAIT, 1024);
	case C_PUSHES:
		L->n_req = 1;
		return reqflood_start(&L->req[0], b->url, FLOOD_PUSH, 256);
	case C_CONNS:
		return connflood_start(&L->conns, b->url);
	case C_BARE:
	case C_HALF:
		return bareflood_start(&L->bare, b->port, o->bare, c == C_HALF ? BARE_HALF : BARE_SILENT);
	case C_BARE_FDS:
		L->with_writer = true;
		if (reqflood_start(&L->writer, b->url, FLOOD_PUSH_BIG, 4) != 0)
			return -1;
		return bareflood_start(&L->bare, b->port, (size_t)o->fd_limit + 512, BARE_SILENT);
	case C_UNREAD:
		L->n_req = 1;
		return reqflood_start(&L->req[0], b->url, FLOOD_PING_UNREAD, SIZE_MAX);
	case C_PAD_PING:
	case C_PAD_PUSH:
		for (L->n_req = 0; L->n_req < PAD_CONNS; L->n_req++)
			if (reqflood_start(&L->req[L->n_req], b->url,
					   c == C_PAD_PING ? FLOOD_PING_PAD : FLOOD_PUSH_PAD,
					   PAD_WINDOW) != 0)
				return -1;
		return 0;
	default:
		return -1;
	}
}

/* Reads what the flood achieved into r (before it stops: the rate is over
 * the case's time), then stops it. */
static void load_stop(struct load *L, enum case_id c, struct row *r)
{
	double secs = (double)(now_ns() - L->t0) / 1e9;
	size_t codes[FLOOD_CODES] = {0}, answered = 0, jobs = 0, undecodable = 0, send_failed = 0;

	for (size_t i = 0; i < L->n_req; i++) {
		add_counts(codes, &L->req[i]);
		answered += atomic_load(&L->req[i].answered);
		jobs += atomic_load(&L->req[i].jobs);
		undecodable += atomic_load(&L->req[i].undecodable);
		send_failed += atomic_load(&L->req[i].send_failed);
	}
	if (c == C_IDLE) {
		snprintf(r->flood, sizeof(r->flood), "-");
	} else if (L->n_req > 0) {
		if (c == C_PUSHES || c == C_PAD_PUSH)
			snprintf(r->flood, sizeof(r->flood), "%.0f req/s (%.0f jobs/s)",
				 (double)answered / secs, (double)jobs / secs);
		else if (c == C_UNREAD)
			snprintf(r->flood, sizeof(r->flood), "%.0f req/s sent",
				 (double)atomic_load(&L->req[0].sent) / secs);
		else
			snprintf(r->flood, sizeof(r->flood), "%.0f req/s", (double)answered / secs);
	} else if (c == C_CONNS) {
		snprintf(r->flood, sizeof(r->flood), "%zu open at most, %zu at the end; %zu dialers, %zu closed by the broker",
			 atomic_load(&L->conns.peak), connflood_open(&L->conns), L->conns.dialers,
			 atomic_load(&L->conns.removed));
	} else {
		snprintf(r->flood, sizeof(r->flood),
			 "%zu open at most (%zu opened); %zu closed by the broker, %zu refused, %zu failed",
			 atomic_load(&L->bare.peak), atomic_load(&L->bare.opened),
			 atomic_load(&L->bare.closed_by_peer), atomic_load(&L->bare.refused),
			 atomic_load(&L->bare.failed));
	}
	if (L->with_writer) {
		char w[160];
		size_t wc[FLOOD_CODES] = {0};
		add_counts(wc, &L->writer);
		answers_text(w, sizeof(w), wc, atomic_load(&L->writer.undecodable),
			     atomic_load(&L->writer.send_failed));
		snprintf(r->answers, sizeof(r->answers), "pusher: %s (%.0f/s)", w,
			 (double)atomic_load(&L->writer.answered) / secs);
	} else if (L->n_req > 0) {
		answers_text(r->answers, sizeof(r->answers), codes, undecodable, send_failed);
	} else {
		snprintf(r->answers, sizeof(r->answers), "-");
	}
	for (size_t i = 0; i < L->n_req; i++)
		reqflood_halt(&L->req[i]);
	if (L->with_writer)
		reqflood_halt(&L->writer);
	connflood_halt(&L->conns);
	bareflood_stop(&L->bare);
}

/* Closes the flood's sockets (again: a no-op). */
static void load_close(struct load *L)
{
	for (size_t i = 0; i < L->n_req; i++)
		reqflood_close(&L->req[i]);
	if (L->with_writer)
		reqflood_close(&L->writer);
	connflood_close(&L->conns);
}

static int run_case(const struct opts *o, enum case_id c, struct row *r)
{
	cueqd_proc b = {0};
	struct load L;
	nng_socket s;
	int status = 0;

	memset(r, 0, sizeof(*r));
	if (lat_init(&r->ping, o->pings) != 0 || lat_init(&r->fresh.ok, 1000) != 0)
		return -1;
	r->load = load1();
	if (c == C_BARE_FDS)
		b.nofile = o->fd_limit;
	fprintf(stderr, "cueq-flood: %s ...\n", case_text[c]);
	if (brokerproc_start(&b, o->cueqd, o->fsync) != 0)
		return -1;
	if (req_open(&s, b.url, PING_TIMEOUT_MS, true) != 0 || ping_once(s) != 0) {
		fprintf(stderr, "cueq-flood: the pinging client cannot reach %s\n", b.url);
		brokerproc_stop(&b);
		return -1;
	}
	if (load_start(&L, c, &b, o) != 0) {
		fprintf(stderr, "cueq-flood: the flood of case %s did not start\n", case_names[c]);
		load_stop(&L, c, r);
		brokerproc_stop(&b);
		load_close(&L);
		nng_close(s);
		return -1;
	}
	/* answers never read harm others only once the connection's buffers
	 * are full and the broker's sends to it wait: measured from then on */
	for (uint64_t until = now_ns() + UNREAD_WARMUP_S * 1000000000ull;
	     c == C_UNREAD && atomic_load(&L.req[0].send_failed) == 0 && now_ns() < until;)
		sleep_ms(100);
	r->fresh.url = b.url;
	bool fresh_on = pthread_create(&r->fresh.thr, NULL, fresh_main, &r->fresh) == 0;
	uint64_t start = now_ns(), end = start + (uint64_t)o->secs * 1000000000u;
	uint64_t every = (uint64_t)o->secs * 1000000000u / o->pings;
	for (size_t i = 0; i < o->pings && now_ns() < end; i++) {
		uint64_t due = start + i * every, t0 = now_ns();
		if (t0 < due) {
			sleep_ms((unsigned)((due - t0) / 1000000u));
			t0 = now_ns();
		}
		if (ping_once(s) == 0)
			lat_add(&r->ping, now_ns() - t0);
		else
			r->ping_lost++;
	}
	atomic_store(&r->fresh.stop, true);
	if (fresh_on)
		pthread_join(r->fresh.thr, NULL);
	load_stop(&L, c, r);
	r->hwm_kb = proc_status_kb(b.pid, "VmHWM");
	/* The flood's sockets close before the broker stops (a broker stopped
	 * with a flood of 4 MiB frames still connected was seen to hang in
	 * nng_close), but for the claims': closing a socket whose claims the
	 * broker holds can hang the client (flood_load.c), so that one waits. */
	if (c != C_CLAIMS)
		load_close(&L);
	if (cueqd_wait(&b, 0, &status) == 0) {
		proc_describe(status, r->broker, sizeof(r->broker));
		r->died = true;
		fprintf(stderr, "cueq-flood: the broker died in case %s (%s); its log:\n",
			case_names[c], r->broker);
		cueqd_dump_log(&b);
		cueqd_cleanup(&b);
	} else {
		snprintf(r->broker, sizeof(r->broker), "%s",
			 brokerproc_stop(&b) == 0 ? "ok" : "stopped badly");
	}
	load_close(&L);
	nng_close(s);
	return 0;
}

static void ms3(char *buf, size_t len, struct lat *l)
{
	if (lat_count(l) == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2f / %.2f / %.1f", (double)lat_pct(l, 50) / 1e6,
			 (double)lat_pct(l, 99) / 1e6, (double)lat_pct(l, 100) / 1e6);
}

static void print_row(enum case_id c, struct row *r)
{
	char ping[64], fresh[64], rss[24];
	ms3(ping, sizeof(ping), &r->ping);
	if (lat_count(&r->fresh.ok) == 0)
		snprintf(fresh, sizeof(fresh), "- (%zu failed)", r->fresh.failed);
	else
		snprintf(fresh, sizeof(fresh), "%.1f / %.1f (%zu of %zu failed)",
			 (double)lat_pct(&r->fresh.ok, 50) / 1e6, (double)lat_pct(&r->fresh.ok, 100) / 1e6,
			 r->fresh.failed, r->fresh.failed + lat_count(&r->fresh.ok));
	if (r->hwm_kb >= 0)
		snprintf(rss, sizeof(rss), "%.1f", (double)r->hwm_kb / 1024.0);
	else
		snprintf(rss, sizeof(rss), "-");
	printf("| %s | %s | %zu | %s | %zu | %s | %s | %s | %.2f | %s |\n", case_text[c], r->flood,
	       lat_count(&r->ping), ping, r->ping_lost, fresh, rss, r->answers, r->load, r->broker);
	fflush(stdout);
	lat_free(&r->ping);
	lat_free(&r->fresh.ok);
}

/* ---- the command line --------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: cueq-flood [--cases LIST] [--secs N] [--pings N] [--bare N]\n"
	      "                  [--fd-limit N] [--fsync always|interval|never] [--cueqd PATH]\n"
	      "Starts a cueqd per case (a free loopback port, a temp data dir), floods it\n"
	      "from one hostile client and measures another client's pings over its own\n"
	      "connection, one at a time, and a fresh connection's first ping twice a\n"
	      "second; prints a markdown table.  Cases (default all): idle, claims,\n"
	      "pushes, conns, bare, half, bare-fds, pad-ping, pad-push, unread.\n"
	      "Defaults: 10 s and 2000 pings a case, 4000 bare sockets, a descriptor\n"
	      "limit of 2048 for bare-fds (which opens 512 more than that), fsync\n"
	      "always.\n",
	      f);
}

static int num(const char *flag, const char *v, long min, long max, long *out)
{
	char *end;
	long n = v ? strtol(v, &end, 10) : 0;
	if (v == NULL || *v == '\0' || *end != '\0' || n < min || n > max) {
		fprintf(stderr, "cueq-flood: %s wants a number from %ld to %ld\n", flag, min, max);
		return -1;
	}
	*out = n;
	return 0;
}

static int parse_cases(const char *arg, bool *run)
{
	char *copy = strdup(arg), *save = NULL;
	int rc = 0;
	if (copy == NULL)
		return -1;
	memset(run, 0, N_CASES * sizeof(*run));
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int i = 0;
		while (i < N_CASES && strcmp(t, case_names[i]) != 0)
			i++;
		if (i == N_CASES) {
			fprintf(stderr, "cueq-flood: unknown case \"%s\"\n", t);
			rc = -1;
			break;
		}
		run[i] = true;
	}
	free(copy);
	return rc;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		long n;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (v == NULL) {
			fprintf(stderr, "cueq-flood: unknown option or missing value: %s\n", a);
			return -1;
		}
		i++;
		if (strcmp(a, "--cases") == 0) {
			if (parse_cases(v, o->run) != 0)
				return -1;
		} else if (strcmp(a, "--secs") == 0) {
			if (num(a, v, 1, 600, &n) != 0)
				return -1;
			o->secs = (unsigned)n;
		} else if (strcmp(a, "--pings") == 0) {
			if (num(a, v, 1, 1000000, &n) != 0)
				return -1;
			o->pings = (size_t)n;
		} else if (strcmp(a, "--bare") == 0) {
			if (num(a, v, 1, 1000000, &n) != 0)
				return -1;
			o->bare = (size_t)n;
		} else if (strcmp(a, "--fd-limit") == 0) {
			if (num(a, v, 256, 1 << 20, &n) != 0)
				return -1;
			o->fd_limit = (int)n;
		} else if (strcmp(a, "--fsync") == 0) {
			if (strcmp(v, "always") != 0 && strcmp(v, "interval") != 0 && strcmp(v, "never") != 0) {
				fprintf(stderr, "cueq-flood: --fsync always, interval or never\n");
				return -1;
			}
			o->fsync = v;
		} else if (strcmp(a, "--cueqd") == 0) {
			snprintf(o->cueqd, sizeof(o->cueqd), "%s", v);
		} else {
			fprintf(stderr, "cueq-flood: unknown option %s (try --help)\n", a);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {.fsync = "always", .secs = 10, .pings = 2000, .bare = 4000, .fd_limit = 2048};
	int failed = 0;

	for (int i = 0; i < N_CASES; i++)
		o.run[i] = true;
	if (parse_args(argc, argv, &o) != 0) {
		usage(stderr);
		return 2;
	}
	if (o.cueqd[0] == '\0' && brokerproc_default_path(o.cueqd, sizeof(o.cueqd)) != 0) {
		fprintf(stderr, "cueq-flood: cannot tell where this program is; pass --cueqd\n");
		return 2;
	}
	printf("cueq-flood: %u s and up to %zu pings a case (one at a time, %d ms timeout); "
	       "fsync %s; %ld CPUs; broker %s\n\n",
	       o.secs, o.pings, PING_TIMEOUT_MS, o.fsync, sysconf(_SC_NPROCESSORS_ONLN), o.cueqd);
	printf("| case | flood achieved | pings | ping p50 / p99 / max ms | pings lost "
	       "| fresh conn + ping p50 / max ms | broker peak RSS MiB | flood's answers by code "
	       "| load before | broker |\n");
	printf("|---|---|--:|--:|--:|--:|--:|---|--:|---|\n");
	fflush(stdout);
	for (int c = 0; c < N_CASES; c++) {
		struct row r;
		if (!o.run[c])
			continue;
		if (run_case(&o, (enum case_id)c, &r) != 0) {
			failed++;
			continue;
		}
		failed += r.died;
		print_row((enum case_id)c, &r);
	}
	if (failed > 0)
		fprintf(stderr, "cueq-flood: %d case(s) did not run or ended with the broker dead\n",
			failed);
	return failed > 0 ? 1 : 0;
}
