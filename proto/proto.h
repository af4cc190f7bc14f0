/*
 * proto.h - the cueq wire codec, shared by broker and SDK.
 *
 * Frames are msgpack maps (see PROTOCOL.md).  Untrusted bytes go through
 * proto_decode(), which first walks the raw bytes and refuses anything whose
 * declared sizes could make msgpack-c allocate more than the frame justifies
 * (msgpack-c reserves memory for a declared container count up front), and
 * only then unpacks.  The typed getters check each field's type and range in
 * one place and say what was wrong in a sentence.  Packing helpers write
 * straight into an nng_msg.
 */
#ifndef CUEQ_PROTO_H
#define CUEQ_PROTO_H

#include <msgpack.h>
#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cueq/defs.h"

#define PROTO_VERSION 1
#define PROTO_MAX_FRAME (4u << 20)	  /* a request over this is TOO_LARGE */
#define PROTO_TRANSPORT_MAX (8u << 20) /* NNG_OPT_RECVMAXSZ: closes the pipe */
#define PROTO_MAX_DEPTH 8
/* Values in one frame: bounds what msgpack-c allocates (24 bytes each). */
#define PROTO_MAX_OBJECTS (256u << 10)
#define PROTO_MAX_RID 64
/* A request ID in its client's scope: with authentication the principal
 * (5), then the scope length(1), the client ID (or the connection), the
 * request ID. */
#define PROTO_MAX_SCOPED_RID (5 + 1 + PROTO_MAX_RID + PROTO_MAX_RID)
#define PROTO_MAX_QUEUE 128
#define PROTO_MAX_WORKER 128
#define PROTO_MAX_GROUP 128
#define PROTO_MAX_CONCURRENCY 100000 /* a limit's leases at once */
#define PROTO_MAX_RATE 1000000	    /* a limit's claims per period */
#define PROTO_MAX_WAIT_MS 300000
#define PROTO_MIN_LEASE_MS 100
#define PROTO_MAX_LEASE_MS 86400000
#define PROTO_MAX_PRIORITY 1000
#define PROTO_MAX_ATTEMPTS 1000
#define PROTO_ID_LEN 16 /* hex digits of IDs and tokens on the wire */

/* An error on its way to a reply: code (cueq_err of cueq/defs.h) and a sentence. */
typedef struct proto_error {
	int code;
	char msg[256];
	const char *missing; /* NOT_FOUND: what is missing ("step"), sent as
			      * the reply's "missing"; NULL: the execution */
} proto_error;

/* Sets e (may be NULL) and returns code. */
int proto_fail(proto_error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Wire name of a broker error code ("STALE_LEASE"), or NULL. */
const char *proto_err_name(int code);
/* Code of a wire name, or CUEQ_ERR_PROTOCOL when unknown. */
int proto_err_code(const char *name, size_t len);

/* Walks raw bytes: exactly one well-formed msgpack object, nesting at most
 * max_depth, at most PROTO_MAX_OBJECTS values, no container count larger
 * than the bytes left, no str/bin/ext past the end.  Returns CUEQ_OK or CUEQ_ERR_BAD_REQUEST with e set. */
int proto_scan(const void *buf, size_t len, unsigned max_depth, proto_error *e);

/* Scans, then unpacks buf into up (initialised here; the caller destroys it
 * with msgpack_unpacked_destroy even on failure).  The root must be a map.
 * Decoded strings point into buf: keep buf alive while using them. */
int proto_decode(const void *buf, size_t len, msgpack_unpacked *up, proto_error *e);

/* ---- typed field getters -------------------------------------------------
 * Each looks up key in map; when absent, returns CUEQ_OK and leaves *out
 * untouched unless required (then BAD_REQUEST).  A wrong type or range is
 * BAD_REQUEST (TOO_LARGE for strings over max) naming the field. */
const msgpack_object *proto_get(const msgpack_object *map, const char *key);
int proto_str(const msgpack_object *map, const char *key, bool required, size_t max,
	      const char **s, size_t *n, proto_error *e);
/* Like proto_str but also accepts bin. */
int proto_bytes(const msgpack_object *map, const char *key, bool required, size_t max,
		const char **s, size_t *n, proto_error *e);
int proto_uint(const msgpack_object *map, const char *key, bool required, uint64_t min,
	       uint64_t max, uint64_t *out, proto_error *e);
int proto_int(const msgpack_object *map, const char *key, bool required, int64_t min, int64_t max,
	      int64_t *out, proto_error *e);
int proto_bool(const msgpack_object *map, const char *key, bool required, bool *out,
	       proto_error *e);
/* An array of min..max elements. */
int proto_array(const msgpack_object *map, const char *key, bool required, size_t min,
		size_t max, const msgpack_object_array **out, proto_error *e);

/* How many bytes from the start of p are valid UTF-8 (n when all are).
 * The codec refuses a str field that is not (bytes go as bin), and packs
 * every text of its own through proto_kv_text. */
size_t proto_utf8_prefix(const void *p, size_t n);

/* Wire name of a cueq_state ("ready"), or NULL; and back (-1: unknown). */
const char *proto_state_name(int state);
int proto_state_parse(const char *s, size_t n);

/* Checks a queue name: 1-128 bytes of [A-Za-z0-9._:-]. */
bool proto_queue_ok(const char *s, size_t n);
/* IDs and tokens: 64-bit values as 16 lowercase hex digits plus NUL. */
void proto_id_fmt(uint64_t v, char out[PROTO_ID_LEN + 1]);
bool proto_id_parse(const char *s, size_t n, uint64_t *out);
/* Field getter for an ID/token string. */
int proto_id(const msgpack_object *map, const char *key, bool required, uint64_t *out,
	     proto_error *e);

/* ---- packing ------------------------------------------------------------ */

/* A packer appending to an nng_msg; append failures are remembered in
 * *failed (packing goes on harmlessly). */
typedef struct proto_writer {
	msgpack_packer pk;
	nng_msg *msg;
	int failed;
} proto_writer;

void proto_writer_init(proto_writer *w, nng_msg *msg);
void proto_key(msgpack_packer *pk, const char *key); /* a str from a C string */
void proto_kv_str(msgpack_packer *pk, const char *key, const char *s, size_t n);
void proto_kv_cstr(msgpack_packer *pk, const char *key, const char *s);
/* A sentence of the broker's (which may quote a client's bytes, or be cut
 * short mid-character): each byte that would not be valid UTF-8 is sent
 * as '?'. */
void proto_kv_text(msgpack_packer *pk, const char *key, const char *s);
/* The same for n bytes of stored text (written by an older broker, which
 * did not check it): sent as is when valid, else with each bad byte '?'. */
void proto_kv_text_n(msgpack_packer *pk, const char *key, const char *s, size_t n);
void proto_kv_bin(msgpack_packer *pk, const char *key, const void *b, size_t n);
void proto_kv_uint(msgpack_packer *pk, const char *key, uint64_t v);
void proto_kv_int(msgpack_packer *pk, const char *key, int64_t v);
void proto_kv_bool(msgpack_packer *pk, const char *key, bool v);
void proto_kv_id(msgpack_packer *pk, const char *key, uint64_t id);

/* Writes the start of a reply map of n_fields op fields after the common
 * ones (v, rid, ok): the caller then packs exactly n_fields key/values. */
void proto_reply_begin(msgpack_packer *pk, const void *rid, size_t rid_len, bool rid_bin,
		       size_t n_fields);
/* A whole error reply. */
/* An error reply from e: its code, message and what is missing. */
void proto_reply_fail(msgpack_packer *pk, const void *rid, size_t rid_len, bool rid_bin,
		      const proto_error *e);
void proto_reply_error(msgpack_packer *pk, const void *rid, size_t rid_len, bool rid_bin,
		       int code, const char *msg);
/* The envelope every request carries: its request ID (string or bin,
 * 1-PROTO_MAX_RID bytes), the protocol version "v" and the op name. */
struct proto_envelope {
	const char *rid; /* points into the decoded request */
	size_t rid_len;
	bool rid_bin;
	const char *cid; /* the client's ID (1-PROTO_MAX_RID bytes), NULL: none */
	size_t cid_len;
	const char *op;
	size_t op_len;
};
/* Decodes and checks the envelope of a decoded request map.  CUEQ_OK, or
 * BAD_REQUEST with a sentence in err; env->rid is then set only when the
 * request ID itself was valid (so the error reply can carry it), else NULL. */
int proto_envelope(const msgpack_object *root, struct proto_envelope *env, proto_error *err);

/* Start of a request map with n_fields op fields after v, op, rid (and the
 * client ID cid, as bin, and auth when not NULL). */
void proto_request_begin(msgpack_packer *pk, const char *op, const void *rid, size_t rid_len,
			 const void *cid, size_t cid_len, const char *auth, size_t n_fields);

/* Parses a duration "250ms", "30s", "5m", "2h", "1d" (numbers with units,
 * also summed: "1h30m"; a bare "0" is zero) into milliseconds.  Returns
 * false when s is not one. */
bool proto_parse_duration(const char *s, int64_t *ms);

/* FNV-1a over n bytes, going on from h (PROTO_HASH_INIT to start): request
 * bodies, outcome bodies and idempotent requests are compared by it, and
 * the broker stores such hashes, so the algorithm and the constant never
 * change. */
uint64_t proto_hash(uint64_t h, const void *p, size_t n);
#define PROTO_HASH_INIT 0xcbf29ce484222325ull

/* Unix time in milliseconds, and a monotonic clock in milliseconds. */
int64_t proto_now_ms(void);
int64_t proto_mono_ms(void);

#endif /* CUEQ_PROTO_H */
