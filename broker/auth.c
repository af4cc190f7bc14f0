/*
 * auth.c - the --auth file: parsing, token lookup, queue prefixes.
 */
#include "auth.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "keyhash.h"
#include "log.h"
#include "proto.h"

static const char *const ROLE_NAMES[] = {"producer", "worker", "admin"};

const char *auth_role_name(unsigned role)
{
	for (unsigned i = 0; i < 3; i++)
		if (role == 1u << i)
			return ROLE_NAMES[i];
	return "none";
}

const char *auth_roles_text(unsigned roles, char *out, size_t size)
{
	size_t n = 0;
	unsigned left = roles & ROLE_ANY;
	out[0] = '\0';
	for (unsigned i = 0; i < 3 && n < size; i++)
		if (left & (1u << i)) {
			left &= ~(1u << i);
			n += (size_t)snprintf(out + n, size - n, "%s%s", n == 0 ? "" : left ? ", " : " or ",
					      ROLE_NAMES[i]);
		}
	return out;
}

static int fail(char *err, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "--auth %s line %u: %s", path, line, what);
	return -1;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

/* One line's words (split on blanks) into p; -1 with err on a bad one. */
static int parse_line(struct auth *a, struct principal *p, char *words[], size_t nw,
		      const char *path, unsigned line, char *err, size_t errlen)
{
	unsigned role = 0;
	for (unsigned i = 0; i < 3; i++)
		if (strcmp(words[0], ROLE_NAMES[i]) == 0)
			role = 1u << i;
	if (role == 0)
		return fail(err, errlen, path, line,
			    "'%.32s' is not a role: use producer, worker or admin", words[0]);
	if (nw < 3)
		return fail(err, errlen, path, line,
			    "a principal is ROLE NAME TOKEN [QUEUE-PREFIX...]; this line has %zu word%s",
			    nw, nw == 1 ? "" : "s");
	if (!name_ok(words[1]))
		return fail(err, errlen, path, line,
			    "name '%.32s' is invalid: use 1-64 characters of A-Z a-z 0-9 . _ -", words[1]);
	size_t tl = strlen(words[2]);
	if (tl < AUTH_MIN_TOKEN || tl > AUTH_MAX_TOKEN)
		return fail(err, errlen, path, line,
			    "the token of '%s' has %zu characters; use %d to %d (e.g. 32 random hex digits: openssl rand -hex 16)",
			    words[1], tl, AUTH_MIN_TOKEN, AUTH_MAX_TOKEN);
	if (nw - 3 > AUTH_MAX_PREFIXES)
		return fail(err, errlen, path, line, "'%s' has %zu queue prefixes; at most %d",
			    words[1], nw - 3, AUTH_MAX_PREFIXES);
	*p = (struct principal){.role = role};
	memcpy(p->name, words[1], strlen(words[1]) + 1);
	crypto_hash_sha256(p->digest, (const unsigned char *)words[2], tl);
	uint8_t nd[32];
	crypto_hash_sha256(nd, (const unsigned char *)p->name, strlen(p->name));
	memcpy(p->scope, nd, sizeof(p->scope));
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->p[i].name, p->name) == 0)
			return fail(err, errlen, path, line, "name '%s' is used twice", p->name);
		if (sodium_memcmp(a->p[i].digest, p->digest, 32) == 0)
			return fail(err, errlen, path, line,
				    "'%s' has the same token as '%s': give each principal its own",
				    p->name, a->p[i].name);
	}
	for (size_t i = 3; i < nw; i++) {
		if (!proto_queue_ok(words[i], strlen(words[i])))
			return fail(err, errlen, path, line,
				    "queue prefix '%.32s' of '%s' is invalid: use characters of A-Z a-z 0-9 . _ : -",
				    words[i], p->name);
		if ((p->prefixes[p->n_prefixes++] = strdup(words[i])) == NULL)
			return fail(err, errlen, path, line, "out of memory");
	}
	return 0;
}

static void principal_clear(struct principal *p)
{
	for (size_t i = 0; i < p->n_prefixes; i++)
		free(p->prefixes[i]);
	sodium_memzero(p, sizeof(*p));
}

struct auth *auth_load(const char *path, char *err, size_t errlen)
{
	if (keyhash_init() != 0) { /* starts libsodium */
		snprintf(err, errlen, "--auth %s: cannot start libsodium", path);
		return NULL;
	}
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "--auth %s: cannot open it (%s)", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
		log_warn("--auth %s can be read by other users (mode %03o): chmod 600 it, it holds secrets",
			 path, (unsigned)(st.st_mode & 0777));
	struct auth *a = calloc(1, sizeof(*a));
	char buf[4096];
	unsigned line = 0;
	int rc = a ? 0 : fail(err, errlen, path, 0, "out of memory");
	while (rc == 0 && fgets(buf, sizeof(buf), f) != NULL) {
		line++;
		size_t len = strlen(buf);
		if (len == sizeof(buf) - 1 && buf[len - 1] != '\n') {
			rc = fail(err, errlen, path, line, "the line is longer than %zu bytes",
				  sizeof(buf) - 2);
			break;
		}
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = '\0';
		char *words[3 + AUTH_MAX_PREFIXES + 1], *save = NULL;
		size_t nw = 0;
		for (char *w = strtok_r(buf, " \t\r\n", &save); w && nw < 3 + AUTH_MAX_PREFIXES + 1;
		     w = strtok_r(NULL, " \t\r\n", &save))
			words[nw++] = w;
		if (nw == 0)
			continue;
		struct principal *np = realloc(a->p, (a->n + 1) * sizeof(*np));
		if (np == NULL) {
			rc = fail(err, errlen, path, line, "out of memory");
			break;
		}
		a->p = np;
		memset(&a->p[a->n], 0, sizeof(a->p[a->n]));
		if ((rc = parse_line(a, &a->p[a->n], words, nw, path, line, err, errlen)) != 0)
			principal_clear(&a->p[a->n]);
		else
			a->n++;
		sodium_memzero(buf, sizeof(buf));
	}
	if (rc == 0 && ferror(f))
		rc = fail(err, errlen, path, line, "read error (%s)", strerror(errno));
	if (rc == 0 && a->n == 0)
		rc = fail(err, errlen, path, line,
			  "no principal: add lines like 'admin ops TOKEN' (see cueqd --help)");
	fclose(f);
	if (rc != 0) {
		auth_free(a);
		return NULL;
	}
	return a;
}

void auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++)
		principal_clear(&a->p[i]);
	free(a->p);
	free(a);
}

const struct principal *auth_find(const struct auth *a, const char *token, size_t len)
{
	uint8_t d[32];
	const struct principal *found = NULL;
	crypto_hash_sha256(d, (const unsigned char *)token, len);
	for (size_t i = 0; i < a->n; i++) /* every one compared: no early exit */
		if (sodium_memcmp(a->p[i].digest, d, 32) == 0)
			found = &a->p[i];
	return found;
}

bool auth_queue_ok(const struct principal *p, const char *queue, size_t qlen)
{
	if (p == NULL || p->n_prefixes == 0)
		return true;
	for (size_t i = 0; i < p->n_prefixes; i++) {
		size_t pl = strlen(p->prefixes[i]);
		if (pl <= qlen && memcmp(queue, p->prefixes[i], pl) == 0)
			return true;
	}
	return false;
}

const char *auth_prefixes_text(const struct principal *p, char *out, size_t size)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < p->n_prefixes && n + 1 < size; i++)
		n += (size_t)snprintf(out + n, size - n, "%s'%s'", i ? ", " : "", p->prefixes[i]);
	return out;
}

size_t auth_scope_rid(const struct proto_envelope *env, uint32_t pipe, const struct principal *who,
		      uint8_t *out)
{
	size_t n = 0;
	if (who != NULL) {
		out[n++] = 0xa0;
		memcpy(out + n, who->scope, sizeof(who->scope));
		n += sizeof(who->scope);
	}
	if (env->cid != NULL) {
		out[n++] = (uint8_t)env->cid_len;
		memcpy(out + n, env->cid, env->cid_len);
		n += env->cid_len;
	} else {
		out[n++] = 0x80 | 4;
		memcpy(out + n, &pipe, 4);
		n += 4;
	}
	memcpy(out + n, env->rid, env->rid_len);
	return n + env->rid_len;
}
