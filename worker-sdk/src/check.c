/*
 * check.c - argument checks before sending, and readers for reply fields.
 *
 * The SDK refuses what the broker would refuse, with a sentence that names
 * the argument, so a mistake costs no round trip and never reaches the
 * transport (an over-limit message would close the connection).  Step
 * names obey the rules of queue names, checked by the same function the
 * broker uses (proto_queue_ok).  Replies are untrusted too: IDs are copied
 * only when they are short alphanumeric strings, states only when they are
 * names we know.
 */
#include "sdk.h"

#include <stdlib.h>
#include <string.h>

int sdk_check_queue(const char *queue)
{
	if (queue == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "no queue name given");
	if (!proto_queue_ok(queue, strlen(queue)))
		return sdk_fail(CUEQ_ERR_INVALID,
				"queue name '%.140s' is invalid: use 1-128 characters of "
				"A-Z a-z 0-9 . _ : -",
				queue);
	return CUEQ_OK;
}

int sdk_check_group(const char *group)
{
	if (group != NULL && !proto_queue_ok(group, strlen(group)))
		return sdk_fail(CUEQ_ERR_INVALID,
				"group name '%.64s' is invalid: use 1-128 characters of A-Z a-z 0-9 . _ : -",
				group);
	return CUEQ_OK;
}

static bool alnum_id(const char *s, size_t n)
{
	if (n == 0 || n >= CUEQ_ID_SIZE)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return true;
}

int sdk_check_id(const char *what, const char *s)
{
	if (s == NULL || *s == '\0')
		return sdk_fail(CUEQ_ERR_INVALID, "no %s given", what);
	if (!alnum_id(s, strlen(s)))
		return sdk_fail(CUEQ_ERR_INVALID, "%s '%.40s' is malformed: it is %d hex digits",
				what, s, PROTO_ID_LEN);
	return CUEQ_OK;
}

int sdk_check_text(const char *what, const char *s)
{
	size_t n;

	if (s == NULL)
		return CUEQ_OK;
	n = strlen(s);
	if (n > CUEQ_MAX_TEXT)
		return sdk_fail(CUEQ_ERR_TOO_LARGE, "the %s text is %zu bytes; the limit is %u", what,
				n, CUEQ_MAX_TEXT);
	return CUEQ_OK;
}

int sdk_check_lease(const char *what, int64_t lease_ms, bool zero_ok)
{
	if (zero_ok && lease_ms == 0)
		return CUEQ_OK;
	if (lease_ms < PROTO_MIN_LEASE_MS || lease_ms > PROTO_MAX_LEASE_MS)
		return sdk_fail(CUEQ_ERR_INVALID,
				"%s of %lld ms is out of range: use %d ms to %d ms (1 day)", what,
				(long long)lease_ms, PROTO_MIN_LEASE_MS, PROTO_MAX_LEASE_MS);
	return CUEQ_OK;
}

int sdk_check_key(const char *what, const char *s)
{
	size_t n;

	if (s == NULL)
		return CUEQ_OK;
	n = strlen(s);
	if (n == 0)
		return sdk_fail(CUEQ_ERR_INVALID, "the %s is empty: give 1-%u bytes, or none", what,
				CUEQ_MAX_KEY);
	if (n > CUEQ_MAX_KEY)
		return sdk_fail(CUEQ_ERR_TOO_LARGE, "the %s is %zu bytes; the limit is %u", what, n,
				CUEQ_MAX_KEY);
	return CUEQ_OK;
}

int sdk_check_step_name(const char *name)
{
	if (name == NULL || *name == '\0')
		return sdk_fail(CUEQ_ERR_INVALID, "no step name given");
	/* Step names follow the rules of queue names. */
	if (strlen(name) > CUEQ_MAX_STEP_NAME || !proto_queue_ok(name, strlen(name)))
		return sdk_fail(CUEQ_ERR_INVALID,
				"step name '%.140s' is invalid: use 1-%u characters of "
				"A-Z a-z 0-9 . _ : -",
				name, CUEQ_MAX_STEP_NAME);
	return CUEQ_OK;
}

int sdk_check_step_value(const void *value, size_t len)
{
	if (value == NULL && len > 0)
		return sdk_fail(CUEQ_ERR_INVALID, "step value is NULL but its length is %zu", len);
	if (len > CUEQ_MAX_STEP_VALUE)
		return sdk_fail(CUEQ_ERR_TOO_LARGE,
				"step value is %zu bytes; the limit is %u: record an ID or a "
				"reference, not the data",
				len, CUEQ_MAX_STEP_VALUE);
	return CUEQ_OK;
}

/* A backoff duration: 0 (the default), CUEQ_ZERO_MS or 0..1 day. */
static int check_backoff(const char *what, int64_t ms)
{
	if (ms == 0 || ms == CUEQ_ZERO_MS || (ms > 0 && ms <= SDK_MAX_BACKOFF_MS))
		return CUEQ_OK;
	return sdk_fail(CUEQ_ERR_INVALID,
			"%s of %lld ms is out of range: use 0 for the broker's default, "
			"CUEQ_ZERO_MS for none, or up to %lld ms (1 day)",
			what, (long long)ms, (long long)SDK_MAX_BACKOFF_MS);
}

static int check_retries(const cueq_push_opts *o)
{
	int rc;

	if ((rc = check_backoff("retry backoff", o->backoff_ms)) != CUEQ_OK ||
	    (rc = check_backoff("retry backoff cap", o->backoff_max_ms)) != CUEQ_OK)
		return rc;
	if (o->backoff_factor != 0 &&
	    !(o->backoff_factor >= 1 && o->backoff_factor <= SDK_MAX_BACKOFF_FACTOR))
		return sdk_fail(CUEQ_ERR_INVALID,
				"backoff factor %g is out of range: use 1 to %d, or 0 for the "
				"broker's default (2)",
				o->backoff_factor, SDK_MAX_BACKOFF_FACTOR);
	return CUEQ_OK;
}

/* A cron expression or zone name: NULL, or 1..max bytes. */
static int check_name(const char *what, const char *s, size_t max)
{
	size_t n;

	if (s == NULL)
		return CUEQ_OK;
	n = strlen(s);
	if (n == 0 || n > max)
		return sdk_fail(CUEQ_ERR_INVALID, "the %s is %zu bytes: give 1 to %zu", what, n, max);
	return CUEQ_OK;
}

static int check_recurring(const cueq_push_opts *o)
{
	bool recurring = o->every_ms != 0 || o->cron != NULL;
	int rc;

	if (o->every_ms != 0 && (o->every_ms < SDK_MIN_EVERY_MS || o->every_ms > SDK_MAX_EVERY_MS))
		return sdk_fail(CUEQ_ERR_INVALID,
				"a period of %lld ms is out of range: use %lld ms (1 s) to %lld ms "
				"(10 years)",
				(long long)o->every_ms, (long long)SDK_MIN_EVERY_MS,
				(long long)SDK_MAX_EVERY_MS);
	if (o->every_ms != 0 && o->cron != NULL)
		return sdk_fail(CUEQ_ERR_INVALID,
				"give a period (every) or a cron expression, not both");
	if ((rc = check_name("cron expression", o->cron, SDK_MAX_CRON)) != CUEQ_OK ||
	    (rc = check_name("time zone name", o->tz, SDK_MAX_TZ)) != CUEQ_OK)
		return rc;
	if (o->tz != NULL && o->cron == NULL)
		return sdk_fail(CUEQ_ERR_INVALID,
				"a time zone is the zone a cron expression is read in: give cron "
				"too, or leave the zone out");
	if (cueq_catch_up_name(o->catch_up) == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "catch-up %d is not a cueq_catch_up", o->catch_up);
	if (cueq_overlap_name(o->overlap) == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "overlap %d is not a cueq_overlap", o->overlap);
	if (!recurring && (o->catch_up != CUEQ_CATCH_UP_ONE || o->overlap != CUEQ_OVERLAP_ALLOW))
		return sdk_fail(CUEQ_ERR_INVALID,
				"catch-up and overlap are for recurring cues: give every or cron "
				"too");
	if (recurring && o->unique != NULL)
		return sdk_fail(CUEQ_ERR_INVALID,
				"a recurring cue takes no unique key: use overlap skip to run one "
				"fire at a time");
	return CUEQ_OK;
}

int sdk_check_job(const char *queue, const void *payload, size_t len, const cueq_push_opts *o,
		  size_t *wire_bytes)
{
	size_t keys = 0;
	int rc;

	if ((rc = sdk_check_queue(queue)) != CUEQ_OK)
		return rc;
	if (payload == NULL && len > 0)
		return sdk_fail(CUEQ_ERR_INVALID, "payload is NULL but its length is %zu", len);
	if (len > CUEQ_MAX_PAYLOAD)
		return sdk_fail(CUEQ_ERR_TOO_LARGE, "payload is %zu bytes; the limit is %u (1 MiB)",
				len, CUEQ_MAX_PAYLOAD);
	if (o != NULL) {
		if (o->priority < -PROTO_MAX_PRIORITY || o->priority > PROTO_MAX_PRIORITY)
			return sdk_fail(CUEQ_ERR_INVALID, "priority %d is out of range: use -%d to %d",
					(int)o->priority, PROTO_MAX_PRIORITY, PROTO_MAX_PRIORITY);
		if (o->max_attempts > PROTO_MAX_ATTEMPTS)
			return sdk_fail(CUEQ_ERR_INVALID, "max attempts %u is out of range: use 1 to %d",
					(unsigned)o->max_attempts, PROTO_MAX_ATTEMPTS);
		if (o->max_expiries > PROTO_MAX_ATTEMPTS)
			return sdk_fail(CUEQ_ERR_INVALID, "max expiries %u is out of range: use 1 to %d",
					(unsigned)o->max_expiries, PROTO_MAX_ATTEMPTS);
		if ((rc = sdk_check_lease("lease", o->lease_ms, true)) != CUEQ_OK)
			return rc;
		if (o->delay_ms < 0)
			return sdk_fail(CUEQ_ERR_INVALID, "delay of %lld ms is negative",
					(long long)o->delay_ms);
		if (o->run_at_ms < 0)
			return sdk_fail(CUEQ_ERR_INVALID, "run-at time %lld is negative",
					(long long)o->run_at_ms);
		if (o->delay_ms > 0 && o->run_at_ms > 0)
			return sdk_fail(CUEQ_ERR_INVALID,
					"give a delay or a run-at time, not both");
		if ((rc = sdk_check_key("idempotency key", o->key)) != CUEQ_OK ||
		    (rc = sdk_check_key("unique key", o->unique)) != CUEQ_OK)
			return rc;
		if (o->key_ttl_ms != 0 &&
		    (o->key_ttl_ms < SDK_MIN_KEY_TTL_MS || o->key_ttl_ms > SDK_MAX_KEY_TTL_MS))
			return sdk_fail(CUEQ_ERR_INVALID,
					"key lifetime of %lld ms is out of range: use %lld ms "
					"(1 s) to %lld ms (30 days), or 0 for the broker's window",
					(long long)o->key_ttl_ms, (long long)SDK_MIN_KEY_TTL_MS,
					(long long)SDK_MAX_KEY_TTL_MS);
		if ((rc = check_retries(o)) != CUEQ_OK || (rc = check_recurring(o)) != CUEQ_OK)
			return rc;
		if ((rc = sdk_check_group(o->group)) != CUEQ_OK)
			return rc;
		if (o->group != NULL && (o->every_ms > 0 || o->cron != NULL))
			return sdk_fail(CUEQ_ERR_INVALID,
					"a recurring cue takes no group: its fires run in the queue's default group");
		keys = (o->key ? strlen(o->key) : 0) + (o->unique ? strlen(o->unique) : 0) +
		       (o->cron ? strlen(o->cron) : 0) + (o->tz ? strlen(o->tz) : 0) +
		       (o->group ? strlen(o->group) : 0);
	}
	if (wire_bytes != NULL)
		*wire_bytes = len + strlen(queue) + keys + SDK_JOB_OVERHEAD;
	return CUEQ_OK;
}

int sdk_get_id(const msgpack_object *m, const char *key, bool required, char out[CUEQ_ID_SIZE],
	       proto_error *e)
{
	const char *s = NULL;
	size_t n = 0;
	int rc = proto_str(m, key, required, CUEQ_ID_SIZE - 1, &s, &n, e);

	if (rc != CUEQ_OK || s == NULL)
		return rc;
	if (!alnum_id(s, n))
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' is not an ID", key);
	memcpy(out, s, n);
	out[n] = '\0';
	return CUEQ_OK;
}

int sdk_get_state(const msgpack_object *m, const char *key, bool required, int *out,
		  proto_error *e)
{
	char name[16];
	const char *s = NULL;
	size_t n = 0;
	int rc = proto_str(m, key, required, sizeof(name) - 1, &s, &n, e);

	if (rc != CUEQ_OK || s == NULL)
		return rc;
	memcpy(name, s, n);
	name[n] = '\0';
	if ((rc = cueq_state_parse(name)) < 0)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "field '%s' holds unknown state '%s'",
				  key, name);
	*out = rc;
	return CUEQ_OK;
}

int sdk_get_text(const msgpack_object *m, const char *key, size_t max, char **out,
		 proto_error *e)
{
	const char *s = NULL;
	size_t n = 0;
	int rc = proto_str(m, key, false, max, &s, &n, e);

	if (rc != CUEQ_OK || s == NULL)
		return rc;
	if ((*out = malloc(n + 1)) == NULL)
		return proto_fail(e, CUEQ_ERR_NOMEM, "out of memory copying field '%s'", key);
	memcpy(*out, s, n);
	(*out)[n] = '\0';
	return CUEQ_OK;
}

int sdk_item_status(const msgpack_object *m, int *code, proto_error *e)
{
	const char *name = NULL, *msg = NULL;
	size_t name_n = 0, msg_n = 0;
	bool ok;
	int rc;

	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a result is not a map");
	/* `ok` should be there; without it, an `err` decides. */
	ok = proto_get(m, "err") == NULL;
	if ((rc = proto_bool(m, "ok", false, &ok, e)) != CUEQ_OK)
		return rc;
	if (ok) {
		*code = CUEQ_OK;
		return CUEQ_OK;
	}
	if ((rc = proto_str(m, "err", true, 64, &name, &name_n, e)) != CUEQ_OK)
		return rc;
	if ((rc = proto_str(m, "msg", false, CUEQ_MAX_TEXT, &msg, &msg_n, e)) != CUEQ_OK)
		return rc;
	*code = proto_err_code(name, name_n);
	if (msg != NULL && msg_n > 0)
		sdk_fail(*code, "%.*s", (int)(msg_n > 900 ? 900 : msg_n), msg);
	else
		sdk_fail(*code, "the broker refused it with %.*s", (int)name_n, name);
	return CUEQ_OK;
}

int sdk_get_results(const msgpack_object *root, size_t n, const msgpack_object_array **out,
		    proto_error *e)
{
	int rc = proto_array(root, "results", true, n, n, out, e);

	if (rc != CUEQ_OK)
		return rc;
	for (size_t i = 0; i < n; i++)
		if ((*out)->ptr[i].type != MSGPACK_OBJECT_MAP)
			return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "result %zu is not a map", i);
	return CUEQ_OK;
}
