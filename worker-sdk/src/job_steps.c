/*
 * job_steps.c - step helpers for handlers: a stable key for side effects in
 * other systems, and "run this step once per execution".
 *
 * A handler may run more than once for one execution (a lease expired, a
 * worker died, a nack retried it).  cueq_job_step_once looks the step up in
 * the execution's ledger first and runs the step's work only when it is not
 * there, then records the work's value under the job's lease.  Between the
 * work and the record there is a window (a crash, a lost lease) in which
 * the work is done but not recorded; the next delivery runs it again.  So
 * the work should pass cueq_job_step_key to the other system as its
 * idempotency key: the key is the same on every delivery of the execution,
 * and the other system closes the window.
 *
 * When the broker refuses the record because the token is no longer live
 * (STALE_LEASE), or the execution is gone (NOT_FOUND), the lease is lost:
 * the job is marked so (the worker then sends no outcome for it) and the
 * call says CUEQ_ERR_LEASE_LOST.
 */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cueq_job_step_key(const cueq_job *j, const char *name, char *out, size_t size)
{
	int rc, n;

	if (j == NULL || out == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_job_step_key needs a job and a buffer");
	if ((rc = sdk_check_step_name(name)) != CUEQ_OK)
		return rc;
	n = snprintf(out, size, "cueq-%s-%s", j->id, name);
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			out[0] = '\0';
		return sdk_fail(CUEQ_ERR_INVALID,
				"the step key of '%s' needs %d bytes with its NUL but the buffer "
				"holds %zu: give CUEQ_MAX_STEP_NAME + 24",
				name, n + 1, size);
	}
	return CUEQ_OK;
}

static int lease_lost(cueq_job *j, const char *name, const char *why)
{
	atomic_store(&j->lease_lost, true);
	return sdk_fail(CUEQ_ERR_LEASE_LOST,
			"step '%s' of execution %s was done but could not be recorded, the lease "
			"is lost: %s",
			name, j->id, why);
}

int cueq_job_step_once(cueq_job *j, const char *name, cueq_step_fn fn, void *arg, char *value,
		       size_t size, size_t *len, bool *skipped)
{
	void *got = NULL;
	size_t got_len = 0, n = 0;
	char why[256];
	int rc;

	if (skipped != NULL)
		*skipped = false;
	if (j == NULL || fn == NULL || len == NULL || (value == NULL && size > 0))
		return sdk_fail(CUEQ_ERR_INVALID,
				"cueq_job_step_once needs a job, a step function, a value buffer "
				"and somewhere to put its length");
	*len = 0;
	if ((rc = sdk_check_step_name(name)) != CUEQ_OK)
		return rc;
	if (j->c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID,
				"this job did not come from cueq_claim or a worker");

	rc = cueq_step_get(j->c, j->id, name, &got, &got_len);
	if (rc == CUEQ_OK) {
		if (got_len > size) {
			free(got);
			return sdk_fail(CUEQ_ERR_INVALID,
					"step '%s' recorded %zu bytes but the value buffer "
					"holds %zu: give CUEQ_MAX_STEP_VALUE",
					name, got_len, size);
		}
		if (got_len > 0)
			memcpy(value, got, got_len);
		free(got);
		*len = got_len;
		if (skipped != NULL)
			*skipped = true;
		return CUEQ_OK;
	}
	if (rc != CUEQ_ERR_NO_STEP) /* no such execution is no step to run */
		return rc;

	/* Not done yet.  With the lease already gone, doing it is pointless:
	 * another worker may hold the execution by now. */
	if (atomic_load(&j->lease_lost))
		return sdk_fail(CUEQ_ERR_LEASE_LOST,
				"the lease on execution %s is lost: step '%s' was not started",
				j->id, name);
	sdk_fail(CUEQ_OK, "%s", ""); /* what fn says, if anything, is its own */
	if ((rc = fn(j, arg, value, size, &n)) != CUEQ_OK) {
		/* the step failed: nothing is recorded; its own code goes back */
		if (cueq_last_error()[0] == '\0')
			sdk_fail(rc, "step '%s' of execution %s failed: its function returned %d; nothing was recorded, so a redelivery runs it again",
				 name, j->id, rc);
		return rc;
	}
	if (n > size || n > CUEQ_MAX_STEP_VALUE)
		return sdk_fail(CUEQ_ERR_TOO_LARGE,
				"step '%s' produced a %zu-byte value; the limit is %u (and the "
				"buffer holds %zu), so it was not recorded",
				name, n, CUEQ_MAX_STEP_VALUE, size);

	rc = cueq_step_set(j->c, j->id, j->token, name, value, n);
	if (rc == CUEQ_ERR_STALE_LEASE || rc == CUEQ_ERR_NOT_FOUND) {
		snprintf(why, sizeof(why), "%s", cueq_last_error());
		return lease_lost(j, name, why);
	}
	if (rc != CUEQ_OK)
		return rc;
	*len = n;
	return CUEQ_OK;
}

/* ---- the pair: cueq_step_begin, then the work, then cueq_step_done ---- */

static int job_ready(const cueq_job *j, const char *what)
{
	if (j == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "%s needs a job", what);
	if (j->c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "this job did not come from cueq_claim or a worker");
	return CUEQ_OK;
}

int cueq_step_begin(cueq_job *j, const char *name, bool *done, void **value, size_t *len)
{
	int rc;
	if (done == NULL || value == NULL || len == NULL)
		return sdk_fail(CUEQ_ERR_INVALID,
				"cueq_step_begin needs somewhere to say whether the step is done, and "
				"for its value and length");
	*done = false;
	*value = NULL;
	*len = 0;
	if ((rc = job_ready(j, "cueq_step_begin")) != CUEQ_OK ||
	    (rc = sdk_check_step_name(name)) != CUEQ_OK)
		return rc;
	rc = cueq_step_get(j->c, j->id, name, value, len);
	if (rc == CUEQ_OK) {
		*done = true;
		return CUEQ_OK;
	}
	if (rc != CUEQ_ERR_NO_STEP)
		return rc;
	if (atomic_load(&j->lease_lost)) /* another worker may hold it by now */
		return sdk_fail(CUEQ_ERR_LEASE_LOST,
				"the lease on execution %s is lost: step '%s' must not be started",
				j->id, name);
	return CUEQ_OK;
}

int cueq_step_done(cueq_job *j, const char *name, const void *value, size_t len)
{
	char why[256];
	int rc;
	if ((rc = job_ready(j, "cueq_step_done")) != CUEQ_OK)
		return rc;
	rc = cueq_step_set(j->c, j->id, j->token, name, value, len);
	if (rc == CUEQ_ERR_STALE_LEASE || rc == CUEQ_ERR_NOT_FOUND) {
		snprintf(why, sizeof(why), "%s", cueq_last_error());
		return lease_lost(j, name, why);
	}
	return rc;
}
