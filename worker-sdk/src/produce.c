/*
 * produce.c - pushing jobs: one, or many in one request.
 *
 * Every job is checked before anything is packed, and the request's size is
 * estimated first so a batch that cannot fit one frame is refused without
 * building megabytes.  Options equal to the broker's defaults are left out
 * of the request; the reply's `durability` tells whether the push is synced.
 *
 * A retry never pushes twice.  The request is built once and the request
 * engine resends those very bytes under the same request ID, and it asks
 * the broker (retry_ttl_ms) to remember its answer on disk, in the same
 * write as the jobs, for just past the retry deadline: a retry after a
 * lost answer, even one that reaches a restarted broker, gets the first
 * answer instead of creating second jobs.  That costs the broker one
 * record per request, where a key per job would cost a read and two
 * writes per job; jobs that carry their own idempotency key keep it, for
 * repeats across calls.
 *
 * A job with every_ms or cron is a recurring cue: its result carries the
 * cue ID and recurring true instead of an execution ID (a broker too old to
 * know cues ignores the fields and makes one execution; that result is
 * turned into PROTOCOL, so nobody believes a schedule exists).
 *
 * A request succeeds or fails as a whole; each job's own answer (refused
 * with IDEMPOTENCY_MISMATCH or CONFLICT, or a duplicate) is in its result,
 * and the first refused job's sentence becomes the thread's last error.
 */
#include "sdk.h"

#include <stdio.h>
#include <string.h>

static size_t count_fields(const cueq_job_spec *j)
{
	const cueq_push_opts *o = &j->opts;

	return 1 + (j->payload_len > 0) + (o->priority != 0) + (o->max_attempts != 0) +
	       (o->max_expiries != 0) +
	       (o->lease_ms != 0) + (o->delay_ms > 0) + (o->run_at_ms > 0) + (o->key != NULL) +
	       (o->key_ttl_ms > 0) + (o->unique != NULL) + (o->group != NULL) +
	       (o->backoff_ms != 0) +
	       (o->backoff_factor != 0) + (o->backoff_max_ms != 0) + o->no_jitter +
	       (o->every_ms > 0) + (o->cron != NULL) + (o->tz != NULL) +
	       (o->catch_up != CUEQ_CATCH_UP_ONE) + (o->overlap != CUEQ_OVERLAP_ALLOW);
}

/* A duration where 0 is the default and CUEQ_ZERO_MS an explicit zero. */
static void pack_ms_or_zero(msgpack_packer *pk, const char *key, int64_t ms)
{
	proto_kv_uint(pk, key, ms == CUEQ_ZERO_MS ? 0 : (uint64_t)ms);
}

/* The factor as the integer it usually is, else as a float. */
static void pack_factor(msgpack_packer *pk, double f)
{
	proto_key(pk, "backoff_factor");
	if (f == (double)(uint64_t)f)
		msgpack_pack_uint64(pk, (uint64_t)f);
	else
		msgpack_pack_double(pk, f);
}

static void pack_job(msgpack_packer *pk, const cueq_job_spec *j)
{
	const cueq_push_opts *o = &j->opts;

	msgpack_pack_map(pk, count_fields(j));
	proto_kv_cstr(pk, "queue", j->queue);
	if (j->payload_len > 0)
		proto_kv_bin(pk, "payload", j->payload, j->payload_len);
	if (o->priority != 0)
		proto_kv_int(pk, "priority", o->priority);
	if (o->max_attempts != 0)
		proto_kv_uint(pk, "max_attempts", o->max_attempts);
	if (o->max_expiries != 0)
		proto_kv_uint(pk, "max_expiries", o->max_expiries);
	if (o->lease_ms != 0)
		proto_kv_uint(pk, "lease_ms", (uint64_t)o->lease_ms);
	if (o->delay_ms > 0)
		proto_kv_uint(pk, "delay_ms", (uint64_t)o->delay_ms);
	if (o->run_at_ms > 0)
		proto_kv_uint(pk, "run_at", (uint64_t)o->run_at_ms);
	if (o->key != NULL)
		proto_kv_cstr(pk, "key", o->key);
	if (o->key_ttl_ms > 0)
		proto_kv_uint(pk, "key_ttl_ms", (uint64_t)o->key_ttl_ms);
	if (o->unique != NULL)
		proto_kv_cstr(pk, "unique", o->unique);
	if (o->group != NULL)
		proto_kv_cstr(pk, "group", o->group);
	if (o->backoff_ms != 0)
		pack_ms_or_zero(pk, "backoff_ms", o->backoff_ms);
	if (o->backoff_factor != 0)
		pack_factor(pk, o->backoff_factor);
	if (o->backoff_max_ms != 0)
		pack_ms_or_zero(pk, "backoff_max_ms", o->backoff_max_ms);
	if (o->no_jitter)
		proto_kv_bool(pk, "jitter", false);
	if (o->every_ms > 0)
		proto_kv_uint(pk, "every_ms", (uint64_t)o->every_ms);
	if (o->cron != NULL)
		proto_kv_cstr(pk, "cron", o->cron);
	if (o->tz != NULL)
		proto_kv_cstr(pk, "tz", o->tz);
	if (o->catch_up != CUEQ_CATCH_UP_ONE)
		proto_kv_cstr(pk, "catch_up", cueq_catch_up_name(o->catch_up));
	if (o->overlap != CUEQ_OVERLAP_ALLOW)
		proto_kv_cstr(pk, "overlap", cueq_overlap_name(o->overlap));
}

/* How long the broker should remember the request: past every retry of
 * this call (each attempt may take a request timeout beyond the retry
 * deadline), with a minute to spare for clocks and queues. */
static int64_t retry_ttl(const cueq_client *c)
{
	int64_t ttl = c->retry_deadline_ms + c->request_timeout_ms + 60000;

	if (ttl < SDK_MIN_KEY_TTL_MS)
		ttl = SDK_MIN_KEY_TTL_MS;
	if (ttl > SDK_MAX_KEY_TTL_MS)
		ttl = SDK_MAX_KEY_TTL_MS;
	return ttl;
}

static int read_result(const msgpack_object *m, bool synced, cueq_push_result *r, proto_error *e)
{
	uint64_t run_at = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = sdk_item_status(m, &r->err, e)) != CUEQ_OK)
		return rc;
	if (r->err != CUEQ_OK)
		return sdk_get_id(m, "holder", false, r->holder, e);
	/* A recurring cue's result names the cue and no execution. */
	if ((rc = proto_bool(m, "recurring", false, &r->recurring, e)) != CUEQ_OK ||
	    (rc = sdk_get_id(m, "execution_id", !r->recurring, r->execution_id, e)) != CUEQ_OK ||
	    (rc = sdk_get_id(m, "cue_id", r->recurring, r->cue_id, e)) != CUEQ_OK ||
	    (rc = sdk_get_state(m, "state", false, &r->state, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "run_at", false, 0, INT64_MAX, &run_at, e)) != CUEQ_OK ||
	    (rc = proto_bool(m, "duplicate", false, &r->duplicate, e)) != CUEQ_OK)
		return rc;
	r->run_at_ms = (int64_t)run_at;
	r->synced = synced;
	return CUEQ_OK;
}

int cueq_push_many(cueq_client *c, const cueq_job_spec *jobs, size_t n, cueq_push_result *out)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	const msgpack_object_array *res;
	const char *dur = NULL;
	size_t dur_n = 0, total = 0, refused = n;
	proto_error e = { 0 };
	int rc;
	char why[1024];

	if (c == NULL || jobs == NULL || out == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_push_many needs a client, jobs and results");
	if (n == 0 || n > CUEQ_MAX_BATCH)
		return sdk_fail(CUEQ_ERR_INVALID, "push %zu jobs at a time? use 1 to %u", n,
				CUEQ_MAX_BATCH);
	for (size_t i = 0; i < n; i++) {
		size_t bytes = 0;
		rc = sdk_check_job(jobs[i].queue, jobs[i].payload, jobs[i].payload_len, &jobs[i].opts,
				   &bytes);
		if (rc != CUEQ_OK) {
			if (n == 1)
				return rc;
			snprintf(why, sizeof(why), "%s", cueq_last_error());
			return sdk_fail(rc, "job %zu of %zu: %s", i, n, why);
		}
		total += bytes;
	}
	if (total > PROTO_MAX_FRAME - SDK_FRAME_MARGIN)
		return sdk_fail(CUEQ_ERR_TOO_LARGE,
				"these %zu jobs take about %zu bytes but one request holds at most %u "
				"(4 MiB): push them in smaller batches",
				n, total, PROTO_MAX_FRAME);
	if ((rc = sdk_request_begin(c, &rq, "push", 2)) != CUEQ_OK)
		return rc;
	proto_kv_uint(sdk_pk(&rq), "retry_ttl_ms", (uint64_t)retry_ttl(c));
	proto_key(sdk_pk(&rq), "jobs");
	msgpack_pack_array(sdk_pk(&rq), n);
	for (size_t i = 0; i < n; i++)
		pack_job(sdk_pk(&rq), &jobs[i]);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_get_results(rp.root, n, &res, &e)) != CUEQ_OK ||
	    (rc = proto_str(rp.root, "durability", false, 16, &dur, &dur_n, &e)) != CUEQ_OK) {
		rc = sdk_bad_reply("push", &e);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		bool synced = dur != NULL && dur_n == 6 && memcmp(dur, "synced", 6) == 0;
		if (read_result(&res->ptr[i], synced, &out[i], &e) != CUEQ_OK) {
			rc = sdk_bad_reply("push", &e);
			goto out;
		}
		if (out[i].err == CUEQ_OK && !out[i].recurring &&
		    (jobs[i].opts.every_ms > 0 || jobs[i].opts.cron != NULL))
			out[i].err = sdk_fail(CUEQ_ERR_PROTOCOL,
					      "the broker made one plain execution %s of a recurring "
					      "push: it knows no recurring cues (it is older than "
					      "this client); upgrade cueqd",
					      out[i].execution_id);
		if (out[i].err != CUEQ_OK && refused == n) {
			refused = i;
			snprintf(why, sizeof(why), "%s", cueq_last_error());
		}
	}
	if (refused < n) {
		if (n == 1)
			sdk_fail(out[refused].err, "%s", why);
		else
			sdk_fail(out[refused].err, "job %zu of %zu: %s", refused, n, why);
	}
out:
	sdk_reply_free(&rp);
	return rc;
}

int cueq_push(cueq_client *c, const char *queue, const void *payload, size_t len,
	      const cueq_push_opts *opts, cueq_push_result *out)
{
	cueq_job_spec j = { .queue = queue, .payload = payload, .payload_len = len };
	cueq_push_result r;
	int rc;

	if (opts != NULL)
		j.opts = *opts;
	rc = cueq_push_many(c, &j, 1, &r);
	if (rc != CUEQ_OK)
		return rc;
	if (out != NULL)
		*out = r; /* a refused job's result still names the holder */
	return r.err;	  /* a refused job: its sentence is the last error */
}
