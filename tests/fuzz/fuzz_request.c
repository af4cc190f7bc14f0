/*
 * fuzz_request.c - whole requests against an in-process core: one input
 * is a session of up to MAX_FRAMES frames separated by FUZZ_SEP (fuzz.h),
 * as from one connection.
 *
 * Each frame is decoded as handle() in broker/loop.c does, then run
 * through the ops table (ops_find, op->fn) on the embedded engine of
 * fuzz_core.c.  What loop.c adds is left out (request IDs remembered,
 * groups of replies, the syncer), but for what a handler hands the loop:
 * an answer to remember on disk (remember), a claim's memo (answered again
 * at once with ops_claim_again; its leases held until the session ends,
 * then released as a closed connection's are), and a parked claim (run
 * again at each turn while it waits, answered empty at the session's end).
 *
 * Every answer is checked: a handler that fails packed nothing; a reply is
 * one msgpack map with v, the request's rid and ok, whose strings are all
 * valid UTF-8 and whose queues valid names; an error has a known code and
 * a sentence; a claim gives at most max jobs, all live leases, and its
 * repeat the same bytes; an outcome answered ok ends its lease, an
 * extension keeps it; a push the engine remembers is answered again with
 * its bytes.  The engine commits at the end of each turn.
 *
 * Help for the fuzzer: a 16-byte str "@e0..." stands for an ID an earlier
 * reply gave (fuzz.h); the pseudo-op "_turn" (field "ms": how far the
 * clock moves on) ends a turn, and "_restart" closes the engine and opens
 * it again on its directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_core.h"
#include "ops.h"

#define MAX_FRAMES 64
#define SEEN 16		   /* IDs of each kind remembered for placeholders */
#define MAX_HELD 1024	   /* leases held for the session's connection */
#define MAX_PARKED 8	   /* claims waiting */
#define MAX_REMEMBERED 8   /* pushes remembered by the engine */
#define MAX_RESTARTS 4
#define MAX_ADVANCE_MS (31ll * 86400000)

enum { SEEN_EXEC, SEEN_TOKEN, SEEN_CUE, SEEN_KINDS };

struct parked {
	struct claim_args a;
	uint8_t rid[PROTO_MAX_RID];
	size_t rid_len;
	bool rid_bin;
};

/* A push whose answer the engine remembers: a repeat within its time
 * gets the same bytes, even after a restart. */
struct remembered {
	uint8_t rid[PROTO_MAX_SCOPED_RID];
	size_t rid_len;
	uint64_t hash;
	int64_t expires_at; /* the engine's clock */
	char *reply;
	size_t len;
};

struct session {
	struct core *core;
	uint64_t seen[SEEN_KINDS][SEEN];
	unsigned n_seen[SEEN_KINDS];
	uint64_t held_ids[MAX_HELD], held_tokens[MAX_HELD];
	size_t n_held;
	struct parked parked[MAX_PARKED];
	size_t n_parked;
	struct remembered remembered[MAX_REMEMBERED];
	size_t n_remembered;
	unsigned restarts;
};

/* A reply being packed. */
struct reply {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void reply_init(struct reply *r)
{
	msgpack_sbuffer_init(&r->sb);
	msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

/* ---- IDs seen in replies, for placeholders ---- */

static void see(struct session *s, int kind, uint64_t v)
{
	if (v != 0)
		s->seen[kind][s->n_seen[kind]++ % SEEN] = v;
}

static bool is_key(const msgpack_object *k, const char *name)
{
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(name) &&
	       memcmp(k->via.str.ptr, name, k->via.str.size) == 0;
}

static int kind_of_key(const msgpack_object *k)
{
	static const struct {
		const char *key;
		int kind;
	} keys[] = {{"execution_id", SEEN_EXEC}, {"holder", SEEN_EXEC}, {"next", SEEN_EXEC},
		    {"lease_token", SEEN_TOKEN}, {"cue_id", SEEN_CUE}};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (is_key(k, keys[i].key))
			return keys[i].kind;
	return -1;
}

/* Remembers the IDs of a reply (redacted tokens do not parse); every
 * queue it names must be a valid name. */
static void harvest(struct session *s, const msgpack_object *o, const char *op)
{
	uint64_t v;
	if (o->type == MSGPACK_OBJECT_ARRAY)
		for (uint32_t i = 0; i < o->via.array.size; i++)
			harvest(s, &o->via.array.ptr[i], op);
	if (o->type != MSGPACK_OBJECT_MAP)
		return;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *val = &o->via.map.ptr[i].val;
		int kind = kind_of_key(&o->via.map.ptr[i].key);
		if (kind >= 0 && val->type == MSGPACK_OBJECT_STR &&
		    proto_id_parse(val->via.str.ptr, val->via.str.size, &v))
			see(s, kind, v);
		if (is_key(&o->via.map.ptr[i].key, "queue") &&
		    (val->type != MSGPACK_OBJECT_STR ||
		     !proto_queue_ok(val->via.str.ptr, val->via.str.size)))
			fuzz_fail("the reply to %s names a queue that is no valid name", op);
		harvest(s, val, op);
	}
}

/* Replaces each placeholder str of o, which points into buf (the
 * session's own copy of the frame), with the ID it stands for. */
static void patch_ids(const struct session *s, uint8_t *buf, const msgpack_object *o)
{
	if (o->type == MSGPACK_OBJECT_ARRAY)
		for (uint32_t i = 0; i < o->via.array.size; i++)
			patch_ids(s, buf, &o->via.array.ptr[i]);
	if (o->type == MSGPACK_OBJECT_MAP)
		for (uint32_t i = 0; i < o->via.map.size; i++)
			patch_ids(s, buf, &o->via.map.ptr[i].val);
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size != PROTO_ID_LEN ||
	    o->via.str.ptr[0] != FUZZ_PLACEHOLDER)
		return;
	const char *p = o->via.str.ptr;
	int kind = p[1] == 'e' ? SEEN_EXEC : p[1] == 't' ? SEEN_TOKEN : p[1] == 'c' ? SEEN_CUE : -1;
	if (kind < 0 || s->n_seen[kind] == 0)
		return;
	unsigned n = s->n_seen[kind] < SEEN ? s->n_seen[kind] : SEEN;
	unsigned back = (unsigned)(unsigned char)(p[2] - '0') % n;
	char id[PROTO_ID_LEN + 1];
	proto_id_fmt(s->seen[kind][(s->n_seen[kind] - 1 - back) % SEEN], id);
	memcpy(buf + (p - (const char *)buf), id, PROTO_ID_LEN);
}

/* ---- checking replies ---- */

static bool same_bytes(const msgpack_object *o, const void *p, size_t n, bool bin)
{
	if (o == NULL || o->type != (bin ? MSGPACK_OBJECT_BIN : MSGPACK_OBJECT_STR) ||
	    o->via.str.size != n)
		return false;
	return n == 0 || memcmp(o->via.str.ptr, p, n) == 0;
}

static void check_error_fields(const msgpack_object *root, const char *op)
{
	const char *err = NULL, *msg = NULL;
	size_t el = 0, ml = 0;
	proto_error e;
	if (proto_str(root, "err", true, 64, &err, &el, &e) != CUEQ_OK ||
	    proto_err_code(err, el) == CUEQ_ERR_PROTOCOL ||
	    proto_str(root, "msg", true, 1024, &msg, &ml, &e) != CUEQ_OK || ml == 0)
		fuzz_fail("the error reply to %s has no known err and a msg", op);
}

/* Every lease a claim's reply gives is live. */
static void check_claimed(const struct session *s, const msgpack_object *root, const char *op)
{
	const msgpack_object_array *jobs = NULL;
	proto_error e;
	if (proto_array(root, "jobs", true, 0, CUEQ_MAX_CLAIM, &jobs, &e) != CUEQ_OK)
		fuzz_fail("the reply to %s has no jobs: %s", op, e.msg);
	for (uint32_t i = 0; i < jobs->size; i++) {
		uint64_t id = 0, token = 0;
		if (proto_id(&jobs->ptr[i], "execution_id", true, &id, &e) != CUEQ_OK ||
		    proto_id(&jobs->ptr[i], "lease_token", true, &token, &e) != CUEQ_OK)
			fuzz_fail("job %u of the reply to %s: %s", i, op, e.msg);
		if (!s->core->eo->is_live(s->core->e, id, token))
			fuzz_fail("job %u of the reply to %s is not a live lease", i, op);
	}
}

/* CUEQ_FUZZ_TRACE: each reply on stderr after its op. */
static void trace(const msgpack_object *root, const char *op)
{
	fprintf(stderr, "%s: ", op);
	msgpack_object_print(stderr, *root);
	fputc('\n', stderr);
}

/* The reply to a request with rid (NULL: none): one map, v 1, the rid,
 * ok as given, all strings UTF-8.  Its IDs are remembered. */
static void check_reply(struct session *s, const struct reply *r, const void *rid,
			size_t rid_len, bool rid_bin, bool ok, const char *op)
{
	msgpack_unpacked up;
	proto_error e = {0};
	uint64_t v = 0;
	bool got = !ok;
	if (proto_decode(r->sb.data, r->sb.size, &up, &e) != CUEQ_OK)
		fuzz_fail("the reply to %s (%zu bytes) does not decode: %s", op, r->sb.size, e.msg);
	const msgpack_object *root = &up.data;
	fuzz_walk(root, 1, 1);
	if (proto_uint(root, "v", true, 0, UINT64_MAX, &v, &e) != CUEQ_OK || v != PROTO_VERSION ||
	    proto_bool(root, "ok", true, &got, &e) != CUEQ_OK || got != ok)
		fuzz_fail("the reply to %s has no v %d or no ok %d", op, PROTO_VERSION, ok);
	if (rid != NULL ? !same_bytes(proto_get(root, "rid"), rid, rid_len, rid_bin)
			: proto_get(root, "rid") != NULL)
		fuzz_fail("the reply to %s does not carry the request's rid", op);
	if (getenv("CUEQ_FUZZ_TRACE") != NULL)
		trace(root, op);
	if (!ok)
		check_error_fields(root, op);
	else if (strcmp(op, "claim") == 0)
		check_claimed(s, root, op);
	harvest(s, root, op);
	msgpack_unpacked_destroy(&up);
}

/* A request refused whole, answered as the loop answers it. */
static void answer_error(struct session *s, const void *rid, size_t rid_len, bool rid_bin,
			 const proto_error *err, const char *op)
{
	struct reply r;
	if (proto_err_name(err->code) == NULL || err->msg[0] == '\0')
		fuzz_fail("%s failed with code %d and message '%s'", op, err->code, err->msg);
	reply_init(&r);
	proto_reply_error(&r.pk, rid, rid_len, rid_bin, err->code, err->msg);
	check_reply(s, &r, rid, rid_len, rid_bin, false, op);
	msgpack_sbuffer_destroy(&r.sb);
}

/* ---- what the loop does with a handler's answer ---- */

static bool same_reply(const struct reply *r, const void *p, size_t n)
{
	return r->sb.size == n && memcmp(r->sb.data, p, n) == 0;
}

static void release_held(struct session *s)
{
	size_t ended = 0;
	if (s->n_held > 0)
		s->core->eo->release(s->core->e, s->held_ids, s->held_tokens, s->n_held, &ended);
	if (ended > s->n_held)
		fuzz_fail("release ended %zu of %zu leases", ended, s->n_held);
	s->n_held = 0;
}

/* A claim's memo: its leases are held for the connection, and a repeat
 * is answered from it, with the same rid: at once, the very bytes of the
 * first answer (first). */
static void use_memo(struct session *s, const struct opctx *c, bool detach, size_t n_jobs,
		     const struct reply *first)
{
	uint64_t ids[CUEQ_MAX_CLAIM], tokens[CUEQ_MAX_CLAIM];
	size_t n = ops_memo_leases(c->memo, c->memo_len, ids, tokens);
	if (n != (detach ? 0 : n_jobs))
		fuzz_fail("a claim's memo holds %zu leases for %zu jobs", n, n_jobs);
	if (s->n_held + n > MAX_HELD)
		release_held(s);
	memcpy(s->held_ids + s->n_held, ids, n * sizeof(ids[0]));
	memcpy(s->held_tokens + s->n_held, tokens, n * sizeof(tokens[0]));
	s->n_held += n;

	struct reply r;
	reply_init(&r);
	struct opctx again = {.eo = c->eo, .e = c->e, .pk = &r.pk, .rid = c->rid,
			      .rid_len = c->rid_len, .rid_bin = c->rid_bin};
	int rc = ops_claim_again(&again, c->memo, c->memo_len);
	if (rc != CUEQ_OK)
		answer_error(s, c->rid, c->rid_len, c->rid_bin, &again.err, "a repeated claim");
	else
		check_reply(s, &r, c->rid, c->rid_len, c->rid_bin, true, "claim");
	if (rc == CUEQ_OK && !same_reply(&r, first->sb.data, first->sb.size))
		fuzz_fail("a claim repeated at once is answered with other bytes than the first");
	msgpack_sbuffer_destroy(&r.sb);
}

/* How many jobs the claim reply in r gives (its memo must match). */
static size_t jobs_in(const struct reply *r)
{
	msgpack_unpacked up;
	proto_error e;
	size_t n = 0;
	if (proto_decode(r->sb.data, r->sb.size, &up, &e) == CUEQ_OK) {
		const msgpack_object *jobs = proto_get(&up.data, "jobs");
		n = jobs && jobs->type == MSGPACK_OBJECT_ARRAY ? jobs->via.array.size : 0;
	}
	msgpack_unpacked_destroy(&up);
	return n;
}

static struct remembered *remembered_of(struct session *s, const struct opctx *c)
{
	for (size_t i = 0; i < s->n_remembered; i++) {
		struct remembered *m = &s->remembered[i];
		if (m->rid_len == c->scoped_len && memcmp(m->rid, c->scoped_rid, m->rid_len) == 0)
			return m;
	}
	return NULL;
}

/* A push the engine remembers (well within its time) is answered again
 * with the first answer's bytes, or refused for other bytes. */
static void check_recalled(struct session *s, const struct opctx *c, const struct reply *r,
			   int rc)
{
	const struct remembered *m = remembered_of(s, c);
	if (m == NULL || core_now(s->core) + 500 >= m->expires_at)
		return;
	if (m->hash != c->body_hash && rc != CUEQ_ERR_BAD_REQUEST)
		fuzz_fail("a remembered request ID sent with other bytes is answered %d", rc);
	if (m->hash == c->body_hash && (rc != CUEQ_OK || !same_reply(r, m->reply, m->len)))
		fuzz_fail("a remembered push is answered again %d with other bytes", rc);
}

static void remember(struct session *s, const struct opctx *c, const struct reply *r)
{
	int64_t expires_at = core_now(s->core) + c->remember_ms;
	if (c->eo->remember(c->e, c->scoped_rid, c->scoped_len, c->body_hash, r->sb.data,
			    r->sb.size, expires_at) != 0)
		fuzz_fail("the engine could not remember a reply of %zu bytes", r->sb.size);
	struct remembered *m = remembered_of(s, c);
	if (m == NULL && s->n_remembered == MAX_REMEMBERED)
		return;
	if (m == NULL)
		m = &s->remembered[s->n_remembered++];
	free(m->reply);
	*m = (struct remembered){.rid_len = c->scoped_len, .hash = c->body_hash,
				 .expires_at = expires_at, .reply = malloc(r->sb.size),
				 .len = r->sb.size};
	memcpy(m->rid, c->scoped_rid, c->scoped_len);
	if (m->reply == NULL)
		fuzz_fail("out of memory");
	memcpy(m->reply, r->sb.data, r->sb.size);
}

/* After an ack or nack an item answered ok is no live lease, after an
 * extend it is one. */
static void check_outcomes(const struct session *s, const struct opctx *c,
			   const msgpack_object *root, bool live)
{
	const msgpack_object_array *items = NULL, *results = NULL;
	proto_error e;
	if (proto_array(c->req, "items", true, 1, CUEQ_MAX_BATCH, &items, &e) != CUEQ_OK ||
	    proto_array(root, "results", true, items->size, items->size, &results, &e) != CUEQ_OK)
		fuzz_fail("an outcome's reply has no result for each item: %s", e.msg);
	for (uint32_t i = 0; i < items->size; i++) {
		uint64_t id = 0, token = 0;
		bool ok = false;
		if (proto_bool(&results->ptr[i], "ok", true, &ok, &e) != CUEQ_OK)
			fuzz_fail("result %u of an outcome has no ok", i);
		if (!ok || proto_id(&items->ptr[i], "execution_id", true, &id, &e) != CUEQ_OK ||
		    proto_id(&items->ptr[i], "lease_token", true, &token, &e) != CUEQ_OK)
			continue;
		if (s->core->eo->is_live(s->core->e, id, token) != live)
			fuzz_fail("item %u answered ok is %sa live lease", i, live ? "not " : "");
	}
}

/* What an ok answer says, checked against the engine: a claim gives at
 * most max jobs, outcomes end leases, extensions keep them. */
static void check_effects(const struct session *s, const struct opctx *c, const struct reply *r,
			  const char *op, uint32_t max)
{
	bool outcome = strcmp(op, "ack") == 0 || strcmp(op, "nack") == 0;
	if (strcmp(op, "claim") == 0 && jobs_in(r) > max)
		fuzz_fail("a claim of at most %u gave %zu jobs", max, jobs_in(r));
	if (!outcome && strcmp(op, "extend") != 0)
		return;
	msgpack_unpacked up;
	proto_error e;
	if (proto_decode(r->sb.data, r->sb.size, &up, &e) != CUEQ_OK)
		fuzz_fail("the reply to %s does not decode", op);
	check_outcomes(s, c, &up.data, !outcome);
	msgpack_unpacked_destroy(&up);
}

/* The answer rc of handler op that packed r under c (a claim: detached,
 * of at most max). */
static void answer(struct session *s, struct opctx *c, const struct reply *r, int rc,
		   const char *op, bool detach, uint32_t max)
{
	if (rc != CUEQ_OK) {
		if (r->sb.size != 0)
			fuzz_fail("%s failed (%d: %s) after packing %zu bytes of its reply", op, rc,
				  c->err.msg, r->sb.size);
		if (c->err.code != rc)
			fuzz_fail("%s returned %d with err.code %d", op, rc, c->err.code);
		answer_error(s, c->rid, c->rid_len, c->rid_bin, &c->err, op);
		free(c->memo);
		return;
	}
	check_reply(s, r, c->rid, c->rid_len, c->rid_bin, true, op);
	check_effects(s, c, r, op, max);
	if (c->remember_ms > 0)
		remember(s, c, r);
	if (c->memo != NULL)
		use_memo(s, c, detach, jobs_in(r), r);
	free(c->memo);
}

/* ---- parked claims ---- */

static void park(struct session *s, const struct opctx *c)
{
	const struct claim_args *a = &c->park;
	if (a->qlen == 0 || a->qlen > PROTO_MAX_QUEUE || a->max == 0 || a->max > CUEQ_MAX_CLAIM ||
	    a->wait_ms <= 0 || a->wlen > PROTO_MAX_WORKER)
		fuzz_fail("a claim parked with queue %zu bytes, max %u, wait %lld", a->qlen, a->max,
			  (long long)a->wait_ms);
	if (s->n_parked == MAX_PARKED)
		return; /* the loop's bound answers it UNAVAILABLE */
	struct parked *p = &s->parked[s->n_parked++];
	p->a = *a;
	memcpy(p->rid, c->rid, c->rid_len);
	p->rid_len = c->rid_len;
	p->rid_bin = c->rid_bin;
}

/* Runs the parked claims that have work (all when final), as park.c does
 * at each turn. */
static void run_parked(struct session *s, bool final)
{
	const struct engine_ops *eo = s->core->eo;
	size_t kept = 0;
	for (size_t i = 0; i < s->n_parked; i++) {
		struct parked *p = &s->parked[i];
		if (!final && !eo->has_ready(s->core->e, p->a.queue, p->a.qlen)) {
			s->parked[kept++] = *p;
			continue;
		}
		struct reply r;
		reply_init(&r);
		struct opctx c = {.eo = eo, .e = s->core->e, .pk = &r.pk, .rid = p->rid,
				  .rid_len = p->rid_len, .rid_bin = p->rid_bin};
		int rc = ops_claim(&c, &p->a, final);
		if (rc == OP_PARKED) {
			free(c.memo);
			s->parked[kept++] = *p;
		} else {
			answer(s, &c, &r, rc, "claim", p->a.detach, p->a.max);
		}
		msgpack_sbuffer_destroy(&r.sb);
	}
	s->n_parked = kept;
}

/* ---- a frame ---- */

static void run_op(struct session *s, const struct op *op, const msgpack_object *root,
		   const struct proto_envelope *env, const struct principal *who,
		   const uint8_t *buf, size_t len)
{
	uint8_t scoped[PROTO_MAX_SCOPED_RID];
	struct reply r;
	reply_init(&r);
	struct opctx c = {
		.eo = s->core->eo,
		.e = s->core->e,
		.req = root,
		.pk = &r.pk,
		.rid = env->rid,
		.rid_len = env->rid_len,
		.rid_bin = env->rid_bin,
		.body_hash = proto_hash(PROTO_HASH_INIT, buf, len),
		.scoped_rid = scoped,
		.scoped_len = auth_scope_rid(env, 1, who, scoped), /* connection 1, as loop.c scopes */
		.by_client = env->cid != NULL,
		.who = who,
	};
	int rc = op->fn(&c);
	if (strcmp(op->name, "push") == 0)
		check_recalled(s, &c, &r, rc);
	if (rc == OP_PARKED) {
		if (r.sb.size != 0 || c.memo != NULL)
			fuzz_fail("a parked claim packed %zu bytes", r.sb.size);
		park(s, &c);
	} else {
		answer(s, &c, &r, rc, op->name, c.park.detach, c.park.max);
	}
	msgpack_sbuffer_destroy(&r.sb);
}

/* The pseudo-op "_turn": the turn ends, the clock moves on "ms". */
static void turn(struct session *s, const msgpack_object *root)
{
	uint64_t ms = 0;
	proto_error e;
	if (proto_uint(root, "ms", false, 0, MAX_ADVANCE_MS, &ms, &e) != CUEQ_OK)
		ms = 0;
	core_turn(s->core, (int64_t)ms);
	run_parked(s, false);
}

/* The envelope checked, the op found and allowed: as handle() does. */
static void run_request(struct session *s, const msgpack_object *root, const uint8_t *buf,
			size_t len)
{
	struct proto_envelope env;
	proto_error err = {0};
	if (proto_envelope(root, &env, &err) != CUEQ_OK)
		return answer_error(s, env.rid, env.rid_len, env.rid_bin, &err, "a request");
	if (env.op_len == 5 && memcmp(env.op, "_turn", 5) == 0)
		return turn(s, root);
	if (env.op_len == 8 && memcmp(env.op, "_restart", 8) == 0) {
		if (s->restarts++ < MAX_RESTARTS) /* each takes milliseconds */
			core_restart(s->core);
		return;
	}
	const struct op *op = ops_find(env.op, env.op_len);
	if (op == NULL) {
		proto_fail(&err, CUEQ_ERR_BAD_REQUEST, "unknown op; this broker knows: %s", ops_names());
		return answer_error(s, env.rid, env.rid_len, env.rid_bin, &err, "an unknown op");
	}
	const struct principal *who = core_who(s->core, root);
	if (who != NULL && !(op->roles & who->role)) {
		proto_fail(&err, CUEQ_ERR_UNAUTHORIZED, "'%s' may not %s", who->name, op->name);
		return answer_error(s, env.rid, env.rid_len, env.rid_bin, &err, op->name);
	}
	run_op(s, op, root, &env, who, buf, len);
}

static void run_frame(struct session *s, const uint8_t *data, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1); /* exactly its size: ASan sees past it */
	msgpack_unpacked up;
	proto_error err = {0};
	if (buf == NULL)
		return;
	memcpy(buf, data, len);
	if (len > PROTO_MAX_FRAME) {
		msgpack_unpacked_init(&up);
		proto_fail(&err, CUEQ_ERR_TOO_LARGE, "request is %zu bytes", len);
		answer_error(s, NULL, 0, false, &err, "a frame");
	} else if (proto_decode(buf, len, &up, &err) != CUEQ_OK) {
		answer_error(s, NULL, 0, false, &err, "a frame");
	} else {
		patch_ids(s, buf, &up.data);
		run_request(s, &up.data, buf, len);
	}
	msgpack_unpacked_destroy(&up);
	free(buf);
}

/* The next frame of a session: up to the separator or the end. */
static size_t next_frame(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + FUZZ_SEP_LEN <= n; i++)
		if (memcmp(p + i, FUZZ_SEP, FUZZ_SEP_LEN) == 0)
			return i;
	return n;
}

int FUZZ_REQUEST(const uint8_t *data, size_t size)
{
	static struct session s;
	memset(&s, 0, sizeof(s));
	s.core = core_begin();
	for (size_t off = 0, frames = 0; off <= size && frames < MAX_FRAMES; frames++) {
		size_t len = next_frame(data + off, size - off);
		run_frame(&s, data + off, len);
		off += len + FUZZ_SEP_LEN;
	}
	run_parked(&s, true);
	release_held(&s); /* the connection closes */
	for (size_t i = 0; i < s.n_remembered; i++)
		free(s.remembered[i].reply);
	core_turn(s.core, 0);
	return 0;
}

void fuzz_request_done(void)
{
	core_close();
}
