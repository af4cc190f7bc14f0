/*
 * fuzz_core.h - the in-process core fuzz_request drives: the embedded
 * engine on a temp directory, its clock, its turns, and the principals of
 * an auth file (fuzz_core.c).
 *
 * The engine is opened once per process and, to keep long runs bounded,
 * closed and opened again on a fresh directory every CUEQ_FUZZ_REOPEN
 * inputs (default FUZZ_REOPEN).
 */
#ifndef CUEQ_FUZZ_CORE_H
#define CUEQ_FUZZ_CORE_H

#include <stdint.h>

#include "auth.h"
#include "engine.h"

#define FUZZ_REOPEN 256

/* Tokens of the auth file: a producer, a worker and an admin limited to
 * queues "fz.", and an admin of every queue. */
#define FUZZ_PREFIX "fz."
#define FUZZ_TOKEN_PRODUCER "producer-token-0001"
#define FUZZ_TOKEN_WORKER "worker-token-00001"
#define FUZZ_TOKEN_ADMIN_FZ "admin-fz-token-001"
#define FUZZ_TOKEN_ADMIN "admin-token-000001"

struct core {
	const struct engine_ops *eo;
	struct engine *e;
	struct auth *auth;
	int64_t ahead_ms; /* the engine's clock runs this far ahead of the real one */
	unsigned inputs;  /* since the engine was opened */
	char dir[512];	  /* the temp directory: the engine in it, the auth file beside */
};

/* The core for the next input: opened on first use, fresh again every
 * CUEQ_FUZZ_REOPEN inputs; and the start of the input's first turn. */
struct core *core_begin(void);
/* Ends a turn: commits (and syncs what must be durable), moves the clock
 * on by advance_ms and starts the next turn. */
void core_turn(struct core *c, int64_t advance_ms);
/* The engine's clock (Unix ms). */
int64_t core_now(const struct core *c);
/* Ends the turn, closes the engine and opens it again on the same
 * directory, as a broker's restart. */
void core_restart(struct core *c);
/* Closes the core and removes its directory. */
void core_close(void);

/* The principal of a request's "auth" token; NULL when it has none or one
 * the file does not list (as for a broker without --auth). */
const struct principal *core_who(const struct core *c, const msgpack_object *root);

#endif /* CUEQ_FUZZ_CORE_H */
