/*
 * ordersync_util.h - what test_ordersync.c needs beyond the harness:
 * worker processes it can SIGKILL and restart (ordersync_procs.c), and a
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

/* ---- processes -------------------------------------------------------- */

/* Starts argv[0] with our environment plus env_extra ("K=V", NULL-ended,
 * replacing variables of the same name), stdout and stderr appended to
 * log_path, and SIGKILL when the test dies.  Returns the pid, or -1. */
pid_t os_spawn(char *const argv[], char *const env_extra[], const char *log_path);
/* SIGKILL and reap. */
void os_kill9(pid_t pid);
/* SIGTERM, wait up to timeout_ms (then SIGKILL); *status gets the wait
 * status.  Returns 0 when it exited by itself, -1 when it was killed. */
int os_stop(pid_t pid, int timeout_ms, int *status);
/* Makes this process the reaper of its orphaned descendants (the commands
 * and API calls of killed workers), so os_reap_strays can wait for them. */
void os_become_subreaper(void);
/* Waits up to timeout_ms for every child except keep[n_keep] to end,
 * reaping them; SIGKILLs those still there then.  Returns how many had to
 * be killed. */
size_t os_reap_strays(const pid_t *keep, size_t n_keep, int timeout_ms);
/* Prints the last bytes of a log file to stderr. */
void os_dump_tail(const char *path, size_t bytes);

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
