/*
 * holders.h - which connection holds which leases, so that the leases of a
 * worker whose connection closed can end at once (--release-on-disconnect):
 * its executions are delivered again in milliseconds, not after the lease,
 * and its tokens are fenced should it come back.
 *
 * The core thread records each lease a claim's answer gives, under the
 * connection the claim came on, and takes a connection's leases when it
 * closes.  Leases that ended meanwhile (acked, expired) are pruned when a
 * connection's list fills, so a long-lived worker's list stays the size of
 * what it holds.
 */
#ifndef CUEQ_HOLDERS_H
#define CUEQ_HOLDERS_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

struct holders;

struct holders *holders_new(const struct engine_ops *eo, struct engine *e);
void holders_free(struct holders *h);
/* Records n leases (ids[i], tokens[i]) given on pipe. */
void holders_add(struct holders *h, uint32_t pipe, const uint64_t *ids, const uint64_t *tokens,
		 size_t n);
/* Ends the leases still live that were given on pipe, and forgets the
 * pipe: how many ended. */
size_t holders_release(struct holders *h, uint32_t pipe);

#endif /* CUEQ_HOLDERS_H */
