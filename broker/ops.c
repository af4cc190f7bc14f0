/*
 * ops.c - decoding, checking and answering each protocol operation.
 *
 * Every limit of PROTOCOL.md is checked here before the engine sees a
 * request; a request refused as a whole changes nothing.  Error messages
 * name the field (and the index in a batch) and say what is allowed.
 */
#include "ops.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cron.h"
#include "metrics.h"

#define DEFAULT_MAX_ATTEMPTS 5
#define DEFAULT_LEASE_MS 30000
#define MAX_DELAY_MS (10ll * 365 * 86400000)
#define DEFAULT_LIST 100
#define DEFAULT_MAX_EXPIRIES 5
#define MAX_EVERY_MS (10ll * 365 * 86400000)
#define MAX_BACKOFF_MS 86400000
#define PROTO_MAX_CRON 128
#define PROTO_MAX_TZ 64
/* Executions one retry all or purge reads: whole records, results and
 * errors of up to 64 KiB each, so a page stays a few MiB at most. */
#define OPERATE_PAGE 100

/* Prefixes c->err's message with "jobs[3]: ". */
static int at_index(struct opctx *c, const char *field, uint32_t i, int rc)
{
	char msg[sizeof(c->err.msg)];
	int n = snprintf(msg, sizeof(msg), "%s[%u]: ", field, i);
	if (n > 0 && (size_t)n < sizeof(msg)) {
		size_t room = sizeof(msg) - (size_t)n - 1, len = strlen(c->err.msg);
		memcpy(msg + n, c->err.msg, len < room ? len : room);
		msg[n + (int)(len < room ? len : room)] = '\0';
		memcpy(c->err.msg, msg, sizeof(msg));
	}
	return rc;
}

/* Copies at most 40 printable characters of s for an error message. */
static const char *printable(const char *s, size_t n, char out[48])
{
	size_t i;
	for (i = 0; i < n && i < 40; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'') ? s[i] : '?';
	if (n > 40)
		out[i++] = '.', out[i++] = '.', out[i++] = '.';
	out[i] = '\0';
	return out;
}

/* A name field (queue, step): 1-128 characters of [A-Za-z0-9._:-]. */
static int name_field(struct opctx *c, const msgpack_object *m, const char *field, bool required,
		      const char **q, size_t *n)
{
	char shown[48];
	int rc = proto_str(m, field, required, SIZE_MAX, q, n, &c->err);
	if (rc != CUEQ_OK || *q == NULL)
		return rc;
	if (!proto_queue_ok(*q, *n))
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "%s name '%s' is invalid: use 1-%d characters of A-Z a-z 0-9 . _ : -",
				  field, printable(*q, *n, shown), PROTO_MAX_QUEUE);
	return CUEQ_OK;
}

/* UNAUTHORIZED unless c's client may use queue q (auth.h prefixes). */
static int queue_allowed(struct opctx *c, const char *q, size_t n)
{
	char shown[48], prefixes[256];
	if (auth_queue_ok(c->who, q, n))
		return CUEQ_OK;
	return proto_fail(&c->err, CUEQ_ERR_UNAUTHORIZED,
			  "'%s' may use only queues whose names start with %s, not '%s'; use a token for that queue",
			  c->who->name, auth_prefixes_text(c->who, prefixes, sizeof(prefixes)),
			  printable(q, n, shown));
}

/* A queue field, which c's client must be allowed to use. */
static int queue_field(struct opctx *c, const msgpack_object *m, bool required, const char **q,
		       size_t *n)
{
	int rc = name_field(c, m, "queue", required, q, n);
	if (rc == CUEQ_OK && *q != NULL)
		rc = queue_allowed(c, *q, *n);
	return rc;
}

/* UNAUTHORIZED unless c's client may use the queue of execution or cue
 * id; an ID that names nothing passes (the op answers NOT_FOUND). */
static int id_allowed(struct opctx *c, uint64_t id)
{
	char q[PROTO_MAX_QUEUE + 1], s[PROTO_ID_LEN + 1], prefixes[256];
	size_t n = 0;
	if (c->who == NULL || c->who->n_prefixes == 0)
		return CUEQ_OK;
	int rc = c->eo->queue_of(c->e, id, q, &n);
	proto_id_fmt(id, s);
	if (rc < 0)
		return proto_fail(&c->err, CUEQ_ERR_UNAVAILABLE, "the broker could not read %s; try again", s);
	if (rc == 0 || auth_queue_ok(c->who, q, n))
		return CUEQ_OK;
	return proto_fail(&c->err, CUEQ_ERR_UNAUTHORIZED,
			  "%s is not in a queue that '%s' may use (queues starting with %s); use a token for its queue",
			  s, c->who->name,
			  auth_prefixes_text(c->who, prefixes, sizeof(prefixes)));
}

/* A required ID field naming an execution (or cue) c's client may use. */
static int id_field(struct opctx *c, const msgpack_object *m, const char *field, uint64_t *id)
{
	int rc = proto_id(m, field, true, id, &c->err);
	return rc != CUEQ_OK ? rc : id_allowed(c, *id);
}

/* An idempotency or unique key: 1-256 bytes. */
static int key_field(struct opctx *c, const msgpack_object *m, const char *field, const char **k,
		     size_t *n)
{
	int rc = proto_str(m, field, false, CUEQ_MAX_KEY, k, n, &c->err);
	if (rc == CUEQ_OK && *k != NULL && *n == 0)
		rc = proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST, "field '%s' must not be empty", field);
	return rc;
}

/* A job's canonical request, fed to both fingerprints an idempotency key
 * compares: SHA-256 (what a key stores now: no crafted request can match
 * another's) and the FNV-1a hash that keys stored by older brokers hold. */
struct fingerprint {
	uint64_t fnv;
	crypto_hash_sha256_state sha;
};

static void fp_add(struct fingerprint *f, const void *p, size_t n)
{
	f->fnv = proto_hash(f->fnv, p, n);
	crypto_hash_sha256_update(&f->sha, p, n);
}

static void job_fingerprint(struct eng_push *p, uint64_t delay, uint64_t run_at)
{
	struct fingerprint f = {.fnv = PROTO_HASH_INIT};
	uint64_t nums[6] = {(uint64_t)p->priority, p->max_attempts, p->lease_ms, delay, run_at,
			    p->payload_len};
	uint8_t has_unique = p->unique != NULL;
	crypto_hash_sha256_init(&f.sha);
	fp_add(&f, p->queue, p->queue_len);
	fp_add(&f, "", 1);
	fp_add(&f, nums, sizeof(nums));
	fp_add(&f, p->payload, p->payload_len);
	fp_add(&f, &has_unique, 1);
	if (p->unique)
		fp_add(&f, p->unique, p->unique_len);
	/* fields added later count only when they differ from their default,
	 * so keys stored by older brokers still match */
	if (p->max_expiries != DEFAULT_MAX_EXPIRIES || p->backoff.factor_milli != 0 ||
	    p->backoff.no_jitter || p->every_ms != 0 || p->cron != NULL) {
		uint64_t more[7] = {p->max_expiries, p->backoff.base_ms, p->backoff.max_ms,
				    p->backoff.factor_milli, p->backoff.no_jitter,
				    (uint64_t)p->every_ms,
				    (uint64_t)p->catch_up << 8 | p->overlap};
		fp_add(&f, more, sizeof(more));
		if (p->cron) {
			fp_add(&f, p->cron, p->cron_len);
			fp_add(&f, "", 1);
			fp_add(&f, p->tz ? p->tz : "", p->tz ? p->tz_len : 0);
		}
	}
	if (p->group) { /* only when set: keys stored before groups still match */
		fp_add(&f, "g", 1);
		fp_add(&f, p->group, p->group_len);
	}
	p->req_hash = f.fnv;
	crypto_hash_sha256_final(&f.sha, p->req_digest);

	/* each part on its own, for a mismatch to name */
	uint64_t h[ENG_REQ_FIELDS];
	uint64_t when[2] = {delay, run_at}, policy[5] = {p->max_expiries, p->backoff.base_ms,
							 p->backoff.max_ms, p->backoff.factor_milli,
							 p->backoff.no_jitter};
	uint64_t sched[2] = {(uint64_t)p->every_ms, (uint64_t)p->catch_up << 8 | p->overlap};
	h[ENG_F_PAYLOAD] = proto_hash(PROTO_HASH_INIT, p->payload, p->payload_len);
	h[ENG_F_PRIORITY] = proto_hash(PROTO_HASH_INIT, &p->priority, sizeof(p->priority));
	h[ENG_F_MAX_ATTEMPTS] = proto_hash(PROTO_HASH_INIT, &p->max_attempts, sizeof(p->max_attempts));
	h[ENG_F_LEASE] = proto_hash(PROTO_HASH_INIT, &p->lease_ms, sizeof(p->lease_ms));
	h[ENG_F_WHEN] = proto_hash(PROTO_HASH_INIT, when, sizeof(when));
	h[ENG_F_UNIQUE] = proto_hash(proto_hash(PROTO_HASH_INIT, &has_unique, 1), p->unique,
				     p->unique ? p->unique_len : 0);
	if (p->group) /* the same part as the unique key, named so */
		h[ENG_F_UNIQUE] = proto_hash(h[ENG_F_UNIQUE], p->group, p->group_len);
	h[ENG_F_POLICY] = proto_hash(PROTO_HASH_INIT, policy, sizeof(policy));
	h[ENG_F_SCHEDULE] = proto_hash(proto_hash(proto_hash(PROTO_HASH_INIT, sched, sizeof(sched)),
						  p->cron, p->cron ? p->cron_len + 1 : 0),
				       p->tz, p->tz ? p->tz_len : 0);
	for (int i = 0; i < ENG_REQ_FIELDS; i++)
		p->req_fields[i] = (uint32_t)(h[i] ^ h[i] >> 32);
}

/* One of the words of a choice field: its index, or BAD_REQUEST. */
static int choice_field(struct opctx *c, const msgpack_object *m, const char *field,
			const char *const *words, size_t n, uint8_t *out)
{
	const char *s = NULL;
	size_t len = 0;
	int rc = proto_str(m, field, false, 16, &s, &len, &c->err);
	if (rc != CUEQ_OK || s == NULL)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (strlen(words[i]) == len && memcmp(words[i], s, len) == 0) {
			*out = (uint8_t)i;
			return CUEQ_OK;
		}
	return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST, "field '%s' must be %s, %s%s%s", field,
			  words[0], words[1], n > 2 ? " or " : "", n > 2 ? words[2] : "");
}

/* backoff_factor: a number 1-100 (an int or a float), kept x 1000. */
static int factor_field(struct opctx *c, const msgpack_object *m, uint32_t *milli)
{
	const msgpack_object *o = proto_get(m, "backoff_factor");
	double f;
	if (o == NULL)
		return CUEQ_OK;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		f = (double)o->via.u64;
	else if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
		f = o->via.f64;
	else
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST, "field 'backoff_factor' must be a number");
	if (!(f >= 1.0 && f <= 100.0))
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "field 'backoff_factor' must be between 1 and 100");
	*milli = (uint32_t)(f * 1000.0 + 0.5);
	return CUEQ_OK;
}

/* The retry policy and the recurring schedule of a push job. */
static int push_policy(struct opctx *c, const msgpack_object *m, struct eng_push *p)
{
	static const char *const catch_up[] = {"one", "all", "none"};
	static const char *const overlap[] = {"allow", "skip"};
	uint64_t u, base = 1000, cap = 3600000, every = 0;
	bool jitter = true;
	int rc;

	u = DEFAULT_MAX_EXPIRIES;
	if ((rc = proto_uint(m, "max_expiries", false, 1, PROTO_MAX_ATTEMPTS, &u, &c->err)) != CUEQ_OK)
		return rc;
	p->max_expiries = (uint32_t)u;
	if ((rc = proto_uint(m, "backoff_ms", false, 0, MAX_BACKOFF_MS, &base, &c->err)) != CUEQ_OK ||
	    (rc = proto_uint(m, "backoff_max_ms", false, 0, MAX_BACKOFF_MS, &cap, &c->err)) != CUEQ_OK ||
	    (rc = proto_bool(m, "jitter", false, &jitter, &c->err)) != CUEQ_OK)
		return rc;
	p->backoff.factor_milli = 0;
	if ((rc = factor_field(c, m, &p->backoff.factor_milli)) != CUEQ_OK)
		return rc;
	bool custom = p->backoff.factor_milli != 0 || proto_get(m, "backoff_ms") != NULL ||
		      proto_get(m, "backoff_max_ms") != NULL;
	if (custom) { /* 0 keeps the engine's defaults, as records of older brokers */
		if (p->backoff.factor_milli == 0)
			p->backoff.factor_milli = 2000;
		p->backoff.base_ms = (uint32_t)base;
		p->backoff.max_ms = (uint32_t)cap;
	}
	p->backoff.no_jitter = !jitter;
	if ((rc = proto_uint(m, "every_ms", false, 1000, MAX_EVERY_MS, &every, &c->err)) != CUEQ_OK ||
	    (rc = proto_str(m, "cron", false, PROTO_MAX_CRON, &p->cron, &p->cron_len, &c->err)) !=
		    CUEQ_OK ||
	    (rc = proto_str(m, "tz", false, PROTO_MAX_TZ, &p->tz, &p->tz_len, &c->err)) != CUEQ_OK ||
	    (rc = choice_field(c, m, "catch_up", catch_up, 3, &p->catch_up)) != CUEQ_OK ||
	    (rc = choice_field(c, m, "overlap", overlap, 2, &p->overlap)) != CUEQ_OK)
		return rc;
	p->every_ms = (int64_t)every;
	bool recurring = every != 0 || p->cron != NULL;
	if (every != 0 && p->cron != NULL)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST, "give every_ms or cron, not both");
	if (p->tz != NULL && p->cron == NULL)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "field 'tz' is the zone of a cron schedule: give it with cron");
	if (!recurring && (proto_get(m, "catch_up") || proto_get(m, "overlap")))
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "catch_up and overlap are for recurring cues: give every_ms or cron too");
	if (recurring && p->unique != NULL)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "a recurring cue cannot have a unique key: use overlap skip to keep its fires from overlapping");
	if (p->cron != NULL) {
		struct cron *cr;
		char why[200];
		if (cron_parse(p->cron, p->cron_len, p->tz, p->tz_len, &cr, why, sizeof(why)) != 0)
			return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST, "%s", why);
		cron_free(cr);
	}
	return CUEQ_OK;
}

static const char *durability(const struct opctx *c)
{
	return c->synced ? "synced" : "written";
}

/* ---- ping ---- */

static int op_ping(struct opctx *c)
{
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 3);
	proto_kv_int(c->pk, "time", proto_now_ms());
	proto_kv_uint(c->pk, "epoch", c->eo->boot_id(c->e)); /* the wire's name for it */
	proto_kv_cstr(c->pk, "version", "0.1.0");
	return CUEQ_OK;
}

/* ---- push ---- */

static size_t max_payload = CUEQ_MAX_PAYLOAD;

void ops_set_max_payload(size_t bytes)
{
	max_payload = bytes;
}

static int push_job(struct opctx *c, const msgpack_object *m, struct eng_push *p, int64_t now)
{
	uint64_t u;
	int64_t pr = 0;
	int rc;

	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST, "must be a map");
	if ((rc = queue_field(c, m, true, &p->queue, &p->queue_len)) != CUEQ_OK ||
	    (rc = name_field(c, m, "group", false, &p->group, &p->group_len)) != CUEQ_OK)
		return rc;
	p->payload = "";
	if ((rc = proto_bytes(m, "payload", false, max_payload, &p->payload, &p->payload_len,
			      &c->err)) != CUEQ_OK)
		return rc;
	if ((rc = proto_int(m, "priority", false, -PROTO_MAX_PRIORITY, PROTO_MAX_PRIORITY, &pr,
			    &c->err)) != CUEQ_OK)
		return rc;
	p->priority = (int32_t)pr;
	u = DEFAULT_MAX_ATTEMPTS;
	if ((rc = proto_uint(m, "max_attempts", false, 1, PROTO_MAX_ATTEMPTS, &u, &c->err)) != CUEQ_OK)
		return rc;
	p->max_attempts = (uint32_t)u;
	u = DEFAULT_LEASE_MS;
	if ((rc = proto_uint(m, "lease_ms", false, PROTO_MIN_LEASE_MS, PROTO_MAX_LEASE_MS, &u,
			     &c->err)) != CUEQ_OK)
		return rc;
	p->lease_ms = (uint32_t)u;
	uint64_t delay = 0, run_at = 0;
	if ((rc = proto_uint(m, "delay_ms", false, 0, MAX_DELAY_MS, &delay, &c->err)) != CUEQ_OK ||
	    (rc = proto_uint(m, "run_at", false, 0, (uint64_t)now + MAX_DELAY_MS, &run_at, &c->err)) !=
		    CUEQ_OK)
		return rc;
	if (delay && run_at)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST, "give delay_ms or run_at, not both");
	p->run_at = run_at ? (int64_t)run_at : now + (int64_t)delay;
	if ((rc = key_field(c, m, "key", &p->key, &p->key_len)) != CUEQ_OK ||
	    (rc = key_field(c, m, "unique", &p->unique, &p->unique_len)) != CUEQ_OK)
		return rc;
	u = 0;
	if ((rc = proto_uint(m, "key_ttl_ms", false, 1000, 30 * 86400000ull, &u, &c->err)) != CUEQ_OK)
		return rc;
	p->key_ttl_ms = (int64_t)u;
	if ((rc = push_policy(c, m, p)) != CUEQ_OK)
		return rc;
	if ((p->every_ms || p->cron) && p->group)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "a recurring cue takes no group: its fires run in the queue's default group (limit the queue itself with cueq limit QUEUE)");
	if ((p->every_ms || p->cron) && !delay && !run_at)
		p->run_at = 0; /* the schedule's own first fire */
	if (p->key != NULL) /* only a key compares requests */
		job_fingerprint(p, delay, run_at);
	return CUEQ_OK;
}

/* retry_ttl_ms: the answer of this request is remembered by its request
 * ID for that long, on disk, so that a retry reaching a restarted broker
 * is answered from it.  CUEQ_OK (*answered: from the remembered answer)
 * or an error. */
static int push_recall(struct opctx *c, bool *answered)
{
	uint64_t ttl = 0;
	void *reply;
	size_t len;
	int rc = proto_uint(c->req, "retry_ttl_ms", false, 1000, 30 * 86400000ull, &ttl, &c->err);
	*answered = false;
	if (rc != CUEQ_OK)
		return rc;
	if (!c->by_client) { /* scoped by a connection, which a restart does not keep */
		if (ttl > 0)
			return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
					  "retry_ttl_ms needs a client ID: send 'cid' (the same on every request of this client, across reconnects)");
		return CUEQ_OK;
	}
	/* looked up without retry_ttl_ms too: an ID remembered on disk is
	 * refused for other bytes (the loop's memory no longer holds it) */
	rc = c->eo->recall(c->e, c->scoped_rid, c->scoped_len, c->body_hash, &reply, &len, &c->err);
	if (rc == 0) /* remembered before IDs were scoped (an upgrade within its time) */
		rc = c->eo->recall(c->e, c->rid, c->rid_len, c->body_hash, &reply, &len, &c->err);
	if (rc < 0)
		return c->err.code;
	if (rc == 2) { /* not remembered either: the first one's retries must still work */
		c->replayable = true;
		c->rid_reused = true;
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "this request ID was already used for a different request; use a new ID for each request and the same one only to resend it unchanged");
	}
	if (rc == 0) {
		c->remember_ms = (int64_t)ttl;
		c->replayable = ttl > 0;
		return CUEQ_OK;
	}
	c->replayable = true;
	c->recalled = true;
	c->pk->callback(c->pk->data, reply, len); /* the very bytes answered first */
	free(reply);
	*answered = true;
	return CUEQ_OK;
}

static int op_push(struct opctx *c)
{
	const msgpack_object_array *jobs;
	int64_t now = proto_now_ms();
	int rc = proto_array(c->req, "jobs", true, 1, CUEQ_MAX_BATCH, &jobs, &c->err);
	if (rc != CUEQ_OK)
		return rc;
	bool answered;
	if ((rc = push_recall(c, &answered)) != CUEQ_OK || answered)
		return rc;
	struct eng_push *in = calloc(jobs->size, sizeof(*in));
	struct eng_pushed *out = calloc(jobs->size, sizeof(*out));
	if (in == NULL || out == NULL) {
		rc = proto_fail(&c->err, CUEQ_ERR_UNAVAILABLE, "the broker is out of memory; try again later");
		goto done;
	}
	for (uint32_t i = 0; i < jobs->size; i++)
		if ((rc = push_job(c, &jobs->ptr[i], &in[i], now)) != CUEQ_OK) {
			at_index(c, "jobs", i, rc);
			goto done;
		}
	if ((rc = c->eo->push(c->e, in, jobs->size, out, &c->err)) != CUEQ_OK)
		goto done;
	metrics_pushed(out, jobs->size);
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 2);
	proto_key(c->pk, "results");
	msgpack_pack_array(c->pk, jobs->size);
	for (uint32_t i = 0; i < jobs->size; i++) {
		if (out[i].err.code != CUEQ_OK) {
			bool holder = out[i].err.code == CUEQ_ERR_CONFLICT;
			msgpack_pack_map(c->pk, 3 + holder);
			proto_kv_bool(c->pk, "ok", false);
			proto_kv_cstr(c->pk, "err", proto_err_name(out[i].err.code));
			proto_kv_text(c->pk, "msg", out[i].err.msg);
			if (holder)
				proto_kv_id(c->pk, "holder", out[i].holder);
			continue;
		}
		/* A duplicate says what became of the execution since: its
		 * state now and, once it has one, its outcome, so a producer
		 * retrying after a timeout learns what happened. */
		struct eng_view v = {0};
		proto_error gerr;
		bool now_known = out[i].duplicate && !out[i].recurring &&
				 c->eo->get(c->e, out[i].id, &v, &gerr) == CUEQ_OK;
		const struct eng_exec *x = &v.exec;
		int state = now_known ? x->state : out[i].state;
		bool res = now_known && x->result != NULL, err = now_known && x->error != NULL;
		msgpack_pack_map(c->pk, 7 + res + err);
		proto_kv_bool(c->pk, "ok", true);
		if (out[i].recurring)
			proto_kv_bool(c->pk, "recurring", true);
		else
			proto_kv_id(c->pk, "execution_id", out[i].id);
		proto_kv_id(c->pk, "cue_id", out[i].cue_id);
		proto_kv_cstr(c->pk, "state", proto_state_name(state));
		proto_kv_int(c->pk, "run_at", out[i].run_at);
		proto_kv_int(c->pk, "created_at", out[i].created_at);
		proto_kv_bool(c->pk, "duplicate", out[i].duplicate);
		if (res)
			proto_kv_text_n(c->pk, "result", x->result, x->result_len);
		if (err)
			proto_kv_text_n(c->pk, "error", x->error, x->error_len);
		c->eo->view_free(c->e, &v);
	}
	proto_kv_cstr(c->pk, "durability", durability(c));
done:
	free(in);
	free(out);
	return rc;
}

/* ---- claim ---- */

/* A claim's memo: what a repeat needs to answer as the first did, at 20
 * bytes a lease instead of the reply with its payloads:
 *   qlen(1) queue n(2) n x (id(8) token(8) lease_ms(4)), little-endian;
 * the top bit of n (at most CUEQ_MAX_CLAIM) marks a detached claim, whose
 * leases outlive the connection. */
#define MEMO_LEASE 20
#define MEMO_DETACHED 0x8000

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void make_memo(struct opctx *c, const char *queue, size_t qlen, bool detach,
		      const struct eng_claimed *got, size_t n)
{
	uint8_t *m = malloc(3 + qlen + n * MEMO_LEASE);
	if (m == NULL)
		return; /* the loop then keeps the whole reply instead */
	m[0] = (uint8_t)qlen;
	memcpy(m + 1, queue, qlen);
	put_le(m + 1 + qlen, n | (detach ? MEMO_DETACHED : 0), 2);
	for (size_t i = 0; i < n; i++) {
		uint8_t *x = m + 3 + qlen + i * MEMO_LEASE;
		put_le(x, got[i].id, 8);
		put_le(x + 8, got[i].token, 8);
		put_le(x + 16, got[i].lease_ms, 4);
	}
	free(c->memo);
	c->memo = m;
	c->memo_len = 3 + qlen + n * MEMO_LEASE;
}

static void pack_claimed(struct opctx *c, const char *queue, size_t qlen, struct eng_claimed *got,
			 size_t n)
{
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 1);
	proto_key(c->pk, "jobs");
	msgpack_pack_array(c->pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_map(c->pk, 8);
		proto_kv_id(c->pk, "execution_id", got[i].id);
		proto_kv_id(c->pk, "cue_id", got[i].cue_id);
		proto_kv_str(c->pk, "queue", queue, qlen);
		proto_kv_uint(c->pk, "attempt", got[i].attempt);
		proto_kv_id(c->pk, "lease_token", got[i].token);
		proto_kv_int(c->pk, "lease_deadline", got[i].deadline);
		proto_kv_uint(c->pk, "lease_ms", got[i].lease_ms);
		proto_kv_bin(c->pk, "payload", got[i].payload, got[i].payload_len);
		c->eo->claimed_free(c->e, &got[i]);
	}
}

int ops_claim(struct opctx *c, const struct claim_args *a, bool final)
{
	struct eng_claimed got[CUEQ_MAX_CLAIM];
	size_t n = 0;
	int rc = c->eo->claim(c->e, a->queue, a->qlen, a->max, a->lease_ms, a->worker, a->wlen, got,
			      &n, &c->err);
	if (rc != CUEQ_OK)
		return rc;
	if (n == 0 && !final)
		return OP_PARKED;
	c->early = c->synced;
	for (size_t i = 0; i < n; i++)
		c->early &= got[i].durable; /* a job not yet durable: wait with it */
	make_memo(c, a->queue, a->qlen, a->detach, got, n);
	pack_claimed(c, a->queue, a->qlen, got, n);
	return CUEQ_OK;
}

size_t ops_memo_leases(const void *memo, size_t len, uint64_t *ids, uint64_t *tokens)
{
	const uint8_t *m = memo;
	size_t qlen = len > 0 ? m[0] : 0, n;
	if (len < 3 + qlen || (get_le(m + 1 + qlen, 2) & MEMO_DETACHED) ||
	    (n = get_le(m + 1 + qlen, 2)) > CUEQ_MAX_CLAIM || len != 3 + qlen + n * MEMO_LEASE)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *x = m + 3 + qlen + i * MEMO_LEASE;
		ids[i] = get_le(x, 8), tokens[i] = get_le(x + 8, 8);
	}
	return n;
}

int ops_claim_again(struct opctx *c, const void *memo, size_t len)
{
	const uint8_t *m = memo;
	struct eng_claimed got[CUEQ_MAX_CLAIM];
	uint64_t ids[CUEQ_MAX_CLAIM], tokens[CUEQ_MAX_CLAIM];
	uint32_t lease_ms[CUEQ_MAX_CLAIM];
	size_t qlen = len > 0 ? m[0] : 0, n, live = 0;

	if (len < 3 + qlen || (n = get_le(m + 1 + qlen, 2) & ~MEMO_DETACHED) > CUEQ_MAX_CLAIM ||
	    len != 3 + qlen + n * MEMO_LEASE)
		return proto_fail(&c->err, CUEQ_ERR_INTERNAL, "the broker's memory of this claim is damaged");
	for (size_t i = 0; i < n; i++) {
		const uint8_t *x = m + 3 + qlen + i * MEMO_LEASE;
		ids[i] = get_le(x, 8), tokens[i] = get_le(x + 8, 8);
		lease_ms[i] = (uint32_t)get_le(x + 16, 4);
	}
	int rc = c->eo->claimed_again(c->e, ids, tokens, n, got, &live, &c->err);
	if (rc != CUEQ_OK)
		return rc;
	for (size_t i = 0, k = 0; i < live; i++) { /* the lengths, as first answered */
		while (k < n && ids[k] != got[i].id)
			k++;
		got[i].lease_ms = k < n ? lease_ms[k] : 0;
	}
	pack_claimed(c, (const char *)m + 1, qlen, got, live);
	return CUEQ_OK;
}

static int op_claim(struct opctx *c)
{
	struct claim_args *a = &c->park;
	const char *q, *w = NULL;
	uint64_t max = 1, lease = 0, wait = 0;
	int rc;

	if ((rc = queue_field(c, c->req, true, &q, &a->qlen)) != CUEQ_OK ||
	    (rc = proto_uint(c->req, "max", false, 1, CUEQ_MAX_CLAIM, &max, &c->err)) != CUEQ_OK ||
	    (rc = proto_uint(c->req, "lease_ms", false, PROTO_MIN_LEASE_MS, PROTO_MAX_LEASE_MS,
			     &lease, &c->err)) != CUEQ_OK ||
	    (rc = proto_uint(c->req, "wait_ms", false, 0, PROTO_MAX_WAIT_MS, &wait, &c->err)) !=
		    CUEQ_OK ||
	    (rc = proto_str(c->req, "worker", false, PROTO_MAX_WORKER, &w, &a->wlen, &c->err)) !=
		    CUEQ_OK ||
	    (rc = proto_bool(c->req, "detach", false, &a->detach, &c->err)) != CUEQ_OK)
		return rc;
	memcpy(a->queue, q, a->qlen);
	a->queue[a->qlen] = '\0';
	if (w)
		memcpy(a->worker, w, a->wlen);
	a->worker[a->wlen] = '\0';
	a->max = (uint32_t)max;
	a->lease_ms = (uint32_t)lease;
	a->wait_ms = (int64_t)wait;
	return ops_claim(c, a, wait == 0);
}

/* ---- ack, nack, extend ---- */

static int ids(struct opctx *c, const msgpack_object *m, uint64_t *id, uint64_t *token)
{
	int rc;
	if (m->type != MSGPACK_OBJECT_MAP)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST, "must be a map");
	if ((rc = proto_id(m, "execution_id", true, id, &c->err)) != CUEQ_OK ||
	    (rc = proto_id(m, "lease_token", true, token, &c->err)) != CUEQ_OK)
		return rc;
	return id_allowed(c, *id);
}

/* An item's refusal; a STALE_LEASE one says the execution's state now
 * (state >= 0), so a worker learns that it was cancelled. */
static void pack_item_error(msgpack_packer *pk, const proto_error *err, int state)
{
	bool with = err->code == CUEQ_ERR_STALE_LEASE && proto_state_name(state) != NULL;
	msgpack_pack_map(pk, 3 + with);
	proto_kv_bool(pk, "ok", false);
	proto_kv_cstr(pk, "err", proto_err_name(err->code) ? proto_err_name(err->code) : "INTERNAL");
	proto_kv_text(pk, "msg", err->msg);
	if (with)
		proto_kv_cstr(pk, "state", proto_state_name(state));
}

static int outcome(struct opctx *c, int kind)
{
	const msgpack_object_array *items;
	int rc = proto_array(c->req, "items", true, 1, CUEQ_MAX_BATCH, &items, &c->err);
	if (rc != CUEQ_OK)
		return rc;
	struct eng_outcome *o = calloc(items->size, sizeof(*o));
	if (o == NULL)
		return proto_fail(&c->err, CUEQ_ERR_UNAVAILABLE, "the broker is out of memory; try again later");
	for (uint32_t i = 0; i < items->size; i++) {
		const msgpack_object *m = &items->ptr[i];
		uint64_t retry = UINT64_MAX;
		o[i].kind = kind;
		o[i].retry_in_ms = -1;
		if ((rc = ids(c, m, &o[i].id, &o[i].token)) != CUEQ_OK ||
		    (rc = proto_str(m, kind == ENG_ACK ? "result" : "error", false, CUEQ_MAX_TEXT,
				    &o[i].text, &o[i].text_len, &c->err)) != CUEQ_OK ||
		    (kind == ENG_NACK &&
		     ((rc = proto_uint(m, "retry_in_ms", false, 0, MAX_DELAY_MS, &retry, &c->err)) !=
			      CUEQ_OK ||
		      (rc = proto_bool(m, "terminal", false, &o[i].terminal, &c->err)) != CUEQ_OK))) {
			at_index(c, "items", i, rc);
			free(o);
			return rc;
		}
		if (retry != UINT64_MAX)
			o[i].retry_in_ms = (int64_t)retry;
	}
	c->eo->finish(c->e, o, items->size);
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 2);
	proto_key(c->pk, "results");
	msgpack_pack_array(c->pk, items->size);
	for (uint32_t i = 0; i < items->size; i++) {
		if (o[i].err.code != CUEQ_OK) {
			pack_item_error(c->pk, &o[i].err, o[i].state);
			continue;
		}
		bool again = kind == ENG_NACK && o[i].state != CUEQ_DEAD;
		msgpack_pack_map(c->pk, 2 + again);
		proto_kv_bool(c->pk, "ok", true);
		proto_kv_cstr(c->pk, "state", proto_state_name(o[i].state));
		if (again)
			proto_kv_int(c->pk, "run_at", o[i].run_at);
	}
	proto_kv_cstr(c->pk, "durability", durability(c));
	free(o);
	return CUEQ_OK;
}

static int op_ack(struct opctx *c)
{
	return outcome(c, ENG_ACK);
}

static int op_nack(struct opctx *c)
{
	return outcome(c, ENG_NACK);
}

static int op_extend(struct opctx *c)
{
	const msgpack_object_array *items;
	int rc = proto_array(c->req, "items", true, 1, CUEQ_MAX_BATCH, &items, &c->err);
	if (rc != CUEQ_OK)
		return rc;
	struct eng_extend *x = calloc(items->size, sizeof(*x));
	if (x == NULL)
		return proto_fail(&c->err, CUEQ_ERR_UNAVAILABLE, "the broker is out of memory; try again later");
	for (uint32_t i = 0; i < items->size; i++) {
		uint64_t lease = 0;
		if ((rc = ids(c, &items->ptr[i], &x[i].id, &x[i].token)) != CUEQ_OK ||
		    (rc = proto_uint(&items->ptr[i], "lease_ms", true, PROTO_MIN_LEASE_MS,
				     PROTO_MAX_LEASE_MS, &lease, &c->err)) != CUEQ_OK) {
			at_index(c, "items", i, rc);
			free(x);
			return rc;
		}
		x[i].lease_ms = (uint32_t)lease;
	}
	c->eo->extend(c->e, x, items->size);
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 1);
	proto_key(c->pk, "results");
	msgpack_pack_array(c->pk, items->size);
	for (uint32_t i = 0; i < items->size; i++) {
		if (x[i].err.code != CUEQ_OK) {
			pack_item_error(c->pk, &x[i].err, x[i].state);
			continue;
		}
		msgpack_pack_map(c->pk, 2);
		proto_kv_bool(c->pk, "ok", true);
		proto_kv_int(c->pk, "lease_deadline", x[i].deadline);
	}
	free(x);
	return CUEQ_OK;
}

/* ---- the step ledger ---- */

static void pack_steps(msgpack_packer *pk, const struct eng_view *v)
{
	msgpack_pack_array(pk, v->n_steps);
	for (size_t i = 0; i < v->n_steps; i++) {
		msgpack_pack_map(pk, 3);
		proto_kv_str(pk, "name", v->steps[i].name, v->steps[i].name_len);
		proto_kv_bin(pk, "value", v->steps[i].value, v->steps[i].value_len);
		proto_kv_int(pk, "at", v->steps[i].at);
	}
}

static int op_step_set(struct opctx *c)
{
	uint64_t id, token;
	const char *name, *value = NULL;
	size_t nlen, vlen = 0;
	int64_t at = 0;
	int rc;

	if ((rc = ids(c, c->req, &id, &token)) != CUEQ_OK ||
	    (rc = name_field(c, c->req, "name", true, &name, &nlen)) != CUEQ_OK ||
	    (rc = proto_bytes(c->req, "value", true, CUEQ_MAX_STEP_VALUE, &value, &vlen, &c->err)) !=
		    CUEQ_OK ||
	    (rc = c->eo->step_set(c->e, id, token, name, nlen, value, vlen, &at, &c->err)) != CUEQ_OK)
		return rc;
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 2);
	proto_kv_int(c->pk, "at", at);
	proto_kv_cstr(c->pk, "durability", durability(c));
	return CUEQ_OK;
}

static int read_steps(struct opctx *c, bool one)
{
	struct eng_view v = {0};
	const char *name = NULL;
	size_t nlen = 0;
	uint64_t id;
	int rc;

	if ((rc = id_field(c, c->req, "execution_id", &id)) != CUEQ_OK ||
	    (one && (rc = name_field(c, c->req, "name", true, &name, &nlen)) != CUEQ_OK))
		return rc;
	rc = c->eo->steps(c->e, id, name, nlen, &v, &c->err);
	if (rc == CUEQ_OK && one) {
		proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 3);
		proto_kv_str(c->pk, "name", v.steps[0].name, v.steps[0].name_len);
		proto_kv_bin(c->pk, "value", v.steps[0].value, v.steps[0].value_len);
		proto_kv_int(c->pk, "at", v.steps[0].at);
	} else if (rc == CUEQ_OK) {
		proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 1);
		proto_key(c->pk, "steps");
		pack_steps(c->pk, &v);
	}
	c->eo->view_free(c->e, &v);
	return rc;
}

static int op_step_get(struct opctx *c)
{
	return read_steps(c, true);
}

static int op_steps(struct opctx *c)
{
	return read_steps(c, false);
}

/* ---- get, list, stats ---- */

/* A lease token as get and list show it: its last four digits only.  The
 * full token goes to the worker that claimed it, in the claim's answer,
 * and nowhere else: whoever can read an execution cannot finish it. */
static void pack_token_redacted(msgpack_packer *pk, const char *key, uint64_t token)
{
	char s[PROTO_ID_LEN + 1];
	proto_id_fmt(token, s);
	memset(s, '*', PROTO_ID_LEN - 4);
	proto_kv_str(pk, key, s, PROTO_ID_LEN);
}

static void pack_exec(msgpack_packer *pk, const struct eng_view *v, bool detail)
{
	const struct eng_exec *r = &v->exec;
	bool leased = r->state == CUEQ_LEASED && r->token != 0;
	size_t n = 13 + 2 * leased + (r->finished_at != 0) + (r->result != NULL) + (r->group != NULL) +
		   (r->error != NULL) + (r->reason != NULL) + 3 * detail +
		   (detail && v->unique != NULL) + (detail && v->hist_dropped > 0);

	msgpack_pack_map(pk, n);
	proto_kv_id(pk, "execution_id", r->id);
	proto_kv_id(pk, "cue_id", r->cue_id);
	proto_kv_str(pk, "queue", r->queue, r->queue_len);
	if (r->group != NULL)
		proto_kv_str(pk, "group", r->group, r->group_len);
	proto_kv_cstr(pk, "state", proto_state_name(r->state) ? proto_state_name(r->state) : "unknown");
	proto_kv_int(pk, "priority", r->priority);
	proto_kv_uint(pk, "attempt", r->attempt);
	proto_kv_uint(pk, "max_attempts", r->max_attempts);
	proto_kv_uint(pk, "expiries", r->expiries);
	proto_kv_uint(pk, "max_expiries", r->max_expiries);
	proto_kv_uint(pk, "failures", r->failures);
	proto_kv_uint(pk, "lease_ms", r->lease_ms);
	proto_kv_int(pk, "created_at", r->created_at);
	proto_kv_int(pk, "run_at", r->run_at);
	if (leased) {
		proto_kv_int(pk, "lease_deadline", r->deadline);
		pack_token_redacted(pk, "lease_token", r->token);
	}
	if (r->finished_at != 0)
		proto_kv_int(pk, "finished_at", r->finished_at);
	if (r->result != NULL)
		proto_kv_text_n(pk, "result", r->result, r->result_len);
	if (r->error != NULL)
		proto_kv_text_n(pk, "error", r->error, r->error_len);
	if (r->reason != NULL)
		proto_kv_text_n(pk, "reason", r->reason, r->reason_len);
	if (!detail)
		return;
	proto_kv_bin(pk, "payload", v->payload ? v->payload : "", v->payload_len);
	if (v->unique != NULL)
		proto_kv_text_n(pk, "unique", v->unique, v->unique_len);
	proto_key(pk, "steps");
	pack_steps(pk, v);
	if (v->hist_dropped > 0)
		proto_kv_uint(pk, "history_dropped", v->hist_dropped);
	proto_key(pk, "history");
	msgpack_pack_array(pk, v->n_hist);
	for (size_t i = 0; i < v->n_hist; i++) {
		const struct eng_event *h = &v->hist[i];
		msgpack_pack_map(pk, 2 + (h->attempt != 0) + (h->token != 0) + (h->detail != NULL));
		proto_kv_int(pk, "at", h->at);
		proto_kv_cstr(pk, "event", eng_event_name(h->kind));
		if (h->attempt != 0)
			proto_kv_uint(pk, "attempt", h->attempt);
		if (h->token != 0)
			pack_token_redacted(pk, "lease_token", h->token);
		if (h->detail != NULL)
			proto_kv_text_n(pk, "detail", h->detail, h->detail_len);
	}
}

static const char *const CATCH_UP_NAMES[] = {"one", "all", "none"};
static const char *const OVERLAP_NAMES[] = {"allow", "skip"};

static void pack_cue(msgpack_packer *pk, const struct eng_cue *q, bool detail)
{
	size_t nn = 0;
	while (nn < ENG_CUE_NEXT && q->next[nn] != 0)
		nn++;
	msgpack_pack_map(pk, 15 + (q->every_ms == 0) + detail);
	proto_kv_id(pk, "cue_id", q->id);
	proto_kv_cstr(pk, "queue", q->queue);
	proto_kv_cstr(pk, "state", q->cancelled ? "cancelled" : "active");
	if (q->every_ms != 0) {
		proto_kv_int(pk, "every_ms", q->every_ms);
	} else {
		proto_kv_cstr(pk, "cron", q->cron);
		proto_kv_cstr(pk, "tz", q->tz);
	}
	proto_kv_cstr(pk, "catch_up", CATCH_UP_NAMES[q->catch_up % 3]);
	proto_kv_cstr(pk, "overlap", OVERLAP_NAMES[q->overlap % 2]);
	proto_kv_int(pk, "priority", q->priority);
	proto_kv_uint(pk, "max_attempts", q->max_attempts);
	proto_kv_uint(pk, "max_expiries", q->max_expiries);
	proto_kv_uint(pk, "lease_ms", q->lease_ms);
	proto_kv_int(pk, "created_at", q->created_at);
	proto_kv_uint(pk, "fires", q->fires);
	proto_kv_uint(pk, "skipped", q->skipped);
	proto_key(pk, "next_fires");
	msgpack_pack_array(pk, nn);
	for (size_t i = 0; i < nn; i++)
		msgpack_pack_int64(pk, q->next[i]);
	if (detail)
		proto_kv_bin(pk, "payload", q->payload ? q->payload : "", q->payload_len);
	proto_key(pk, "executions");
	msgpack_pack_array(pk, q->n_last);
	for (size_t i = 0; i < q->n_last; i++) {
		const char *st = proto_state_name(q->last[i].state);
		msgpack_pack_map(pk, 3);
		proto_kv_id(pk, "execution_id", q->last[i].id);
		proto_kv_int(pk, "fire_at", q->last[i].fire_at);
		proto_kv_cstr(pk, "state", st ? st : "gone");
	}
}

static int op_get(struct opctx *c)
{
	struct eng_view v = {0};
	uint64_t id;
	int rc = id_field(c, c->req, "execution_id", &id);
	if (rc != CUEQ_OK)
		return rc;
	rc = c->eo->get(c->e, id, &v, &c->err);
	if (rc == CUEQ_OK) {
		proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 1);
		proto_key(c->pk, "execution");
		pack_exec(c->pk, &v, true);
	}
	c->eo->view_free(c->e, &v); /* a failed get may have filled part of it */
	if (rc == CUEQ_ERR_NOT_FOUND) { /* a recurring cue's ID, maybe */
		struct eng_cue q = {0};
		proto_error err2;
		int rc2 = c->eo->cue_get(c->e, id, &q, &err2);
		if (rc2 == CUEQ_OK) {
			proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 1);
			proto_key(c->pk, "cue");
			pack_cue(c->pk, &q, true);
			rc = CUEQ_OK;
		} else if (rc2 != CUEQ_ERR_NOT_FOUND) {
			c->err = err2;
			rc = rc2;
		}
		free(q.payload);
	}
	return rc;
}

/* ---- wait ---- */

static bool has_outcome(int state)
{
	return state == CUEQ_SUCCEEDED || state == CUEQ_DEAD || state == CUEQ_CANCELLED;
}

int ops_wait(struct opctx *c, const struct claim_args *a, bool final)
{
	struct eng_view v = {0};
	char s[PROTO_ID_LEN + 1];

	if (!final && c->eo->unfinished(c->e, a->outcome_of))
		return OP_PARKED;
	int rc = c->eo->get(c->e, a->outcome_of, &v, &c->err);
	if (rc == CUEQ_OK) {
		proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 2);
		proto_key(c->pk, "execution");
		pack_exec(c->pk, &v, false);
		proto_kv_bool(c->pk, "finished", has_outcome(v.exec.state));
	} else if (rc == CUEQ_ERR_NOT_FOUND) {
		struct eng_cue q = {0};
		proto_error err2;
		if (c->eo->cue_get(c->e, a->outcome_of, &q, &err2) == CUEQ_OK) {
			proto_id_fmt(a->outcome_of, s);
			rc = proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
					"%s is a recurring cue, which has no outcome of its own: wait for one of its executions (cueq cues QUEUE lists them)",
					s);
		}
		free(q.payload);
	}
	c->eo->view_free(c->e, &v);
	return rc;
}

static int op_wait(struct opctx *c)
{
	struct claim_args *a = &c->park;
	uint64_t id, wait = 0;
	int rc;

	if ((rc = id_field(c, c->req, "execution_id", &id)) != CUEQ_OK ||
	    (rc = proto_uint(c->req, "wait_ms", false, 0, PROTO_MAX_WAIT_MS, &wait, &c->err)) !=
		    CUEQ_OK)
		return rc;
	memset(a, 0, sizeof(*a));
	a->outcome_of = id;
	a->wait_ms = (int64_t)wait;
	return ops_wait(c, a, wait == 0);
}

static int op_cues(struct opctx *c)
{
	const char *q;
	size_t qlen, n = 0;
	struct eng_cue *v = NULL;
	int rc = queue_field(c, c->req, true, &q, &qlen);
	if (rc != CUEQ_OK || (rc = c->eo->cues(c->e, q, qlen, CUEQ_MAX_BATCH, &v, &n, &c->err)) != CUEQ_OK)
		return rc;
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 1);
	proto_key(c->pk, "cues");
	msgpack_pack_array(c->pk, n);
	for (size_t i = 0; i < n; i++)
		pack_cue(c->pk, &v[i], false);
	free(v);
	return CUEQ_OK;
}

/* ---- the operator ---- */

static int op_cancel(struct opctx *c)
{
	uint64_t id;
	int kind = 0;
	int rc = id_field(c, c->req, "id", &id);
	if (rc != CUEQ_OK || (rc = c->eo->cancel(c->e, id, &kind, &c->err)) != CUEQ_OK)
		return rc;
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 3);
	proto_kv_cstr(c->pk, "kind", kind == ENG_KIND_CUE ? "cue" : "execution");
	proto_kv_cstr(c->pk, "state", "cancelled");
	proto_kv_cstr(c->pk, "durability", durability(c));
	return CUEQ_OK;
}

static void pack_count(struct opctx *c, const char *field, size_t n, bool more)
{
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 3);
	proto_kv_uint(c->pk, field, n);
	proto_kv_bool(c->pk, "more", more);
	proto_kv_cstr(c->pk, "durability", durability(c));
}

static int op_retry(struct opctx *c)
{
	uint64_t id = 0;
	const char *q = NULL;
	size_t qlen = 0, n = 0;
	bool all = false, more = false;
	int rc;
	if ((rc = proto_id(c->req, "execution_id", false, &id, &c->err)) != CUEQ_OK ||
	    (rc = queue_field(c, c->req, false, &q, &qlen)) != CUEQ_OK ||
	    (rc = proto_bool(c->req, "all", false, &all, &c->err)) != CUEQ_OK)
		return rc;
	/* named, not nonzero: "0000000000000000" beside all was taken for
	 * no ID (the engine's "all" is id 0), so the request retried the queue */
	const msgpack_object *named = proto_get(c->req, "execution_id");
	bool one = named != NULL && named->type != MSGPACK_OBJECT_NIL;
	if (one == (q != NULL && all))
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "give execution_id, or queue with all: true (not both)");
	if (one && id == 0) /* no ID is 0: its boot epoch never is */
		return proto_fail(&c->err, CUEQ_ERR_NOT_FOUND, "no execution 0000000000000000");
	if (one && (rc = id_allowed(c, id)) != CUEQ_OK)
		return rc;
	if ((rc = c->eo->retry(c->e, id, q, qlen, OPERATE_PAGE, &n, &more, &c->err)) != CUEQ_OK)
		return rc;
	pack_count(c, "retried", n, more);
	return CUEQ_OK;
}

static int op_purge(struct opctx *c)
{
	const char *q, *st;
	size_t qlen, stlen, n = 0;
	bool more = false;
	int rc, state;
	if ((rc = queue_field(c, c->req, true, &q, &qlen)) != CUEQ_OK ||
	    (rc = proto_str(c->req, "state", true, 16, &st, &stlen, &c->err)) != CUEQ_OK)
		return rc;
	state = proto_state_parse(st, stlen);
	if (state < CUEQ_SUCCEEDED)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "purge takes state dead, succeeded or cancelled (unfinished executions are cancelled first)");
	if ((rc = c->eo->purge(c->e, q, qlen, state, OPERATE_PAGE, &n, &more, &c->err)) != CUEQ_OK)
		return rc;
	pack_count(c, "purged", n, more);
	return CUEQ_OK;
}

static int pause_or_resume(struct opctx *c, bool paused)
{
	const char *q;
	size_t qlen;
	int rc = queue_field(c, c->req, true, &q, &qlen);
	if (rc != CUEQ_OK || (rc = c->eo->pause(c->e, q, qlen, paused, &c->err)) != CUEQ_OK)
		return rc;
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 2);
	proto_kv_bool(c->pk, "paused", paused);
	proto_kv_cstr(c->pk, "durability", durability(c));
	return CUEQ_OK;
}

static int op_pause(struct opctx *c)
{
	return pause_or_resume(c, true);
}

static int op_resume(struct opctx *c)
{
	return pause_or_resume(c, false);
}

static int op_list(struct opctx *c)
{
	const char *q, *st = NULL;
	size_t qlen, stlen = 0, n = 0;
	uint64_t limit = DEFAULT_LIST, after = 0, next = 0;
	int state = -1, rc;

	if ((rc = queue_field(c, c->req, true, &q, &qlen)) != CUEQ_OK ||
	    (rc = proto_str(c->req, "state", false, 16, &st, &stlen, &c->err)) != CUEQ_OK ||
	    (rc = proto_uint(c->req, "limit", false, 1, CUEQ_MAX_BATCH, &limit, &c->err)) != CUEQ_OK ||
	    (rc = proto_id(c->req, "after", false, &after, &c->err)) != CUEQ_OK)
		return rc;
	if (st && (state = proto_state_parse(st, stlen)) < 0)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "unknown state; use scheduled, ready, leased, succeeded, dead or cancelled");
	struct eng_view *v = calloc(limit, sizeof(*v));
	if (v == NULL)
		return proto_fail(&c->err, CUEQ_ERR_UNAVAILABLE, "the broker is out of memory; try again later");
	rc = c->eo->list(c->e, q, qlen, state, after, limit, v, &n, &next, &c->err);
	if (rc == CUEQ_OK) {
		proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 2);
		proto_key(c->pk, "executions");
		msgpack_pack_array(c->pk, n);
		for (size_t i = 0; i < n; i++)
			pack_exec(c->pk, &v[i], false);
		if (next)
			proto_kv_id(c->pk, "next", next);
		else
			proto_key(c->pk, "next"), msgpack_pack_nil(c->pk);
	}
	for (size_t i = 0; i < n; i++)
		c->eo->view_free(c->e, &v[i]);
	free(v);
	return rc;
}

static void pack_limit(msgpack_packer *pk, const struct eng_limit *l, size_t extra)
{
	msgpack_pack_map(pk, 3 + extra);
	proto_kv_uint(pk, "concurrency", l->concurrency);
	proto_kv_uint(pk, "rate", l->rate);
	proto_kv_uint(pk, "per_ms", (uint64_t)l->per_ms);
}

#define STATS_GROUPS 1000

/* A queue's limits and groups, for stats of that queue (two keys). */
static void pack_groups(struct opctx *c, const char *q, size_t qlen)
{
	struct eng_group_stats *g = NULL;
	struct eng_queue_limits lims;
	size_t n = 0;
	if (c->eo->groups(c->e, q, qlen, STATS_GROUPS, &g, &n, &lims, &c->err) != CUEQ_OK)
		n = 0, lims = (struct eng_queue_limits){0};
	proto_key(c->pk, "limits");
	pack_limit(c->pk, &lims.queue, 1);
	proto_key(c->pk, "per_group");
	pack_limit(c->pk, &lims.per_group, 0);
	proto_key(c->pk, "groups");
	msgpack_pack_array(c->pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_map(c->pk, 6);
		proto_kv_cstr(c->pk, "group", g[i].group);
		proto_kv_uint(c->pk, "ready", g[i].ready);
		proto_kv_uint(c->pk, "leased", g[i].leased);
		proto_kv_uint(c->pk, "unfinished", g[i].jobs);
		proto_kv_bool(c->pk, "own_limit", g[i].own);
		proto_key(c->pk, "limit");
		pack_limit(c->pk, &g[i].lim, 0);
	}
	free(g);
}

/* ---- limit ---- */

static int op_limit(struct opctx *c)
{
	struct eng_limit_set s = {0};
	uint64_t conc = UINT64_MAX, rate = UINT64_MAX, per = 0;
	bool each = false;
	int rc;

	if ((rc = queue_field(c, c->req, true, &s.queue, &s.queue_len)) != CUEQ_OK ||
	    (rc = name_field(c, c->req, "group", false, &s.group, &s.group_len)) != CUEQ_OK ||
	    (rc = proto_bool(c->req, "each_group", false, &each, &c->err)) != CUEQ_OK ||
	    (rc = proto_uint(c->req, "concurrency", false, 0, PROTO_MAX_CONCURRENCY, &conc, &c->err)) !=
		    CUEQ_OK ||
	    (rc = proto_uint(c->req, "rate", false, 0, PROTO_MAX_RATE, &rate, &c->err)) != CUEQ_OK ||
	    (rc = proto_uint(c->req, "per_ms", false, 1, 86400000, &per, &c->err)) != CUEQ_OK)
		return rc;
	if (each && s.group != NULL)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "give 'group' (one group) or 'each_group' (every group without its own limit), not both");
	if (conc == UINT64_MAX && rate == UINT64_MAX)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "give 'concurrency' or 'rate' (with 'per_ms'), or both; 0 removes that limit");
	if (rate != UINT64_MAX && rate > 0 && per == 0)
		return proto_fail(&c->err, CUEQ_ERR_BAD_REQUEST,
				  "a rate needs 'per_ms': the period of that many claims, e.g. rate 10, per_ms 1000");
	s.scope = s.group ? ENG_LIMIT_GROUP : each ? ENG_LIMIT_EACH_GROUP : ENG_LIMIT_QUEUE;
	s.set_concurrency = conc != UINT64_MAX;
	s.concurrency = s.set_concurrency ? (uint32_t)conc : 0;
	s.set_rate = rate != UINT64_MAX;
	s.rate = s.set_rate ? (uint32_t)rate : 0;
	s.per_ms = (int64_t)per;
	if ((rc = c->eo->limit(c->e, &s, &c->err)) != CUEQ_OK)
		return rc;
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 2);
	proto_key(c->pk, "limit");
	pack_limit(c->pk, &s.now, 2);
	proto_kv_str(c->pk, "queue", s.queue, s.queue_len);
	if (s.group)
		proto_kv_str(c->pk, "group", s.group, s.group_len);
	else
		proto_kv_bool(c->pk, "each_group", each);
	proto_kv_cstr(c->pk, "durability", durability(c));
	return CUEQ_OK;
}

static int op_stats(struct opctx *c)
{
	static const char *const names[] = {"scheduled", "ready", "leased", "succeeded", "dead",
					    "cancelled"};
	const char *q = NULL;
	size_t qlen = 0, n = 0;
	uint64_t limit = CUEQ_MAX_BATCH, from = 0, next = 0;
	struct eng_stats *s = NULL;
	int rc = queue_field(c, c->req, false, &q, &qlen);
	if (rc != CUEQ_OK ||
	    (rc = proto_uint(c->req, "from", false, 0, UINT64_MAX, &from, &c->err)) != CUEQ_OK ||
	    (rc = proto_uint(c->req, "limit", false, 1, CUEQ_MAX_BATCH, &limit, &c->err)) != CUEQ_OK ||
	    (rc = c->eo->stats(c->e, q, qlen, from, (size_t)limit, &s, &n, &next, &c->err)) != CUEQ_OK)
		return rc;
	size_t shown = 0; /* a client limited to prefixes sees its queues only */
	for (size_t i = 0; i < n; i++)
		shown += auth_queue_ok(c->who, s[i].queue, strlen(s[i].queue));
	proto_reply_begin(c->pk, c->rid, c->rid_len, c->rid_bin, 2);
	proto_key(c->pk, "queues");
	msgpack_pack_array(c->pk, shown);
	for (size_t i = 0; i < n; i++) {
		if (!auth_queue_ok(c->who, s[i].queue, strlen(s[i].queue)))
			continue;
		msgpack_pack_map(c->pk, 13 + (q != NULL ? 2 : 0));
		proto_kv_cstr(c->pk, "queue", s[i].queue);
		if (q != NULL)
			pack_groups(c, q, qlen);
		for (int k = 0; k < 6; k++)
			proto_kv_uint(c->pk, names[k], s[i].count[k]);
		proto_kv_bool(c->pk, "paused", s[i].paused);
		proto_kv_uint(c->pk, "cues", s[i].cues);
		proto_kv_uint(c->pk, "deliveries", s[i].deliveries);
		proto_kv_uint(c->pk, "expiries", s[i].expiries);
		proto_kv_uint(c->pk, "failures", s[i].failures);
		proto_kv_uint(c->pk, "releases", s[i].releases);
	}
	if (next != 0) /* where the next page starts: pass it as from */
		proto_kv_uint(c->pk, "next", next);
	else
		proto_key(c->pk, "next"), msgpack_pack_nil(c->pk);
	free(s);
	return CUEQ_OK;
}

static const struct op op_table[] = {
	{"ping", 0, op_ping, ROLE_ANY},
	{"push", OP_WRITE | OP_PRODUCE, op_push, ROLE_PRODUCER | ROLE_ADMIN},
	{"claim", OP_WRITE, op_claim, ROLE_WORKER | ROLE_ADMIN},
	{"ack", OP_WRITE | OP_REPLAYS, op_ack, ROLE_WORKER | ROLE_ADMIN},
	{"nack", OP_WRITE, op_nack, ROLE_WORKER | ROLE_ADMIN},
	{"extend", OP_WRITE, op_extend, ROLE_WORKER | ROLE_ADMIN},
	{"get", 0, op_get, ROLE_ANY},
	{"wait", 0, op_wait, ROLE_ANY},
	{"list", 0, op_list, ROLE_ANY},
	{"stats", 0, op_stats, ROLE_ANY},
	{"step_set", OP_WRITE, op_step_set, ROLE_WORKER | ROLE_ADMIN},
	{"step_get", 0, op_step_get, ROLE_WORKER | ROLE_ADMIN},
	{"steps", 0, op_steps, ROLE_WORKER | ROLE_ADMIN},
	{"cues", 0, op_cues, ROLE_ANY},
	{"cancel", OP_WRITE, op_cancel, ROLE_ADMIN},
	{"retry", OP_WRITE, op_retry, ROLE_ADMIN},
	{"purge", OP_WRITE, op_purge, ROLE_ADMIN},
	{"pause", OP_WRITE, op_pause, ROLE_ADMIN},
	{"resume", OP_WRITE, op_resume, ROLE_ADMIN},
	{"limit", OP_WRITE, op_limit, ROLE_ADMIN},
	{"metrics", 0, metrics_op, ROLE_ANY}, /* metrics.c */
};

const struct op *ops_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(op_table) / sizeof(op_table[0]); i++)
		if (strlen(op_table[i].name) == len && memcmp(op_table[i].name, name, len) == 0)
			return &op_table[i];
	return NULL;
}

const char *ops_names(void)
{
	return "ping, push, claim, ack, nack, extend, step_set, step_get, steps, get, wait, list, stats, cues, cancel, retry, purge, pause, resume, limit, metrics";
}

const struct op *ops_at(size_t i)
{
	return i < sizeof(op_table) / sizeof(op_table[0]) ? &op_table[i] : NULL;
}

size_t ops_place(const struct op *op)
{
	return (size_t)(op - op_table);
}
