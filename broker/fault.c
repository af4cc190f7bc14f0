/*
 * fault.c - parsing CUEQ_FAULT and deciding the fate of each write and
 * sync (see fault.h).  A crash is simulated with SIGKILL to ourselves, so
 * nothing runs after it: no atexit handler, no flush, exactly kill -9.
 */
#include "fault.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MAX_RULES 8

enum action { A_FAIL, A_EXIT, A_EXIT_AFTER, A_SLOW };
/* How much longer a "slow" write or sync takes. */
#define FAULT_SLOW_MS 2000

struct rule {
	enum fault_point point;
	enum action action;
	uint64_t at;	/* 1-based ordinal */
	uint64_t count; /* fail: how many from at on; 0 = all */
};

struct fault {
	struct rule rules[MAX_RULES];
	size_t n;
	uint64_t seen[FAULT_POINTS];
};

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int parse_rule(const char *s, size_t n, struct rule *r)
{
	const char *f[4];
	size_t fl[4], nf = 0;
	const char *p = s, *end = s + n;
	while (nf < 4) {
		const char *c = memchr(p, ':', (size_t)(end - p));
		f[nf] = p;
		fl[nf++] = c ? (size_t)(c - p) : (size_t)(end - p);
		if (c == NULL)
			break;
		p = c + 1;
	}
	if (nf < 3 || (nf == 4 && memchr(f[3], ':', fl[3])))
		return -1;
	if (fl[0] == 5 && memcmp(f[0], "write", 5) == 0)
		r->point = FAULT_WRITE;
	else if (fl[0] == 4 && memcmp(f[0], "sync", 4) == 0)
		r->point = FAULT_SYNC;
	else
		return -1;
	if (parse_u64(f[1], fl[1], &r->at) != 0 || r->at == 0)
		return -1;
	if (fl[2] == 4 && memcmp(f[2], "fail", 4) == 0)
		r->action = A_FAIL;
	else if (fl[2] == 4 && memcmp(f[2], "exit", 4) == 0)
		r->action = A_EXIT;
	else if (fl[2] == 10 && memcmp(f[2], "exit-after", 10) == 0)
		r->action = A_EXIT_AFTER;
	else if (fl[2] == 4 && memcmp(f[2], "slow", 4) == 0)
		r->action = A_SLOW;
	else
		return -1;
	r->count = 1;
	if (nf == 4 && ((r->action != A_FAIL && r->action != A_SLOW) ||
			parse_u64(f[3], fl[3], &r->count) != 0))
		return -1;
	return 0;
}

int fault_parse(const char *spec, struct fault **out, char *err, size_t errlen)
{
	*out = NULL;
	if (spec == NULL || *spec == '\0')
		return 0;
	struct fault *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (const char *p = spec;;) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		if (f->n == MAX_RULES || parse_rule(p, n, &f->rules[f->n]) != 0) {
			snprintf(err, errlen,
				 "CUEQ_FAULT '%s' is not a list of up to %d rules like write:3:exit, sync:1:fail or write:2:fail:0 (KIND write|sync, N from 1, ACTION fail[:COUNT]|slow[:COUNT]|exit|exit-after)",
				 spec, MAX_RULES);
			free(f);
			return -1;
		}
		f->n++;
		if (c == NULL)
			break;
		p = c + 1;
	}
	*out = f;
	return 0;
}

void fault_free(struct fault *f)
{
	free(f);
}

void fault_die(void)
{
	log_error("storage fault injection: killing the broker (CUEQ_FAULT)");
	kill(getpid(), SIGKILL);
	_exit(137); /* not reached */
}

enum fault_verdict fault_check(struct fault *f, enum fault_point p)
{
	if (f == NULL)
		return FAULT_GO;
	uint64_t nth = ++f->seen[p];
	for (size_t i = 0; i < f->n; i++) {
		const struct rule *r = &f->rules[i];
		if (r->point != p || nth < r->at)
			continue;
		if (r->action == A_SLOW && (r->count == 0 || nth - r->at < r->count)) {
			struct timespec ts = {.tv_sec = FAULT_SLOW_MS / 1000,
					      .tv_nsec = FAULT_SLOW_MS % 1000 * 1000000L};
			log_warn("storage fault injection: %s %llu stalls for %d ms (CUEQ_FAULT)",
				 p == FAULT_WRITE ? "write" : "sync", (unsigned long long)nth, FAULT_SLOW_MS);
			nanosleep(&ts, NULL);
			continue;
		}
		if (r->action == A_FAIL && (r->count == 0 || nth - r->at < r->count)) {
			log_error("storage fault injection: %s %llu fails (CUEQ_FAULT)",
				  p == FAULT_WRITE ? "write" : "sync", (unsigned long long)nth);
			return FAULT_FAIL;
		}
		if (nth != r->at)
			continue;
		if (r->action == A_EXIT)
			fault_die();
		if (r->action == A_EXIT_AFTER)
			return FAULT_EXIT_AFTER;
	}
	return FAULT_GO;
}
