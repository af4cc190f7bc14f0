/*
 * test_flood.c - one client flooding a real cueqd with long-poll claims
 * cannot stop the others: the claims it may park are bounded per
 * connection and in all (the rest are answered UNAVAILABLE at once, saying
 * which bound), its closed connection frees them, another client's ping is
 * answered meanwhile, and a parked claim does not keep its frame.  The
 * limits on queues, payloads and frames are flags, answered with their
 * errors when hit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include <nng/protocol/reqrep0/req.h> /* after nng.h, which harness.h brings */

#define MAX_CLAIMS 64
#define PAD_BYTES (1u << 20)

/* Claims in flight on one connection: a raw REQ socket, which may hold any
 * number of requests (each tagged with its own request ID header) and is
 * read without blocking. */
struct flood {
	nng_socket s;
	size_t n;
};

static char *pad;

/* Sends n claims on queue waiting wait_ms (each padded with pad_bytes of
 * an unknown key). */
static void flood_send(struct flood *f, const char *url, const char *queue, size_t n,
		       uint64_t wait_ms, size_t pad_bytes)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(nng_req0_open_raw(&f->s), 0);
	assert_int_equal(nng_setopt_size(f->s, NNG_OPT_RECVMAXSZ, 0), 0);
	/* room for every answer: they are read only later */
	assert_int_equal(nng_setopt_int(f->s, NNG_OPT_RECVBUF, MAX_CLAIMS), 0);
	/* a send the broker does not take fails the test instead of hanging it */
	assert_int_equal(nng_setopt_ms(f->s, NNG_OPT_SENDTIMEO, 10000), 0);
	assert_int_equal(nng_dial(f->s, url, NULL, 0), 0);
	assert_true(n <= MAX_CLAIMS);
	for (size_t i = 0; i < n; i++) {
		th_req q;
		assert_int_equal(th_req_begin(&q, "claim", 3 + (pad_bytes > 0)), 0);
		proto_kv_cstr(th_pk(&q), "queue", queue);
		proto_kv_uint(th_pk(&q), "max", 1);
		proto_kv_uint(th_pk(&q), "wait_ms", wait_ms);
		if (pad_bytes > 0)
			proto_kv_str(th_pk(&q), "padding", pad, pad_bytes);
		/* raw REQ: the request ID header is ours to add (high bit set) */
		assert_int_equal(nng_msg_header_append_u32(q.msg, 0x80000000u | (uint32_t)(i + 1)), 0);
		int rv = nng_sendmsg(f->s, q.msg, 0);
		if (rv != 0)
			fail_msg("claim %zu of the flood was not sent within 10 s: %s", i, nng_strerror(rv));
		q.msg = NULL;
		f->n++;
	}
}

/* Waits ms, then reads the answers come meanwhile: how many (refused: with
 * err UNAVAILABLE, each with a message that holds want). */
static size_t flood_answered(struct flood *f, int64_t ms, size_t *refused, const char *want)
{
	size_t n = 0;
	nng_msg *m;
	th_sleep_ms(ms);
	*refused = 0;
	while (nng_recvmsg(f->s, &m, NNG_FLAG_NONBLOCK) == 0) {
		th_reply rep = {0};
		msgpack_unpacked_init(&rep.up); /* th_reply_decode destroys it first */
		n++;
		assert_int_equal(th_reply_decode(m, &rep), 0);
		if (!rep.ok && strcmp(rep.err, "UNAVAILABLE") == 0) {
			if (strstr(rep.msg, want) == NULL)
				fail_msg("a refused claim does not say the bound: %s", rep.msg);
			(*refused)++;
		}
		th_reply_free(&rep);
	}
	return n;
}

/* Sends a ping behind f's claims, on their connection, and waits up to
 * 60 s for its answer: the broker has then read and handled the claims
 * sent before it, however slowly this build runs.  Fails the test when a
 * claim is answered first. */
static void flood_ping_behind(struct flood *f)
{
	uint32_t id = 0x80000000u | (uint32_t)(f->n + 1), got = 0;
	nng_msg *m;
	th_req q;
	int rv;

	assert_int_equal(th_req_begin(&q, "ping", 0), 0);
	assert_int_equal(nng_msg_header_append_u32(q.msg, id), 0);
	assert_int_equal(nng_sendmsg(f->s, q.msg, 0), 0);
	q.msg = NULL;
	assert_int_equal(nng_setopt_ms(f->s, NNG_OPT_RECVTIMEO, 60000), 0);
	if ((rv = nng_recvmsg(f->s, &m, 0)) != 0)
		fail_msg("no answer within 60 s to a ping behind the flood: %s", nng_strerror(rv));
	rv = nng_msg_header_trim_u32(m, &got);
	nng_msg_free(m);
	if (rv != 0 || got != id)
		fail_msg("a claim of the flood was answered before the ping behind it");
}

static void *closer(void *arg)
{
	nng_socket *s = arg;
	nng_close(*s);
	free(s);
	return NULL;
}

/* Closes the flood's socket.  nng 1.5.2 can hang closing a socket that a
 * broker holds requests of (its receive is never finished, upstream
 * 1.6.0's a1bc737b): the close runs on a thread of its own, which the test
 * does not wait for.  The connection itself is closed before the hang, so
 * the broker sees it go either way. */
static void flood_close(struct flood *f)
{
	nng_msg *m;
	while (nng_recvmsg(f->s, &m, NNG_FLAG_NONBLOCK) == 0) /* answers not read */
		nng_msg_free(m);
	nng_socket *s = malloc(sizeof(*s));
	pthread_t t;
	assert_non_null(s);
	*s = f->s;
	if (pthread_create(&t, NULL, closer, s) != 0)
		closer(s);
	else
		pthread_detach(t);
	th_sleep_ms(100);
}

/* A ping on its own connection: its round trip in ms (fails on no answer). */
static int64_t ping_ms(const char *url)
{
	th_raw r;
	assert_int_equal(th_raw_open(&r, url, 5000), 0);
	int64_t t0 = th_now_ms();
	assert_int_equal(th_raw_ping(&r), 0);
	int64_t ms = th_now_ms() - t0;
	th_raw_close(&r);
	return ms;
}

static int start_bounded(void **state)
{
	th_broker *b = calloc(1, sizeof(*b));
	static const char *const flags[] = {"--max-parked-per-connection", "8", "--max-parked",
					    "12", NULL};
	if (b == NULL || th_broker_start(b, flags) != 0)
		return -1;
	*state = b;
	return 0;
}

/* One connection floods: 8 of its claims wait, the other 12 are refused at
 * once; another connection still pings and parks, up to the bound in all;
 * closing the flood frees its share. */
static void test_parked_claims_are_bounded(void **state)
{
	th_broker *b = *state;
	struct flood a, c;
	size_t refused = 0;

	flood_send(&a, b->url, "flood", 20, 60000, 0);
	assert_int_equal(flood_answered(&a, 1500, &refused, "--max-parked-per-connection"), 12);
	assert_int_equal(refused, 12);
	int64_t ms = ping_ms(b->url);
	fprintf(stderr, "flood: another client's ping took %lld ms beside 8 parked claims of one\n",
		(long long)ms);
	assert_true(ms < 2000);

	/* in all: 4 more wait (12), the fifth is refused by the total bound */
	flood_send(&c, b->url, "flood", 5, 60000, 0);
	assert_int_equal(flood_answered(&c, 1000, &refused, "--max-parked"), 1);
	assert_int_equal(refused, 1);

	/* closing the flood ends its claims: others may wait again */
	flood_close(&a);
	th_sleep_ms(500);
	struct flood d;
	flood_send(&d, b->url, "flood", 8, 60000, 0);
	assert_int_equal(flood_answered(&d, 1000, &refused, "--max-parked"), 0);

	/* and a job pushed now goes to a waiting claim */
	th_raw r;
	char id[PROTO_ID_LEN + 1];
	assert_int_equal(th_raw_open(&r, b->url, 5000), 0);
	assert_int_equal(th_raw_push(&r, "flood", "work", 0, 0, id), 0);
	th_raw_close(&r);
	size_t got = flood_answered(&c, 1000, &refused, "-") + flood_answered(&d, 0, &refused, "-");
	assert_int_equal(got, 1);
	flood_close(&c);
	flood_close(&d);
}

/* One waiting claim sent again and again (the same request ID and bytes):
 * a few repeats wait for its answer, the rest are refused at once. */
static void test_repeats_of_a_parked_claim_are_bounded(void **state)
{
	th_broker *b = *state;
	struct flood f;
	th_req q;
	size_t refused = 0;

	memset(&f, 0, sizeof(f));
	assert_int_equal(nng_req0_open_raw(&f.s), 0);
	assert_int_equal(nng_setopt_int(f.s, NNG_OPT_RECVBUF, MAX_CLAIMS), 0);
	assert_int_equal(nng_setopt_ms(f.s, NNG_OPT_SENDTIMEO, 10000), 0);
	assert_int_equal(nng_dial(f.s, b->url, NULL, 0), 0);
	assert_int_equal(th_req_begin(&q, "claim", 3), 0);
	proto_kv_cstr(th_pk(&q), "queue", "resent");
	proto_kv_uint(th_pk(&q), "max", 1);
	proto_kv_uint(th_pk(&q), "wait_ms", 60000);
	for (uint32_t i = 0; i < 20; i++) {
		nng_msg *m;
		assert_int_equal(nng_msg_dup(&m, q.msg), 0);
		assert_int_equal(nng_msg_header_append_u32(m, 0x80000000u | (i + 1)), 0);
		assert_int_equal(nng_sendmsg(f.s, m, 0), 0);
	}
	th_req_free(&q);
	/* the first parks, 8 repeats wait with it, 11 are refused */
	assert_int_equal(flood_answered(&f, 1500, &refused, "sent again too often"), 11);
	assert_int_equal(refused, 11);
	th_raw r;
	char id[PROTO_ID_LEN + 1];
	assert_int_equal(th_raw_open(&r, b->url, 5000), 0);
	assert_int_equal(th_raw_push(&r, "resent", "one", 0, 0, id), 0);
	th_raw_close(&r);
	/* the answer goes to the first and to each repeat that waited */
	assert_int_equal(flood_answered(&f, 1000, &refused, "-"), 9);
	assert_int_equal(refused, 0);
	flood_close(&f);
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* 40 parked claims padded to 1 MiB each: the broker keeps what the claim
 * needs, not the 40 MiB of frames. */
static void test_parked_claim_keeps_no_frame(void **state)
{
	th_broker *b = *state;
	struct flood a;
	size_t refused = 0;

	pad = malloc(PAD_BYTES);
	assert_non_null(pad);
	memset(pad, 'x', PAD_BYTES);
	long before = rss_kib(b->pid);
	flood_send(&a, b->url, "padded", 40, 60000, PAD_BYTES);
	flood_ping_behind(&a);
	assert_int_equal(flood_answered(&a, 1000, &refused, "-"), 0);
	long after = rss_kib(b->pid);
	fprintf(stderr, "flood: 40 parked claims of 1 MiB frames: broker RSS %ld -> %ld KiB\n",
		before, after);
	if (after - before > 20 * 1024)
		fail_msg("the broker grew by %ld KiB holding 40 parked claims: it keeps their frames",
			 after - before);
	flood_close(&a);
	free(pad);
	pad = NULL;
}

/* A broker whose freed memory goes back at once also under AddressSanitizer
 * (no quarantine), so its RSS says what it holds. */
static int start_measured(void **state)
{
	static char asan[512];
	th_broker *b = calloc(1, sizeof(*b));
	const char *now = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%squarantine_size_mb=0:thread_local_quarantine_size_kb=0",
		 now ? now : "", now && *now ? ":" : "");
	if (b == NULL)
		return -1;
	b->env[b->n_env++] = asan;
	if (th_broker_start(b, NULL) != 0)
		return -1;
	*state = b;
	return 0;
}

/* A client that sends pings without end and never reads an answer. */
struct unread {
	const char *url;
	atomic_bool stop;
	atomic_ulong sent;
};

static void *unread_main(void *arg)
{
	struct unread *u = arg;
	nng_socket s;
	if (nng_req0_open_raw(&s) != 0)
		return NULL;
	nng_setopt_int(s, NNG_OPT_RECVBUF, 1); /* nng stops reading at once */
	nng_setopt_ms(s, NNG_OPT_SENDTIMEO, 100);
	nng_setopt_ms(s, NNG_OPT_RECONNMINT, 10);
	if (nng_dial(s, u->url, NULL, NNG_FLAG_NONBLOCK) != 0) {
		nng_close(s);
		return NULL;
	}
	for (uint32_t i = 1; !atomic_load(&u->stop); i++) {
		th_req q;
		if (th_req_begin(&q, "ping", 0) != 0)
			break;
		nng_msg_header_append_u32(q.msg, 0x80000000u | i);
		if (nng_sendmsg(s, q.msg, 0) == 0)
			atomic_fetch_add(&u->sent, 1), q.msg = NULL;
		th_req_free(&q);
	}
	nng_close(s);
	return NULL;
}

/* A client that never reads its answers has its connection closed once
 * 512 of them wait to leave: it cannot take every server context from the
 * others, whose pings are answered all along. */
static void test_unread_answers_are_bounded(void **state)
{
	th_broker *b = *state;
	struct unread u = {.url = b->url};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, unread_main, &u), 0);
	th_raw r;
	assert_int_equal(th_raw_open(&r, b->url, 3000), 0);
	/* the answers fill the socket buffers first, some MiB: then the
	 * broker's contexts wait, until it closes the connection */
	int failed = 0, pings = 0;
	bool said = false;
	for (int64_t end = th_now_ms() + 20000; th_now_ms() < end && !(said && pings >= 20);) {
		failed += th_raw_ping(&r) != 0;
		pings++;
		th_sleep_ms(50);
		FILE *f = fopen(b->log, "r");
		assert_non_null(f);
		char line[512];
		while (fgets(line, sizeof(line), f) != NULL)
			said |= strstr(line, "answers it did not read") != NULL;
		fclose(f);
	}
	atomic_store(&u.stop, true);
	pthread_join(t, NULL);
	th_raw_close(&r);
	if (!said)
		fail_msg("the broker never closed the connection that did not read (%lu pings sent to it)",
			 (unsigned long)atomic_load(&u.sent));
	assert_int_equal(failed, 0);
}

static int start_limited(void **state)
{
	th_broker *b = calloc(1, sizeof(*b));
	static const char *const flags[] = {"--max-queues", "3", "--max-payload", "2000",
					    "--max-frame", "65536", NULL};
	if (b == NULL || th_broker_start(b, flags) != 0)
		return -1;
	*state = b;
	return 0;
}

/* A push of one job of len payload bytes to queue: the error code ("" ok). */
static void push_expect(th_raw *r, const char *queue, size_t len, const char *want)
{
	th_req q;
	th_reply rep;
	char *payload = calloc(1, len + 1);
	assert_non_null(payload);
	memset(payload, 'p', len);
	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_bin(th_pk(&q), "payload", payload, len);
	free(payload);
	assert_int_equal(th_req_call(r, &q, &rep), 0);
	const char *got = rep.ok ? "" : rep.err;
	const msgpack_object *res = rep.ok ? th_item(rep.root, "results", 0) : NULL;
	char item_err[32] = "";
	if (res != NULL && th_str(res, "err", item_err, sizeof(item_err)))
		got = item_err;
	if (strcmp(got, want) != 0)
		fail_msg("push of %zu bytes to %s: want '%s', got '%s' %s", len, queue, want, got,
			 rep.msg);
	th_reply_free(&rep);
}

/* --max-queues, --max-payload and --max-frame are answered with their
 * errors and change nothing; a queue emptied and forgotten frees its place. */
static void test_limits_are_flags(void **state)
{
	th_broker *b = *state;
	th_raw r;
	char id[PROTO_ID_LEN + 1], tok[PROTO_ID_LEN + 1];
	uint64_t attempt;
	assert_int_equal(th_raw_open(&r, b->url, 10000), 0);
	push_expect(&r, "lim.a", 10, "");
	push_expect(&r, "lim.b", 10, "");
	push_expect(&r, "lim.c", 10, "");
	push_expect(&r, "lim.d", 10, "UNAVAILABLE");
	push_expect(&r, "lim.a", 10, ""); /* an existing queue takes more */
	char *before = th_raw_stats_text(&r);
	assert_non_null(before);
	assert_null(strstr(before, "lim.d"));

	/* a pause would make a queue too */
	th_req q;
	th_reply rep;
	assert_int_equal(th_req_begin(&q, "pause", 1), 0);
	proto_kv_cstr(th_pk(&q), "queue", "lim.d");
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	assert_false(rep.ok);
	assert_string_equal(rep.err, "UNAVAILABLE");
	assert_non_null(strstr(rep.msg, "--max-queues"));
	th_reply_free(&rep);

	push_expect(&r, "lim.a", 2000, "");
	push_expect(&r, "lim.a", 2001, "TOO_LARGE");
	/* 40 jobs of 1900 bytes: under every payload limit, over the frame's */
	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 40);
	char fill[1900];
	memset(fill, 'x', sizeof(fill));
	for (int i = 0; i < 40; i++) {
		msgpack_pack_map(th_pk(&q), 2);
		proto_kv_cstr(th_pk(&q), "queue", "lim.a");
		proto_kv_bin(th_pk(&q), "payload", fill, sizeof(fill));
	}
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	assert_false(rep.ok);
	assert_string_equal(rep.err, "TOO_LARGE");
	assert_non_null(strstr(rep.msg, "65536"));
	th_reply_free(&rep);
	char *after = th_raw_stats_text(&r);
	assert_non_null(after);
	assert_int_equal(strstr(after, "lim.a") != NULL, 1);
	free(after);

	/* lim.c emptied and purged is forgotten: lim.d fits now */
	assert_int_equal(th_raw_claim(&r, "lim.c", 30000, 0, id, tok, &attempt), 0);
	assert_int_equal(th_req_begin(&q, "ack", 1), 0);
	proto_key(th_pk(&q), "items");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "lease_token", tok);
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	assert_true(rep.ok);
	th_reply_free(&rep);
	assert_int_equal(th_req_begin(&q, "purge", 2), 0);
	proto_kv_cstr(th_pk(&q), "queue", "lim.c");
	proto_kv_cstr(th_pk(&q), "state", "succeeded");
	assert_int_equal(th_req_call(&r, &q, &rep), 0);
	assert_true(rep.ok);
	th_reply_free(&rep);
	push_expect(&r, "lim.d", 10, "");
	free(before);
	th_raw_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parked_claims_are_bounded, start_bounded,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_parked_claim_keeps_no_frame, start_measured,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_repeats_of_a_parked_claim_are_bounded,
						th_fixture_start, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_limits_are_flags, start_limited, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_unread_answers_are_bounded, th_fixture_start,
						th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
