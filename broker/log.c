/*
 * log.c - logfmt lines on stderr, one write per line so lines of several
 * threads do not interleave.  The message is one quoted value: a
 * backslash, a quote and control characters are escaped, so a line always
 * parses (Go's logfmt, Loki, Vector, `grep`).
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const NAMES[] = { "debug", "info", "warn", "error" };
static atomic_int threshold = LOG_INFO;

int log_set_level(const char *name)
{
	for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
		if (strcmp(name, NAMES[i]) == 0) {
			atomic_store(&threshold, i);
			return 0;
		}
	return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char msg[900], line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;

	if ((int)level < atomic_load(&threshold) || (int)level > LOG_ERROR)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = (size_t)snprintf(line, sizeof(line),
			     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"", tm.tm_year + 1900,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, NAMES[level]);
	for (const unsigned char *p = (const unsigned char *)msg; *p && n < sizeof(line) - 8; p++) {
		if (*p == '"' || *p == '\\') {
			line[n++] = '\\';
			line[n++] = (char)*p;
		} else if (*p == '\n') {
			line[n++] = '\\', line[n++] = 'n';
		} else if (*p == '\t') {
			line[n++] = '\\', line[n++] = 't';
		} else if (*p < 0x20 || *p == 0x7f) {
			n += (size_t)snprintf(line + n, sizeof(line) - n, "\\u%04x", *p);
		} else {
			line[n++] = (char)*p;
		}
	}
	line[n++] = '"';
	line[n++] = '\n';
	(void)!write(2, line, n);
}
