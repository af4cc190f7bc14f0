/*
 * auth.h - who may do what: the principals of cueqd's --auth file.
 *
 * The file has one principal per line, "ROLE NAME TOKEN [PREFIX...]":
 * a role (producer, worker, admin), a name for logs and replies, a secret
 * token of 16-256 printable characters, and optionally the queue name
 * prefixes it is limited to (none: every queue).  '#' starts a comment.
 * Tokens are kept only as SHA-256 digests and compared in constant time.
 * The loop thread alone reads a table; a reload (SIGHUP) makes a new one.
 */
#ifndef CUEQ_AUTH_H
#define CUEQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Roles, as bits: an op lists the roles that may run it. */
#define ROLE_PRODUCER 1u
#define ROLE_WORKER 2u
#define ROLE_ADMIN 4u
#define ROLE_ANY (ROLE_PRODUCER | ROLE_WORKER | ROLE_ADMIN)

#define AUTH_MAX_PREFIXES 16
#define AUTH_MIN_TOKEN 16
#define AUTH_MAX_TOKEN 256

struct principal {
	char name[65];
	unsigned role; /* one ROLE_* bit */
	uint8_t digest[32]; /* SHA-256 of the token */
	uint8_t scope[4];   /* first bytes of SHA-256 of the name: scopes request IDs */
	size_t n_prefixes;  /* 0: every queue */
	char *prefixes[AUTH_MAX_PREFIXES];
};

struct auth {
	struct principal *p;
	size_t n;
};

/* Reads the file at path.  Returns the table, or NULL with a sentence in
 * err (which line, what is wrong, what to do). */
struct auth *auth_load(const char *path, char *err, size_t errlen);
void auth_free(struct auth *a);

/* The principal whose token this is, or NULL. */
const struct principal *auth_find(const struct auth *a, const char *token, size_t len);

/* The name of one role bit ("producer", ...). */
const char *auth_role_name(unsigned role);
/* The roles, as "producer, worker" for an error message, in out. */
const char *auth_roles_text(unsigned roles, char *out, size_t size);

/* May p use this queue?  True for NULL (no --auth) or no prefixes. */
bool auth_queue_ok(const struct principal *p, const char *queue, size_t qlen);
/* p's prefixes as "'a.', 'b.'" for an error message, in out. */
const char *auth_prefixes_text(const struct principal *p, char *out, size_t size);

struct proto_envelope;
/* The request ID of env in its client's scope, into out
 * (PROTO_MAX_SCOPED_RID bytes at most): the principal who first (with
 * --auth; NULL: none), then the client ID env sent or else the connection
 * pipe, then the ID.  So two clients that number their requests alike
 * never share an answer, nor two principals that send the same client ID.
 * The leading bytes tell the forms apart: a client ID's length is 1-64, a
 * connection 0x84, a principal 0xa0. */
size_t auth_scope_rid(const struct proto_envelope *env, uint32_t pipe, const struct principal *who,
		      uint8_t *out);

#endif /* CUEQ_AUTH_H */
