/*
 * output.c - how executions, recurring cues, times and durations are shown.
 *
 * Text output is for people: aligned "name  value" lines, times in RFC 3339
 * UTC with milliseconds (the same form as in JSON, so both can be pasted
 * into --at).  Step values are shown as they are when they are one line
 * of text, else in base64, so one step is always one line.  JSON output
 * uses the field names of the command-line contract; fields without a
 * value are null rather than left out, so every object of a kind has the
 * same keys.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

const char *cli_time_str(int64_t ms, char *buf, size_t size)
{
	struct tm tm;
	time_t secs;
	int64_t rem;

	if (ms == 0) {
		snprintf(buf, size, "-");
		return buf;
	}
	secs = (time_t)(ms / 1000);
	rem = ms % 1000;
	if (rem < 0) {
		secs--;
		rem += 1000;
	}
	if (gmtime_r(&secs, &tm) == NULL) {
		snprintf(buf, size, "@%" PRId64 "ms", ms);
		return buf;
	}
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
	return buf;
}

const char *cli_duration_str(int64_t ms, char *buf, size_t size)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = { { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 } };

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, size, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
			return buf;
		}
	}
	snprintf(buf, size, "%" PRId64 "ms", ms);
	return buf;
}

const char *cli_state_str(int state)
{
	const char *s = cueq_state_name(state);

	return s != NULL ? s : "unknown";
}

void cli_print_payload_raw(const void *p, size_t len)
{
	if (len == 0)
		return;
	fwrite(p, 1, len, stdout);
	if (((const char *)p)[len - 1] != '\n')
		fputc('\n', stdout);
}

int cli_flush(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return cli_error("cannot write the output: %s", strerror(errno));
	return jw_failed() ? CLI_EXIT_ERROR : 0;
}

/* True when the value is text on one line (no control characters). */
static bool one_line(const void *p, size_t len)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return cli_utf8_valid(p, len);
}

void cli_print_step_line(const cueq_step *st, bool with_time)
{
	char buf[40];

	if (with_time)
		printf("  %s  ", cli_time_str(st->at_ms, buf, sizeof(buf)));
	fputs(st->name, stdout);
	if (st->value_len == 0) {
		fputc('\n', stdout);
		return;
	}
	fputc(' ', stdout);
	if (one_line(st->value, st->value_len)) {
		fwrite(st->value, 1, st->value_len, stdout);
	} else {
		fputs("base64:", stdout);
		cli_base64(stdout, st->value, st->value_len);
	}
	fputc('\n', stdout);
}

void cli_step_json(struct jw *w, const cueq_step *st)
{
	jw_str(w, "name", st->name);
	jw_bytes(w, "value", st->value, st->value_len);
	jw_time(w, "at", st->at_ms);
}

/* The fields that get and list share. */
static void json_fields(struct jw *w, const cueq_execution *e)
{
	jw_str(w, "execution_id", e->execution_id);
	jw_str(w, "cue_id", e->cue_id);
	jw_str(w, "queue", e->queue);
	jw_str(w, "state", cli_state_str(e->state));
	jw_uint(w, "attempt", e->attempt);
	jw_uint(w, "max_attempts", e->max_attempts);
	jw_int(w, "priority", e->priority);
	jw_uint(w, "expiries", e->expiries);
	jw_uint(w, "max_expiries", e->max_expiries);
	jw_uint(w, "failures", e->failures);
	jw_str(w, "reason", e->reason);
	jw_int(w, "lease_ms", e->lease_ms);
	jw_str(w, "lease_token", e->lease_token[0] != '\0' ? e->lease_token : NULL);
	jw_time(w, "lease_deadline", e->lease_deadline_ms);
	jw_str(w, "result", e->result);
	jw_str(w, "error", e->error);
	jw_str(w, "unique", e->unique);
	jw_str(w, "group", e->group);
	jw_time(w, "created_at", e->created_at_ms);
	jw_time(w, "run_at", e->run_at_ms);
	jw_time(w, "finished_at", e->finished_at_ms);
}

void cli_execution_json(struct jw *w, const cueq_execution *e)
{
	json_fields(w, e);
}

void cli_print_execution_brief_json(const cueq_execution *e)
{
	struct jw w;

	jw_begin(&w, stdout);
	json_fields(&w, e);
	jw_end(&w);
}

static void print_json(const cueq_execution *e)
{
	struct jw w;

	jw_begin(&w, stdout);
	json_fields(&w, e);
	jw_payload(&w, e->payload, e->payload_len);
	jw_array_begin(&w, "steps");
	for (size_t i = 0; i < e->steps_len; i++) {
		jw_object_begin(&w, NULL);
		cli_step_json(&w, &e->steps[i]);
		jw_object_end(&w);
	}
	jw_array_end(&w);
	jw_array_begin(&w, "history");
	for (size_t i = 0; i < e->history_len; i++) {
		const cueq_event *ev = &e->history[i];
		jw_object_begin(&w, NULL);
		jw_time(&w, "at", ev->at_ms);
		jw_str(&w, "event", ev->event);
		jw_uint(&w, "attempt", ev->attempt);
		jw_str(&w, "lease_token", ev->lease_token);
		jw_str(&w, "detail", ev->detail);
		jw_object_end(&w);
	}
	jw_array_end(&w);
	jw_end(&w);
}

static void line(const char *name, const char *value)
{
	printf("%-15s %s\n", name, value);
}

static void time_line(const char *name, int64_t ms)
{
	char buf[40];

	if (ms != 0)
		line(name, cli_time_str(ms, buf, sizeof(buf)));
}

static void print_text(const cueq_execution *e)
{
	char buf[64];

	line("execution_id", e->execution_id);
	line("cue_id", e->cue_id);
	line("queue", e->queue);
	line("state", cli_state_str(e->state));
	printf("%-15s %u (failures %u of %u, expiries %u of %u)\n", "attempt", e->attempt,
	       e->failures, e->max_attempts, e->expiries, e->max_expiries);
	if (e->reason != NULL)
		line("reason", e->reason);
	printf("%-15s %d\n", "priority", e->priority);
	line("lease", cli_duration_str(e->lease_ms, buf, sizeof(buf)));
	time_line("created_at", e->created_at_ms);
	time_line("run_at", e->run_at_ms);
	if (e->lease_token[0] != '\0')
		line("lease_token", e->lease_token);
	time_line("lease_deadline", e->lease_deadline_ms);
	time_line("finished_at", e->finished_at_ms);
	if (e->result != NULL)
		line("result", e->result);
	if (e->error != NULL)
		line("error", e->error);
	if (e->unique != NULL)
		line("unique", e->unique);
	if (e->group != NULL)
		line("group", e->group);
	if (e->payload_len == 0) {
		line("payload", "(empty)");
	} else if (cli_utf8_valid(e->payload, e->payload_len)) {
		printf("%-15s %zu bytes of text\n", "payload", e->payload_len);
		cli_print_payload_raw(e->payload, e->payload_len);
	} else {
		printf("%-15s %zu bytes, not text; in base64:\n", "payload", e->payload_len);
		cli_base64(stdout, e->payload, e->payload_len);
		fputc('\n', stdout);
	}
	printf("steps\n");
	for (size_t i = 0; i < e->steps_len; i++)
		cli_print_step_line(&e->steps[i], true);
	printf("history\n");
	for (size_t i = 0; i < e->history_len; i++) {
		const cueq_event *ev = &e->history[i];
		printf("  %s  %-9s", cli_time_str(ev->at_ms, buf, sizeof(buf)),
		       ev->event != NULL ? ev->event : "?");
		if (ev->attempt != 0)
			printf("  attempt %u", ev->attempt);
		if (ev->lease_token != NULL && ev->lease_token[0] != '\0')
			printf("  token %s", ev->lease_token);
		if (ev->detail != NULL && ev->detail[0] != '\0')
			printf("  %s", ev->detail);
		fputc('\n', stdout);
	}
}

void cli_print_execution(const struct cli *cli, const cueq_execution *e)
{
	if (cli->json)
		print_json(e);
	else
		print_text(e);
}

/* ---- recurring cues ----------------------------------------------------- */

const char *cli_cue_schedule(const cueq_cue *c, char *buf, size_t size)
{
	char d[32];

	if (c->cron != NULL)
		snprintf(buf, size, "cron '%s'%s%s", c->cron, c->tz != NULL ? " " : "",
			 c->tz != NULL ? c->tz : "");
	else
		snprintf(buf, size, "every %s", cli_duration_str(c->every_ms, d, sizeof(d)));
	return buf;
}

static const char *cue_state_str(int state)
{
	const char *s = cueq_cue_state_name(state);

	return s != NULL ? s : "unknown";
}

/* The fields that get and cues share. */
static void cue_json_fields(struct jw *w, const cueq_cue *c)
{
	jw_str(w, "cue_id", c->cue_id);
	jw_str(w, "queue", c->queue);
	jw_str(w, "state", cue_state_str(c->state));
	if (c->cron != NULL)
		jw_null(w, "every_ms");
	else
		jw_int(w, "every_ms", c->every_ms);
	jw_str(w, "cron", c->cron);
	jw_str(w, "tz", c->tz);
	jw_str(w, "catch_up", cueq_catch_up_name(c->catch_up));
	jw_str(w, "overlap", cueq_overlap_name(c->overlap));
	jw_int(w, "priority", c->priority);
	jw_uint(w, "max_attempts", c->max_attempts);
	jw_uint(w, "max_expiries", c->max_expiries);
	jw_int(w, "lease_ms", c->lease_ms);
	jw_time(w, "created_at", c->created_at_ms);
	jw_uint(w, "fires", c->fires);
	jw_uint(w, "skipped", c->skipped);
	jw_array_begin(w, "next_fires");
	for (size_t i = 0; i < c->n_next_fires; i++)
		jw_time(w, NULL, c->next_fires_ms[i]);
	jw_array_end(w);
}

static void cue_json_executions(struct jw *w, const cueq_cue *c)
{
	jw_array_begin(w, "executions");
	for (size_t i = 0; i < c->executions_len; i++) {
		const cueq_cue_fire *f = &c->executions[i];
		jw_object_begin(w, NULL);
		jw_str(w, "execution_id", f->execution_id);
		jw_time(w, "fire_at", f->fire_at_ms);
		jw_str(w, "state", f->state >= 0 ? cli_state_str(f->state) : "gone");
		jw_object_end(w);
	}
	jw_array_end(w);
}

void cli_print_cue_brief_json(const cueq_cue *c)
{
	struct jw w;

	jw_begin(&w, stdout);
	cue_json_fields(&w, c);
	cue_json_executions(&w, c); /* the newest only, as cues gives it */
	jw_end(&w);
}

static void print_cue_json(const cueq_cue *c)
{
	struct jw w;

	jw_begin(&w, stdout);
	cue_json_fields(&w, c);
	jw_payload(&w, c->payload, c->payload_len);
	cue_json_executions(&w, c);
	jw_end(&w);
}

static void print_cue_text(const cueq_cue *c)
{
	char buf[256];

	line("cue_id", c->cue_id);
	line("queue", c->queue);
	line("state", cue_state_str(c->state));
	line("schedule", cli_cue_schedule(c, buf, sizeof(buf)));
	line("catch_up", cueq_catch_up_name(c->catch_up) ? cueq_catch_up_name(c->catch_up) : "?");
	line("overlap", cueq_overlap_name(c->overlap) ? cueq_overlap_name(c->overlap) : "?");
	printf("%-15s %llu (skipped %llu)\n", "fires", (unsigned long long)c->fires,
	       (unsigned long long)c->skipped);
	printf("%-15s %d\n", "priority", c->priority);
	printf("%-15s %u failures, %u expiries\n", "max", c->max_attempts, c->max_expiries);
	line("lease", cli_duration_str(c->lease_ms, buf, sizeof(buf)));
	time_line("created_at", c->created_at_ms);
	if (c->payload_len == 0) {
		line("payload", "(empty)");
	} else if (cli_utf8_valid(c->payload, c->payload_len)) {
		printf("%-15s %zu bytes of text\n", "payload", c->payload_len);
		cli_print_payload_raw(c->payload, c->payload_len);
	} else {
		printf("%-15s %zu bytes, not text; in base64:\n", "payload", c->payload_len);
		cli_base64(stdout, c->payload, c->payload_len);
		fputc('\n', stdout);
	}
	printf("next fires\n");
	for (size_t i = 0; i < c->n_next_fires; i++)
		printf("  %s\n", cli_time_str(c->next_fires_ms[i], buf, sizeof(buf)));
	printf("last executions\n");
	for (size_t i = 0; i < c->executions_len; i++) {
		const cueq_cue_fire *f = &c->executions[i];
		printf("  %s  %-16s  %s\n", cli_time_str(f->fire_at_ms, buf, sizeof(buf)),
		       f->execution_id, f->state >= 0 ? cli_state_str(f->state) : "gone");
	}
}

void cli_print_cue(const struct cli *cli, const cueq_cue *c)
{
	if (cli->json)
		print_cue_json(c);
	else
		print_cue_text(c);
}
