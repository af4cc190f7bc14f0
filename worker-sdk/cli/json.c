/*
 * json.c - the --json output, on jansson: one object (or one array) per line.
 *
 * The jw_ calls build a jansson value in the order the caller gives its
 * keys (jansson keeps an object's insertion order), and jw_end writes it
 * compact, with a newline: no spaces, the keys in that order.  A top-level
 * list (dead) is written element by element as each closes, so a long one
 * is never held whole in memory and is still a valid array when a page
 * fails.  Out of memory, a line (a list's remaining elements) is dropped
 * with one error line, never cut short, and cli_flush makes the exit code 1.
 * The escapes are jansson's: \" \\ \b \f \n \r \t, \u001B for the other
 * control characters; any other character, U+FFFD too, is written as is.
 *
 * Strings must come out as valid JSON whatever bytes the broker holds, and
 * the UTF-8 check is ours, not jansson's: json_stringn only says yes or no
 * (NULL, which out of memory it also returns), and we need to know where a
 * bad byte is.  Text is checked as UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF, the rule jansson checks too) and a bad
 * byte is replaced by U+FFFD; a payload or step value that is not valid
 * UTF-8 goes whole as "payload_base64" ("value_base64") instead, so no byte
 * of it is lost.  The checked or mended bytes then go in with
 * json_stringn_nocheck: jansson would only repeat the scan.  Only checked
 * bytes may: jansson's dump fails on a string that is not UTF-8.
 */
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static bool any_lost; /* a line or element was dropped for want of memory */

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool cli_utf8_valid(const void *p, size_t len)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(s + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

size_t cli_utf8_cut(const char *s, size_t len, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	if (len <= max)
		return len;
	while (i < max) {
		size_t n = utf8_seq(u + i, len - i);
		if (n == 0)
			n = 1; /* an invalid byte is cut like a character */
		if (i + n > max)
			break;
		i += n;
	}
	return i;
}

/* A JSON string of the len bytes at s, each bad byte as U+FFFD; NULL out
 * of memory. */
static json_t *text(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	char *fixed, *p;
	json_t *v;

	if (cli_utf8_valid(s, len))
		return json_stringn_nocheck(s, len);
	fixed = malloc(3 * len); /* at worst every byte becomes 3 */
	if (fixed == NULL)
		return NULL;
	p = fixed;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(u + i, len - i);
		if (n == 0) {
			memcpy(p, "\xef\xbf\xbd", 3);
			p += 3;
			i++;
			continue;
		}
		memcpy(p, u + i, n);
		p += n;
		i += n;
	}
	v = json_stringn_nocheck(fixed, (size_t)(p - fixed));
	free(fixed);
	return v;
}

/* The len bytes at p in base64 into out (4 per 3, rounded up); returns
 * the characters written. */
static size_t base64(char *out, const unsigned char *p, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = out;
	size_t i;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = '=';
	}
	return (size_t)(o - out);
}

void cli_base64(FILE *f, const void *data, size_t len)
{
	const unsigned char *p = data;
	char buf[1024];

	while (len > 0) {
		size_t n = len < 768 ? len : 768; /* a multiple of 3 until the end */
		fwrite(buf, 1, base64(buf, p, n), f);
		p += n;
		len -= n;
	}
}

bool jw_failed(void)
{
	return any_lost;
}

static void lost(struct jw *w)
{
	if (!any_lost)
		cli_error("out of memory writing the JSON output");
	any_lost = w->failed = true;
}

/* Writes v, a line or (after sep, when not 0) a list's element: compact,
 * keys in insertion order (what JSON_PRESERVE_ORDER asks; jansson always
 * keeps it since 2.8).  Into memory first, not json_dumpf: jansson
 * allocates while it dumps, and out of memory json_dumpf would leave half
 * a line.  Fails only out of memory, every string being valid UTF-8. */
static bool dump(struct jw *w, const json_t *v, char sep)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

	if (s == NULL) {
		lost(w);
		return false;
	}
	if (sep != 0)
		fputc(sep, w->f);
	fputs(s, w->f);
	free(s);
	return true;
}

/* Writes a list's element, after a comma unless it is the first. */
static void element(struct jw *w, const json_t *v)
{
	if (dump(w, v, w->n > 0 ? ',' : 0))
		w->n++;
}

/* Adds v (a new reference; NULL when it could not be made) under k to the
 * innermost open object, or to the end of the open array; at the top of a
 * list it is an element and is written now.  Returns false when v is
 * lost. */
static bool add(struct jw *w, const char *k, json_t *v)
{
	json_t *in;
	int rc;

	if (w->failed || v == NULL) {
		json_decref(v);
		lost(w);
		return false;
	}
	in = w->open[w->depth];
	if (in == NULL) {
		element(w, v);
		json_decref(v);
		return true;
	}
	/* Both steal v, also when they fail. */
	rc = json_is_object(in) ? json_object_set_new(in, k, v) : json_array_append_new(in, v);
	if (rc != 0)
		lost(w);
	return rc == 0;
}

/* Opens the container c (a new reference, or NULL) under k.  Its parent
 * holds it from here; at the top of a list it is ours until pop writes
 * it.  Nesting past JW_MAX_DEPTH is a bug of the caller, lost too. */
static void push(struct jw *w, const char *k, json_t *c)
{
	if (!w->failed && c != NULL && w->depth + 1 < JW_MAX_DEPTH) {
		if (w->open[w->depth] == NULL || add(w, k, c)) {
			w->open[++w->depth] = c;
			return;
		}
		c = NULL; /* add let it go */
	}
	json_decref(c);
	lost(w);
	if (++w->depth < JW_MAX_DEPTH)
		w->open[w->depth] = NULL;
}

static void pop(struct jw *w)
{
	if (w->depth == 0)
		return;
	if (w->depth == 1 && w->open[0] == NULL && w->open[1] != NULL) {
		if (!w->failed)
			element(w, w->open[1]);
		json_decref(w->open[1]);
		w->open[1] = NULL;
	}
	w->depth--;
}

void jw_begin(struct jw *w, FILE *f)
{
	*w = (struct jw){ .f = f, .open[0] = json_object() };
	if (w->open[0] == NULL)
		lost(w);
}

void jw_end(struct jw *w)
{
	if (!w->failed && dump(w, w->open[0], 0))
		fputc('\n', w->f);
	json_decref(w->open[0]);
	w->open[0] = NULL;
}

void jw_list_begin(struct jw *w, FILE *f)
{
	*w = (struct jw){ .f = f };
	fputc('[', f);
}

void jw_list_end(struct jw *w)
{
	fputs("]\n", w->f);
}

void jw_object_begin(struct jw *w, const char *k)
{
	push(w, k, json_object());
}

void jw_object_end(struct jw *w)
{
	pop(w);
}

void jw_array_begin(struct jw *w, const char *k)
{
	push(w, k, json_array());
}

void jw_array_end(struct jw *w)
{
	pop(w);
}

void jw_strn(struct jw *w, const char *k, const char *s, size_t len)
{
	add(w, k, s != NULL ? text(s, len) : json_null());
}

void jw_str(struct jw *w, const char *k, const char *s)
{
	jw_strn(w, k, s, s != NULL ? strlen(s) : 0);
}

void jw_int(struct jw *w, const char *k, int64_t v)
{
	add(w, k, json_integer(v));
}

void jw_uint(struct jw *w, const char *k, uint64_t v)
{
	/* A json_int_t is signed: past INT64_MAX, a real, as the HTTP face has it. */
	add(w, k, v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v));
}

void jw_bool(struct jw *w, const char *k, bool v)
{
	add(w, k, json_boolean(v));
}

void jw_null(struct jw *w, const char *k)
{
	add(w, k, json_null());
}

void jw_time(struct jw *w, const char *k, int64_t ms)
{
	char buf[40];

	if (ms == 0) {
		jw_null(w, k);
		return;
	}
	jw_str(w, k, cli_time_str(ms, buf, sizeof(buf)));
}

void jw_bytes(struct jw *w, const char *k, const void *p, size_t len)
{
	char key[64], *b64;
	json_t *v = NULL;

	if (p == NULL)
		p = "";
	if (cli_utf8_valid(p, len)) {
		add(w, k, json_stringn_nocheck(p, len));
		return;
	}
	snprintf(key, sizeof(key), "%s_base64", k);
	b64 = malloc(len / 3 * 4 + 4);
	if (b64 != NULL)
		v = json_stringn_nocheck(b64, base64(b64, p, len));
	free(b64);
	add(w, key, v);
}

void jw_payload(struct jw *w, const void *p, size_t len)
{
	jw_bytes(w, "payload", p, len);
}
