/*
 * test_faults.c - the broker on failing storage and with too few
 * descriptors (PROTOCOL.md, "When storage fails"; broker/store.h, the
 * failure rule; broker/fault.h, the fault hook).
 *
 * 1. Kill at every write: for each request kind (ack, nack to dead, nack to
 *    retry, push with keys, step set, extend, the retention sweep) the
 *    broker kills itself just before, or just after, its Kth write (or
 *    sync) for K = 1, 2, ... until the request completes; after every death
 *    the execution is wholly before or wholly after the request (get,
 *    stats, list, the unique key, the idempotency key all agree) and the
 *    client's retry of the same request gives one consistent answer
 *    (faults_kill.c).
 *
 * Every test ends with a graceful stop that must exit 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faults_kill.h"
#include "faults_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Setup: a zero-filled broker, not started (th_fixture_stop stops it,
 * requiring exit status 0, and frees it). */
static int unstarted(void **state)
{
	*state = calloc(1, sizeof(th_broker));
	return *state != NULL ? 0 : -1;
}

/* ---- 1. kill at every write ------------------------------------------------ */

static void kill_loop(th_broker *b, enum fx_kind kind, const char *name, const char *point,
		      const char *action)
{
	int k = fx_kill_loop(b, kind, point, action);
	fprintf(stderr, "faults: %s with CUEQ_FAULT=%s:K:%s completed at K=%d\n", name, point, action, k);
}

static void test_kill_ack(void **state)
{
	kill_loop(*state, FK_ACK, "ack", "write", "exit");
	kill_loop(*state, FK_ACK, "ack", "write", "exit-after");
	kill_loop(*state, FK_ACK, "ack", "sync", "exit");
}

static void test_kill_nack_dead(void **state)
{
	kill_loop(*state, FK_NACK_DEAD, "nack terminal", "write", "exit");
	kill_loop(*state, FK_NACK_DEAD, "nack terminal", "write", "exit-after");
}

static void test_kill_nack_retry(void **state)
{
	kill_loop(*state, FK_NACK_RETRY, "nack retry_in_ms", "write", "exit");
	kill_loop(*state, FK_NACK_RETRY, "nack retry_in_ms", "write", "exit-after");
}

static void test_kill_push(void **state)
{
	kill_loop(*state, FK_PUSH, "push", "write", "exit");
	kill_loop(*state, FK_PUSH, "push", "write", "exit-after");
	kill_loop(*state, FK_PUSH, "push", "sync", "exit");
}

static void test_kill_step(void **state)
{
	kill_loop(*state, FK_STEP, "step_set", "write", "exit");
	kill_loop(*state, FK_STEP, "step_set", "write", "exit-after");
}

static void test_kill_extend(void **state)
{
	kill_loop(*state, FK_EXTEND, "extend", "write", "exit");
	kill_loop(*state, FK_EXTEND, "extend", "write", "exit-after");
}

static void test_kill_retention(void **state)
{
	kill_loop(*state, FK_RETENTION, "retention sweep", "write", "exit");
	kill_loop(*state, FK_RETENTION, "retention sweep", "write", "exit-after");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill_ack, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_nack_dead, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_nack_retry, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_push, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_step, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_extend, unstarted, th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_kill_retention, unstarted, th_fixture_stop),
	};
	if (getenv("CUEQ_TEST_FILTER") != NULL) /* e.g. "test_kill_*" */
		cmocka_set_test_filter(getenv("CUEQ_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
