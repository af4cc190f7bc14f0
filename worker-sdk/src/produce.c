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
	       (o->key_ttl_ms > 0) + (o->unique != NULL);
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
	if ((rc = sdk_get_id(m, "execution_id", true, r->execution_id, e)) != CUEQ_OK ||
	    (rc = sdk_get_id(m, "cue_id", false, r->cue_id, e)) != CUEQ_OK ||
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
