/*
 * ridcache.c - a chained hash of request IDs plus an age-ordered list.
 * Pending entries are never evicted (they belong to requests in progress);
 * trimming steps over them.
 */
#include "ridcache.h"

#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#include "keyhash.h"
#include "proto.h"

struct ridcache {
	struct rid_entry **bucket;
	size_t nbucket, n, bytes;
	struct rid_entry *oldest, *newest;
};

static size_t slot(const struct ridcache *rc, const void *rid, size_t len)
{
	return keyhash(rid, len) & (rc->nbucket - 1);
}

struct ridcache *ridcache_new(void)
{
	struct ridcache *rc = calloc(1, sizeof(*rc));
	if (rc == NULL)
		return NULL;
	rc->nbucket = 1u << 12; /* doubles as entries come */
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

/* Doubles the bucket array when the chains grow long; on no memory the
 * chains just stay longer. */
static void grow(struct ridcache *rc)
{
	size_t n = rc->nbucket * 2;
	struct rid_entry **b = calloc(n, sizeof(*b));
	if (b == NULL)
		return;
	for (size_t i = 0; i < rc->nbucket; i++)
		while (rc->bucket[i]) {
			struct rid_entry *e = rc->bucket[i];
			rc->bucket[i] = e->hnext;
			size_t s = keyhash(e->rid, e->len) & (n - 1);
			e->hnext = b[s];
			b[s] = e;
		}
	free(rc->bucket);
	rc->bucket = b;
	rc->nbucket = n;
}

struct rid_entry *ridcache_add(struct ridcache *rc, const void *rid, size_t len,
			       uint64_t body_hash, int64_t now)
{
	if (rc->n >= rc->nbucket)
		grow(rc);
	if (len > PROTO_MAX_SCOPED_RID)
		return NULL;
	struct rid_entry *e = calloc(1, sizeof(*e) + len);
	if (e == NULL)
		return NULL;
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
	rc->bytes += sizeof(*e) + len; /* the limit counts what an entry costs */
	return e;
}

#define COMPRESS_FROM 128 /* shorter replies are kept as they are */

bool ridcache_done(struct ridcache *rc, struct rid_entry *e, const void *reply, size_t len)
{
	int packed = 0;
	if (len >= COMPRESS_FROM && len <= LZ4_MAX_INPUT_SIZE) {
		char *tmp = malloc((size_t)LZ4_compressBound((int)len));
		if (tmp != NULL) {
			packed = LZ4_compress_default(reply, tmp, (int)len, LZ4_compressBound((int)len));
			if (packed > 0 && (size_t)packed < len)
				e->reply = realloc(tmp, (size_t)packed);
			if (e->reply == NULL) {
				free(tmp);
				packed = 0;
			}
		}
	}
	if (e->reply == NULL) {
		packed = 0;
		e->reply = malloc(len ? len : 1);
		if (e->reply == NULL) {
			ridcache_remove(rc, e);
			return false;
		}
		memcpy(e->reply, reply, len);
	}
	e->reply_len = len;
	e->stored_len = packed > 0 ? (size_t)packed : len;
	e->done = true;
	rc->bytes += e->stored_len;
	return true;
}

void ridcache_done_memo(struct ridcache *rc, struct rid_entry *e, void *memo, size_t len)
{
	e->reply = memo;
	e->reply_len = e->stored_len = len;
	e->memo = true;
	e->done = true;
	rc->bytes += len;
}

nng_msg *ridcache_reply(const struct rid_entry *e)
{
	nng_msg *m;
	if (nng_msg_alloc(&m, e->reply_len) != 0)
		return NULL;
	if (e->stored_len == e->reply_len) {
		memcpy(nng_msg_body(m), e->reply, e->reply_len);
	} else if (LZ4_decompress_safe(e->reply, nng_msg_body(m), (int)e->stored_len,
				       (int)e->reply_len) != (int)e->reply_len) {
		nng_msg_free(m);
		return NULL;
	}
	return m;
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
	rc->bytes -= sizeof(*e) + e->len + e->stored_len;
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
