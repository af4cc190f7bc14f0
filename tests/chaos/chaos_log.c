/*
 * chaos_log.c - the chaos test's event logs (their format is in chaos.h):
 * whole lines appended with one write() each, and a strict reader that
 * turns them back into records for the checker.
 */
#include "chaos.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *const chaos_steps[CHAOS_N_STEPS] = { "reserve", "charge" };

#define LINE_MAX_BYTES 512
#define MAX_WORDS 14

int chaos_log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		fprintf(stderr, "chaos: cannot open %s for appending: %s\n", path, strerror(errno));
	return fd;
}

int chaos_log(int fd, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		return -1;
	line[n++] = '\n';
	return write(fd, line, (size_t)n) == n ? 0 : -1;
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t chaos_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t chaos_real_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

bool chaos_parse_key(const char *key, unsigned *producer, uint64_t *index)
{
	char *end;
	unsigned long p;

	if (key[0] != 'p')
		return false;
	errno = 0;
	p = strtoul(key + 1, &end, 10);
	if (end == key + 1 || *end != '-' || errno != 0 || p > 999)
		return false;
	const char *s = end + 1;
	*index = strtoull(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0)
		return false;
	*producer = (unsigned)p;
	return true;
}

/* ---- the reader ---- */

static bool word_id(const char *w, uint64_t *out)
{
	char *end;
	if (strlen(w) != 16)
		return false;
	errno = 0;
	*out = strtoull(w, &end, 16);
	return *end == '\0' && errno == 0;
}

static bool word_int(const char *w, int64_t *out)
{
	char *end;
	errno = 0;
	*out = strtoll(w, &end, 10);
	return end != w && *end == '\0' && errno == 0;
}

static bool word_copy(const char *w, char *out, size_t size)
{
	size_t n = strlen(w);
	if (n == 0 || n >= size)
		return false;
	memcpy(out, w, n + 1);
	return true;
}

static bool word_u32(const char *w, uint32_t *out)
{
	int64_t v;
	if (!word_int(w, &v) || v < 0 || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* ID TOKEN ATTEMPT, the start of every worker line. */
static bool lease_words(char **w, chaos_rec *r)
{
	return word_id(w[1], &r->id) && word_id(w[2], &r->token) && word_u32(w[3], &r->attempt);
}

static bool times(char **w, int64_t *mono, int64_t *rt)
{
	return word_int(w[0], mono) && word_int(w[1], rt);
}

static bool parse_words(char **w, int n, chaos_rec *r)
{
	int64_t pid = 0, dup = 0;
	bool ok = false;

	if (strcmp(w[0], "push") == 0 && n == 7) {
		r->kind = CR_PUSH;
		ok = word_copy(w[1], r->key, sizeof(r->key)) && word_id(w[2], &r->id) &&
		     word_int(w[3], &dup) && times(w + 4, &r->s_mono, &r->s_rt);
		r->dup = dup != 0;
	} else if (strcmp(w[0], "start") == 0 && n == 9) {
		r->kind = CR_START;
		ok = lease_words(w, r) && word_copy(w[4], r->key, sizeof(r->key)) &&
		     word_int(w[5], &r->deadline) && times(w + 6, &r->s_mono, &r->s_rt);
	} else if (strcmp(w[0], "effect") == 0 && n == 9) {
		r->kind = CR_EFFECT;
		ok = lease_words(w, r) && word_copy(w[4], r->step, sizeof(r->step)) &&
		     word_copy(w[5], r->value, sizeof(r->value)) && times(w + 6, &r->s_mono, &r->s_rt);
	} else if (strcmp(w[0], "step") == 0 && n == 12) {
		r->kind = CR_STEP;
		ok = lease_words(w, r) && word_copy(w[4], r->step, sizeof(r->step)) &&
		     word_copy(w[5], r->outcome, sizeof(r->outcome)) &&
		     word_copy(w[6], r->value, sizeof(r->value)) && times(w + 7, &r->s_mono, &r->s_rt) &&
		     times(w + 9, &r->a_mono, &r->a_rt);
	} else if (strcmp(w[0], "ack") == 0 && n == 10) {
		r->kind = CR_ACK;
		ok = lease_words(w, r) && word_copy(w[4], r->outcome, sizeof(r->outcome)) &&
		     times(w + 5, &r->s_mono, &r->s_rt) && times(w + 7, &r->a_mono, &r->a_rt);
	} else if (strcmp(w[0], "giveup") == 0 && n == 8) {
		r->kind = CR_GIVEUP;
		ok = lease_words(w, r) && word_copy(w[4], r->step, sizeof(r->step)) &&
		     times(w + 5, &r->s_mono, &r->s_rt);
	}
	return ok && word_int(w[n - 1], &pid) && pid > 0 && (r->pid = (int)pid) > 0;
}

static int parse_line(char *line, chaos_rec *r)
{
	char *w[MAX_WORDS + 1], *save = NULL;
	int n = 0;

	for (char *t = strtok_r(line, " \n", &save); t != NULL; t = strtok_r(NULL, " \n", &save)) {
		if (n == MAX_WORDS)
			return -1;
		w[n++] = t;
	}
	memset(r, 0, sizeof(*r));
	return n > 0 && parse_words(w, n, r) ? 0 : -1;
}

static int add_rec(chaos_logs *logs, const chaos_rec *r)
{
	if (logs->n == logs->cap) {
		size_t cap = logs->cap ? logs->cap * 2 : 4096;
		chaos_rec *p = realloc(logs->recs, cap * sizeof(*p));
		if (p == NULL)
			return -1;
		logs->recs = p, logs->cap = cap;
	}
	logs->recs[logs->n++] = *r;
	return 0;
}

static int add_path(chaos_logs *logs, const char *path)
{
	char **p = realloc(logs->paths, (logs->n_paths + 1) * sizeof(*p));
	if (p == NULL)
		return -1;
	logs->paths = p;
	if ((p[logs->n_paths] = strdup(path)) == NULL)
		return -1;
	logs->n_paths++;
	return 0;
}

int chaos_logs_read(chaos_logs *logs, const char *path, char *why, size_t why_size)
{
	char line[LINE_MAX_BYTES + 2];
	uint32_t lineno = 0, file = (uint32_t)logs->n_paths;
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (f == NULL) {
		snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	if (add_path(logs, path) != 0) {
		fclose(f);
		snprintf(why, why_size, "out of memory reading %s", path);
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		chaos_rec r;
		char copy[sizeof(line)];

		lineno++;
		memcpy(copy, line, sizeof(line));
		if (strchr(line, '\n') == NULL || parse_line(line, &r) != 0) {
			snprintf(why, why_size, "%s:%u does not parse: %.200s", path, lineno, copy);
			rc = -1;
			break;
		}
		r.file = file, r.line = lineno;
		if (add_rec(logs, &r) != 0) {
			snprintf(why, why_size, "out of memory reading %s", path);
			rc = -1;
		}
	}
	fclose(f);
	return rc;
}

void chaos_logs_free(chaos_logs *logs)
{
	for (size_t i = 0; i < logs->n_paths; i++)
		free(logs->paths[i]);
	free(logs->paths);
	free(logs->recs);
	memset(logs, 0, sizeof(*logs));
}

const char *chaos_where(const chaos_logs *logs, const chaos_rec *r, char *buf, size_t size)
{
	const char *p = r->file < logs->n_paths ? logs->paths[r->file] : "?";
	const char *base = strrchr(p, '/');
	snprintf(buf, size, "%s:%" PRIu32, base != NULL ? base + 1 : p, r->line);
	return buf;
}
