/*
 * fault.h - storage fault injection for tests, always compiled in.
 *
 * As beanstalkd swaps its file allocation in its tests, the store's write
 * and sync go through fault_check() first.  It does nothing unless the
 * broker was started with CUEQ_FAULT set, a comma-separated list of rules:
 *
 *   write:N:ACTION[:COUNT]   the Nth write of a turn's batch (1 = the first
 *                            after start-up; start-up's own writes of the
 *                            boot epoch are not counted)
 *   sync:N:ACTION[:COUNT]    the Nth WAL sync
 *
 *   ACTION fail        the write or sync fails as an I/O error would, for
 *                      COUNT of them from the Nth on (default 1; 0: all)
 *          exit        the process kills itself with SIGKILL instead of
 *                      writing or syncing (a crash just before it)
 *          exit-after  it writes or syncs, then kills itself (a crash just
 *                      after it, before any reply leaves)
 *          slow        it takes 2 s longer (a disk that stalls), for COUNT
 *                      of them from the Nth on (default 1; 0: all)
 *
 * e.g. CUEQ_FAULT=write:3:exit or CUEQ_FAULT=sync:1:fail,write:10:fail:0.
 * Nothing in production sets it; cueqd logs a warning when it is on.
 */
#ifndef CUEQ_FAULT_H
#define CUEQ_FAULT_H

#include <stddef.h>

enum fault_point { FAULT_WRITE, FAULT_SYNC, FAULT_POINTS };
enum fault_verdict { FAULT_GO, FAULT_FAIL, FAULT_EXIT_AFTER };

struct fault;

/* Parses spec (NULL or "": no faults, *out NULL).  -1 with a sentence in
 * err when the spec is malformed.  Free with fault_free. */
int fault_parse(const char *spec, struct fault **out, char *err, size_t errlen);
void fault_free(struct fault *f);
/* Counts one write or sync at point p and says what to do with it; kills
 * the process for an "exit" rule.  f may be NULL (no faults: FAULT_GO).
 * Callers serialise calls for the same point. */
enum fault_verdict fault_check(struct fault *f, enum fault_point p);
/* After a FAULT_EXIT_AFTER operation: kills the process. */
void fault_die(void);

#endif /* CUEQ_FAULT_H */
