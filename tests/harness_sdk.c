/*
 * harness_sdk.c - helpers for tests that drive the broker through libcueq:
 * connecting to a test broker and reading an execution's history.  Linked
 * only into the tests that link the SDK.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

cueq_client *th_sdk_connect(th_broker *b)
{
	cueq_client *c = NULL;
	int rc = cueq_connect(b->url, NULL, &c);
	if (rc != CUEQ_OK)
		fail_msg("cueq_connect %s: %s (%s)", b->url, cueq_strerror(rc), cueq_last_error());
	return c;
}

size_t th_count_events(const cueq_execution *e, const char *event)
{
	size_t n = 0;
	for (size_t i = 0; i < e->history_len; i++)
		if (e->history[i].event != NULL && strcmp(e->history[i].event, event) == 0)
			n++;
	return n;
}
