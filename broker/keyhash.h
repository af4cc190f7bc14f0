/*
 * keyhash.h - a keyed hash (SipHash-2-4, libsodium's crypto_shorthash) for
 * the broker's tables whose keys clients choose: request IDs, queue names.
 * The key is random per process, so nobody can craft names that all land
 * in one bucket and turn each lookup into a walk.  Values differ from run
 * to run: never store them.
 */
#ifndef CUEQ_KEYHASH_H
#define CUEQ_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

/* Makes the process's key (idempotent, thread-safe); 0, or -1 when the
 * system gives no randomness.  keyhash() calls it itself. */
int keyhash_init(void);
uint64_t keyhash(const void *p, size_t n);

#endif /* CUEQ_KEYHASH_H */
