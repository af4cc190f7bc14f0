/*
 * json.c - a tiny JSON writer: one object (or one array) per line on a FILE.
 *
 * The client only ever writes JSON, never reads it, so this is a writer
 * with a comma stack and a string escaper, not a library.  Strings must come
 * out as valid JSON whatever bytes the broker holds: text is checked as
 * UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF) and a bad
 * byte is written as U+FFFD; a payload or step value that is not valid
 * UTF-8 is written whole as "payload_base64" ("value_base64") instead, so
 * no byte of it is lost.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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

static void escape(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;

		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
			i++;
			continue;
		}
		if (c < 0x20) {
			switch (c) {
			case '\n':
				fputs("\\n", f);
				break;
			case '\r':
				fputs("\\r", f);
				break;
			case '\t':
				fputs("\\t", f);
				break;
			case '\b':
				fputs("\\b", f);
				break;
			case '\f':
				fputs("\\f", f);
				break;
			default:
				fprintf(f, "\\u%04x", c);
			}
			i++;
			continue;
		}
		n = utf8_seq(s + i, len - i);
		if (n == 0) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		fwrite(s + i, 1, n, f);
		i += n;
	}
	fputc('"', f);
}

void cli_base64(FILE *f, const void *data, size_t len)
{
	const unsigned char *p = data;
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		fputc(tab[v >> 18], f);
		fputc(tab[(v >> 12) & 63], f);
		fputc(tab[(v >> 6) & 63], f);
		fputc(tab[v & 63], f);
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		fputc(tab[v >> 18], f);
		fputc(tab[(v >> 12) & 63], f);
		fputs("==", f);
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		fputc(tab[v >> 18], f);
		fputc(tab[(v >> 12) & 63], f);
		fputc(tab[(v >> 6) & 63], f);
		fputc('=', f);
	}
}

/* The comma and the key before a value. */
static void key(struct jw *w, const char *k)
{
	if (!w->first[w->depth])
		fputc(',', w->f);
	w->first[w->depth] = false;
	if (k != NULL) {
		escape(w->f, k, strlen(k));
		fputc(':', w->f);
	}
}

static void push(struct jw *w, char open)
{
	fputc(open, w->f);
	if (w->depth + 1 < JW_MAX_DEPTH)
		w->depth++;
	w->first[w->depth] = true;
}

static void pop(struct jw *w, char close)
{
	fputc(close, w->f);
	if (w->depth > 0)
		w->depth--;
}

void jw_begin(struct jw *w, FILE *f)
{
	w->f = f;
	w->depth = 0;
	w->first[0] = true;
	push(w, '{');
}

void jw_end(struct jw *w)
{
	pop(w, '}');
	fputc('\n', w->f);
}

void jw_list_begin(struct jw *w, FILE *f)
{
	w->f = f;
	w->depth = 0;
	w->first[0] = true;
	push(w, '[');
}

void jw_list_end(struct jw *w)
{
	pop(w, ']');
	fputc('\n', w->f);
}

void jw_object_begin(struct jw *w, const char *k)
{
	key(w, k);
	push(w, '{');
}

void jw_object_end(struct jw *w)
{
	pop(w, '}');
}

void jw_array_begin(struct jw *w, const char *k)
{
	key(w, k);
	push(w, '[');
}

void jw_array_end(struct jw *w)
{
	pop(w, ']');
}

void jw_strn(struct jw *w, const char *k, const char *s, size_t len)
{
	key(w, k);
	if (s == NULL)
		fputs("null", w->f);
	else
		escape(w->f, s, len);
}

void jw_str(struct jw *w, const char *k, const char *s)
{
	jw_strn(w, k, s, s != NULL ? strlen(s) : 0);
}

void jw_int(struct jw *w, const char *k, int64_t v)
{
	key(w, k);
	fprintf(w->f, "%" PRId64, v);
}

void jw_uint(struct jw *w, const char *k, uint64_t v)
{
	key(w, k);
	fprintf(w->f, "%" PRIu64, v);
}

void jw_bool(struct jw *w, const char *k, bool v)
{
	key(w, k);
	fputs(v ? "true" : "false", w->f);
}

void jw_null(struct jw *w, const char *k)
{
	key(w, k);
	fputs("null", w->f);
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
	char b64[64];

	if (p == NULL)
		p = "";
	if (cli_utf8_valid(p, len)) {
		jw_strn(w, k, p, len);
		return;
	}
	snprintf(b64, sizeof(b64), "%s_base64", k);
	key(w, b64);
	fputc('"', w->f);
	cli_base64(w->f, p, len);
	fputc('"', w->f);
}

void jw_payload(struct jw *w, const void *p, size_t len)
{
	jw_bytes(w, "payload", p, len);
}
