/*
 * tally.c - payload layout and delivery counting (see tally.h).
 */
#include "tally.h"

#include <stdlib.h>
#include <string.h>

int tally_init(struct tally *t, size_t jobs, size_t payload)
{
	t->jobs = jobs;
	t->payload = payload < PAYLOAD_HEADER ? PAYLOAD_HEADER : payload;
	t->seen = calloc(jobs ? jobs : 1, sizeof(*t->seen));
	if (t->seen == NULL)
		return -1;
	for (size_t i = 0; i < jobs; i++)
		atomic_init(&t->seen[i], 0);
	atomic_init(&t->distinct, 0);
	atomic_init(&t->calls, 0);
	atomic_init(&t->bad, 0);
	atomic_init(&t->finished, 0);
	return lat_init(&t->e2e, jobs);
}

void tally_free(struct tally *t)
{
	free(t->seen);
	t->seen = NULL;
	lat_free(&t->e2e);
}

void payload_fill(const struct tally *t, void *buf, uint64_t seq, uint64_t pushed_ns)
{
	unsigned char *p = buf;

	memcpy(p, &seq, 8);
	memcpy(p + 8, &pushed_ns, 8);
	for (size_t i = PAYLOAD_HEADER; i < t->payload; i++)
		p[i] = (unsigned char)('a' + (seq + i) % 26);
}

int tally_see(struct tally *t, const void *payload, size_t len, uint64_t now)
{
	uint64_t seq, pushed;
	unsigned before;

	atomic_fetch_add(&t->calls, 1);
	if (payload == NULL || len != t->payload) {
		atomic_fetch_add(&t->bad, 1);
		return -1;
	}
	memcpy(&seq, payload, 8);
	memcpy(&pushed, (const unsigned char *)payload + 8, 8);
	if (seq >= t->jobs) {
		atomic_fetch_add(&t->bad, 1);
		return -1;
	}
	before = atomic_fetch_add(&t->seen[seq], 1);
	if (before == 0) {
		lat_add(&t->e2e, now > pushed ? now - pushed : 0);
		atomic_fetch_add(&t->distinct, 1);
	}
	return (int)before;
}

size_t tally_lost(const struct tally *t)
{
	return t->jobs - atomic_load(&t->distinct);
}

size_t tally_dups(const struct tally *t)
{
	size_t d = 0;

	for (size_t i = 0; i < t->jobs; i++) {
		unsigned n = atomic_load(&t->seen[i]);
		if (n > 1)
			d += n - 1;
	}
	return d;
}
