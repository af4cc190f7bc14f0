/*
 * tally.h - what the benchmark's jobs carry and which of them came back.
 *
 * Each payload starts with the job's sequence number and the monotonic time
 * it was pushed (this process's clock, so a handler can compute the
 * push -> handler latency), padded to the payload size.  The tally counts
 * deliveries per sequence number with atomics, so "every job processed
 * exactly once" is checked without trusting any count from the SDK.
 */
#ifndef CUEQ_BENCH_TALLY_H
#define CUEQ_BENCH_TALLY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "latency.h"

#define PAYLOAD_HEADER 16 /* seq (8 bytes) + push time (8 bytes) */

struct tally {
	size_t jobs;		/* sequence numbers 0 .. jobs-1 */
	size_t payload;		/* expected payload length */
	atomic_uint *seen;	/* deliveries per sequence number */
	atomic_size_t distinct; /* sequence numbers seen at least once */
	atomic_size_t calls;	/* deliveries */
	atomic_size_t bad;	/* payloads of the wrong size or sequence */
	atomic_size_t finished; /* deliveries whose outcome was sent */
	struct lat e2e;		/* push -> first delivery, per job */
};

/* Zero-filled t; returns 0 or -1 (out of memory). */
int tally_init(struct tally *t, size_t jobs, size_t payload);
void tally_free(struct tally *t);

/* Fills buf (t->payload bytes) for job seq pushed at time pushed_ns. */
void payload_fill(const struct tally *t, void *buf, uint64_t seq, uint64_t pushed_ns);

/* Records one delivery of payload at time now; returns the number of
 * earlier deliveries of the same job (0 the first time), -1 if the payload
 * is not one of ours. */
int tally_see(struct tally *t, const void *payload, size_t len, uint64_t now);

/* Jobs never delivered, and deliveries beyond the first. */
size_t tally_lost(const struct tally *t);
size_t tally_dups(const struct tally *t);

#endif
