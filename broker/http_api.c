/*
 * http_api.c - the paths of the HTTP face: each is one wire op (its fields
 * from the path, query parameters and JSON body), and its answer is the
 * op's reply as JSON with the status it means (docs/HTTP.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "http_json.h"
#include "log.h"
#include "proto.h"

#define MAX_SEGS 8

/* Query parameters that are numbers or switches on the wire; any other is
 * a string. */
static const char *const uint_params[] = {
	"max_attempts", "lease_ms", "delay_ms", "run_at", "key_ttl_ms", "every_ms", "max_expiries",
	"backoff_ms", "backoff_max_ms", "max", "wait_ms", "limit", "from", "retry_in_ms",
	"concurrency", "rate", "per_ms", NULL};
static const char *const bool_params[] = {"jitter", "terminal", "all", "each_group", NULL};

static bool in(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* Whether name is one of the comma-separated names of list. */
static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l == n && memcmp(p, name, n) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

typedef int (*route_fn)(struct hreq *hr, char **seg, struct call *c);

/* A path and the op it is.  Most paths are this table alone: the op, the
 * field the path's ID or queue (its third segment) goes in, the body as a
 * bytes field, how the fields are wrapped and how the answer is made; fn,
 * when set, does what is more. */
struct route {
	const char *method;
	const char *path;   /* segments; '*' matches one */
	const char *op;	    /* NULL: fn says */
	const char *field;  /* segment 3 goes in this field (NULL: none) */
	const char *params; /* query parameters it takes (comma-separated) */
	bool json;	    /* the body is a JSON object of the op's fields */
	int wrap;	    /* enum wrap */
	const char *raw_key; /* the body is this bytes field */
	int answer;	     /* enum answer_kind */
	route_fn fn;
};

/* ---- fields ---- */

struct qctx {
	struct hreq *hr;
	const char *allowed;
	json_t *fields;
	char err[256];
};

static enum MHD_Result each_param(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *value)
{
	struct qctx *q = cls;
	(void)kind;
	if (q->err[0] != '\0')
		return MHD_NO;
	if (!listed(q->allowed, key)) {
		snprintf(q->err, sizeof(q->err), "'%.64s' is not a parameter of this path; it takes: %s",
			 key, q->allowed[0] ? q->allowed : "none");
		return MHD_NO;
	}
	if (value == NULL)
		value = "";
	json_t *v;
	if (in(uint_params, key)) {
		char *end;
		unsigned long long n = strtoull(value, &end, 10);
		if (*value < '0' || *value > '9' || *end != '\0' || n > (unsigned long long)INT64_MAX) {
			snprintf(q->err, sizeof(q->err), "'%s' must be a whole number, not '%.32s'", key,
				 value);
			return MHD_NO;
		}
		v = json_integer((json_int_t)n);
	} else if (strcmp(key, "priority") == 0) {
		char *end;
		long long n = strtoll(value, &end, 10);
		if (*value == '\0' || *end != '\0') {
			snprintf(q->err, sizeof(q->err), "'priority' must be a whole number, not '%.32s'",
				 value);
			return MHD_NO;
		}
		v = json_integer(n);
	} else if (strcmp(key, "backoff_factor") == 0) {
		char *end;
		double d = strtod(value, &end);
		if (*value == '\0' || *end != '\0') {
			snprintf(q->err, sizeof(q->err), "'backoff_factor' must be a number, not '%.32s'",
				 value);
			return MHD_NO;
		}
		v = json_real(d);
	} else if (in(bool_params, key)) {
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0 && *value != '\0') {
			snprintf(q->err, sizeof(q->err), "'%s' must be true or false, not '%.32s'", key,
				 value);
			return MHD_NO;
		}
		v = json_boolean(strcmp(value, "false") != 0);
	} else {
		v = json_string(value);
		if (v == NULL) {
			snprintf(q->err, sizeof(q->err), "'%s' is not valid UTF-8", key);
			return MHD_NO;
		}
	}
	if (json_object_get(q->fields, key) == NULL) /* the JSON body's value stands */
		json_object_set_new(q->fields, key, v);
	else
		json_decref(v);
	return MHD_YES;
}

/* The op's fields: the JSON body (when the route takes one), then the
 * query parameters.  0, or answered with a problem. */
static int gather(struct hreq *hr, const struct route *rt, struct call *c)
{
	if (rt->json && hr->len > 0) {
		const char *type = http_header(hr, "Content-Type");
		if (type != NULL && strncmp(type, "application/json", 16) != 0) {
			http_problem(hr, 415, "UNSUPPORTED_MEDIA_TYPE",
				     "this path takes a JSON object: send Content-Type: application/json",
				     NULL);
			return 1;
		}
		json_error_t je;
		json_t *body = json_loadb(hr->body, hr->len, JSON_REJECT_DUPLICATES, &je);
		if (body == NULL || !json_is_object(body)) {
			char msg[300];
			if (body == NULL)
				snprintf(msg, sizeof(msg), "the body is not JSON: %s (line %d, column %d)",
					 je.text, je.line, je.column);
			else
				snprintf(msg, sizeof(msg), "the body must be a JSON object of the op's fields");
			json_decref(body);
			http_problem(hr, 400, "BAD_REQUEST", msg, NULL);
			return 1;
		}
		c->fields = body;
	} else {
		c->fields = json_object();
		if (c->fields == NULL)
			return -1;
	}
	struct qctx q = {.hr = hr, .allowed = rt->params ? rt->params : "", .fields = c->fields};
	MHD_get_connection_values(hr->conn, MHD_GET_ARGUMENT_KIND, each_param, &q);
	if (q.err[0] != '\0') {
		http_problem(hr, 400, "BAD_REQUEST", q.err, NULL);
		return 1;
	}
	return 0;
}

/* ---- the routes ---- */

#define JOB_PARAMS                                                                        \
	"key,unique,group,priority,max_attempts,lease_ms,delay_ms,run_at,key_ttl_ms,every_ms,"  \
	"cron,tz,catch_up,overlap,max_expiries,backoff_ms,backoff_factor,backoff_max_ms,jitter"

static int r_push_many(struct hreq *hr, char **seg, struct call *c)
{
	(void)seg;
	if (!json_is_array(json_object_get(c->fields, "jobs"))) {
		http_problem(hr, 400, "BAD_REQUEST",
			     "the body must be {\"jobs\": [{\"queue\": ..., \"payload\": ...}, ...]}", NULL);
		return 1;
	}
	return 0;
}

static int r_step(struct hreq *hr, char **seg, struct call *c)
{
	(void)hr;
	json_object_set_new(c->fields, "name", json_string(seg[4]));
	return 0;
}

static int r_retry_all(struct hreq *hr, char **seg, struct call *c)
{
	(void)hr, (void)seg;
	json_object_set_new(c->fields, "all", json_true());
	return 0;
}

static int r_purge(struct hreq *hr, char **seg, struct call *c)
{
	(void)seg;
	if (json_object_get(c->fields, "state") == NULL) {
		http_problem(hr, 400, "BAD_REQUEST",
			     "purge needs ?state=dead, succeeded or cancelled: which executions to delete",
			     NULL);
		return 1;
	}
	return 0;
}

static int r_op(struct hreq *hr, char **seg, struct call *c)
{
	const char *op = seg[2];
	for (const char *p = op; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == '_') || p - op >= 32) {
			http_problem(hr, 404, "NOT_FOUND", "no such op: see docs/HTTP.md", NULL);
			return 1;
		}
	snprintf(hr->opname, sizeof(hr->opname), "%s", op); /* seg is on api_route's stack */
	c->op = hr->opname;
	if (strcmp(op, "push") == 0)
		c->answer = A_BATCH; /* its Idempotency-Key works here too */
	return 0;
}

static int r_hook(struct hreq *hr, char **seg, struct call *c)
{
	const struct http_hook *hook = hooks_find(hr->h, seg[2]);
	char key[257], msg[400];
	if (hook == NULL) {
		snprintf(msg, sizeof(msg),
			 "no webhook intake is configured for queue '%.128s': start cueqd with --hook %.128s:key-header=NAME (see docs/HTTP.md)",
			 seg[2], seg[2]);
		http_problem(hr, 404, "NOT_FOUND", msg, NULL);
		return 1;
	}
	int rc = hooks_check(hr, hook, key, sizeof(key));
	if (rc != 0)
		return rc;
	json_object_set_new(c->fields, "key", json_string(key));
	hr->hook_queue = hook->queue;
	c->verified = hook->signature != HOOK_SIG_NONE;
	return 0;
}

#define Q "queue"
#define X "execution_id"
static const struct route routes[] = {
	{"GET", "/v1/ping", "ping", NULL, NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"GET", "/v1/queues", "stats", NULL, "from,limit", false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"GET", "/v1/queues/*", "stats", Q, NULL, false, W_PLAIN, NULL, A_QUEUE, NULL},
	{"GET", "/v1/queues/*/executions", "list", Q, "state,limit,after", false, W_PLAIN, NULL,
	 A_PLAIN, NULL},
	{"GET", "/v1/queues/*/cues", "cues", Q, NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"POST", "/v1/queues/*/jobs", "push", Q, JOB_PARAMS, false, W_JOB, "payload", A_PUSH, NULL},
	{"POST", "/v1/queues/*/claim", "claim", Q, "max,lease_ms,wait_ms,worker", true, W_PLAIN, NULL,
	 A_PLAIN, NULL},
	{"POST", "/v1/queues/*/retry", "retry", Q, NULL, false, W_PLAIN, NULL, A_PLAIN, r_retry_all},
	{"POST", "/v1/queues/*/purge", "purge", Q, "state", false, W_PLAIN, NULL, A_PLAIN, r_purge},
	{"POST", "/v1/queues/*/pause", "pause", Q, NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"POST", "/v1/queues/*/resume", "resume", Q, NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"POST", "/v1/queues/*/limit", "limit", Q, "group,each_group,concurrency,rate,per_ms", true,
	 W_PLAIN, NULL, A_PLAIN, NULL},
	{"POST", "/v1/jobs", "push", NULL, NULL, true, W_PLAIN, NULL, A_BATCH, r_push_many},
	{"GET", "/v1/executions/*", "get", X, NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"GET", "/v1/executions/*/wait", "wait", X, "wait_ms", false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"POST", "/v1/executions/*/ack", "ack", X, "lease_token,result", true, W_ITEM, NULL, A_ITEM,
	 NULL},
	{"POST", "/v1/executions/*/nack", "nack", X, "lease_token,error,retry_in_ms,terminal", true,
	 W_ITEM, NULL, A_ITEM, NULL},
	{"POST", "/v1/executions/*/extend", "extend", X, "lease_token,lease_ms", true, W_ITEM, NULL,
	 A_ITEM, NULL},
	{"GET", "/v1/executions/*/steps", "steps", X, NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"GET", "/v1/executions/*/steps/*", "step_get", X, NULL, false, W_PLAIN, NULL, A_PLAIN,
	 r_step},
	{"PUT", "/v1/executions/*/steps/*", "step_set", X, "lease_token", false, W_PLAIN, "value",
	 A_PLAIN, r_step},
	{"POST", "/v1/executions/*/retry", "retry", X, NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"POST", "/v1/executions/*/cancel", "cancel", "id", NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"GET", "/v1/cues/*", "get", X, NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"POST", "/v1/cues/*/cancel", "cancel", "id", NULL, false, W_PLAIN, NULL, A_PLAIN, NULL},
	{"POST", "/v1/ops/*", NULL, NULL, NULL, true, W_PLAIN, NULL, A_PLAIN, r_op},
	{"POST", "/v1/hooks/*", "push", Q, NULL, false, W_JOB, "payload", A_HOOK, r_hook},
	{"GET", "/metrics", "metrics", NULL, NULL, false, W_PLAIN, NULL, A_METRICS, NULL},
};
#undef Q
#undef X

/* Splits path into at most MAX_SEGS segments (in buf). */
static size_t split(const char *path, char *buf, size_t size, char **seg)
{
	size_t n = 0, l = strlen(path);
	if (l >= size)
		return 0;
	memcpy(buf, path, l + 1);
	for (char *p = buf; *p && n < MAX_SEGS + 1;) {
		while (*p == '/')
			*p++ = '\0';
		if (*p == '\0')
			break;
		seg[n++] = p;
		while (*p && *p != '/')
			p++;
	}
	return n;
}

static bool matches(const char *pattern, char **seg, size_t n)
{
	char buf[128];
	char *pseg[MAX_SEGS + 1];
	size_t pn = split(pattern, buf, sizeof(buf), pseg);
	if (pn != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(pseg[i], "*") != 0 && strcmp(pseg[i], seg[i]) != 0)
			return false;
	return true;
}

int api_route(struct hreq *hr, const char *method, const char *url, struct call *c)
{
	char buf[1024], allow[64] = "";
	char *seg[MAX_SEGS + 1];
	size_t n = split(url, buf, sizeof(buf), seg);
	const struct route *rt = NULL;
	enum MHD_Result res;

	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
		if (n == 0 || n > MAX_SEGS || !matches(routes[i].path, seg, n))
			continue;
		if (strcmp(routes[i].method, method) == 0) {
			rt = &routes[i];
			break;
		}
		if (strlen(allow) + strlen(routes[i].method) + 3 < sizeof(allow))
			snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
				 allow[0] ? ", " : "", routes[i].method);
	}
	if (rt == NULL && allow[0] != '\0') {
		char msg[160];
		snprintf(msg, sizeof(msg), "%s is not a method of this path; it takes %s", method, allow);
		res = http_problem(hr, 405, "METHOD_NOT_ALLOWED", msg, NULL);
		return res == MHD_YES ? 1 : -1;
	}
	if (rt == NULL) {
		res = http_problem(hr, 404, "NOT_FOUND",
				   "no such path: the API is under /v1 (see docs/HTTP.md), the dashboard at /, metrics at /metrics",
				   NULL);
		return res == MHD_YES ? 1 : -1;
	}
	int rc = gather(hr, rt, c);
	if (rc != 0)
		return rc;
	c->op = rt->op;
	c->wrap = rt->wrap;
	c->answer = rt->answer;
	if (rt->field != NULL) /* a copy: seg is on this stack */
		json_object_set_new(c->fields, rt->field, json_string(seg[2]));
	if (rt->raw_key != NULL) {
		c->raw_key = rt->raw_key;
		c->raw = hr->body != NULL ? hr->body : "";
		c->raw_len = hr->len;
	}
	return rt->fn != NULL ? rt->fn(hr, seg, c) : 0;
}

/* ---- answers ---- */

static enum MHD_Result problem_of(struct hreq *hr, const msgpack_object *map)
{
	const char *code = "INTERNAL", *msg = "the broker's answer had no message";
	size_t cl = 8, ml = strlen(msg);
	char codebuf[32], detail[1200];
	proto_error perr;
	const msgpack_object *v = proto_get(map, "err");
	if (v != NULL && v->type == MSGPACK_OBJECT_STR)
		code = v->via.str.ptr, cl = v->via.str.size;
	if ((v = proto_get(map, "msg")) != NULL && v->type == MSGPACK_OBJECT_STR)
		msg = v->via.str.ptr, ml = v->via.str.size;
	(void)perr;
	snprintf(codebuf, sizeof(codebuf), "%.*s", (int)(cl < 31 ? cl : 31), code);
	if (hr->idem && (hr->flags & REQ_RID_REUSED))
		return http_problem(hr, 422, "IDEMPOTENCY_MISMATCH",
				    "this Idempotency-Key was used before for a different request (another body, path, option or token); use a new key for a new request",
				    NULL);
	snprintf(detail, sizeof(detail), "%.*s%s", (int)(ml < 1000 ? ml : 1000), msg,
		 strcmp(codebuf, "UNAUTHORIZED") == 0 && !(hr->flags & REQ_FORBIDDEN)
			 ? " (over HTTP: send Authorization: Bearer TOKEN)"
			 : "");
	json_t *extra = hj_reply(map);
	json_object_del(extra, "durability");
	unsigned status = http_status_of(codebuf);
	if (status == 401 && (hr->flags & REQ_FORBIDDEN))
		status = 403; /* the token is good; this is not its to do */
	return http_problem(hr, status, codebuf, detail, extra);
}

static bool ok_of(const msgpack_object *map)
{
	const msgpack_object *v = proto_get(map, "ok");
	return v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

/* The first map of the reply's array key (results, queues), or NULL. */
static const msgpack_object *first_of(const msgpack_object *root, const char *key)
{
	const msgpack_object *a = proto_get(root, key);
	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0 ||
	    a->via.array.ptr[0].type != MSGPACK_OBJECT_MAP)
		return NULL;
	return &a->via.array.ptr[0];
}

/* One item's result with the reply's durability beside it. */
static json_t *item_json(const msgpack_object *root, const msgpack_object *item)
{
	json_t *j = hj_reply(item);
	const msgpack_object *d = proto_get(root, "durability");
	if (j != NULL && d != NULL)
		hj_set(j, "durability", 10, d);
	return j;
}

static bool bool_of(const msgpack_object *map, const char *key)
{
	const msgpack_object *v = proto_get(map, key);
	return v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

static enum MHD_Result answer_push(struct hreq *hr, const msgpack_object *root)
{
	const msgpack_object *item = first_of(root, "results");
	if (item == NULL)
		return http_problem(hr, 500, "INTERNAL", "the broker's push answer had no result", NULL);
	if (!ok_of(item))
		return problem_of(hr, item);
	const msgpack_object *id = proto_get(item, "execution_id");
	if (id == NULL || id->type != MSGPACK_OBJECT_STR)
		id = proto_get(item, "cue_id");
	if (id != NULL && id->type == MSGPACK_OBJECT_STR)
		snprintf(hr->where, sizeof(hr->where), "/v1/executions/%.*s",
			 (int)(id->via.str.size < 64 ? id->via.str.size : 64), id->via.str.ptr);
	return http_json(hr, bool_of(item, "duplicate") ? 200 : 201, item_json(root, item), NULL, NULL);
}

static enum MHD_Result answer_hook(struct hreq *hr, const msgpack_object *root)
{
	const msgpack_object *item = first_of(root, "results");
	if (item == NULL)
		return http_problem(hr, 500, "INTERNAL", "the broker's push answer had no result", NULL);
	if (!ok_of(item)) {
		const msgpack_object *e = proto_get(item, "err");
		if (e != NULL && e->type == MSGPACK_OBJECT_STR && e->via.str.size == 20 &&
		    memcmp(e->via.str.ptr, "IDEMPOTENCY_MISMATCH", 20) == 0) {
			/* the same delivery ID with another body: still a repeat of
			 * a delivery taken; an error would only make the sender
			 * send it again and again */
			log_warn("webhook of queue %s: a delivery repeated with another body; the first one stands",
				 hr->hook_queue);
			json_t *j = json_object();
			json_object_set_new(j, "duplicate", json_true());
			json_object_set_new(j, "detail",
					    json_string("this delivery ID was taken before with another body; the first one stands"));
			return http_json(hr, 200, j, NULL, NULL);
		}
		return problem_of(hr, item);
	}
	return http_json(hr, bool_of(item, "duplicate") ? 200 : 202, item_json(root, item), NULL,
			 NULL);
}

enum MHD_Result api_answer(struct hreq *hr)
{
	if (hr->reply == NULL)
		return http_problem(hr, 503, "UNAVAILABLE",
				    "the broker is stopping and did not take this request; send it again once it is back",
				    NULL);
	msgpack_unpacked up;
	proto_error err = {0};
	msgpack_unpacked_init(&up);
	if (proto_decode(nng_msg_body(hr->reply), nng_msg_len(hr->reply), &up, &err) != CUEQ_OK) {
		msgpack_unpacked_destroy(&up);
		return http_problem(hr, 500, "INTERNAL", "the broker's answer did not decode", NULL);
	}
	const msgpack_object *root = &up.data;
	enum MHD_Result res;
	if (!ok_of(root)) {
		res = problem_of(hr, root);
	} else if (hr->answer == A_PUSH) {
		res = answer_push(hr, root);
	} else if (hr->answer == A_HOOK) {
		res = answer_hook(hr, root);
	} else if (hr->answer == A_ITEM) {
		const msgpack_object *item = first_of(root, "results");
		if (item == NULL)
			res = http_problem(hr, 500, "INTERNAL", "the broker's answer had no result", NULL);
		else if (!ok_of(item))
			res = problem_of(hr, item);
		else
			res = http_json(hr, 200, item_json(root, item), NULL, NULL);
	} else if (hr->answer == A_QUEUE) {
		const msgpack_object *q = first_of(root, "queues");
		if (q == NULL)
			res = http_problem(hr, 404, "NOT_FOUND",
					   "no such queue: it holds nothing (no execution, no recurring cue, no limit) or never did",
					   NULL);
		else
			res = http_json(hr, 200, hj_reply(q), NULL, NULL);
	} else if (hr->answer == A_METRICS) {
		res = http_metrics(hr, nng_msg_body(hr->reply), nng_msg_len(hr->reply));
	} else {
		res = http_json(hr, 200, hj_reply(root), NULL, NULL);
	}
	msgpack_unpacked_destroy(&up);
	return res;
}
