/*
 * defs.h - the words the SDK and the broker share: the error codes, the
 * states of an execution and the limits the broker enforces.
 *
 * cueq/cueq.h (the SDK's API) and proto/proto.h (the wire codec, linked by
 * the broker) both include this header, so the broker speaks these codes
 * without seeing the client's API.  The values are part of the wire
 * contract (PROTOCOL.md) and of the SDK's ABI: never renumber one, only add.
 * Plain C11 definitions, nothing to link.
 */
#ifndef CUEQ_DEFS_H
#define CUEQ_DEFS_H

/* Limits the broker enforces; the SDK checks them before sending. */
#define CUEQ_MAX_PAYLOAD (1u << 20) /* bytes of one job's payload */
#define CUEQ_MAX_TEXT 65536u        /* bytes of a result or error text */
#define CUEQ_MAX_BATCH 1000u        /* jobs or items in one request */
#define CUEQ_MAX_CLAIM 256u         /* executions in one claim */
#define CUEQ_MAX_KEY 256u           /* bytes of an idempotency or unique key */
#define CUEQ_MAX_STEP_NAME 128u     /* bytes of a step name: [A-Za-z0-9._:-] */
#define CUEQ_MAX_STEP_VALUE 4096u   /* bytes of a step value */
#define CUEQ_MAX_STEPS 1000u        /* steps of one execution */

/* One error enum for the broker's answers and the SDK's own failures. */
typedef enum cueq_err {
	CUEQ_OK = 0,
	/* Answers of the broker (the wire names are the same without CUEQ_ERR_). */
	CUEQ_ERR_BAD_REQUEST = 1,	   /* malformed or invalid request */
	CUEQ_ERR_UNAUTHORIZED = 2,	   /* missing or wrong auth token */
	CUEQ_ERR_NOT_FOUND = 3,		   /* no such execution (or cue) */
	CUEQ_ERR_CONFLICT = 4,		   /* state does not allow it */
	CUEQ_ERR_STALE_LEASE = 5,	   /* lease token is not the live one */
	CUEQ_ERR_IDEMPOTENCY_MISMATCH = 6, /* key reused with another request */
	CUEQ_ERR_TOO_LARGE = 7,		   /* request or field over its limit */
	CUEQ_ERR_UNAVAILABLE = 8,	   /* broker shutting down or storage failing */
	CUEQ_ERR_INTERNAL = 9,		   /* a broker bug: please report it */
	CUEQ_ERR_NO_STEP = 10,		   /* the execution exists, that step does not
					    * (the wire's NOT_FOUND with missing: step) */
	/* Failures of the SDK itself. */
	CUEQ_ERR_EMPTY = 20,	   /* claim: nothing was ready within the wait */
	CUEQ_ERR_UNREACHABLE = 21, /* no answer from the broker in time */
	CUEQ_ERR_INVALID = 22,	   /* bad argument to an SDK call */
	CUEQ_ERR_NOMEM = 23,	   /* out of memory */
	CUEQ_ERR_PROTOCOL = 24,	   /* the broker's answer made no sense */
	CUEQ_ERR_CLOSED = 25,	   /* the client or worker is closing */
	CUEQ_ERR_LEASE_LOST = 26,  /* the handler's lease was lost */
	CUEQ_ERR_TIMEOUT = 27,	   /* wait: no outcome within the timeout */
} cueq_err;

/* States of an execution; cueq_state_name() gives the wire/CLI name. */
typedef enum cueq_state {
	CUEQ_SCHEDULED = 0,
	CUEQ_READY = 1,
	CUEQ_LEASED = 2,
	CUEQ_SUCCEEDED = 3,
	CUEQ_DEAD = 4,
	CUEQ_CANCELLED = 5,
} cueq_state;

#endif /* CUEQ_DEFS_H */
