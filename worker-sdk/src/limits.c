/*
 * limits.c - flow control: cueq_set_limit (the broker's limit op) and
 * cueq_groups (the groups and limits a stats of one queue shows).
 */
#include "job.h"

#include <stdlib.h>
#include <string.h>

static int read_limit(const msgpack_object *m, cueq_limit *l, proto_error *e)
{
	uint64_t v[3] = { 0 };
	if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(e, CUEQ_ERR_BAD_REQUEST, "a limit is not a map");
	if (proto_uint(m, "concurrency", true, 0, UINT32_MAX, &v[0], e) != CUEQ_OK ||
	    proto_uint(m, "rate", true, 0, UINT32_MAX, &v[1], e) != CUEQ_OK ||
	    proto_uint(m, "per_ms", true, 0, INT64_MAX, &v[2], e) != CUEQ_OK)
		return e->code;
	*l = (cueq_limit){ (uint32_t)v[0], (uint32_t)v[1], (int64_t)v[2] };
	return CUEQ_OK;
}

int cueq_set_limit(cueq_client *c, const char *queue, const cueq_limit_spec *spec, cueq_limit *now)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	proto_error e = { 0 };
	cueq_limit got;
	int rc;

	if (c == NULL || spec == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_set_limit needs a client and a limit");
	if ((rc = sdk_check_queue(queue)) != CUEQ_OK || (rc = sdk_check_group(spec->group)) != CUEQ_OK)
		return rc;
	if (spec->group != NULL && spec->each_group)
		return sdk_fail(CUEQ_ERR_INVALID, "give a group or each_group, not both");
	if (spec->concurrency == CUEQ_LIMIT_KEEP && spec->rate == CUEQ_LIMIT_KEEP)
		return sdk_fail(CUEQ_ERR_INVALID, "give a concurrency or a rate (0 removes one)");
	if (spec->concurrency < CUEQ_LIMIT_KEEP || spec->concurrency > PROTO_MAX_CONCURRENCY)
		return sdk_fail(CUEQ_ERR_INVALID, "a concurrency of %lld: use 0 (none) to %d",
				(long long)spec->concurrency, PROTO_MAX_CONCURRENCY);
	if (spec->rate < CUEQ_LIMIT_KEEP || spec->rate > PROTO_MAX_RATE)
		return sdk_fail(CUEQ_ERR_INVALID, "a rate of %lld: use 0 (none) to %d claims per period",
				(long long)spec->rate, PROTO_MAX_RATE);
	if (spec->rate > 0 && (spec->per_ms < 1 || spec->per_ms > 86400000))
		return sdk_fail(CUEQ_ERR_INVALID, "a rate needs its period: per_ms from 1 ms to 1 day");
	size_t n = 1 + (spec->group != NULL || spec->each_group) +
		   (spec->concurrency != CUEQ_LIMIT_KEEP) + (spec->rate != CUEQ_LIMIT_KEEP) +
		   (spec->rate > 0);
	if ((rc = sdk_request_begin(c, &rq, "limit", n)) != CUEQ_OK)
		return rc;
	msgpack_packer *pk = sdk_pk(&rq);
	proto_kv_cstr(pk, "queue", queue);
	if (spec->group != NULL)
		proto_kv_cstr(pk, "group", spec->group);
	else if (spec->each_group)
		proto_kv_bool(pk, "each_group", true);
	if (spec->concurrency != CUEQ_LIMIT_KEEP)
		proto_kv_uint(pk, "concurrency", (uint64_t)spec->concurrency);
	if (spec->rate != CUEQ_LIMIT_KEEP)
		proto_kv_uint(pk, "rate", (uint64_t)spec->rate);
	if (spec->rate > 0)
		proto_kv_uint(pk, "per_ms", (uint64_t)spec->per_ms);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (read_limit(proto_get(rp.root, "limit"), &got, &e) != CUEQ_OK)
		rc = sdk_bad_reply("limit", &e);
	else if (now != NULL)
		*now = got;
	sdk_reply_free(&rp);
	return rc;
}

int cueq_groups(cueq_client *c, const char *queue, cueq_limit limits[2], cueq_group_stats **out,
		size_t *n)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	proto_error e = { 0 };
	const msgpack_object_array *qs, *gs;
	cueq_group_stats *g = NULL;
	cueq_limit lims[2] = { { 0 } };
	int rc;

	if (c == NULL || out == NULL || n == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "cueq_groups needs a client, a list and a count");
	*out = NULL;
	*n = 0;
	if ((rc = sdk_check_queue(queue)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, "stats", 1)) != CUEQ_OK)
		return rc;
	proto_kv_cstr(sdk_pk(&rq), "queue", queue);
	if ((rc = sdk_call(c, &rq, 0, 0, &rp)) != CUEQ_OK)
		return rc;
	if (proto_array(rp.root, "queues", true, 0, 1, &qs, &e) != CUEQ_OK)
		goto flaw;
	if (qs->size == 0) /* no such queue: no groups and no limits */
		goto done;
	const msgpack_object *q = &qs->ptr[0], *l = proto_get(q, "limits");
	if (read_limit(l, &lims[0], &e) != CUEQ_OK ||
	    read_limit(l ? proto_get(l, "per_group") : NULL, &lims[1], &e) != CUEQ_OK ||
	    proto_array(q, "groups", true, 0, 100000, &gs, &e) != CUEQ_OK)
		goto flaw;
	if (gs->size > 0 && (g = calloc(gs->size, sizeof(*g))) == NULL) {
		rc = sdk_fail(CUEQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < gs->size; i++) {
		const msgpack_object *x = &gs->ptr[i];
		const char *s;
		size_t sl;
		if (x->type != MSGPACK_OBJECT_MAP ||
		    proto_str(x, "group", true, CUEQ_GROUP_SIZE - 1, &s, &sl, &e) != CUEQ_OK ||
		    proto_uint(x, "ready", true, 0, UINT64_MAX, &g[i].ready, &e) != CUEQ_OK ||
		    proto_uint(x, "leased", true, 0, UINT64_MAX, &g[i].leased, &e) != CUEQ_OK ||
		    proto_uint(x, "unfinished", true, 0, UINT64_MAX, &g[i].unfinished, &e) !=
			    CUEQ_OK ||
		    proto_bool(x, "own_limit", true, &g[i].own_limit, &e) != CUEQ_OK ||
		    read_limit(proto_get(x, "limit"), &g[i].limit, &e) != CUEQ_OK) {
			if (e.code == CUEQ_OK)
				proto_fail(&e, CUEQ_ERR_BAD_REQUEST, "a group is not a map");
			goto flaw;
		}
		memcpy(g[i].group, s, sl);
	}
	*n = gs->size;
	goto done;
flaw:
	rc = sdk_bad_reply("stats", &e);
	goto out;
done:
	if (limits != NULL)
		limits[0] = lims[0], limits[1] = lims[1];
	*out = g;
	g = NULL;
out:
	free(g);
	sdk_reply_free(&rp);
	return rc;
}

void cueq_groups_free(cueq_group_stats *groups, size_t n)
{
	(void)n;
	free(groups);
}
