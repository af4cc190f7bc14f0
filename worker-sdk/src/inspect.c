/*
 * inspect.c - get, list and stats, and freeing what they return.
 *
 * The broker describes an execution the same way in get and list (list
 * leaves out payload and history; steps are read from get only), so one
 * reader fills a cueq_execution from either.  Every string is copied out
 * of the reply; what the reader half-filled before finding a flaw is freed
 * by the same function that frees a good one.  One get request reads an
 * execution or a recurring cue (the broker answers `execution` or `cue`;
 * cues.c reads a cue): cueq_get_any takes either, cueq_get and
 * cueq_get_cue want one kind and call the other NOT_FOUND.
 */
#include "job.h"

#include <stdlib.h>
#include <string.h>

static void execution_clear(cueq_execution *x)
{
	free(x->payload);
	free(x->result);
	free(x->error);
	for (size_t i = 0; i < x->history_len; i++) {
		free(x->history[i].event);
		free(x->history[i].lease_token);
		free(x->history[i].detail);
	}
	free(x->history);
	cueq_steps_free(x->steps, x->steps_len);
	free(x->unique);
	free(x->reason);
	free(x->group);
	memset(x, 0, sizeof(*x));
}

int sdk_get_u32(const msgpack_object *m, const char *key, uint32_t *out, proto_error *e)
{
	uint64_t v = 0;
	int rc = proto_uint(m, key, false, 0, UINT32_MAX, &v, e);
	if (rc == CUEQ_OK)
		*out = (uint32_t)v;
	return rc;
}

int sdk_get_ms(const msgpack_object *m, const char *key, int64_t *out, proto_error *e)
{
	uint64_t v = 0;
	int rc = proto_uint(m, key, false, 0, INT64_MAX, &v, e);
	if (rc == CUEQ_OK)
		*out = (int64_t)v;
	return rc;
}

static int read_event(const msgpack_object *m, cueq_event *ev, proto_error *e)
{
	int rc;

	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a history entry is not a map");
	if ((rc = sdk_get_ms(m, "at", &ev->at_ms, e)) != CUEQ_OK ||
	    (rc = sdk_get_u32(m, "attempt", &ev->attempt, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "event", 64, &ev->event, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "lease_token", 64, &ev->lease_token, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "detail", CUEQ_MAX_TEXT, &ev->detail, e)) != CUEQ_OK)
		return rc;
	if (ev->event == NULL)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a history entry has no 'event'");
	return CUEQ_OK;
}

static int read_history(const msgpack_object *m, cueq_execution *x, proto_error *e)
{
	const msgpack_object_array *arr = NULL;
	int rc = proto_array(m, "history", false, 0, SIZE_MAX, &arr, e);

	if (rc != CUEQ_OK || arr == NULL || arr->size == 0)
		return rc;
	if ((x->history = calloc(arr->size, sizeof(*x->history))) == NULL)
		return proto_fail(e, CUEQ_ERR_NOMEM, "out of memory copying a history");
	for (uint32_t i = 0; i < arr->size; i++) {
		x->history_len = i + 1; /* so a failure frees this entry too */
		if ((rc = read_event(&arr->ptr[i], &x->history[i], e)) != CUEQ_OK)
			return rc;
	}
	return CUEQ_OK;
}

/* Fills x from map m; payload, steps and history only when detail is set. */
/* The live lease's token as get and list show it: redacted, all but its
 * last four digits '*' (the full one is only in the claim's answer). */
static int redacted_token(const msgpack_object *m, char out[CUEQ_ID_SIZE], proto_error *e)
{
	const char *s = NULL;
	size_t n = 0;
	int rc = proto_str(m, "lease_token", false, CUEQ_ID_SIZE - 1, &s, &n, e);
	if (rc == CUEQ_OK && s != NULL) {
		memcpy(out, s, n);
		out[n] = '\0';
	}
	return rc;
}

static int read_execution(const msgpack_object *m, bool detail, cueq_execution *x, proto_error *e)
{
	const char *q = NULL, *payload = NULL;
	size_t qn = 0, len = 0;
	int64_t prio = 0;
	int rc;

	memset(x, 0, sizeof(*x));
	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "an execution is not a map");
	if ((rc = sdk_get_id(m, "execution_id", true, x->execution_id, e)) != CUEQ_OK ||
	    (rc = sdk_get_id(m, "cue_id", false, x->cue_id, e)) != CUEQ_OK ||
	    (rc = redacted_token(m, x->lease_token, e)) != CUEQ_OK ||
	    (rc = proto_str(m, "queue", true, PROTO_MAX_QUEUE, &q, &qn, e)) != CUEQ_OK ||
	    (rc = sdk_get_state(m, "state", true, &x->state, e)) != CUEQ_OK ||
	    (rc = proto_int(m, "priority", false, -PROTO_MAX_PRIORITY, PROTO_MAX_PRIORITY, &prio, e)) !=
		    CUEQ_OK ||
	    (rc = sdk_get_u32(m, "attempt", &x->attempt, e)) != CUEQ_OK ||
	    (rc = sdk_get_u32(m, "max_attempts", &x->max_attempts, e)) != CUEQ_OK ||
	    (rc = sdk_get_u32(m, "expiries", &x->expiries, e)) != CUEQ_OK ||
	    (rc = sdk_get_u32(m, "max_expiries", &x->max_expiries, e)) != CUEQ_OK ||
	    (rc = sdk_get_u32(m, "failures", &x->failures, e)) != CUEQ_OK ||
	    (rc = sdk_get_ms(m, "lease_ms", &x->lease_ms, e)) != CUEQ_OK ||
	    (rc = sdk_get_ms(m, "created_at", &x->created_at_ms, e)) != CUEQ_OK ||
	    (rc = sdk_get_ms(m, "run_at", &x->run_at_ms, e)) != CUEQ_OK ||
	    (rc = sdk_get_ms(m, "lease_deadline", &x->lease_deadline_ms, e)) != CUEQ_OK ||
	    (rc = sdk_get_ms(m, "finished_at", &x->finished_at_ms, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "result", CUEQ_MAX_TEXT, &x->result, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "error", CUEQ_MAX_TEXT, &x->error, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "unique", CUEQ_MAX_KEY, &x->unique, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "reason", CUEQ_MAX_TEXT, &x->reason, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "group", CUEQ_GROUP_SIZE - 1, &x->group, e)) != CUEQ_OK)
		return rc;
	memcpy(x->queue, q, qn);
	x->queue[qn] = '\0';
	x->priority = (int32_t)prio;
	if (!detail)
		return CUEQ_OK;
	if ((rc = proto_bytes(m, "payload", false, CUEQ_MAX_PAYLOAD, &payload, &len, e)) != CUEQ_OK)
		return rc;
	if ((x->payload = malloc(len + 1)) == NULL)
		return proto_fail(e, CUEQ_ERR_NOMEM, "out of memory copying a payload");
	if (len > 0)
		memcpy(x->payload, payload, len);
	((char *)x->payload)[len] = '\0';
	x->payload_len = len;
	if ((rc = sdk_get_steps(m, "steps", &x->steps, &x->steps_len, e)) != CUEQ_OK)
		return rc;
	return read_history(m, x, e);
}

static int reply_flaw(const char *op, const proto_error *e)
{
	if (e->code == CUEQ_ERR_NOMEM)
		return sdk_fail(CUEQ_ERR_NOMEM, "%s", e->msg);
	return sdk_bad_reply(op, e);
}

/* Reads the `execution` of a get reply into a new *out. */
static int get_execution(const msgpack_object *m, cueq_execution **out)
{
	proto_error e = { 0 };
	cueq_execution *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory");
	if (read_execution(m, true, x, &e) != CUEQ_OK) {
		cueq_execution_free(x);
		return reply_flaw("get", &e);
	}
	*out = x;
	return CUEQ_OK;
}

/* Reads the `cue` of a get reply into a new *out. */
static int get_cue(const msgpack_object *m, cueq_cue **out)
{
	proto_error e = { 0 };
	cueq_cue *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory");
	if (sdk_read_cue(m, true, x, &e) != CUEQ_OK) {
		cueq_cue_free(x);
		return reply_flaw("get", &e);
	}
	*out = x;
	return CUEQ_OK;
}

int cueq_get_any(cueq_client *c, const char *id, cueq_execution **exe, cueq_cue **cue)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	const msgpack_object *m;
	proto_error e = { 0 };
	int rc;

	if (c == NULL || exe == NULL || cue == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_get_any needs a client and somewhere to put "
						  "an execution and a cue");
	*exe = NULL;
	*cue = NULL;
	if ((rc = sdk_check_id("ID", id)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, "get", 1)) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "execution_id", id);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if ((m = proto_get(rp.root, "execution")) != NULL) {
		rc = get_execution(m, exe);
	} else if ((m = proto_get(rp.root, "cue")) != NULL) {
		rc = get_cue(m, cue);
	} else {
		proto_fail(&e, CUEQ_ERR_BAD_REQUEST, "it has neither 'execution' nor 'cue'");
		rc = reply_flaw("get", &e);
	}
	sdk_reply_free(&rp);
	return rc;
}

int cueq_get(cueq_client *c, const char *id, cueq_execution **out)
{
	cueq_cue *cue = NULL;
	int rc;

	if (c == NULL || out == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_get needs a client and somewhere to put it");
	if ((rc = sdk_check_id("execution ID", id)) != CUEQ_OK) {
		*out = NULL;
		return rc;
	}
	if ((rc = cueq_get_any(c, id, out, &cue)) != CUEQ_OK || cue == NULL)
		return rc;
	cueq_cue_free(cue);
	return sdk_fail(CUEQ_ERR_NOT_FOUND,
			"%s is a recurring cue, not an execution: read it with cueq_get_cue", id);
}

/* One wait request of up to wait_ms: *finished says whether the
 * execution in *out has its outcome. */
static int wait_once(cueq_client *c, const char *id, int64_t wait_ms, cueq_execution **out,
		     bool *finished)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	const msgpack_object *m;
	proto_error e = { 0 };
	int rc;

	if ((rc = sdk_request_begin(c, &rq, "wait", 1 + (wait_ms > 0))) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "execution_id", id);
	if (wait_ms > 0)
		proto_kv_uint(sdk_pk(&rq), "wait_ms", (uint64_t)wait_ms);
	if ((rc = sdk_call(c, &rq, wait_ms, 0, &rp)) != CUEQ_OK)
		return rc;
	cueq_execution *x = calloc(1, sizeof(*x));
	if (x == NULL) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory");
	} else if ((m = proto_get(rp.root, "execution")) == NULL ||
		   proto_bool(rp.root, "finished", true, finished, &e) != CUEQ_OK ||
		   read_execution(m, false, x, &e) != CUEQ_OK) {
		if (e.code == CUEQ_OK)
			proto_fail(&e, CUEQ_ERR_BAD_REQUEST, "it has no 'execution'");
		rc = reply_flaw("wait", &e);
	} else {
		*out = x;
		x = NULL;
	}
	cueq_execution_free(x);
	sdk_reply_free(&rp);
	return rc;
}

int cueq_wait(cueq_client *c, const char *id, int64_t timeout_ms, cueq_execution **out)
{
	int rc;

	if (c == NULL || out == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_wait needs a client and somewhere to put the execution");
	*out = NULL;
	if (timeout_ms < -1)
		return sdk_fail(CUEQ_ERR_INVALID, "a timeout of %lld ms: give 0 or more, or -1 to wait for as long as it takes",
				(long long)timeout_ms);
	if ((rc = sdk_check_id("execution ID", id)) != CUEQ_OK)
		return rc;
	int64_t end = timeout_ms < 0 ? INT64_MAX : proto_mono_ms() + timeout_ms;
	for (;;) {
		int64_t left = end == INT64_MAX ? PROTO_MAX_WAIT_MS : end - proto_mono_ms();
		bool finished = false;
		cueq_execution *x = NULL;
		if (left < 0)
			left = 0;
		if ((rc = wait_once(c, id, left > PROTO_MAX_WAIT_MS ? PROTO_MAX_WAIT_MS : left, &x,
				    &finished)) != CUEQ_OK)
			return rc;
		if (finished) {
			*out = x;
			return CUEQ_OK;
		}
		if (proto_mono_ms() >= end) {
			*out = x;
			return sdk_fail(CUEQ_ERR_TIMEOUT, "execution %s had no outcome within %lld ms (it is %s)",
					id, (long long)timeout_ms, cueq_state_name(x->state));
		}
		cueq_execution_free(x); /* a long wait: ask again */
	}
}

int cueq_get_cue(cueq_client *c, const char *id, cueq_cue **out)
{
	cueq_execution *x = NULL;
	int rc;

	if (c == NULL || out == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_get_cue needs a client and somewhere to put it");
	if ((rc = sdk_check_id("cue ID", id)) != CUEQ_OK) {
		*out = NULL;
		return rc;
	}
	if ((rc = cueq_get_any(c, id, &x, out)) != CUEQ_OK || x == NULL)
		return rc;
	cueq_execution_free(x);
	return sdk_fail(CUEQ_ERR_NOT_FOUND,
			"%s is an execution, not a recurring cue: read it with cueq_get", id);
}

void cueq_execution_free(cueq_execution *x)
{
	if (x == NULL)
		return;
	execution_clear(x);
	free(x);
}

int cueq_list(cueq_client *c, const char *queue, int state, size_t limit, const char *after,
	      cueq_execution **out, size_t *n)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	const msgpack_object_array *arr;
	proto_error e = { 0 };
	cueq_execution *list = NULL;
	size_t got = 0;
	int rc;

	if (c == NULL || out == NULL || n == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_list needs a client, a list and a count");
	*out = NULL;
	*n = 0;
	if ((rc = sdk_check_queue(queue)) != CUEQ_OK)
		return rc;
	if (state != -1 && cueq_state_name(state) == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "state %d is not a state", state);
	if (limit > CUEQ_MAX_BATCH)
		return sdk_fail(CUEQ_ERR_INVALID, "list at most %u executions at a time, not %zu",
				CUEQ_MAX_BATCH, limit);
	if (after != NULL && (rc = sdk_check_id("execution ID to list after", after)) != CUEQ_OK)
		return rc;
	rc = sdk_request_begin(c, &rq, "list", 1 + (state != -1) + (limit > 0) + (after != NULL));
	if (rc != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "queue", queue);
	if (state != -1)
		proto_kv_cstr(sdk_pk(&rq), "state", cueq_state_name(state));
	if (limit > 0)
		proto_kv_uint(sdk_pk(&rq), "limit", limit);
	if (after != NULL)
		proto_kv_cstr(sdk_pk(&rq), "after", after);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_array(rp.root, "executions", true, 0, limit > 0 ? limit : CUEQ_MAX_BATCH, &arr,
			&e) != CUEQ_OK) {
		rc = reply_flaw("list", &e);
		goto out;
	}
	if (arr->size > 0 && (list = calloc(arr->size, sizeof(*list))) == NULL) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (got = 0; got < arr->size; got++) {
		if (read_execution(&arr->ptr[got], false, &list[got], &e) != CUEQ_OK) {
			rc = reply_flaw("list", &e);
			cueq_list_free(list, got + 1);
			list = NULL;
			got = 0;
			goto out;
		}
	}
	*out = list;
	*n = got;
out:
	sdk_reply_free(&rp);
	return rc;
}

void cueq_list_free(cueq_execution *list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		execution_clear(&list[i]);
	free(list);
}

static int read_stats(const msgpack_object *m, cueq_queue_stats *s, proto_error *e)
{
	const char *q = NULL;
	size_t qn = 0;
	int rc;

	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a queue's stats are not a map");
	if ((rc = proto_str(m, "queue", true, PROTO_MAX_QUEUE, &q, &qn, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "scheduled", false, 0, UINT64_MAX, &s->scheduled, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "ready", false, 0, UINT64_MAX, &s->ready, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "leased", false, 0, UINT64_MAX, &s->leased, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "succeeded", false, 0, UINT64_MAX, &s->succeeded, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "dead", false, 0, UINT64_MAX, &s->dead, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "cancelled", false, 0, UINT64_MAX, &s->cancelled, e)) != CUEQ_OK ||
	    (rc = proto_bool(m, "paused", false, &s->paused, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "cues", false, 0, UINT64_MAX, &s->cues, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "deliveries", false, 0, UINT64_MAX, &s->deliveries, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "expiries", false, 0, UINT64_MAX, &s->expiries, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "failures", false, 0, UINT64_MAX, &s->failures, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "releases", false, 0, UINT64_MAX, &s->releases, e)) != CUEQ_OK)
		return rc;
	memcpy(s->queue, q, qn);
	s->queue[qn] = '\0';
	return CUEQ_OK;
}

/* One page of stats from position from: appended to *st (*n of *cap);
 * *next gets where the next page starts (0 at the end). */
static int stats_page(cueq_client *c, const char *queue, uint64_t from, cueq_queue_stats **st,
		      size_t *n, size_t *cap, uint64_t *next)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	const msgpack_object_array *arr;
	proto_error e = { 0 };
	int rc;

	*next = 0;
	if ((rc = sdk_request_begin(c, &rq, "stats", (queue != NULL) + (from != 0))) != CUEQ_OK)
		return rc;
	if (queue != NULL)
		proto_kv_cstr(sdk_pk(&rq), "queue", queue);
	if (from != 0)
		proto_kv_uint(sdk_pk(&rq), "from", from);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_array(rp.root, "queues", true, 0, SIZE_MAX, &arr, &e) != CUEQ_OK ||
	    proto_uint(rp.root, "next", false, 1, UINT64_MAX, next, &e) != CUEQ_OK) {
		rc = reply_flaw("stats", &e);
		goto out;
	}
	if (*n + arr->size > *cap) {
		size_t want = *cap ? *cap : 16;
		while (want < *n + arr->size)
			want *= 2;
		cueq_queue_stats *grown = realloc(*st, want * sizeof(**st));
		if (grown == NULL) {
			rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory");
			goto out;
		}
		*st = grown;
		*cap = want;
	}
	for (uint32_t i = 0; i < arr->size; i++) {
		memset(&(*st)[*n], 0, sizeof(**st));
		if (read_stats(&arr->ptr[i], &(*st)[*n], &e) != CUEQ_OK) {
			rc = reply_flaw("stats", &e);
			goto out;
		}
		(*n)++;
	}
out:
	sdk_reply_free(&rp);
	return rc;
}

void cueq_stats_free(cueq_queue_stats *stats, size_t n)
{
	(void)n; /* one allocation: n is for symmetry with the other lists */
	free(stats);
}

int cueq_stats(cueq_client *c, const char *queue, cueq_queue_stats **out, size_t *n)
{
	cueq_queue_stats *st = NULL;
	size_t got = 0, cap = 0;
	uint64_t from = 0, next = 0;
	int rc;

	if (c == NULL || out == NULL || n == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_stats needs a client, a list and a count");
	*out = NULL;
	*n = 0;
	if (queue != NULL && (rc = sdk_check_queue(queue)) != CUEQ_OK)
		return rc;
	/* the broker answers in pages of 1000 queues: ask until the last */
	for (;;) {
		if ((rc = stats_page(c, queue, from, &st, &got, &cap, &next)) != CUEQ_OK) {
			free(st);
			return rc;
		}
		if (next == 0 || next <= from || queue != NULL) /* the end, or a broker going back */
			break;
		from = next;
	}
	if (st == NULL && (st = calloc(1, sizeof(*st))) == NULL)
		return sdk_fail(CUEQ_ERR_NOMEM, "out of memory");
	*out = st;
	*n = got;
	return CUEQ_OK;
}
