/*
 * faults_util.c - the storage-fault tests' shared helpers (faults_util.h).
 *
 * fx_send is the one piece with a subtlety: a request sent to a broker that
 * kills itself never gets a reply, and nng's REQ would wait for one until
 * its timeout (and resend it, unasked, to whatever listens on the port
 * next).  So the request runs on an aio while the caller's thread looks
 * every few ms whether the broker exited; on a death the aio is cancelled,
 * and callers close the socket before the broker starts again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faults_util.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* ---- brokers ------------------------------------------------------------ */

void fx_set_env(th_broker *b, const char *const *env)
{
	b->n_env = 0;
	for (; env != NULL && env[b->n_env] != NULL; b->n_env++) {
		assert_true(b->n_env < TH_MAX_EXTRA);
		b->env[b->n_env] = env[b->n_env];
	}
}

void fx_set_flags(th_broker *b, const char *const *flags)
{
	b->n_extra = 0;
	for (; flags != NULL && flags[b->n_extra] != NULL; b->n_extra++) {
		assert_true(b->n_extra < TH_MAX_EXTRA);
		b->extra[b->n_extra] = flags[b->n_extra];
	}
}

void fx_start(th_broker *b, const char *const *flags)
{
	const char *env[TH_MAX_EXTRA];
	size_t n_env = b->n_env;
	int nofile = b->nofile;

	memcpy(env, b->env, sizeof(env));
	th_broker_cleanup(b);
	memset(b, 0, sizeof(*b));
	memcpy(b->env, env, sizeof(env));
	b->n_env = n_env, b->nofile = nofile;
	if (th_broker_start(b, flags) != 0)
		fail_msg("cueqd did not start");
}

void fx_restart(th_broker *b)
{
	if (th_broker_restart(b) != 0) {
		th_broker_dump_log(b);
		fail_msg("cueqd did not restart on %s", b->data);
	}
}

int fx_launch(th_broker *b, int *status)
{
	int rc = -1;

	for (int i = 0; i < 3; i++) {
		rc = th_broker_launch(b, status);
		if (rc != 1 || !WIFEXITED(*status) || WEXITSTATUS(*status) != 1 ||
		    !fx_log_has(b, "cannot listen"))
			return rc;
		b->port = th_free_port(); /* someone took the port meanwhile */
		snprintf(b->url, sizeof(b->url), "tcp://127.0.0.1:%d", b->port);
	}
	return rc;
}

void fx_stop_clean(th_broker *b)
{
	int status = 0;
	char how[96];

	if (th_broker_stop(b, 15000, &status) != 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		proc_describe(status, how, sizeof(how));
		th_broker_dump_log(b);
		fail_msg("cueqd did not stop cleanly on SIGTERM (%s)", how);
	}
}

bool fx_log_has(const th_broker *b, const char *needle)
{
	FILE *f = fopen(b->log, "r");
	char *buf;
	size_t n;
	bool found;

	if (f == NULL)
		return false;
	fseek(f, 0, SEEK_END);
	n = (size_t)ftell(f);
	rewind(f);
	buf = malloc(n + 1);
	if (buf == NULL) {
		fclose(f);
		return false;
	}
	n = fread(buf, 1, n, f);
	buf[n] = '\0';
	fclose(f);
	found = strstr(buf, needle) != NULL;
	free(buf);
	return found;
}

void fx_expect_exit(const th_broker *b, int status, int want, const char *what)
{
	char how[96];

	if (!WIFEXITED(status) || WEXITSTATUS(status) != want) {
		proc_describe(status, how, sizeof(how));
		th_broker_dump_log(b);
		fail_msg("%s: cueqd ended with %s, expected exit status %d%s", what, how, want,
			 WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT
				 ? " (SIGABRT: an assertion, RocksDB's or ours)"
				 : "");
	}
}

/* ---- requests ------------------------------------------------------------ */

void fx_open(th_raw *r, const th_broker *b)
{
	if (th_raw_open(r, b->url, FX_CHECK_MS) != 0)
		fail_msg("cannot open a connection to %s", b->url);
}

void fx_bytes_free(th_bytes *b)
{
	free(b->p);
	b->p = NULL;
	b->n = 0;
}

th_bytes fx_push_req(const fx_job *j)
{
	th_req q;

	assert_int_equal(th_req_begin(&q, "push", 1), 0);
	proto_key(th_pk(&q), "jobs");
	msgpack_pack_array(th_pk(&q), 1);
	msgpack_pack_map(th_pk(&q), 2 + (j->key != NULL) + (j->unique != NULL) +
					    (j->max_attempts != 0) + (j->lease_ms != 0));
	proto_kv_cstr(th_pk(&q), "queue", j->queue);
	proto_kv_bin(th_pk(&q), "payload", j->payload, strlen(j->payload));
	if (j->key != NULL)
		proto_kv_cstr(th_pk(&q), "key", j->key);
	if (j->unique != NULL)
		proto_kv_cstr(th_pk(&q), "unique", j->unique);
	if (j->max_attempts != 0)
		proto_kv_uint(th_pk(&q), "max_attempts", j->max_attempts);
	if (j->lease_ms != 0)
		proto_kv_uint(th_pk(&q), "lease_ms", j->lease_ms);
	return th_req_keep(&q);
}

/* An ack, nack or extend request of one item; the item map has n fields
 * of which the caller packs n - 2 after execution_id and lease_token. */
static void item_begin(th_req *q, const char *op, const char *id, const char *token, size_t n)
{
	assert_int_equal(th_req_begin(q, op, 1), 0);
	proto_key(th_pk(q), "items");
	msgpack_pack_array(th_pk(q), 1);
	msgpack_pack_map(th_pk(q), n);
	proto_kv_cstr(th_pk(q), "execution_id", id);
	proto_kv_cstr(th_pk(q), "lease_token", token);
}

th_bytes fx_ack_req(const char *id, const char *token, const char *result)
{
	th_req q;

	item_begin(&q, "ack", id, token, 2 + (result != NULL));
	if (result != NULL)
		proto_kv_cstr(th_pk(&q), "result", result);
	return th_req_keep(&q);
}

th_bytes fx_nack_req(const char *id, const char *token, const char *error, uint64_t retry_in_ms,
		     bool terminal)
{
	th_req q;

	item_begin(&q, "nack", id, token, 2 + (error != NULL) + (retry_in_ms != 0) + terminal);
	if (error != NULL)
		proto_kv_cstr(th_pk(&q), "error", error);
	if (retry_in_ms != 0)
		proto_kv_uint(th_pk(&q), "retry_in_ms", retry_in_ms);
	if (terminal)
		proto_kv_bool(th_pk(&q), "terminal", true);
	return th_req_keep(&q);
}

th_bytes fx_extend_req(const char *id, const char *token, uint64_t lease_ms)
{
	th_req q;

	item_begin(&q, "extend", id, token, 3);
	proto_kv_uint(th_pk(&q), "lease_ms", lease_ms);
	return th_req_keep(&q);
}

th_bytes fx_step_req(const char *id, const char *token, const char *name, const char *value)
{
	th_req q;

	assert_int_equal(th_req_begin(&q, "step_set", 4), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	proto_kv_cstr(th_pk(&q), "lease_token", token);
	proto_kv_cstr(th_pk(&q), "name", name);
	proto_kv_cstr(th_pk(&q), "value", value);
	return th_req_keep(&q);
}

static void aio_done(void *arg)
{
	atomic_store((atomic_bool *)arg, true);
}

/* Waits for the aio, or for b to exit (then cancels the aio). */
static int aio_wait_or_death(th_broker *b, nng_aio *aio, atomic_bool *done, int64_t deadline,
			     fx_end *end)
{
	while (!atomic_load(done) && th_now_ms() < deadline) {
		if (b != NULL && b->pid != 0 && th_broker_wait(b, 0, &end->status) == 0) {
			end->died = true;
			break;
		}
		th_sleep_ms(2);
	}
	if (!atomic_load(done))
		nng_aio_cancel(aio);
	nng_aio_wait(aio);
	return nng_aio_result(aio);
}

fx_end fx_send(th_broker *b, th_raw *r, const th_bytes *req, th_reply *rep, int timeout_ms)
{
	fx_end end = { 0 };
	atomic_bool done = false;
	int64_t deadline = th_now_ms() + timeout_ms;
	nng_aio *aio = NULL;
	nng_msg *m = NULL;

	memset(rep, 0, sizeof(*rep));
	msgpack_unpacked_init(&rep->up);
	if ((end.rv = nng_aio_alloc(&aio, aio_done, &done)) != 0)
		return end;
	if ((end.rv = nng_msg_alloc(&m, req->n)) != 0)
		goto out;
	memcpy(nng_msg_body(m), req->p, req->n);
	nng_aio_set_timeout(aio, timeout_ms);
	nng_aio_set_msg(aio, m);
	nng_send_aio(r->s, aio);
	if ((end.rv = aio_wait_or_death(b, aio, &done, deadline, &end)) != 0) {
		nng_msg_free(nng_aio_get_msg(aio));
		goto out;
	}
	if (end.died) /* it went out; the broker is gone */
		goto out;
	atomic_store(&done, false);
	nng_aio_set_timeout(aio, (int)(deadline - th_now_ms() > 1 ? deadline - th_now_ms() : 1));
	nng_recv_aio(r->s, aio);
	if ((end.rv = aio_wait_or_death(b, aio, &done, deadline, &end)) != 0)
		goto out;
	end.rv = th_reply_decode(nng_aio_get_msg(aio), rep);
	end.replied = end.rv == 0;
out:
	nng_aio_free(aio);
	/* A connection that closed may be the broker dying: give the exit a
	 * moment to be seen (nng can notice the close first). */
	while (!end.replied && !end.died && b != NULL && b->pid != 0 && th_now_ms() < deadline) {
		if (th_broker_wait(b, 50, &end.status) == 0)
			end.died = true;
		else if (end.rv == NNG_ETIMEDOUT)
			break;
	}
	return end;
}

void fx_call(th_raw *r, const th_bytes *req, th_reply *rep, const char *what)
{
	int rv = th_raw_call(r, req->p, req->n, rep);
	if (rv != 0)
		fail_msg("%s: no reply (%s)", what, rv > 0 ? nng_strerror(rv) : "undecodable");
}

bool fx_push_result(const th_reply *rep, fx_pushed *out)
{
	const msgpack_object *m = rep->ok ? th_item(rep->root, "results", 0) : NULL;

	memset(out, 0, sizeof(*out));
	if (m == NULL || !th_bool(m, "ok", &out->ok))
		return false;
	th_str(m, "err", out->err, sizeof(out->err));
	th_str(m, "msg", out->msg, sizeof(out->msg));
	th_str(m, "execution_id", out->id, sizeof(out->id));
	th_str(m, "holder", out->holder, sizeof(out->holder));
	th_bool(m, "duplicate", &out->duplicate);
	return true;
}

bool fx_item_result(const th_reply *rep, fx_item *out)
{
	const msgpack_object *m = rep->ok ? th_item(rep->root, "results", 0) : NULL;

	memset(out, 0, sizeof(*out));
	if (m == NULL || !th_bool(m, "ok", &out->ok))
		return false;
	th_str(m, "err", out->err, sizeof(out->err));
	th_str(m, "msg", out->msg, sizeof(out->msg));
	th_str(m, "state", out->state, sizeof(out->state));
	th_uint(m, "run_at", &out->run_at);
	th_uint(m, "lease_deadline", &out->lease_deadline);
	return true;
}

void fx_push(th_raw *r, const fx_job *j, fx_pushed *out)
{
	th_bytes req = fx_push_req(j);
	th_reply rep;

	fx_call(r, &req, &rep, "push");
	if (!fx_push_result(&rep, out))
		fail_msg("push to %s refused as a whole: %s %s", j->queue, rep.err, rep.msg);
	th_reply_free(&rep);
	fx_bytes_free(&req);
}

void fx_claim_ok(th_raw *r, const char *queue, uint64_t lease_ms, char id[FX_ID],
		 char token[FX_ID], uint64_t *lease_deadline)
{
	th_req q;
	th_reply rep;
	const msgpack_object *job;

	assert_int_equal(th_req_begin(&q, "claim", 5), 0);
	/* the outcome is sent again over a new connection to a restarted
	 * broker: closing this one must not end the lease */
	proto_kv_bool(th_pk(&q), "detach", true);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_uint(th_pk(&q), "max", 1);
	proto_kv_uint(th_pk(&q), "wait_ms", 2000);
	proto_kv_uint(th_pk(&q), "lease_ms", lease_ms);
	if (th_req_call(r, &q, &rep) != 0 || !rep.ok)
		fail_msg("claim on %s: no reply or refused (%s %s)", queue, rep.err, rep.msg);
	job = th_item(rep.root, "jobs", 0);
	if (job == NULL || !th_str(job, "execution_id", id, FX_ID) ||
	    !th_str(job, "lease_token", token, FX_ID) ||
	    !th_uint(job, "lease_deadline", lease_deadline))
		fail_msg("claim on %s: nothing claimed within 2 s", queue);
	th_reply_free(&rep);
}

/* ---- what the broker holds ------------------------------------------------ */

static void count_events(const msgpack_object *exe, fx_exec *x)
{
	for (size_t i = 0; i < th_count(exe, "history"); i++) {
		const msgpack_object *ev = th_item(exe, "history", i);
		char name[32] = "";
		if (ev == NULL || !th_str(ev, "event", name, sizeof(name)))
			continue;
		x->ev_claimed += strcmp(name, "claimed") == 0;
		x->ev_extended += strcmp(name, "extended") == 0;
		x->ev_nacked += strcmp(name, "nacked") == 0;
		x->ev_succeeded += strcmp(name, "succeeded") == 0;
		x->ev_dead += strcmp(name, "dead") == 0;
		x->ev_step += strcmp(name, "step") == 0;
	}
}

void fx_get(th_raw *r, const char *id, fx_exec *x)
{
	th_req q;
	th_reply rep;
	const msgpack_object *exe;

	memset(x, 0, sizeof(*x));
	assert_int_equal(th_req_begin(&q, "get", 1), 0);
	proto_kv_cstr(th_pk(&q), "execution_id", id);
	if (th_req_call(r, &q, &rep) != 0)
		fail_msg("get %s: no reply", id);
	if (!rep.ok && strcmp(rep.err, "NOT_FOUND") == 0) {
		th_reply_free(&rep);
		return;
	}
	exe = rep.ok ? th_get(rep.root, "execution") : NULL;
	if (exe == NULL || exe->type != MSGPACK_OBJECT_MAP)
		fail_msg("get %s: %s %s", id, rep.err, rep.ok ? "(no execution map)" : rep.msg);
	x->found = true;
	th_str(exe, "state", x->state, sizeof(x->state));
	th_str(exe, "lease_token", x->token, sizeof(x->token));
	th_str(exe, "result", x->result, sizeof(x->result));
	th_str(exe, "error", x->error, sizeof(x->error));
	th_str(exe, "unique", x->unique, sizeof(x->unique));
	th_str(exe, "payload", x->payload, sizeof(x->payload));
	th_uint(exe, "attempt", &x->attempt);
	th_uint(exe, "failures", &x->failures);
	th_uint(exe, "lease_deadline", &x->lease_deadline);
	th_uint(exe, "run_at", &x->run_at);
	x->n_steps = th_count(exe, "steps");
	if (x->n_steps > 0) {
		const msgpack_object *s = th_item(exe, "steps", 0);
		if (s != NULL) {
			th_str(s, "name", x->step_name, sizeof(x->step_name));
			th_str(s, "value", x->step_value, sizeof(x->step_value));
		}
	}
	count_events(exe, x);
	th_reply_free(&rep);
}

size_t fx_list(th_raw *r, const char *queue, const char *state, char (*ids)[FX_ID], size_t max)
{
	th_req q;
	th_reply rep;
	size_t n;

	assert_int_equal(th_req_begin(&q, "list", 2 + (state != NULL)), 0);
	proto_kv_cstr(th_pk(&q), "queue", queue);
	proto_kv_uint(th_pk(&q), "limit", 1000);
	if (state != NULL)
		proto_kv_cstr(th_pk(&q), "state", state);
	if (th_req_call(r, &q, &rep) != 0 || !rep.ok)
		fail_msg("list %s %s: no reply or refused (%s %s)", queue, state ? state : "", rep.err,
			 rep.msg);
	n = th_count(rep.root, "executions");
	for (size_t i = 0; i < n && i < max; i++) {
		const msgpack_object *m = th_item(rep.root, "executions", i);
		if (m == NULL || !th_str(m, "execution_id", ids[i], FX_ID))
			fail_msg("list %s: executions[%zu] has no execution_id", queue, i);
	}
	th_reply_free(&rep);
	return n;
}

bool fx_listed(th_raw *r, const char *queue, const char *state, const char *id)
{
	static char ids[1000][FX_ID];
	size_t n = fx_list(r, queue, state, ids, 1000);

	for (size_t i = 0; i < n && i < 1000; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

void fx_counts(th_raw *r, const char *queue, th_counts *c)
{
	if (th_raw_counts(r, queue, c) != 0)
		fail_msg("stats of %s failed", queue);
}

bool fx_counts_equal(const th_counts *a, const th_counts *b)
{
	return a->scheduled == b->scheduled && a->ready == b->ready && a->leased == b->leased &&
	       a->succeeded == b->succeeded && a->dead == b->dead && a->cancelled == b->cancelled;
}

void fx_counts_text(const th_counts *c, char *buf, size_t size)
{
	snprintf(buf, size, "scheduled %llu ready %llu leased %llu succeeded %llu dead %llu cancelled %llu",
		 (unsigned long long)c->scheduled, (unsigned long long)c->ready,
		 (unsigned long long)c->leased, (unsigned long long)c->succeeded,
		 (unsigned long long)c->dead, (unsigned long long)c->cancelled);
}
