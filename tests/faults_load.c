/*
 * faults_load.c - load against a failing broker, and what must survive it
 * (see faults_load.h).
 */
#define _GNU_SOURCE /* dl_iterate_phdr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faults_load.h"

#include <link.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOAD_TIMEOUT_MS 3000 /* a request with no reply by then: the broker is gone */
#define LEASE_MS 60000
#define CLAIM_MAX 4
#define BIG_MAX (64 * 1024)

static char big[BIG_MAX]; /* the payload when payload_size is set */

struct worker_arg {
	fx_load *l;
	int n;
	bool producer;
};

static struct worker_arg args[FX_LOAD_MAX_THREADS];

static void record_error(fx_load *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void record_error(fx_load *l, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&l->mu);
	if (l->n_errors++ == 0) {
		va_start(ap, fmt);
		vsnprintf(l->first_error, sizeof(l->first_error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&l->mu);
}

static bool grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t c = *cap ? *cap * 2 : 1024;
	void *q = realloc(*p, c * size);
	if (q == NULL)
		return false;
	*p = q, *cap = c;
	return true;
}

/* One push of two jobs; false when the broker did not answer. */
static bool produce(fx_load *l, th_raw *r, int t, unsigned *seq)
{
	th_req q;
	th_reply rep;
	char payload[2][48];
	int rv;

	if (th_req_begin(&q, "push", 1) != 0)
		return false;
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 2);
	for (int i = 0; i < 2; i++) {
		snprintf(payload[i], sizeof(payload[i]), "p%d-%u", t, (*seq)++);
		msgpack_pack_map(th_pk(&q), 3);
		proto_kv_cstr(th_pk(&q), "queue", l->queue);
		if (l->payload_size > 0)
			proto_kv_bin(th_pk(&q), "payload", big, l->payload_size);
		else
			proto_kv_bin(th_pk(&q), "payload", payload[i], strlen(payload[i]));
		proto_kv_uint(th_pk(&q), "lease_ms", LEASE_MS);
	}
	rv = th_req_call(r, &q, &rep);
	if (rv != 0) {
		th_reply_free(&rep);
		return false;
	}
	if (!rep.ok) {
		record_error(l, "push answered %s %s", rep.err, rep.msg);
		th_reply_free(&rep);
		return false;
	}
	for (size_t i = 0; i < 2; i++) {
		const msgpack_object *m = th_item(rep.root, "results", i);
		bool ok = false;
		char id[FX_ID];
		if (m == NULL || !th_bool(m, "ok", &ok) || !ok || !th_str(m, "execution_id", id, FX_ID)) {
			record_error(l, "push results[%zu] is not ok with an execution_id", i);
			continue;
		}
		pthread_mutex_lock(&l->mu);
		if (grow((void **)&l->pushed, &l->cap_pushed, l->n_pushed, FX_ID))
			strcpy(l->pushed[l->n_pushed++], id);
		pthread_mutex_unlock(&l->mu);
		atomic_fetch_add(&l->n_push_ok, 1);
	}
	th_reply_free(&rep);
	return true;
}

/* One claim and the ack of what it got; false when the broker did not
 * answer. */
static bool work(fx_load *l, th_raw *r)
{
	th_req q;
	th_reply rep;
	size_t n, at[CLAIM_MAX];
	char ids[CLAIM_MAX][FX_ID], tokens[CLAIM_MAX][FX_ID];

	if (th_req_begin(&q, "claim", 4) != 0)
		return false;
	proto_kv_cstr(th_pk(&q), "queue", l->queue);
	proto_kv_uint(th_pk(&q), "max", CLAIM_MAX);
	proto_kv_uint(th_pk(&q), "wait_ms", 200);
	proto_kv_uint(th_pk(&q), "lease_ms", LEASE_MS);
	if (th_req_call(r, &q, &rep) != 0) {
		th_reply_free(&rep);
		return false;
	}
	if (!rep.ok) {
		record_error(l, "claim answered %s %s", rep.err, rep.msg);
		th_reply_free(&rep);
		return false;
	}
	n = th_count(rep.root, "jobs");
	if (n > CLAIM_MAX) {
		record_error(l, "claim of at most %d answered %zu jobs", CLAIM_MAX, n);
		n = CLAIM_MAX;
	}
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *j = th_item(rep.root, "jobs", i);
		if (j == NULL || !th_str(j, "execution_id", ids[i], FX_ID) ||
		    !th_str(j, "lease_token", tokens[i], FX_ID)) {
			record_error(l, "claim jobs[%zu] without execution_id/lease_token", i);
			th_reply_free(&rep);
			return false;
		}
		pthread_mutex_lock(&l->mu);
		at[i] = SIZE_MAX;
		if (grow((void **)&l->claimed, &l->cap_claimed, l->n_claimed, sizeof(fx_claimed))) {
			at[i] = l->n_claimed++;
			strcpy(l->claimed[at[i]].id, ids[i]);
			strcpy(l->claimed[at[i]].token, tokens[i]);
			l->claimed[at[i]].acked = false;
		}
		pthread_mutex_unlock(&l->mu);
	}
	th_reply_free(&rep);
	if (n == 0)
		return true;

	if (th_req_begin(&q, "ack", 1) != 0)
		return false;
	proto_key(th_pk(&q), "items");
	msgpack_pack_array(th_pk(&q), n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_map(th_pk(&q), 2);
		proto_kv_cstr(th_pk(&q), "execution_id", ids[i]);
		proto_kv_cstr(th_pk(&q), "lease_token", tokens[i]);
	}
	if (th_req_call(r, &q, &rep) != 0) {
		th_reply_free(&rep);
		return false;
	}
	if (!rep.ok) {
		record_error(l, "ack answered %s %s", rep.err, rep.msg);
		th_reply_free(&rep);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *m = th_item(rep.root, "results", i);
		bool ok = false;
		if (m == NULL || !th_bool(m, "ok", &ok) || !ok) {
			record_error(l, "ack results[%zu] of %s is not ok", i, ids[i]);
			continue;
		}
		pthread_mutex_lock(&l->mu);
		if (at[i] != SIZE_MAX)
			l->claimed[at[i]].acked = true;
		pthread_mutex_unlock(&l->mu);
		atomic_fetch_add(&l->n_ack_ok, 1);
	}
	th_reply_free(&rep);
	return true;
}

static void *thread_main(void *p)
{
	struct worker_arg *a = p;
	fx_load *l = a->l;
	th_raw r;
	unsigned seq = 0;

	if (th_raw_open(&r, l->url, LOAD_TIMEOUT_MS) != 0) {
		record_error(l, "thread %d cannot connect", a->n);
		return NULL;
	}
	while (!atomic_load(&l->stop))
		if (!(a->producer ? produce(l, &r, a->n, &seq) : work(l, &r)))
			break;
	th_raw_close(&r);
	return NULL;
}

void fx_load_start(fx_load *l, const char *url, const char *queue, int producers, int workers)
{
	assert_true(producers + workers <= FX_LOAD_MAX_THREADS);
	assert_true(l->payload_size <= BIG_MAX);
	memset(big, 'x', sizeof(big));
	snprintf(l->url, sizeof(l->url), "%s", url);
	l->queue = queue;
	pthread_mutex_init(&l->mu, NULL);
	for (int i = 0; i < producers + workers; i++) {
		args[i] = (struct worker_arg){ l, i, i < producers };
		assert_int_equal(pthread_create(&l->thr[l->n_thr], NULL, thread_main, &args[i]), 0);
		l->n_thr++;
	}
}

bool fx_load_wait(fx_load *l, size_t pushes, size_t acks, int timeout_ms)
{
	int64_t deadline = th_now_ms() + timeout_ms;

	while (th_now_ms() < deadline) {
		if (atomic_load(&l->n_push_ok) >= pushes && atomic_load(&l->n_ack_ok) >= acks)
			return true;
		th_sleep_ms(10);
	}
	return false;
}

void fx_load_stop(fx_load *l)
{
	atomic_store(&l->stop, true);
	for (size_t i = 0; i < l->n_thr; i++)
		pthread_join(l->thr[i], NULL);
	l->n_thr = 0;
}

void fx_load_verify(fx_load *l, th_broker *b, const char *what)
{
	th_raw r;
	size_t acked = 0, leased = 0;

	if (l->n_errors != 0) {
		th_broker_dump_log(b);
		fail_msg("%s: %zu requests were answered with an error, the first: %s", what, l->n_errors,
			 l->first_error);
	}
	if (l->n_pushed == 0 || atomic_load(&l->n_ack_ok) == 0)
		fail_msg("%s: the load did nothing before the broker stopped (%zu pushes, %zu acks ok)",
			 what, l->n_pushed, (size_t)atomic_load(&l->n_ack_ok));
	fx_open(&r, b);
	for (size_t i = 0; i < l->n_pushed; i++) {
		fx_exec x;
		fx_get(&r, l->pushed[i], &x);
		if (!x.found) {
			th_broker_dump_log(b);
			fail_msg("%s: push #%zu of %zu (%s) was answered ok and is gone after the restart",
				 what, i, l->n_pushed, l->pushed[i]);
		}
	}
	for (size_t i = 0; i < l->n_claimed; i++) {
		const fx_claimed *c = &l->claimed[i];
		fx_exec x;
		fx_get(&r, c->id, &x);
		bool ok = x.found && (strcmp(x.state, "succeeded") == 0 ||
				      (!c->acked && strcmp(x.state, "leased") == 0 &&
				       th_token_shown(x.token, c->token)));
		if (!ok) {
			th_broker_dump_log(b);
			fail_msg("%s: %s was claimed (token %s)%s and is %s (token '%s') after the restart; expected %s",
				 what, c->id, c->token, c->acked ? " and acked, both answered ok," : ", answered ok,",
				 x.found ? x.state : "gone", x.token,
				 c->acked ? "succeeded" : "leased with that token, or succeeded");
		}
		acked += c->acked;
		leased += strcmp(x.state, "leased") == 0;
	}
	th_raw_close(&r);
	fprintf(stderr, "faults: %s: %zu pushes, %zu claims, %zu acks answered ok; all on disk after the restart (%zu still leased)\n",
		what, l->n_pushed, l->n_claimed, acked, leased);
}

void fx_load_free(fx_load *l)
{
	free(l->pushed);
	free(l->claimed);
	pthread_mutex_destroy(&l->mu);
	memset(l, 0, sizeof(*l));
}

static int find_asan(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	if (info->dlpi_name != NULL && strstr(info->dlpi_name, "libasan.so") != NULL) {
		snprintf(arg, PATH_MAX, "%s", info->dlpi_name);
		return 1;
	}
	return 0;
}

const char *fx_faultfs_preload(const char *faultfs_path)
{
	static char preload[2 * PATH_MAX + 16];
	char asan[PATH_MAX] = "";

	dl_iterate_phdr(find_asan, asan);
	if (asan[0] == '\0') {
		snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", faultfs_path);
	} else {
		snprintf(preload, sizeof(preload), "LD_PRELOAD=%s:%s", asan, faultfs_path);
		fprintf(stderr, "faults: under ASan: the broker preloads %s before the faulty disk\n", asan);
	}
	return preload;
}
