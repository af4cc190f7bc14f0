/*
 * cues.c - recurring cues: the names of their options, the reader of a cue
 * map (get and cues share it), and cueq_cues.
 *
 * A cue is pushed like a job (produce.c packs every_ms, cron, tz, catch_up
 * and overlap); what the broker says back about it is read here.  As with
 * executions, every string is copied out of the reply, and what the reader
 * half-filled before it found a flaw is freed by the function that frees a
 * good one.  A fire whose execution the retention window deleted has the
 * state `gone`, which is no execution state: it reads as -1.
 */
#include "sdk.h"

#include <stdlib.h>
#include <string.h>

static const char *const cue_states[] = { "active", "cancelled" };
static const char *const catch_ups[] = { "one", "all", "none" };
static const char *const overlaps[] = { "allow", "skip" };
#define COUNT(a) (int)(sizeof(a) / sizeof(a[0]))

static const char *name_of(const char *const *names, int n, int v)
{
	return v >= 0 && v < n ? names[v] : NULL;
}

static int parse_name(const char *const *names, int n, const char *s, size_t len)
{
	for (int i = 0; i < n; i++)
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return i;
	return -1;
}

const char *cueq_cue_state_name(int state)
{
	return name_of(cue_states, COUNT(cue_states), state);
}

const char *cueq_catch_up_name(int catch_up)
{
	return name_of(catch_ups, COUNT(catch_ups), catch_up);
}

int cueq_catch_up_parse(const char *name)
{
	return name ? parse_name(catch_ups, COUNT(catch_ups), name, strlen(name)) : -1;
}

const char *cueq_overlap_name(int overlap)
{
	return name_of(overlaps, COUNT(overlaps), overlap);
}

int cueq_overlap_parse(const char *name)
{
	return name ? parse_name(overlaps, COUNT(overlaps), name, strlen(name)) : -1;
}

/* The str field key, one of names[n], into *out; def when absent. */
static int get_enum(const msgpack_object *m, const char *key, const char *const *names, int n,
		    int def, int *out, proto_error *e)
{
	const char *s = NULL;
	size_t len = 0;
	int rc = proto_str(m, key, false, 32, &s, &len, e);

	if (rc != CUEQ_OK)
		return rc;
	*out = def;
	if (s == NULL)
		return CUEQ_OK;
	if ((*out = parse_name(names, n, s, len)) < 0)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' holds unknown value '%.*s'",
				  key, (int)len, s);
	return CUEQ_OK;
}

/* next_fires: Unix ms times; the first CUEQ_NEXT_FIRES are kept. */
static int read_next_fires(const msgpack_object *m, cueq_cue *x, proto_error *e)
{
	const msgpack_object_array *arr = NULL;
	int rc = proto_array(m, "next_fires", false, 0, SIZE_MAX, &arr, e);

	if (rc != CUEQ_OK || arr == NULL)
		return rc;
	for (uint32_t i = 0; i < arr->size && i < CUEQ_NEXT_FIRES; i++) {
		const msgpack_object *v = &arr->ptr[i];
		if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > INT64_MAX)
			return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a next fire time is not a time");
		x->next_fires_ms[x->n_next_fires++] = (int64_t)v->via.u64;
	}
	return CUEQ_OK;
}

static int read_fire(const msgpack_object *m, cueq_cue_fire *f, proto_error *e)
{
	const char *s = NULL;
	size_t n = 0;
	int rc;

	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a fire of a cue is not a map");
	f->state = -1;
	if ((rc = sdk_get_id(m, "execution_id", true, f->execution_id, e)) != CUEQ_OK ||
	    (rc = sdk_get_ms(m, "fire_at", &f->fire_at_ms, e)) != CUEQ_OK ||
	    (rc = proto_str(m, "state", false, 16, &s, &n, e)) != CUEQ_OK)
		return rc;
	if (s == NULL || (n == 4 && memcmp(s, "gone", 4) == 0))
		return CUEQ_OK;
	return sdk_get_state(m, "state", false, &f->state, e);
}

static int read_fires(const msgpack_object *m, cueq_cue *x, proto_error *e)
{
	const msgpack_object_array *arr = NULL;
	int rc = proto_array(m, "executions", false, 0, SIZE_MAX, &arr, e);

	if (rc != CUEQ_OK || arr == NULL || arr->size == 0)
		return rc;
	if ((x->executions = calloc(arr->size, sizeof(*x->executions))) == NULL)
		return proto_fail(e, CUEQ_ERR_NOMEM, "out of memory copying a cue's fires");
	x->executions_len = arr->size;
	for (uint32_t i = 0; i < arr->size; i++)
		if ((rc = read_fire(&arr->ptr[i], &x->executions[i], e)) != CUEQ_OK)
			return rc;
	return CUEQ_OK;
}

int sdk_read_cue(const msgpack_object *m, bool detail, cueq_cue *x, proto_error *e)
{
	const char *q = NULL, *payload = NULL;
	size_t qn = 0, len = 0;
	int64_t prio = 0;
	int rc;

	memset(x, 0, sizeof(*x));
	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a cue is not a map");
	if ((rc = sdk_get_id(m, "cue_id", true, x->cue_id, e)) != CUEQ_OK ||
	    (rc = proto_str(m, "queue", true, PROTO_MAX_QUEUE, &q, &qn, e)) != CUEQ_OK ||
	    (rc = get_enum(m, "state", cue_states, COUNT(cue_states), CUEQ_CUE_ACTIVE, &x->state,
			   e)) != CUEQ_OK ||
	    (rc = sdk_get_ms(m, "every_ms", &x->every_ms, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "cron", SDK_MAX_CRON, &x->cron, e)) != CUEQ_OK ||
	    (rc = sdk_get_text(m, "tz", SDK_MAX_TZ, &x->tz, e)) != CUEQ_OK ||
	    (rc = get_enum(m, "catch_up", catch_ups, COUNT(catch_ups), CUEQ_CATCH_UP_ONE,
			   &x->catch_up, e)) != CUEQ_OK ||
	    (rc = get_enum(m, "overlap", overlaps, COUNT(overlaps), CUEQ_OVERLAP_ALLOW, &x->overlap,
			   e)) != CUEQ_OK ||
	    (rc = proto_int(m, "priority", false, -PROTO_MAX_PRIORITY, PROTO_MAX_PRIORITY, &prio, e)) !=
		    CUEQ_OK ||
	    (rc = sdk_get_u32(m, "max_attempts", &x->max_attempts, e)) != CUEQ_OK ||
	    (rc = sdk_get_u32(m, "max_expiries", &x->max_expiries, e)) != CUEQ_OK ||
	    (rc = sdk_get_ms(m, "lease_ms", &x->lease_ms, e)) != CUEQ_OK ||
	    (rc = sdk_get_ms(m, "created_at", &x->created_at_ms, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "fires", false, 0, UINT64_MAX, &x->fires, e)) != CUEQ_OK ||
	    (rc = proto_uint(m, "skipped", false, 0, UINT64_MAX, &x->skipped, e)) != CUEQ_OK ||
	    (rc = read_next_fires(m, x, e)) != CUEQ_OK)
		return rc;
	memcpy(x->queue, q, qn);
	x->queue[qn] = '\0';
	x->priority = (int32_t)prio;
	if (!detail)
		return read_fires(m, x, e); /* cues gives the newest */
	if ((rc = proto_bytes(m, "payload", false, CUEQ_MAX_PAYLOAD, &payload, &len, e)) != CUEQ_OK)
		return rc;
	if ((x->payload = malloc(len + 1)) == NULL)
		return proto_fail(e, CUEQ_ERR_NOMEM, "out of memory copying a payload");
	if (len > 0)
		memcpy(x->payload, payload, len);
	((char *)x->payload)[len] = '\0';
	x->payload_len = len;
	return read_fires(m, x, e);
}

void sdk_cue_clear(cueq_cue *x)
{
	free(x->cron);
	free(x->tz);
	free(x->payload);
	free(x->executions);
	memset(x, 0, sizeof(*x));
}

void cueq_cue_free(cueq_cue *x)
{
	if (x == NULL)
		return;
	sdk_cue_clear(x);
	free(x);
}

void cueq_cues_free(cueq_cue *list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		sdk_cue_clear(&list[i]);
	free(list);
}

int cueq_cues(cueq_client *c, const char *queue, cueq_cue **out, size_t *n)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	const msgpack_object_array *arr;
	proto_error e = { 0 };
	cueq_cue *list = NULL;
	int rc;

	if (c == NULL || out == NULL || n == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_cues needs a client, a list and a count");
	*out = NULL;
	*n = 0;
	if ((rc = sdk_check_queue(queue)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, "cues", 1)) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "queue", queue);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_array(rp.root, "cues", true, 0, CUEQ_MAX_BATCH, &arr, &e) != CUEQ_OK) {
		rc = sdk_bad_reply("cues", &e);
		goto out;
	}
	if (arr->size > 0 && (list = calloc(arr->size, sizeof(*list))) == NULL) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < arr->size; i++) {
		if (sdk_read_cue(&arr->ptr[i], false, &list[i], &e) != CUEQ_OK) {
			rc = e.code == CUEQ_ERR_NOMEM ? sdk_fail(CUEQ_ERR_NOMEM, "%s", e.msg)
						      : sdk_bad_reply("cues", &e);
			cueq_cues_free(list, i + 1);
			goto out;
		}
	}
	*out = list;
	*n = arr->size;
out:
	sdk_reply_free(&rp);
	return rc;
}
