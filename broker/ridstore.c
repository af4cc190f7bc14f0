/*
 * ridstore.c - answers remembered by request ID on disk, for pushes sent
 * with retry_ttl_ms.
 *
 * A client that retries a push after a lost answer sends the very same
 * bytes under the same request ID; the loop's memory (ridcache) answers
 * that, but not once the broker restarted.  Giving every job its own
 * idempotency key covers the restart at the price of a read and two writes
 * per job, and two deletes when the key expires.  A remembered request
 * costs one record per request instead, written in the same batch as the
 * jobs it created, so after a crash either both are there or neither is.
 *
 *   idem     0 'r' rid              -> hash(8) expires_at(8) len(4) form(1) answer
 *   idemexp  expires_at(8) 0 'r' rid -> "": the same sweep as the keys'
 *
 * Queue names are never empty, so no idempotency key (queue 0 key) starts
 * with a zero byte.  The answer is LZ4-compressed when that makes it
 * smaller: a batch answer is mostly repeated field names and neighbouring
 * IDs.
 */
#include "embedded.h"

#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#define HEAD 21 /* hash, expires_at, len, form */
#define FORM_RAW 0
#define FORM_LZ4 1
#define KEYMAX (2 + PROTO_MAX_SCOPED_RID)

static size_t rid_key(uint8_t *out, const void *rid, size_t rid_len)
{
	out[0] = 0;
	out[1] = 'r';
	memcpy(out + 2, rid, rid_len);
	return 2 + rid_len;
}

int emb_remember(struct engine *e, const void *rid, size_t rid_len, uint64_t hash,
		 const void *reply, size_t len, int64_t expires_at)
{
	uint8_t k[KEYMAX], x[8 + KEYMAX];
	if (rid_len == 0 || rid_len > PROTO_MAX_SCOPED_RID || len > PROTO_TRANSPORT_MAX)
		return -1; /* no answer is bigger than a frame */
	size_t kl = rid_key(k, rid, rid_len);
	int bound = LZ4_compressBound((int)len);
	uint8_t *v = malloc(HEAD + (size_t)(bound > (int)len ? bound : (int)len));
	if (v == NULL)
		return -1; /* the loop keeps the answer in memory instead */
	int packed = LZ4_compress_default(reply, (char *)v + HEAD, (int)len, bound);
	uint8_t form = FORM_LZ4;
	if (packed <= 0 || (size_t)packed >= len) {
		memcpy(v + HEAD, reply, len);
		packed = (int)len;
		form = FORM_RAW;
	}
	store_be64(v, hash);
	store_be64(v + 8, (uint64_t)expires_at);
	store_be32(v + 16, (uint32_t)len);
	v[20] = form;
	store_put(e->st, CF_IDEM, k, kl, v, HEAD + (size_t)packed);
	free(v);
	store_be64(x, (uint64_t)expires_at);
	memcpy(x + 8, k, kl);
	store_put(e->st, CF_IDEMEXP, x, 8 + kl, "", 0);
	return 0;
}

int emb_rid_expiry(const char *v, size_t vl, int64_t *expires_at)
{
	if (vl < HEAD)
		return -1;
	*expires_at = (int64_t)store_get_be64((const uint8_t *)v + 8);
	return 0;
}

int emb_recall(struct engine *e, const void *rid, size_t rid_len, uint64_t hash, void **reply,
	       size_t *len, proto_error *err)
{
	uint8_t k[KEYMAX];
	char *v;
	size_t vl;
	int rc;

	*reply = NULL, *len = 0;
	if (rid_len == 0 || rid_len > PROTO_MAX_SCOPED_RID)
		return 0;
	rc = store_get(e->st, CF_IDEM, k, rid_key(k, rid, rid_len), &v, &vl);
	if (rc < 0) {
		proto_fail(err, CUEQ_ERR_UNAVAILABLE,
			   "the broker could not read the requests it remembers; try again");
		return -1;
	}
	if (rc == 0)
		return 0;
	const uint8_t *u = (const uint8_t *)v;
	size_t n = vl < HEAD ? 0 : store_get_be32(u + 16);
	int64_t expires_at = vl < HEAD ? 0 : (int64_t)store_get_be64(u + 8);
	if (vl < HEAD || expires_at <= emb_now(e) || n > PROTO_TRANSPORT_MAX) {
		store_free(v);
		return 0; /* expired (the sweep deletes it), or not ours to read */
	}
	if (store_get_be64(u) != hash) {
		store_free(v);
		return 2;
	}
	char *out = malloc(n ? n : 1);
	if (out == NULL) {
		store_free(v);
		proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker is out of memory; try again later");
		return -1;
	}
	bool ok = u[20] == FORM_RAW ? vl - HEAD == n
		: u[20] == FORM_LZ4 && LZ4_decompress_safe(v + HEAD, out, (int)(vl - HEAD), (int)n) == (int)n;
	if (ok && u[20] == FORM_RAW)
		memcpy(out, v + HEAD, n);
	store_free(v);
	if (!ok) {
		free(out);
		proto_fail(err, CUEQ_ERR_INTERNAL,
			   "the remembered answer of this request ID is damaged; send the request with a new ID");
		return -1;
	}
	*reply = out, *len = n;
	return 1;
}
