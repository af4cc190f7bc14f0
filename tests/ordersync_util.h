/*
 * ordersync_util.h - what test_ordersync.c needs beyond the harness:
 * waiting for the orphans of killed workers (ordersync_procs.c; the
 * workers themselves are started and killed with proc.h), and a
 * reader for the fake third-party APIs' store that the order-sync examples
 * write (ordersync_store.c; the format is worker-sdk/examples/fake_api.h).
 *
 * Like the harness, nothing here calls cmocka's asserts: failures come back
 * as -1 with a sentence in why.
 */
#ifndef CUEQ_TEST_ORDERSYNC_UTIL_H
#define CUEQ_TEST_ORDERSYNC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- orphans of killed workers ---------------------------------------- */

/* Makes this process the reaper of its orphaned descendants (the commands
 * and API calls of killed workers), so os_reap_strays can wait for them. */
void os_become_subreaper(void);
/* Waits up to timeout_ms for every child except keep[n_keep] to end,
 * reaping them; SIGKILLs those still there then.  Returns how many had to
 * be killed. */
size_t os_reap_strays(const pid_t *keep, size_t n_keep, int timeout_ms);

/* ---- the fake APIs' store ------------------------------------------------- */

#define OS_KEY_SIZE 192
#define OS_VALUE_SIZE 128

/* What DIR/KIND.log says about one order. */
typedef struct os_entry {
	unsigned count;		  /* creation lines for the order */
	char key[OS_KEY_SIZE];	  /* the Idempotency-Key of its first line */
	char id[OS_VALUE_SIZE];	  /* the object ID of its first line */
} os_entry;

/* Reads DIR/KIND.log for orders named order-0 .. order-(n-1) into
 * entries[n] (zeroed first).  A line of another order, or a malformed
 * line, is an error. */
int os_read_log(const char *dir, const char *kind, size_t n, os_entry *entries, char *why,
		size_t why_size);
/* The ID in DIR/KIND/KEY (its first line). */
int os_object_id(const char *dir, const char *kind, const char *key, char *id, size_t size);

#endif /* CUEQ_TEST_ORDERSYNC_UTIL_H */
