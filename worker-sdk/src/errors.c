/*
 * errors.c - error texts, the thread's last-error sentence, state names and
 * the runtime version.
 *
 * The library keeps no global state: the last error lives in a thread-local
 * buffer, so concurrent calls on one client each keep their own sentence.
 */
#include "sdk.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];


const char *cueq_strerror(int err)
{
	switch (err) {
	case CUEQ_OK: return "success";
	case CUEQ_ERR_BAD_REQUEST: return "the broker refused a malformed or invalid request";
	case CUEQ_ERR_UNAUTHORIZED: return "missing or wrong auth token";
	case CUEQ_ERR_NOT_FOUND: return "no such execution";
	case CUEQ_ERR_NO_STEP: return "the execution has no such step";
	case CUEQ_ERR_CONFLICT: return "the execution's state does not allow this";
	case CUEQ_ERR_STALE_LEASE: return "the lease token is not the live one";
	case CUEQ_ERR_IDEMPOTENCY_MISMATCH: return "idempotency key reused with another request";
	case CUEQ_ERR_TOO_LARGE: return "request or field over its size limit";
	case CUEQ_ERR_UNAVAILABLE: return "the broker is shutting down or its storage is failing";
	case CUEQ_ERR_INTERNAL: return "internal broker error";
	case CUEQ_ERR_EMPTY: return "nothing was ready to claim";
	case CUEQ_ERR_UNREACHABLE: return "no answer from the broker";
	case CUEQ_ERR_INVALID: return "invalid argument";
	case CUEQ_ERR_NOMEM: return "out of memory";
	case CUEQ_ERR_PROTOCOL: return "the broker's answer made no sense";
	case CUEQ_ERR_CLOSED: return "the client or worker is closing";
	case CUEQ_ERR_LEASE_LOST: return "the lease was lost";
	case CUEQ_ERR_TIMEOUT: return "no outcome within the timeout";
	default: return "unknown error";
	}
}

const char *cueq_last_error(void)
{
	return last_error;
}

const char *sdk_last_error(void)
{
	return last_error;
}

int sdk_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return code;
}

int sdk_bad_reply(const char *op, const proto_error *e)
{
	return sdk_fail(CUEQ_ERR_PROTOCOL,
			"the broker's answer to %s made no sense (%s): are client and broker the "
			"same version?",
			op, e->msg);
}

const char *cueq_state_name(int state)
{
	return proto_state_name(state);
}

int cueq_state_parse(const char *name)
{
	return name ? proto_state_parse(name, strlen(name)) : -1;
}

int cueq_parse_duration(const char *s, int64_t *ms)
{
	if (ms != NULL && proto_parse_duration(s, ms))
		return CUEQ_OK;
	if (s != NULL && *s != '\0' && strspn(s, "0123456789") == strlen(s))
		return sdk_fail(CUEQ_ERR_INVALID,
				"'%s' is not a duration: it has no unit; write e.g. %sms or %ss "
				"(only 0 goes without one)",
				s, s, s);
	return sdk_fail(CUEQ_ERR_INVALID,
			"'%s' is not a duration: write a number with a unit, e.g. 250ms, 30s, 5m, "
			"2h, 1d, or 0",
			s ? s : "(null)");
}

#define STR2(x) #x
#define STR(x) STR2(x)

const char *cueq_version(void)
{
	return STR(CUEQ_VERSION_MAJOR) "." STR(CUEQ_VERSION_MINOR) "." STR(CUEQ_VERSION_PATCH);
}
