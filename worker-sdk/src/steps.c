/*
 * steps.c - the step ledger: step_set, step_get, steps, and the reader of
 * step lists that cueq_get shares.
 *
 * A step is a small named value in an execution's ledger, written by the
 * worker under its live lease token and kept across redeliveries.  Names
 * and values are checked here before anything is sent (the broker refuses
 * the same), so a mistake says which limit it broke.  Reads need no token.
 * A step_set whose answer was lost is resent with the same request ID and
 * bytes; writing the same value again under the same token changes only its
 * time, so a repeat is harmless even if the broker no longer remembers the
 * request.  Every value is copied out of the reply with a NUL
 * after it, so text values can be used as C strings.
 */
#include "sdk.h"

#include <stdlib.h>
#include <string.h>

/* A malloc'd copy of n bytes at s with a NUL after them. */
static char *copy_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d == NULL)
		return NULL;
	if (n > 0)
		memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static int read_step(const msgpack_object *m, cueq_step *st, proto_error *e)
{
	const char *name = NULL, *value = NULL;
	size_t name_n = 0, value_n = 0;
	uint64_t at = 0;
	int rc;

	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a step is not a map");
	if ((rc = proto_str(m, "name", true, CUEQ_MAX_STEP_NAME, &name, &name_n, e)) != CUEQ_OK ||
	    (rc = proto_bytes(m, "value", true, CUEQ_MAX_STEP_VALUE, &value, &value_n, e)) !=
		    CUEQ_OK ||
	    (rc = proto_uint(m, "at", false, 0, INT64_MAX, &at, e)) != CUEQ_OK)
		return rc;
	if ((st->name = copy_bytes(name, name_n)) == NULL ||
	    (st->value = copy_bytes(value, value_n)) == NULL)
		return proto_fail(e, CUEQ_ERR_NOMEM, "out of memory copying a step");
	st->value_len = value_n;
	st->at_ms = (int64_t)at;
	return CUEQ_OK;
}

int sdk_get_steps(const msgpack_object *m, const char *key, cueq_step **out, size_t *n,
		  proto_error *e)
{
	const msgpack_object_array *arr = NULL;
	cueq_step *steps;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = proto_array(m, key, false, 0, SIZE_MAX, &arr, e)) != CUEQ_OK || arr == NULL ||
	    arr->size == 0)
		return rc;
	if ((steps = calloc(arr->size, sizeof(*steps))) == NULL)
		return proto_fail(e, CUEQ_ERR_NOMEM, "out of memory copying steps");
	for (uint32_t i = 0; i < arr->size; i++) {
		if ((rc = read_step(&arr->ptr[i], &steps[i], e)) != CUEQ_OK) {
			cueq_steps_free(steps, i + 1);
			return rc;
		}
	}
	*out = steps;
	*n = arr->size;
	return CUEQ_OK;
}

void cueq_value_free(void *value)
{
	free(value);
}

void cueq_steps_free(cueq_step *steps, size_t n)
{
	if (steps == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(steps[i].name);
		free(steps[i].value);
	}
	free(steps);
}

/* A reply that did not make sense, or no memory to copy it. */
static int reply_flaw(const char *op, const proto_error *e)
{
	if (e->code == CUEQ_ERR_NOMEM)
		return sdk_fail(CUEQ_ERR_NOMEM, "%s", e->msg);
	return sdk_bad_reply(op, e);
}

int cueq_step_set(cueq_client *c, const char *id, const char *token, const char *name,
		  const void *value, size_t len)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	int rc;

	if (c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_step_set needs a client");
	if ((rc = sdk_check_id("execution ID", id)) != CUEQ_OK ||
	    (rc = sdk_check_id("lease token", token)) != CUEQ_OK ||
	    (rc = sdk_check_step_name(name)) != CUEQ_OK ||
	    (rc = sdk_check_step_value(value, len)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, "step_set", 4)) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "execution_id", id);
	proto_kv_cstr(sdk_pk(&rq), "lease_token", token);
	proto_kv_cstr(sdk_pk(&rq), "name", name);
	proto_kv_bin(sdk_pk(&rq), "value", len > 0 ? value : "", len);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	sdk_reply_free(&rp);
	return CUEQ_OK;
}

int cueq_step_get(cueq_client *c, const char *id, const char *name, void **value, size_t *len)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	proto_error e = { 0 };
	const char *v = NULL;
	size_t n = 0;
	int rc;

	if (c == NULL || value == NULL || len == NULL)
		return sdk_fail(CUEQ_ERR_INVALID,
				"cueq_step_get needs a client and somewhere to put the value");
	*value = NULL;
	*len = 0;
	if ((rc = sdk_check_id("execution ID", id)) != CUEQ_OK ||
	    (rc = sdk_check_step_name(name)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, "step_get", 2)) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "execution_id", id);
	proto_kv_cstr(sdk_pk(&rq), "name", name);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_bytes(rp.root, "value", true, CUEQ_MAX_STEP_VALUE, &v, &n, &e) != CUEQ_OK)
		rc = reply_flaw("step_get", &e);
	else if ((*value = copy_bytes(v, n)) == NULL)
		rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory copying a step value");
	else
		*len = n;
	sdk_reply_free(&rp);
	return rc;
}

int cueq_steps(cueq_client *c, const char *id, cueq_step **out, size_t *n)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	proto_error e = { 0 };
	int rc;

	if (c == NULL || out == NULL || n == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_steps needs a client, a list and a count");
	*out = NULL;
	*n = 0;
	if ((rc = sdk_check_id("execution ID", id)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, "steps", 1)) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "execution_id", id);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_get(rp.root, "steps") == NULL) {
		proto_fail(&e, CUEQ_ERR_BAD_REQUEST, "missing field 'steps'");
		rc = reply_flaw("steps", &e);
	} else if (sdk_get_steps(rp.root, "steps", out, n, &e) != CUEQ_OK) {
		rc = reply_flaw("steps", &e);
	}
	sdk_reply_free(&rp);
	return rc;
}
