/*
 * http_hooks.c - webhook intake: POST /v1/hooks/QUEUE (cueqd --hook).
 *
 * Providers send each event again until they get a 2xx, so a delivery is
 * pushed with its delivery ID as the job's idempotency key: the first is
 * 202 with its execution, a repeat within the idempotency window is 200
 * and makes nothing.  The ID is a header (GitHub's X-GitHub-Delivery) or a
 * field of the JSON body (Stripe's id).  A hook with a secret checks the
 * sender's HMAC-SHA256 signature (GitHub's X-Hub-Signature-256, Stripe's
 * Stripe-Signature with its timestamp, or a plain hex digest in a header
 * of one's choice) in constant time; that signature then stands for the
 * producer token --auth would ask, since providers cannot send one.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_int.h"
#include "proto.h"

#define STRIPE_TOLERANCE_S 300 /* Stripe's own default: older is a replay */
#define SECRET_MAX 4096

static int copy_opt(char *dst, size_t size, const char *v, size_t n, const char *what, char *err,
		    size_t errlen)
{
	if (n == 0 || n >= size) {
		snprintf(err, errlen, "--hook: %s must be 1-%zu characters", what, size - 1);
		return -1;
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

int http_hook_parse(const char *spec, struct http_hook *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *colon = strchr(spec, ':');
	if (colon == NULL || !proto_queue_ok(spec, (size_t)(colon - spec)) ||
	    (size_t)(colon - spec) >= sizeof(out->queue)) {
		snprintf(err, errlen,
			 "--hook '%.100s' must be QUEUE:key-header=NAME or QUEUE:key-field=FIELD, then optionally ,signature=github|stripe|hmac-sha256:HEADER,secret-file=PATH",
			 spec);
		return -1;
	}
	memcpy(out->queue, spec, (size_t)(colon - spec));
	for (const char *p = colon + 1; *p;) {
		const char *end = strchr(p, ','), *eq;
		size_t l = end ? (size_t)(end - p) : strlen(p);
		eq = memchr(p, '=', l);
		if (eq == NULL) {
			snprintf(err, errlen, "--hook %s: '%.*s' is not OPTION=VALUE", out->queue, (int)l, p);
			return -1;
		}
		size_t kl = (size_t)(eq - p), vl = l - kl - 1;
		const char *v = eq + 1;
		int rc;
		if (kl == 10 && memcmp(p, "key-header", 10) == 0) {
			rc = copy_opt(out->key_header, sizeof(out->key_header), v, vl, "key-header", err, errlen);
		} else if (kl == 9 && memcmp(p, "key-field", 9) == 0) {
			rc = copy_opt(out->key_field, sizeof(out->key_field), v, vl, "key-field", err, errlen);
		} else if (kl == 11 && memcmp(p, "secret-file", 11) == 0) {
			rc = copy_opt(out->secret_file, sizeof(out->secret_file), v, vl, "secret-file", err,
				      errlen);
		} else if (kl == 9 && memcmp(p, "signature", 9) == 0) {
			rc = 0;
			if (vl == 6 && memcmp(v, "github", 6) == 0)
				out->signature = HOOK_SIG_GITHUB;
			else if (vl == 6 && memcmp(v, "stripe", 6) == 0)
				out->signature = HOOK_SIG_STRIPE;
			else if (vl > 12 && memcmp(v, "hmac-sha256:", 12) == 0) {
				out->signature = HOOK_SIG_HMAC;
				rc = copy_opt(out->sig_header, sizeof(out->sig_header), v + 12, vl - 12,
					      "the signature's header", err, errlen);
			} else {
				snprintf(err, errlen,
					 "--hook %s: signature '%.*s' is not github, stripe or hmac-sha256:HEADER",
					 out->queue, (int)vl, v);
				rc = -1;
			}
		} else {
			snprintf(err, errlen,
				 "--hook %s: unknown option '%.*s' (it takes key-header, key-field, signature, secret-file)",
				 out->queue, (int)kl, p);
			rc = -1;
		}
		if (rc != 0)
			return -1;
		p = end ? end + 1 : p + l;
	}
	if ((out->key_header[0] != '\0') == (out->key_field[0] != '\0')) {
		snprintf(err, errlen,
			 "--hook %s needs one of key-header=NAME or key-field=FIELD: where each delivery's ID is, which makes a repeated delivery a duplicate",
			 out->queue);
		return -1;
	}
	if ((out->signature != HOOK_SIG_NONE) != (out->secret_file[0] != '\0')) {
		snprintf(err, errlen, "--hook %s: signature= and secret-file= go together",
			 out->queue);
		return -1;
	}
	return 0;
}

int http_hooks_load(struct http_hook *hooks, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		struct http_hook *k = &hooks[i];
		if (k->secret_file[0] == '\0')
			continue;
		FILE *f = fopen(k->secret_file, "rb");
		if (f == NULL) {
			snprintf(err, errlen, "--hook %s: cannot read the secret file %s: %s", k->queue,
				 k->secret_file, strerror(errno));
			return -1;
		}
		unsigned char *b = malloc(SECRET_MAX + 1);
		size_t len = b ? fread(b, 1, SECRET_MAX + 1, f) : 0;
		fclose(f);
		while (len > 0 && (b[len - 1] == '\n' || b[len - 1] == '\r'))
			len--; /* a file written by echo ends in a newline no sender signs with */
		if (b == NULL || len == 0 || len > SECRET_MAX) {
			free(b);
			snprintf(err, errlen, "--hook %s: the secret file %s must hold 1-%d bytes", k->queue,
				 k->secret_file, SECRET_MAX);
			return -1;
		}
		k->secret = b;
		k->secret_len = len;
	}
	return 0;
}

void http_hooks_free(struct http_hook *hooks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (hooks[i].secret != NULL)
			sodium_memzero(hooks[i].secret, hooks[i].secret_len);
		free(hooks[i].secret);
		hooks[i].secret = NULL;
	}
}

const struct http_hook *hooks_find(const struct http *h, const char *queue)
{
	for (size_t i = 0; i < h->cfg.n_hooks; i++)
		if (strcmp(h->cfg.hooks[i].queue, queue) == 0)
			return &h->cfg.hooks[i];
	return NULL;
}

/* HMAC-SHA256 under the hook's secret of prefix (may be NULL) then body. */
static void mac_of(const struct http_hook *k, const char *prefix, const void *body, size_t len,
		   unsigned char out[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, k->secret, k->secret_len);
	if (prefix != NULL)
		crypto_auth_hmacsha256_update(&st, (const unsigned char *)prefix, strlen(prefix));
	crypto_auth_hmacsha256_update(&st, body, len);
	crypto_auth_hmacsha256_final(&st, out);
}

/* Whether hex (n characters) is the digest want, in constant time. */
static bool hex_is(const char *hex, size_t n, const unsigned char *want)
{
	unsigned char got[crypto_auth_hmacsha256_BYTES];
	size_t gl = 0;
	if (n != 2 * sizeof(got) ||
	    sodium_hex2bin(got, sizeof(got), hex, n, NULL, &gl, NULL) != 0 || gl != sizeof(got))
		return false;
	return sodium_memcmp(got, want, sizeof(got)) == 0;
}

static bool signed_ok(struct hreq *hr, const struct http_hook *k, const char **why)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	const char *body = hr->body != NULL ? hr->body : "";
	if (k->signature == HOOK_SIG_GITHUB || k->signature == HOOK_SIG_HMAC) {
		const char *name = k->signature == HOOK_SIG_GITHUB ? "X-Hub-Signature-256" : k->sig_header;
		const char *v = http_header(hr, name);
		*why = k->signature == HOOK_SIG_GITHUB
			       ? "X-Hub-Signature-256 must be sha256=HEX, the HMAC-SHA256 of the body under the hook's secret"
			       : "the signature header must hold HEX (or sha256=HEX), the HMAC-SHA256 of the body under the hook's secret";
		if (v == NULL)
			return false;
		if (strncmp(v, "sha256=", 7) == 0)
			v += 7;
		else if (k->signature == HOOK_SIG_GITHUB)
			return false;
		mac_of(k, NULL, body, hr->len, mac);
		return hex_is(v, strlen(v), mac);
	}
	/* Stripe: t=TIMESTAMP,v1=HEX[,v1=HEX...], signed "TIMESTAMP.body" */
	const char *v = http_header(hr, "Stripe-Signature");
	*why = "Stripe-Signature must be t=TIME,v1=HEX: the HMAC-SHA256 of TIME.body under the hook's secret, TIME within 5 minutes of now";
	if (v == NULL)
		return false;
	char t[24] = "";
	for (const char *p = v; *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l > 2 && p[0] == 't' && p[1] == '=' && l - 2 < sizeof(t)) {
			memcpy(t, p + 2, l - 2);
			t[l - 2] = '\0';
		}
		p = end ? end + 1 : p + l;
	}
	char *tend;
	long long ts = strtoll(t, &tend, 10);
	if (t[0] == '\0' || *tend != '\0')
		return false;
	long long now = (long long)time(NULL);
	if (ts < now - STRIPE_TOLERANCE_S || ts > now + STRIPE_TOLERANCE_S)
		return false;
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "%s.", t);
	mac_of(k, prefix, body, hr->len, mac);
	bool ok = false;
	for (const char *p = v; *p;) { /* any v1 may match: secrets being rolled */
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l > 3 && memcmp(p, "v1=", 3) == 0)
			ok |= hex_is(p + 3, l - 3, mac);
		p = end ? end + 1 : p + l;
	}
	return ok;
}

/* The body's field at a dotted path, as text (a string, or an integer). */
static int field_key(struct hreq *hr, const char *path, char *key, size_t keylen)
{
	json_error_t je;
	json_t *root = json_loadb(hr->body != NULL ? hr->body : "", hr->len, 0, &je), *v = root;
	char seg[129];
	for (const char *p = path; v != NULL && *p;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (l >= sizeof(seg))
			l = sizeof(seg) - 1;
		memcpy(seg, p, l);
		seg[l] = '\0';
		v = json_is_object(v) ? json_object_get(v, seg) : NULL;
		p = dot ? dot + 1 : p + strlen(p);
	}
	int rc = -1;
	if (json_is_string(v) && json_string_length(v) >= 1 && json_string_length(v) < keylen) {
		memcpy(key, json_string_value(v), json_string_length(v) + 1);
		rc = 0;
	} else if (json_is_integer(v)) {
		snprintf(key, keylen, "%lld", (long long)json_integer_value(v));
		rc = 0;
	}
	json_decref(root);
	return rc;
}

int hooks_check(struct hreq *hr, const struct http_hook *k, char *key, size_t keylen)
{
	char msg[400];
	const char *why = "";
	if (k->signature != HOOK_SIG_NONE && !signed_ok(hr, k, &why)) {
		snprintf(msg, sizeof(msg), "the webhook's signature does not match: %s", why);
		return http_problem(hr, 401, "UNAUTHORIZED", msg, NULL) == MHD_YES ? 1 : -1;
	}
	if (k->key_header[0] != '\0') {
		const char *v = http_header(hr, k->key_header);
		size_t n = v ? strlen(v) : 0;
		if (n == 0 || n >= keylen || n > 256) {
			snprintf(msg, sizeof(msg),
				 "the delivery has no %s header (1-256 bytes): it names the delivery, so that a repeat is known",
				 k->key_header);
			return http_problem(hr, 400, "BAD_REQUEST", msg, NULL) == MHD_YES ? 1 : -1;
		}
		memcpy(key, v, n + 1);
		return 0;
	}
	if (field_key(hr, k->key_field, key, keylen < 257 ? keylen : 257) != 0) {
		snprintf(msg, sizeof(msg),
			 "the delivery's body is not a JSON object with a string or integer '%s' (1-256 bytes): it names the delivery, so that a repeat is known",
			 k->key_field);
		return http_problem(hr, 400, "BAD_REQUEST", msg, NULL) == MHD_YES ? 1 : -1;
	}
	return 0;
}
