/*
 * peer_redis.c - Redis streams with a consumer group, through hiredis.
 *
 *   setup  XGROUP CREATE q g $ MKSTREAM
 *   push   XADD q * p <payload>
 *   claim  XREADGROUP GROUP g <consumer> COUNT 1 BLOCK <ms> STREAMS q >
 *          (the entry stays in the group's pending list until acked: the
 *          lease, reclaimed by XAUTOCLAIM after its idle time; nothing in
 *          these runs lives long enough to be reclaimed)
 *   ack    XACK q g <id>
 *   fill   XADDs pipelined, a chunk at a time
 *   count  XINFO GROUPS: the group's lag (not yet delivered) + pending
 *
 * Built without hiredis, every call says how to get it.
 */
#include "compare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#ifdef CMP_HAVE_HIREDIS
#include <hiredis/hiredis.h>

#define GROUP "g"

struct rd {
	redisContext *c;
	char stream[128];
	char consumer[48];
	redisReply *last; /* the last claim's reply: the payload lives in it */
};

static atomic_uint consumers;

static void rd_forget(struct rd *r)
{
	if (r->last != NULL)
		freeReplyObject(r->last);
	r->last = NULL;
}

static void rd_close(void *conn)
{
	struct rd *r = conn;

	if (r == NULL)
		return;
	rd_forget(r);
	if (r->c != NULL)
		redisFree(r->c);
	free(r);
}

static void *rd_open(const struct cmp_cfg *cfg)
{
	struct rd *r = calloc(1, sizeof(*r));
	struct timeval tv = { .tv_sec = 5 }, io = { .tv_sec = 15 };

	if (r == NULL)
		return NULL;
	snprintf(r->stream, sizeof(r->stream), "%s", cfg->queue);
	snprintf(r->consumer, sizeof(r->consumer), "c%d-%u", (int)getpid(),
		 atomic_fetch_add(&consumers, 1));
	r->c = redisConnectWithTimeout(cfg->host, cfg->port, tv);
	if (r->c == NULL || r->c->err) {
		cmp_err("redis: connect to %s:%d: %s", cfg->host, cfg->port,
			r->c ? r->c->errstr : "out of memory");
		rd_close(r);
		return NULL;
	}
	redisSetTimeout(r->c, io);
	return r;
}

/* A reply of the type wanted, or NULL after saying what came instead. */
static redisReply *expect(struct rd *r, redisReply *rep, int type, const char *what)
{
	if (rep == NULL) {
		cmp_err("redis: %s: %s", what, r->c->errstr[0] ? r->c->errstr : "no reply");
		return NULL;
	}
	if (rep->type == type)
		return rep;
	if (rep->type == REDIS_REPLY_ERROR)
		cmp_err("redis: %s: %s", what, rep->str);
	else
		cmp_err("redis: %s: reply of type %d, not %d", what, rep->type, type);
	freeReplyObject(rep);
	return NULL;
}

static int rd_setup(void *conn)
{
	struct rd *r = conn;
	redisReply *rep = redisCommand(r->c, "XGROUP CREATE %s " GROUP " $ MKSTREAM", r->stream);

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) == 0) {
		freeReplyObject(rep);
		return 0;
	}
	if ((rep = expect(r, rep, REDIS_REPLY_STATUS, "XGROUP CREATE")) == NULL)
		return -1;
	freeReplyObject(rep);
	return 0;
}

static int rd_ping(void *conn)
{
	struct rd *r = conn;
	redisReply *rep = expect(r, redisCommand(r->c, "PING"), REDIS_REPLY_STATUS, "PING");

	if (rep == NULL)
		return -1;
	freeReplyObject(rep);
	return 0;
}

static int rd_push(void *conn, const void *payload, size_t len)
{
	struct rd *r = conn;
	redisReply *rep = redisCommand(r->c, "XADD %s * p %b", r->stream, payload, len);

	if ((rep = expect(r, rep, REDIS_REPLY_STRING, "XADD")) == NULL)
		return -1;
	freeReplyObject(rep);
	return 0;
}

static int rd_claim(void *conn, int wait_ms, struct job_ref *j)
{
	struct rd *r = conn;
	redisReply *rep, *streams, *entries, *e, *fields;

	rd_forget(r);
	if (wait_ms > 0)
		rep = redisCommand(r->c,
				   "XREADGROUP GROUP " GROUP " %s COUNT 1 BLOCK %d STREAMS %s >",
				   r->consumer, wait_ms, r->stream);
	else
		rep = redisCommand(r->c, "XREADGROUP GROUP " GROUP " %s COUNT 1 STREAMS %s >",
				   r->consumer, r->stream);
	if (rep != NULL && rep->type == REDIS_REPLY_NIL) {
		freeReplyObject(rep);
		return 0;
	}
	if ((streams = expect(r, rep, REDIS_REPLY_ARRAY, "XREADGROUP")) == NULL)
		return -1;
	r->last = streams;
	/* [[stream, [[id, [field, value]]]]] */
	if (streams->elements != 1 || streams->element[0]->type != REDIS_REPLY_ARRAY ||
	    streams->element[0]->elements != 2 ||
	    (entries = streams->element[0]->element[1])->type != REDIS_REPLY_ARRAY ||
	    entries->elements != 1 || (e = entries->element[0])->type != REDIS_REPLY_ARRAY ||
	    e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
	    (fields = e->element[1])->type != REDIS_REPLY_ARRAY || fields->elements != 2 ||
	    fields->element[1]->type != REDIS_REPLY_STRING ||
	    e->element[0]->len >= sizeof(j->id)) {
		cmp_err("redis: XREADGROUP: a reply of an unexpected shape");
		rd_forget(r);
		return -1;
	}
	memcpy(j->id, e->element[0]->str, e->element[0]->len);
	j->id[e->element[0]->len] = '\0';
	j->payload = fields->element[1]->str;
	j->len = fields->element[1]->len;
	return 1;
}

static int rd_ack(void *conn, struct job_ref *j)
{
	struct rd *r = conn;
	redisReply *rep = redisCommand(r->c, "XACK %s " GROUP " %s", r->stream, j->id);
	int ok;

	rd_forget(r);
	if ((rep = expect(r, rep, REDIS_REPLY_INTEGER, "XACK")) == NULL)
		return -1;
	ok = rep->integer == 1;
	if (!ok)
		cmp_err("redis: XACK %s acknowledged %lld entries, not 1", j->id, rep->integer);
	freeReplyObject(rep);
	return ok ? 0 : -1;
}

static void rd_drop(void *conn, struct job_ref *j)
{
	(void)j;
	rd_forget(conn);
}

static int rd_fill(void *conn, const struct tally *t, size_t first, size_t end)
{
	struct rd *r = conn;
	unsigned char *buf = malloc(t->payload);
	size_t sent = 0;
	int rc = 0;

	if (buf == NULL)
		return -1;
	for (size_t seq = first; seq < end; seq++, sent++) {
		payload_fill(t, buf, seq, now_ns());
		if (redisAppendCommand(r->c, "XADD %s * p %b", r->stream, buf, t->payload) !=
		    REDIS_OK) {
			cmp_err("redis: cannot queue an XADD");
			rc = -1;
			break;
		}
	}
	free(buf);
	for (size_t i = 0; i < sent; i++) {
		void *v = NULL;
		redisReply *rep;

		if (redisGetReply(r->c, &v) != REDIS_OK) {
			cmp_err("redis: XADD (pipelined): %s", r->c->errstr);
			return -1;
		}
		if ((rep = expect(r, v, REDIS_REPLY_STRING, "XADD (pipelined)")) == NULL)
			rc = -1;
		else
			freeReplyObject(rep);
	}
	return rc;
}

static int rd_pending(void *conn, size_t *n)
{
	struct rd *r = conn;
	redisReply *rep = expect(r, redisCommand(r->c, "XINFO GROUPS %s", r->stream),
				 REDIS_REPLY_ARRAY, "XINFO GROUPS");
	long long lag = -1, pending = -1;

	if (rep == NULL)
		return -1;
	for (size_t g = 0; g < rep->elements; g++) {
		redisReply *grp = rep->element[g];
		bool ours = false;

		if (grp->type != REDIS_REPLY_ARRAY)
			continue;
		for (size_t k = 0; k + 1 < grp->elements; k += 2) {
			redisReply *key = grp->element[k], *val = grp->element[k + 1];

			if (key->type != REDIS_REPLY_STRING)
				continue;
			if (strcmp(key->str, "name") == 0 && val->type == REDIS_REPLY_STRING)
				ours = strcmp(val->str, GROUP) == 0;
			else if (strcmp(key->str, "pending") == 0 && val->type == REDIS_REPLY_INTEGER)
				pending = val->integer;
			else if (strcmp(key->str, "lag") == 0 && val->type == REDIS_REPLY_INTEGER)
				lag = val->integer;
		}
		if (ours)
			break;
		lag = pending = -1;
	}
	freeReplyObject(rep);
	if (pending < 0 || lag < 0) {
		cmp_err("redis: XINFO GROUPS gave no pending count and lag for group " GROUP);
		return -1;
	}
	*n = (size_t)(lag + pending);
	return 0;
}

const struct peer peer_redis = {
	.name = "redis",
	.polls = false,
	.open = rd_open,
	.close = rd_close,
	.setup = rd_setup,
	.ping = rd_ping,
	.push = rd_push,
	.claim = rd_claim,
	.ack = rd_ack,
	.drop = rd_drop,
	.fill = rd_fill,
	.pending = rd_pending,
};

#else /* no hiredis */

static void *rd_missing(const struct cmp_cfg *cfg)
{
	(void)cfg;
	cmp_err("redis: built without hiredis: install libhiredis-dev and build again");
	return NULL;
}

const struct peer peer_redis = { .name = "redis", .open = rd_missing };

#endif
