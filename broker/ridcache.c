/*
 * ridcache.c - a chained hash of request IDs plus an age-ordered list.
 * Pending entries are never evicted (they belong to requests in progress);
 * trimming steps over them.
 */
#include "ridcache.h"

#include <stdlib.h>
#include <string.h>

#include "record.h"

struct ridcache {
	struct rid_entry **bucket;
	size_t nbucket, n, bytes;
	struct rid_entry *oldest, *newest;
};

static size_t slot(const struct ridcache *rc, const void *rid, size_t len)
{
	return record_hash(RECORD_HASH_INIT, rid, len) & (rc->nbucket - 1);
}

struct ridcache *ridcache_new(void)
{
	struct ridcache *rc = calloc(1, sizeof(*rc));
	if (rc == NULL)
		return NULL;
	rc->nbucket = 1u << 20;
	rc->bucket = calloc(rc->nbucket, sizeof(*rc->bucket));
	if (rc->bucket == NULL) {
		free(rc);
		return NULL;
	}
	return rc;
}

void ridcache_free(struct ridcache *rc)
{
	if (rc == NULL)
		return;
	while (rc->oldest)
		ridcache_remove(rc, rc->oldest);
	free(rc->bucket);
	free(rc);
}

struct rid_entry *ridcache_find(struct ridcache *rc, const void *rid, size_t len)
{
	for (struct rid_entry *e = rc->bucket[slot(rc, rid, len)]; e; e = e->hnext)
		if (e->len == len && memcmp(e->rid, rid, len) == 0)
			return e;
	return NULL;
}

struct rid_entry *ridcache_add(struct ridcache *rc, const void *rid, size_t len,
			       uint64_t body_hash, int64_t now)
{
	struct rid_entry *e = calloc(1, sizeof(*e));
	if (e == NULL || len > sizeof(e->rid)) {
		free(e);
		return NULL;
	}
	memcpy(e->rid, rid, len);
	e->len = (uint8_t)len;
	e->body_hash = body_hash;
	e->at = now;
	size_t s = slot(rc, rid, len);
	e->hnext = rc->bucket[s];
	rc->bucket[s] = e;
	e->older = rc->newest;
	if (rc->newest)
		rc->newest->newer = e;
	else
		rc->oldest = e;
	rc->newest = e;
	rc->n++;
	return e;
}

bool ridcache_done(struct ridcache *rc, struct rid_entry *e, const void *reply, size_t len)
{
	e->reply = malloc(len ? len : 1);
	if (e->reply == NULL) {
		ridcache_remove(rc, e);
		return false;
	}
	memcpy(e->reply, reply, len);
	e->reply_len = len;
	e->done = true;
	rc->bytes += len;
	return true;
}

void ridcache_remove(struct ridcache *rc, struct rid_entry *e)
{
	struct rid_entry **p = &rc->bucket[slot(rc, e->rid, e->len)];
	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		rc->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		rc->newest = e->older;
	rc->n--;
	rc->bytes -= e->reply_len;
	free(e->reply);
	free(e);
}

void ridcache_trim(struct ridcache *rc, int64_t now)
{
	struct rid_entry *e = rc->oldest;
	while (e && (now - e->at > RID_KEEP_MS || rc->n > RID_MAX_ENTRIES ||
		     rc->bytes > RID_MAX_BYTES)) {
		struct rid_entry *newer = e->newer;
		if (e->done) /* pending ones belong to requests in progress */
			ridcache_remove(rc, e);
		e = newer;
	}
}
