/*
 * record.h - the stored forms of an execution and of its history events.
 *
 * Both are msgpack maps with short keys and a format version "v".  Bump
 * RECORD_VERSION when a field changes meaning; a new optional field does not
 * need a bump (readers ignore unknown keys and default missing ones).  A
 * broker refuses to start on records newer than it knows (store meta
 * "format"), so an old binary never misreads new data.  These forms are
 * the embedded engine's own: the rest of the broker sees engine.h's types.
 */
#ifndef CUEQ_RECORD_H
#define CUEQ_RECORD_H

#ifndef CUEQ_EMBEDDED_ENGINE
#error "record.h is private to the embedded engine: outside it, use engine.h"
#endif

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define RECORD_VERSION 1

enum outcome_kind { OUT_NONE = 0, OUT_ACK = 1, OUT_NACK = 2 };

#define REC_F_UNIQUE 1 /* holds a unique key (store.h: unique 'r' id) */
#define REC_F_NO_JITTER 2 /* retries wait the computed backoff exactly */

struct exec_rec {
	uint64_t id, cue_id;
	const char *queue;
	size_t queue_len;
	const char *group; /* concurrency group; group_len 0: none */
	size_t group_len;
	int32_t priority;
	uint32_t max_attempts, lease_ms;
	uint32_t attempt, expiries, failures;
	uint32_t max_expiries; /* 0 (older records): the default */
	uint32_t backoff_ms, backoff_max_ms, backoff_factor; /* 0: defaults */
	uint32_t hist_seq; /* next history sequence number */
	uint8_t state;	   /* cueq_state */
	uint8_t flags;	   /* REC_F_* */
	int64_t created_at, run_at, deadline, finished_at; /* Unix ms; 0 none */
	uint64_t token;					   /* live lease token; 0 none */
	const char *result, *error;			   /* NULL: none */
	size_t result_len, error_len;
	const char *why; /* why it is dead or cancelled; NULL: none */
	size_t why_len;
	/* The last ack/nack applied, so that a resend gets the same answer. */
	uint8_t out_kind, out_state;
	uint64_t out_token, out_hash;
	int64_t out_run_at;
};

/* Packs r into pk. */
void record_pack(msgpack_packer *pk, const struct exec_rec *r);
/* Decodes a stored record into r; strings point into up, which the caller
 * keeps alive and destroys.  Returns 0, or -1 on a corrupt or newer record. */
int record_unpack(const char *buf, size_t len, msgpack_unpacked *up, struct exec_rec *r);
/* The same into zone z (cleared first; r points into it and buf), for
 * reading many records one after another without an allocation each. */
int record_unpack_zone(const char *buf, size_t len, msgpack_zone *z, struct exec_rec *r);

/* Stored event numbers: event 1 was "pushed" in early drafts; numbers stay
 * stable on disk (inspect.c gives the engine's words for them). */
enum hist_event {
	EV_CLAIMED = 2,
	EV_EXTENDED,
	EV_EXPIRED,
	EV_NACKED,
	EV_SUCCEEDED,
	EV_DEAD,
	EV_STEP,
	EV_RELEASED,
	EV_CANCELLED,
	EV_RETRIED,
};

struct hist_rec {
	int64_t at;
	uint8_t event;
	uint32_t attempt;
	uint64_t token; /* 0: none */
	const char *detail;
	size_t detail_len;
};

void record_pack_event(msgpack_packer *pk, const struct hist_rec *h);
int record_unpack_event(const char *buf, size_t len, msgpack_unpacked *up, struct hist_rec *h);

/* What an idempotency key remembers: the request's fingerprints and its
 * answer.  A key stored by an older broker has the FNV-1a hash only. */
struct idem_rec {
	uint64_t hash;
	bool has_digest;
	uint8_t digest[32]; /* SHA-256 */
	bool has_fields;
	uint32_t fields[8]; /* eng_push.req_fields, to name what differs */
	uint64_t id, cue_id;
	uint8_t state;
	int64_t run_at, created_at, expires_at;
};
void record_pack_idem(msgpack_packer *pk, const struct idem_rec *r);
int record_unpack_idem(const char *buf, size_t len, struct idem_rec *r);

/* A recurring cue (cues.c): what it fires and when.  The payload is
 * stored with it. */
#define CUE_LAST 10
struct cue_rec {
	uint64_t id;
	const char *queue;
	size_t queue_len;
	const char *payload;
	size_t payload_len;
	int32_t priority;
	uint32_t max_attempts, max_expiries, lease_ms;
	uint32_t backoff_ms, backoff_max_ms, backoff_factor;
	uint8_t flags; /* REC_F_NO_JITTER */
	int64_t every_ms; /* 0: cron */
	const char *cron, *tz; /* tz NULL: UTC */
	size_t cron_len, tz_len;
	uint8_t catch_up, overlap, cancelled;
	int64_t created_at, anchor, next_fire; /* anchor: every's first fire */
	uint64_t fires, skipped;
	uint32_t n_last; /* last fires, newest first */
	uint64_t last_id[CUE_LAST];
	int64_t last_at[CUE_LAST];
};
void record_pack_cue(msgpack_packer *pk, const struct cue_rec *c);
int record_unpack_cue(const char *buf, size_t len, msgpack_unpacked *up, struct cue_rec *c);

/* A step of the ledger. */
struct step_rec {
	int64_t at;
	const char *value; /* points into the decoded buffer */
	size_t value_len;
};
void record_pack_step(msgpack_packer *pk, const struct step_rec *s);
int record_unpack_step(const char *buf, size_t len, msgpack_unpacked *up, struct step_rec *s);

/* The hash of stored outcome bodies (out_hash): proto_hash, whose values
 * records keep, so it is named here with the format that relies on it. */
uint64_t record_hash(uint64_t h, const void *p, size_t n);
#define RECORD_HASH_INIT PROTO_HASH_INIT

#endif /* CUEQ_RECORD_H */
