/*
 * operate.c - the operator's calls: cancel, retry, purge, pause, resume.
 *
 * Each is one small request that changes state, so the broker remembers
 * its answer by request ID and the request engine's retries are safe.
 * retry of a whole queue and purge work through at most 1000 executions
 * per request and say `more` while some are left; the calls here send new
 * requests until it is false, counting as they go, so the caller sees one
 * call and one total.  An answer that did nothing ends it too: the dead
 * executions left are held back by unique keys that others hold now, and
 * asking again would loop forever.
 */
#include "sdk.h"

#include <string.h>

int cueq_cancel(cueq_client *c, const char *id, int *kind, int *state)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	proto_error e = { 0 };
	const char *k = NULL;
	size_t kn = 0;
	int rc, st = CUEQ_CANCELLED;

	if (c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_cancel needs a client");
	if ((rc = sdk_check_id("ID", id)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, "cancel", 1)) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "id", id);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_str(rp.root, "kind", true, 16, &k, &kn, &e) != CUEQ_OK ||
	    sdk_get_state(rp.root, "state", false, &st, &e) != CUEQ_OK) {
		rc = sdk_bad_reply("cancel", &e);
	} else if (!(kn == 9 && memcmp(k, "execution", 9) == 0) &&
		   !(kn == 3 && memcmp(k, "cue", 3) == 0)) {
		proto_fail(&e, CUEQ_ERR_BAD_REQUEST, "unknown kind '%.*s'", (int)kn, k);
		rc = sdk_bad_reply("cancel", &e);
	} else {
		if (kind != NULL)
			*kind = kn == 3 ? CUEQ_KIND_CUE : CUEQ_KIND_EXECUTION;
		if (state != NULL)
			*state = st;
	}
	sdk_reply_free(&rp);
	return rc;
}

/* One round of retry or purge: *done gets the count under key, *more the
 * reply's more. */
static int round_trip(cueq_client *c, struct sdk_request *rq, const char *key, uint64_t *done,
		      bool *more)
{
	struct sdk_reply rp;
	proto_error e = { 0 };
	int rc;

	*done = 0;
	*more = false;
	if ((rc = sdk_call(c, rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_uint(rp.root, key, false, 0, UINT64_MAX, done, &e) != CUEQ_OK ||
	    proto_bool(rp.root, "more", false, more, &e) != CUEQ_OK)
		rc = sdk_bad_reply(rq->op, &e);
	sdk_reply_free(&rp);
	return rc;
}

int cueq_retry(cueq_client *c, const char *execution_id)
{
	struct sdk_request rq;
	uint64_t n = 0;
	bool more;
	int rc;

	if (c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_retry needs a client");
	if ((rc = sdk_check_id("execution ID", execution_id)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, "retry", 1)) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "execution_id", execution_id);
	return round_trip(c, &rq, "retried", &n, &more);
}

/* Sends op for queue until the broker says no more, or did nothing (the
 * rest of a retry all is held back by unique keys others hold: PROTOCOL.md,
 * retry); *total counts. */
static int until_done(cueq_client *c, const char *op, const char *queue, int state,
		      const char *key, uint64_t *total)
{
	uint64_t sum = 0;
	int rc;

	for (;;) {
		struct sdk_request rq;
		uint64_t n = 0;
		bool more = false;

		if ((rc = sdk_request_begin(c, &rq, op, 2)) != CUEQ_OK)
			break;
		proto_kv_cstr(sdk_pk(&rq), "queue", queue);
		if (state >= 0)
			proto_kv_cstr(sdk_pk(&rq), "state", cueq_state_name(state));
		else
			proto_kv_bool(sdk_pk(&rq), "all", true);
		if ((rc = round_trip(c, &rq, key, &n, &more)) != CUEQ_OK)
			break;
		sum += n;
		if (!more || n == 0)
			break;
	}
	if (total != NULL)
		*total = sum;
	return rc;
}

int cueq_retry_all(cueq_client *c, const char *queue, uint64_t *retried)
{
	int rc;

	if (retried != NULL)
		*retried = 0;
	if (c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_retry_all needs a client");
	if ((rc = sdk_check_queue(queue)) != CUEQ_OK)
		return rc;
	return until_done(c, "retry", queue, -1, "retried", retried);
}

int cueq_purge(cueq_client *c, const char *queue, int state, uint64_t *purged)
{
	int rc;

	if (purged != NULL)
		*purged = 0;
	if (c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_purge needs a client");
	if ((rc = sdk_check_queue(queue)) != CUEQ_OK)
		return rc;
	if (state != CUEQ_DEAD && state != CUEQ_SUCCEEDED && state != CUEQ_CANCELLED)
		return sdk_fail(CUEQ_ERR_INVALID,
				"purge deletes finished executions: give CUEQ_DEAD, "
				"CUEQ_SUCCEEDED or CUEQ_CANCELLED, not %s",
				cueq_state_name(state) ? cueq_state_name(state) : "an unknown state");
	return until_done(c, "purge", queue, state, "purged", purged);
}

/* pause or resume: the reply says whether the queue is paused now. */
static int set_paused(cueq_client *c, const char *queue, bool pause)
{
	const char *op = pause ? "pause" : "resume";
	struct sdk_request rq;
	struct sdk_reply rp;
	proto_error e = { 0 };
	bool paused = pause;
	int rc;

	if (c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_%s needs a client", op);
	if ((rc = sdk_check_queue(queue)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, op, 1)) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "queue", queue);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_bool(rp.root, "paused", false, &paused, &e) != CUEQ_OK) {
		rc = sdk_bad_reply(op, &e);
	} else if (paused != pause) {
		proto_fail(&e, CUEQ_ERR_BAD_REQUEST, "it says the queue is %s",
			   paused ? "paused" : "not paused");
		rc = sdk_bad_reply(op, &e);
	}
	sdk_reply_free(&rp);
	return rc;
}

int cueq_pause(cueq_client *c, const char *queue)
{
	return set_paused(c, queue, true);
}

int cueq_resume(cueq_client *c, const char *queue)
{
	return set_paused(c, queue, false);
}
