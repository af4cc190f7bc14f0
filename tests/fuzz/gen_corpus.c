/*
 * gen_corpus.c - writes the seed corpus and the dictionary of the fuzz
 * targets:
 *
 *   gen_corpus CORPUS_DIR DICT_FILE
 *
 * CORPUS_DIR/request/seed-NAME: sessions of valid requests of every op
 * (fuzz_request: frames separated by FUZZ_SEP, IDs of earlier replies as
 * placeholders, "_turn" to move the clock on); CORPUS_DIR/frame/seed-NAME-K:
 * each frame of those alone (fuzz_frame).  DICT_FILE: the protocol's field
 * names, op names and words, bare and as msgpack strs.  The files are
 * committed; run it again (and commit) when the protocol grows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "fuzz_core.h"
#include "proto.h"

#define RUN_AT_PAST 1700000000000ull

struct gen {
	const char *dir;
	msgpack_sbuffer session;
	msgpack_sbuffer frame;
	msgpack_packer pk;
	unsigned n_frames, rid;
	const char *cid, *auth;
};

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "gen_corpus: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* Starts a request of op with n_fields fields after the envelope. */
static msgpack_packer *req(struct gen *g, const char *op, size_t n_fields)
{
	char rid[16];
	int n = snprintf(rid, sizeof(rid), "r%u", ++g->rid);
	msgpack_sbuffer_clear(&g->frame);
	proto_request_begin(&g->pk, op, rid, (size_t)n, g->cid, g->cid ? strlen(g->cid) : 0,
			    g->auth, n_fields);
	return &g->pk;
}

/* Ends the frame: into the session, and alone into frame/. */
static void end(struct gen *g, const char *name)
{
	char path[512];
	if (g->n_frames++ > 0)
		msgpack_sbuffer_write(&g->session, FUZZ_SEP, FUZZ_SEP_LEN);
	msgpack_sbuffer_write(&g->session, g->frame.data, g->frame.size);
	snprintf(path, sizeof(path), "%s/frame/seed-%s-%u", g->dir, name, g->n_frames);
	write_file(path, g->frame.data, g->frame.size);
}

static void save(struct gen *g, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/request/seed-%s", g->dir, name);
	write_file(path, g->session.data, g->session.size);
	msgpack_sbuffer_clear(&g->session);
	g->n_frames = 0;
	g->cid = g->auth = NULL;
}

/* A 16-byte placeholder for the newest ID of a kind ('e', 't', 'c'). */
static void kv_ph(msgpack_packer *pk, const char *key, char kind)
{
	char ph[PROTO_ID_LEN + 1] = "@?0.............";
	ph[1] = kind;
	proto_kv_str(pk, key, ph, PROTO_ID_LEN);
}

/* ---- requests ---- */

static void ping(struct gen *g, const char *name)
{
	req(g, "ping", 0);
	end(g, name);
}

/* A push of one job of queue q, with n_more fields the caller packs. */
static msgpack_packer *push1(struct gen *g, const char *q, size_t n_more)
{
	msgpack_packer *pk = req(g, "push", 1);
	proto_key(pk, "jobs");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 2 + n_more);
	proto_kv_cstr(pk, "queue", q);
	proto_kv_bin(pk, "payload", "hello", 5);
	return pk;
}

static void push(struct gen *g, const char *name, const char *q)
{
	push1(g, q, 0);
	end(g, name);
}

static void claim(struct gen *g, const char *name, const char *q, unsigned max)
{
	msgpack_packer *pk = req(g, "claim", 4);
	proto_kv_cstr(pk, "queue", q);
	proto_kv_uint(pk, "max", max);
	proto_kv_uint(pk, "lease_ms", 1000);
	proto_kv_cstr(pk, "worker", "w1");
	end(g, name);
}

/* ack, nack or extend of the newest lease, with n_more item fields. */
static msgpack_packer *item(struct gen *g, const char *op, size_t n_more)
{
	msgpack_packer *pk = req(g, op, 1);
	proto_key(pk, "items");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 2 + n_more);
	kv_ph(pk, "execution_id", 'e');
	kv_ph(pk, "lease_token", 't');
	return pk;
}

static void by_id(struct gen *g, const char *name, const char *op, const char *key, char kind)
{
	kv_ph(req(g, op, 1), key, kind);
	end(g, name);
}

static void by_queue(struct gen *g, const char *name, const char *op, const char *q)
{
	proto_kv_cstr(req(g, op, 1), "queue", q);
	end(g, name);
}

static void turn(struct gen *g, const char *name, uint64_t ms)
{
	proto_kv_uint(req(g, "_turn", 1), "ms", ms);
	end(g, name);
}

/* ---- sessions ---- */

static void s_push(struct gen *g)
{
	ping(g, "ping");
	push(g, "ping", "q1");
	save(g, "ping");

	msgpack_packer *pk = push1(g, "q.full", 13);
	proto_kv_int(pk, "priority", -5);
	proto_kv_uint(pk, "max_attempts", 3);
	proto_kv_uint(pk, "lease_ms", 1000);
	proto_kv_uint(pk, "delay_ms", 10);
	proto_kv_cstr(pk, "key", "k1");
	proto_kv_uint(pk, "key_ttl_ms", 60000);
	proto_kv_cstr(pk, "unique", "u1");
	proto_kv_uint(pk, "max_expiries", 2);
	proto_kv_uint(pk, "backoff_ms", 100);
	proto_key(pk, "backoff_factor");
	msgpack_pack_double(pk, 1.5);
	proto_kv_uint(pk, "backoff_max_ms", 1000);
	proto_kv_bool(pk, "jitter", false);
	proto_kv_uint(pk, "run_at", 0);
	end(g, "push_full");
	by_id(g, "push_full", "get", "execution_id", 'e');
	save(g, "push_full");

	pk = req(g, "push", 1);
	proto_key(pk, "jobs");
	msgpack_pack_array(pk, 3);
	for (int i = 0; i < 3; i++) {
		msgpack_pack_map(pk, 3);
		proto_kv_cstr(pk, "queue", i == 2 ? "q:b" : "q-a");
		proto_kv_str(pk, "payload", "text", 4);
		proto_kv_uint(pk, "run_at", RUN_AT_PAST + (uint64_t)i);
	}
	end(g, "push_batch");
	by_queue(g, "push_batch", "stats", "q-a");
	save(g, "push_batch");
}

static void s_keys(struct gen *g)
{
	for (int i = 0; i < 3; i++) { /* the third: other fields, IDEMPOTENCY_MISMATCH */
		msgpack_packer *pk = push1(g, "q.keys", 2);
		proto_kv_cstr(pk, "key", "same");
		proto_kv_int(pk, "priority", i < 2 ? 1 : 2);
		end(g, "keys");
	}
	save(g, "keys");

	for (int i = 0; i < 2; i++) {
		proto_kv_cstr(push1(g, "q.unique", 1), "unique", "one");
		end(g, "unique");
	}
	by_id(g, "unique", "get", "execution_id", 'e');
	save(g, "unique");

	g->cid = "client-1";
	for (int i = 0; i < 2; i++) {
		msgpack_packer *pk = req(g, "push", 2);
		proto_kv_uint(pk, "retry_ttl_ms", 60000);
		proto_key(pk, "jobs");
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 1);
		proto_kv_cstr(pk, "queue", "q.recall");
		end(g, "recall");
		g->rid--; /* the same request again */
	}
	save(g, "recall");
}

static void s_cues(struct gen *g)
{
	msgpack_packer *pk = push1(g, "q.every", 3);
	proto_kv_uint(pk, "every_ms", 1000);
	proto_kv_cstr(pk, "catch_up", "all");
	proto_kv_cstr(pk, "overlap", "skip");
	end(g, "every");
	by_id(g, "every", "get", "execution_id", 'c');
	turn(g, "every", 5000);
	by_queue(g, "every", "cues", "q.every");
	by_id(g, "every", "cancel", "id", 'c');
	save(g, "every");

	pk = push1(g, "q.cron", 4);
	proto_kv_cstr(pk, "cron", "*/5 9-17 * JAN-JUN mon-fri");
	proto_kv_cstr(pk, "tz", "Europe/Berlin");
	proto_kv_cstr(pk, "catch_up", "one");
	proto_kv_cstr(pk, "overlap", "allow");
	end(g, "cron");
	proto_kv_cstr(push1(g, "q.cron", 1), "cron", "@hourly");
	end(g, "cron");
	by_id(g, "cron", "get", "execution_id", 'c');
	save(g, "cron");
}

static void s_outcomes(struct gen *g)
{
	push(g, "ack", "q.w");
	push(g, "ack", "q.w");
	claim(g, "ack", "q.w", 2);
	proto_kv_cstr(item(g, "ack", 1), "result", "done");
	end(g, "ack");
	proto_kv_cstr(item(g, "ack", 1), "result", "done"); /* again: the same answer */
	end(g, "ack");
	by_id(g, "ack", "get", "execution_id", 'e');
	save(g, "ack");

	push(g, "nack", "q.n");
	claim(g, "nack", "q.n", 1);
	msgpack_packer *pk = item(g, "nack", 2);
	proto_kv_cstr(pk, "error", "boom");
	proto_kv_uint(pk, "retry_in_ms", 0);
	end(g, "nack");
	claim(g, "nack", "q.n", 1);
	pk = item(g, "nack", 1);
	proto_kv_bool(pk, "terminal", true);
	end(g, "nack");
	by_id(g, "nack", "retry", "execution_id", 'e');
	save(g, "nack");

	push(g, "extend", "q.x");
	claim(g, "extend", "q.x", 1);
	proto_kv_uint(item(g, "extend", 1), "lease_ms", 5000);
	end(g, "extend");
	save(g, "extend");
}

static void s_steps(struct gen *g)
{
	push(g, "steps", "q.s");
	claim(g, "steps", "q.s", 1);
	msgpack_packer *pk = req(g, "step_set", 4);
	kv_ph(pk, "execution_id", 'e');
	kv_ph(pk, "lease_token", 't');
	proto_kv_cstr(pk, "name", "charge");
	proto_kv_bin(pk, "value", "ok", 2);
	end(g, "steps");
	pk = req(g, "step_get", 2);
	kv_ph(pk, "execution_id", 'e');
	proto_kv_cstr(pk, "name", "charge");
	end(g, "steps");
	by_id(g, "steps", "steps", "execution_id", 'e');
	by_id(g, "steps", "get", "execution_id", 'e');
	save(g, "steps");
}

static void s_inspect(struct gen *g)
{
	push(g, "list", "q.l");
	push(g, "list", "q.l");
	msgpack_packer *pk = req(g, "list", 3);
	proto_kv_cstr(pk, "queue", "q.l");
	proto_kv_cstr(pk, "state", "ready");
	proto_kv_uint(pk, "limit", 1);
	end(g, "list");
	pk = req(g, "list", 2);
	proto_kv_cstr(pk, "queue", "q.l");
	kv_ph(pk, "after", 'e');
	end(g, "list");
	pk = req(g, "stats", 2);
	proto_kv_uint(pk, "limit", 1);
	proto_kv_uint(pk, "from", 0);
	end(g, "list");
	req(g, "stats", 0);
	end(g, "list");
	save(g, "list");
}

static void s_operate(struct gen *g)
{
	push(g, "operate", "q.o");
	by_id(g, "operate", "cancel", "id", 'e');
	msgpack_packer *pk = req(g, "purge", 2);
	proto_kv_cstr(pk, "queue", "q.o");
	proto_kv_cstr(pk, "state", "cancelled");
	end(g, "operate");
	push(g, "operate", "q.o");
	claim(g, "operate", "q.o", 1);
	proto_kv_bool(item(g, "nack", 1), "terminal", true);
	end(g, "operate");
	pk = req(g, "retry", 2);
	proto_kv_cstr(pk, "queue", "q.o");
	proto_kv_bool(pk, "all", true);
	end(g, "operate");
	by_queue(g, "operate", "pause", "q.o");
	claim(g, "operate", "q.o", 1);
	by_queue(g, "operate", "resume", "q.o");
	claim(g, "operate", "q.o", 1);
	save(g, "operate");
}

static void s_time(struct gen *g)
{
	msgpack_packer *pk = req(g, "claim", 3);
	proto_kv_cstr(pk, "queue", "q.p");
	proto_kv_uint(pk, "wait_ms", 1000);
	proto_kv_bool(pk, "detach", true);
	end(g, "park");
	push(g, "park", "q.p");
	turn(g, "park", 0);
	save(g, "park");

	pk = push1(g, "q.e", 2);
	proto_kv_uint(pk, "lease_ms", 100);
	proto_kv_uint(pk, "max_expiries", 1);
	end(g, "expire");
	pk = req(g, "claim", 1);
	proto_kv_cstr(pk, "queue", "q.e");
	end(g, "expire");
	turn(g, "expire", 1000);
	proto_kv_uint(item(g, "extend", 1), "lease_ms", 1000);
	end(g, "expire");
	save(g, "expire");

	push(g, "retention", "q.r");
	claim(g, "retention", "q.r", 1);
	item(g, "ack", 0);
	end(g, "retention");
	turn(g, "retention", 2 * 3600000);
	by_id(g, "retention", "get", "execution_id", 'e');
	save(g, "retention");

	/* steps go with their execution: retention, or a purge */
	for (int i = 0; i < 2; i++) {
		push(g, "forget", "q.f");
		claim(g, "forget", "q.f", 1);
		msgpack_packer *spk = req(g, "step_set", 4);
		kv_ph(spk, "execution_id", 'e');
		kv_ph(spk, "lease_token", 't');
		proto_kv_cstr(spk, "name", "s");
		proto_kv_str(spk, "value", "v", 1);
		end(g, "forget");
		proto_kv_bool(item(g, "nack", 1), "terminal", true);
		end(g, "forget");
	}
	pk = req(g, "purge", 2);
	proto_kv_cstr(pk, "queue", "q.f");
	proto_kv_cstr(pk, "state", "dead");
	end(g, "forget");
	turn(g, "forget", 2 * 3600000);
	by_id(g, "forget", "steps", "execution_id", 'e');
	save(g, "forget");
}

/* What a restart must find again: leases, steps, cues, keys, remembered
 * requests, a paused queue. */
static void s_restart(struct gen *g)
{
	push(g, "restart", "q.rs");
	claim(g, "restart", "q.rs", 1);
	msgpack_packer *pk = req(g, "step_set", 4);
	kv_ph(pk, "execution_id", 'e');
	kv_ph(pk, "lease_token", 't');
	proto_kv_cstr(pk, "name", "s");
	proto_kv_str(pk, "value", "v", 1);
	end(g, "restart");
	proto_kv_uint(push1(g, "q.rs", 1), "every_ms", 1000);
	end(g, "restart");
	proto_kv_cstr(push1(g, "q.rs", 1), "key", "k");
	end(g, "restart");
	by_queue(g, "restart", "pause", "q.rs");
	g->cid = "client-2";
	pk = req(g, "push", 2);
	proto_kv_uint(pk, "retry_ttl_ms", 60000);
	proto_key(pk, "jobs");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 1);
	proto_kv_cstr(pk, "queue", "q.rs");
	end(g, "restart");
	msgpack_sbuffer frame = g->frame; /* sent again after the restart */
	msgpack_sbuffer_init(&g->frame);
	g->cid = NULL;
	req(g, "_restart", 0);
	end(g, "restart");
	msgpack_sbuffer_destroy(&g->frame);
	g->frame = frame;
	end(g, "restart");
	pk = req(g, "ack", 1); /* the lease of the first, which survived */
	proto_key(pk, "items");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 2);
	proto_kv_str(pk, "execution_id", "@e3.............", PROTO_ID_LEN);
	kv_ph(pk, "lease_token", 't');
	end(g, "restart");
	by_queue(g, "restart", "cues", "q.rs");
	by_queue(g, "restart", "stats", "q.rs");
	save(g, "restart");
}

static void s_auth(struct gen *g)
{
	g->auth = FUZZ_TOKEN_PRODUCER;
	push(g, "auth", "fz.a");
	push(g, "auth", "other"); /* outside its prefix */
	claim(g, "auth", "fz.a", 1); /* not its role */
	g->auth = FUZZ_TOKEN_WORKER;
	claim(g, "auth", "fz.a", 1);
	item(g, "ack", 0); /* the execution's queue is looked up */
	end(g, "auth");
	g->auth = FUZZ_TOKEN_ADMIN_FZ;
	by_id(g, "auth", "get", "execution_id", 'e');
	req(g, "stats", 0); /* its queues only */
	end(g, "auth");
	g->auth = FUZZ_TOKEN_ADMIN;
	push(g, "auth", "other");
	by_id(g, "auth", "cancel", "id", 'e');
	g->auth = "not-a-token-of-the-file";
	ping(g, "auth");
	save(g, "auth");

	g->auth = FUZZ_TOKEN_ADMIN;
	proto_kv_uint(push1(g, "q.cue", 1), "every_ms", 60000);
	end(g, "auth_cue");
	g->auth = FUZZ_TOKEN_ADMIN_FZ; /* a cue outside its prefix */
	by_id(g, "auth_cue", "cancel", "id", 'c');
	by_id(g, "auth_cue", "get", "execution_id", 'c');
	save(g, "auth_cue");
}

/* Frames the broker refuses whole. */
static void s_refused(struct gen *g)
{
	msgpack_packer *pk = &g->pk;
	msgpack_sbuffer_clear(&g->frame);
	msgpack_pack_array(pk, 1), msgpack_pack_nil(pk);
	end(g, "refused");
	msgpack_sbuffer_clear(&g->frame);
	msgpack_pack_map(pk, 2);
	proto_kv_uint(pk, "v", 2);
	proto_kv_cstr(pk, "op", "ping");
	end(g, "refused");
	msgpack_sbuffer_clear(&g->frame);
	msgpack_pack_map(pk, 3);
	proto_kv_uint(pk, "v", 1);
	proto_kv_str(pk, "rid", "str-rid", 7);
	proto_kv_cstr(pk, "op", "nosuch");
	end(g, "refused");
	proto_kv_str(req(g, "claim", 1), "queue", "bad\xff", 4);
	end(g, "refused");
	proto_kv_cstr(req(g, "list", 1), "queue", "no spaces");
	end(g, "refused");
	save(g, "refused");
}

/* ---- the dictionary ---- */

static const char *const WORDS[] = {
	/* ops */
	"ping", "push", "claim", "ack", "nack", "extend", "get", "list", "stats", "step_set",
	"step_get", "steps", "cues", "cancel", "retry", "purge", "pause", "resume", "_turn",
	"_restart",
	/* fields */
	"v", "op", "rid", "cid", "auth", "ok", "err", "msg", "jobs", "items", "queue", "payload",
	"priority", "max_attempts", "lease_ms", "delay_ms", "run_at", "key", "key_ttl_ms",
	"unique", "max_expiries", "backoff_ms", "backoff_factor", "backoff_max_ms", "jitter",
	"every_ms", "cron", "tz", "catch_up", "overlap", "retry_ttl_ms", "max", "wait_ms",
	"worker", "detach", "execution_id", "lease_token", "result", "error", "retry_in_ms",
	"terminal", "name", "value", "id", "all", "state", "limit", "after", "from", "ms",
	/* words */
	"scheduled", "ready", "leased", "succeeded", "dead", "cancelled", "one", "none",
	"allow", "skip", "UTC", "Europe/Berlin", "@hourly", "@daily", "*/5 * * * *",
	FUZZ_TOKEN_PRODUCER, FUZZ_TOKEN_WORKER, FUZZ_TOKEN_ADMIN_FZ, FUZZ_TOKEN_ADMIN, FUZZ_PREFIX,
};

static void dict_entry(FILE *f, const char *tag, const unsigned char *p, size_t n)
{
	fprintf(f, "%s=\"", tag);
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", p[i]);
	fputs("\"\n", f);
}

static void write_dict(const char *path)
{
	FILE *f = fopen(path, "w");
	unsigned char buf[64];
	if (f == NULL) {
		fprintf(stderr, "gen_corpus: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	fputs("# The cueq protocol's op names, field names and words, bare and as msgpack\n"
	      "# strs; the frame separator and the ID placeholders of fuzz_request.\n"
	      "# Written by gen_corpus.\n",
	      f);
	for (size_t i = 0; i < sizeof(WORDS) / sizeof(WORDS[0]); i++) {
		size_t n = strlen(WORDS[i]);
		dict_entry(f, "w", (const unsigned char *)WORDS[i], n);
		buf[0] = (unsigned char)(0xa0 | n);
		memcpy(buf + 1, WORDS[i], n);
		dict_entry(f, "s", buf, n + 1);
	}
	dict_entry(f, "sep", (const unsigned char *)FUZZ_SEP, FUZZ_SEP_LEN);
	dict_entry(f, "id", (const unsigned char *)"\xb0@e0.............", 17);
	dict_entry(f, "id", (const unsigned char *)"\xb0@t0.............", 17);
	dict_entry(f, "id", (const unsigned char *)"\xb0@c0.............", 17);
	dict_entry(f, "hex", (const unsigned char *)"\xb0" "0000000000000001", 17);
	fclose(f);
}

int main(int argc, char **argv)
{
	char path[512];
	if (argc != 3) {
		fprintf(stderr, "usage: gen_corpus CORPUS_DIR DICT_FILE\n");
		return 2;
	}
	struct gen g = {.dir = argv[1]};
	mkdir(g.dir, 0755);
	snprintf(path, sizeof(path), "%s/frame", g.dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/request", g.dir);
	mkdir(path, 0755);
	msgpack_sbuffer_init(&g.session);
	msgpack_sbuffer_init(&g.frame);
	msgpack_packer_init(&g.pk, &g.frame, msgpack_sbuffer_write);
	s_push(&g);
	s_keys(&g);
	s_cues(&g);
	s_outcomes(&g);
	s_steps(&g);
	s_inspect(&g);
	s_operate(&g);
	s_time(&g);
	s_restart(&g);
	s_auth(&g);
	s_refused(&g);
	write_dict(argv[2]);
	msgpack_sbuffer_destroy(&g.session);
	msgpack_sbuffer_destroy(&g.frame);
	return 0;
}
