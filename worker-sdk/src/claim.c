/*
 * claim.c - claiming executions under a lease, and the job accessors.
 *
 * A claim is a long poll: the broker holds it up to wait_ms, so the request
 * engine gives each attempt wait_ms beyond the usual timeout.  Each claimed
 * execution is copied out of the reply into its own cueq_job.  If the reply
 * is malformed the jobs in it are dropped; their leases expire and the
 * broker hands them out again, which is what at-least-once allows.  Each
 * job remembers the client it came through, so step calls made from a
 * handler (job_steps.c) need nothing but the job.
 */
#include "job.h"

#include <stdlib.h>
#include <string.h>

static cueq_job *job_alloc(size_t payload_len)
{
	cueq_job *j = calloc(1, sizeof(*j) + payload_len + 1);
	if (j == NULL)
		return NULL;
	j->payload = (char *)(j + 1);
	j->payload_len = payload_len;
	j->retry_in_ms = -1;
	atomic_init(&j->lease_deadline, 0);
	atomic_init(&j->lease_lost, false);
	atomic_init(&j->cancelled, false);
	return j;
}

static int read_job(cueq_client *c, const msgpack_object *m, const char *queue, cueq_job **out,
		    proto_error *e)
{
	const char *payload = NULL, *q = NULL;
	size_t len = 0, qn = 0;
	uint64_t attempt = 0, deadline = 0, lease = 0;
	cueq_job *j;
	int rc;

	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a job is not a map");
	if ((rc = proto_bytes(m, "payload", false, CUEQ_MAX_PAYLOAD, &payload, &len, e)) != CUEQ_OK ||
	    (rc = proto_str(m, "queue", false, PROTO_MAX_QUEUE, &q, &qn, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "attempt", true, 1, UINT32_MAX, &attempt, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "lease_deadline", true, 0, INT64_MAX, &deadline, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "lease_ms", false, PROTO_MIN_LEASE_MS, PROTO_MAX_LEASE_MS, &lease,
			     e)) != CUEQ_OK)
		return rc;
	if (q != NULL && !proto_queue_ok(q, qn))
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a job's queue name is invalid");
	if ((j = job_alloc(len)) == NULL)
		return proto_fail(e, CUEQ_ERR_NOMEM, "out of memory copying a claimed job");
	if ((rc = sdk_get_id(m, "execution_id", true, j->id, e)) != CUEQ_OK ||
	    (rc = sdk_get_id(m, "cue_id", false, j->cue_id, e)) != CUEQ_OK ||
	    (rc = sdk_get_id(m, "lease_token", true, j->token, e)) != CUEQ_OK) {
		free(j);
		return rc;
	}
	if (len > 0)
		memcpy(j->payload, payload, len);
	if (q != NULL) {
		memcpy(j->queue, q, qn);
		j->queue[qn] = '\0';
	} else {
		strcpy(j->queue, queue);
	}
	j->c = c;
	j->attempt = (uint32_t)attempt;
	atomic_store(&j->lease_deadline, (int64_t)deadline);
	j->lease_ms = (int64_t)lease;
	*out = j;
	return CUEQ_OK;
}

int sdk_claim(cueq_client *c, const char *queue, size_t max, int64_t lease_ms, int64_t wait_ms,
	      struct sdk_cut *cut, cueq_job **jobs, size_t *n)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	const msgpack_object_array *arr;
	proto_error e = { 0 };
	size_t got = 0;
	int rc;

	if (c == NULL || jobs == NULL || n == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_claim needs a client, a jobs array and a count");
	*n = 0;
	if ((rc = sdk_check_queue(queue)) != CUEQ_OK ||
	    (rc = sdk_check_lease("lease", lease_ms, true)) != CUEQ_OK)
		return rc;
	if (max == 0 || max > CUEQ_MAX_CLAIM)
		return sdk_fail(CUEQ_ERR_INVALID, "claim %zu at a time? use 1 to %u", max,
				CUEQ_MAX_CLAIM);
	if (wait_ms < 0 || wait_ms > PROTO_MAX_WAIT_MS)
		return sdk_fail(CUEQ_ERR_INVALID, "a wait of %lld ms is out of range: use 0 to %d ms",
				(long long)wait_ms, PROTO_MAX_WAIT_MS);
	if ((rc = sdk_request_begin(c, &rq, "claim",
				    3 + (lease_ms > 0) + (wait_ms > 0) + c->detach_claims)) != CUEQ_OK)
		return rc;
	if (c->detach_claims)
		proto_kv_bool(sdk_pk(&rq), "detach", true);
	proto_kv_cstr(sdk_pk(&rq), "queue", queue);
	proto_kv_uint(sdk_pk(&rq), "max", max);
	proto_kv_cstr(sdk_pk(&rq), "worker", c->worker_name);
	if (lease_ms > 0)
		proto_kv_uint(sdk_pk(&rq), "lease_ms", (uint64_t)lease_ms);
	if (wait_ms > 0)
		proto_kv_uint(sdk_pk(&rq), "wait_ms", (uint64_t)wait_ms);
	rq.cut = cut;
	if ((rc = sdk_call(c, &rq, wait_ms, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_array(rp.root, "jobs", true, 0, max, &arr, &e) != CUEQ_OK) {
		rc = sdk_bad_reply("claim", &e);
		goto out;
	}
	for (got = 0; got < arr->size; got++) {
		if ((rc = read_job(c, &arr->ptr[got], queue, &jobs[got], &e)) != CUEQ_OK) {
			rc = rc == CUEQ_ERR_NOMEM ? sdk_fail(rc, "%s", e.msg) : sdk_bad_reply("claim", &e);
			while (got > 0)
				cueq_job_free(jobs[--got]);
			goto out;
		}
	}
	*n = got;
	if (got == 0)
		rc = sdk_fail(CUEQ_ERR_EMPTY, "nothing was ready in queue '%s' within %lld ms", queue,
			      (long long)wait_ms);
out:
	sdk_reply_free(&rp);
	return rc;
}

int cueq_claim(cueq_client *c, const char *queue, size_t max, int64_t lease_ms, int64_t wait_ms,
	       cueq_job **jobs, size_t *n)
{
	return sdk_claim(c, queue, max, lease_ms, wait_ms, NULL, jobs, n);
}

const char *cueq_job_id(const cueq_job *j)
{
	return j->id;
}

const char *cueq_job_cue_id(const cueq_job *j)
{
	return j->cue_id;
}

const char *cueq_job_queue(const cueq_job *j)
{
	return j->queue;
}

const char *cueq_job_token(const cueq_job *j)
{
	return j->token;
}

uint32_t cueq_job_attempt(const cueq_job *j)
{
	return j->attempt;
}

const void *cueq_job_payload(const cueq_job *j, size_t *len)
{
	if (len != NULL)
		*len = j->payload_len;
	return j->payload;
}

int64_t cueq_job_lease_deadline(const cueq_job *j)
{
	return atomic_load(&((cueq_job *)j)->lease_deadline);
}

bool cueq_job_lease_lost(const cueq_job *j)
{
	return atomic_load(&((cueq_job *)j)->lease_lost);
}

bool cueq_job_cancelled(const cueq_job *j)
{
	return atomic_load(&((cueq_job *)j)->cancelled);
}

void cueq_job_free(cueq_job *j)
{
	if (j == NULL)
		return;
	free(j->result);
	free(j->error);
	free(j);
}

/* A copy of s cut to CUEQ_MAX_TEXT bytes, not inside a UTF-8 sequence. */
static char *text_copy(const char *s)
{
	size_t n;
	char *d;

	if (s == NULL)
		return NULL;
	n = strlen(s);
	if (n > CUEQ_MAX_TEXT) {
		n = CUEQ_MAX_TEXT;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	if ((d = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

void cueq_job_set_result(cueq_job *j, const char *result)
{
	if (j == NULL)
		return;
	free(j->result);
	j->result = text_copy(result);
}

void cueq_job_fail(cueq_job *j, const char *error, int64_t retry_in_ms, bool terminal)
{
	if (j == NULL)
		return;
	free(j->error);
	j->error = text_copy(error);
	j->retry_in_ms = retry_in_ms < 0 ? -1 : retry_in_ms;
	j->terminal = terminal;
}
