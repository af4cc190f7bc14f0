/*
 * cmd_produce.c - `cueq ping`, `cueq push` and `cueq wait`.
 *
 * push takes its payload from the argument, or from standard input with "-"
 * or when the argument is left out and standard input is not a terminal
 * (so `echo x | cueq push q` works and a bare `cueq push q` at a prompt does
 * not hang).  --key makes the push idempotent (a repeat within the key's
 * lifetime answers the first push's execution ID and says so on standard
 * error); without it the SDK still keys the push for its own retries.
 * --wait D then waits for the execution's outcome, as `cueq wait` does
 * (with --key, a repeat waits for the first push's execution: a producer
 * that retries after a timeout attaches to the job it already started).
 * --unique refuses the push while an unfinished execution holds the key,
 * and the error names that execution.  --every or --cron makes a recurring
 * cue instead of an execution: the push prints the cue's ID.  --backoff
 * BASE,FACTOR,CAP sets the retry delays in one flag, as the three belong
 * together.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_ping(struct cli *cli, int argc, char **argv)
{
	int64_t now = 0;
	int npos, dd, rc, err;
	char buf[40];

	rc = cli_parse(cli, argc, argv, NULL, 0, &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos != 0)
		return cli_usage_error(cli, "ping takes no arguments");
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_ping(cli->client, &now);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "ping %s", cli->url);
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_bool(&w, "ok", true);
		jw_str(&w, "url", cli->url);
		jw_time(&w, "time", now);
		jw_end(&w);
	} else {
		printf("ok: broker %s answered, its clock says %s\n", cli->url,
		       cli_time_str(now, buf, sizeof(buf)));
	}
	return CLI_EXIT_OK;
}

enum {
	P_PRIORITY, P_MAX_ATTEMPTS, P_LEASE, P_DELAY, P_AT, P_KEY, P_KEY_TTL, P_UNIQUE, P_EVERY,
	P_CRON, P_TZ, P_CATCH_UP, P_OVERLAP, P_BACKOFF, P_NO_JITTER, P_MAX_EXPIRIES, P_WAIT,
	P_GROUP,
};

#define MAX_EVERY_MS 315360000000LL /* 10 years */
#define MAX_BACKOFF_MS 86400000LL   /* 1 day */

static void print_push(const struct cli *cli, const char *queue, const cueq_push_result *r)
{
	struct jw w;

	if (!cli->json) {
		printf("%s\n", r->recurring ? r->cue_id : r->execution_id);
		if (r->duplicate)
			fprintf(stderr, "cueq: duplicate: answered from the earlier push with this "
					"key\n");
		return;
	}
	jw_begin(&w, stdout);
	jw_str(&w, "execution_id", r->execution_id[0] != '\0' ? r->execution_id : NULL);
	jw_str(&w, "cue_id", r->cue_id[0] != '\0' ? r->cue_id : NULL);
	jw_str(&w, "queue", queue);
	jw_str(&w, "state", cli_state_str(r->state));
	jw_time(&w, "run_at", r->run_at_ms);
	jw_bool(&w, "recurring", r->recurring);
	jw_bool(&w, "duplicate", r->duplicate);
	jw_str(&w, "durability", r->synced ? "synced" : "written");
	jw_end(&w);
}

/* Waits up to timeout_ms (-1: for ever) for id's outcome, prints it and
 * returns its exit status: 0 succeeded, 7 dead, 8 cancelled, 9 none yet. */
static int wait_outcome(struct cli *cli, const char *id, int64_t timeout_ms, bool duplicate)
{
	cueq_execution *e = NULL;
	int err = cueq_wait(cli->client, id, timeout_ms, &e), code;
	char why[512];

	if (err != CUEQ_OK && err != CUEQ_ERR_TIMEOUT)
		return cli_fail(cli, err, "wait for %s failed", id);
	snprintf(why, sizeof(why), "%s", cueq_last_error());
	code = err == CUEQ_ERR_TIMEOUT	     ? CLI_EXIT_NO_OUTCOME
	       : e->state == CUEQ_DEAD	     ? CLI_EXIT_DEAD
	       : e->state == CUEQ_CANCELLED ? CLI_EXIT_CANCELLED
					     : CLI_EXIT_OK;
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		cli_execution_json(&w, e);
		jw_bool(&w, "finished", err == CUEQ_OK);
		jw_bool(&w, "duplicate", duplicate);
		jw_end(&w);
	} else {
		printf("%s %s\n", e->execution_id, cli_state_str(e->state));
		if (e->result != NULL)
			printf("result: %s\n", e->result);
		if (e->error != NULL)
			printf("error: %s\n", e->error);
		if (e->reason != NULL)
			printf("reason: %s\n", e->reason);
		if (duplicate)
			fprintf(stderr, "cueq: duplicate: waited for the execution of the earlier "
					"push with this key\n");
		if (err == CUEQ_ERR_TIMEOUT)
			fprintf(stderr, "cueq: %s\n", why);
	}
	cueq_execution_free(e);
	return code;
}

/* A backoff duration: 0 asks for none (CUEQ_ZERO_MS), else up to a day. */
static bool backoff_ms(const char *s, size_t n, int64_t *ms)
{
	char buf[64];

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (strcmp(buf, "0") == 0) {
		*ms = CUEQ_ZERO_MS;
		return true;
	}
	if (cueq_parse_duration(buf, ms) != CUEQ_OK || *ms < 0 || *ms > MAX_BACKOFF_MS)
		return false;
	if (*ms == 0)
		*ms = CUEQ_ZERO_MS;
	return true;
}

/* --backoff BASE,FACTOR,CAP: "1s,2,1h". */
static int backoff_opt(const struct cli *cli, const struct cli_opt *o, cueq_push_opts *po)
{
	const char *v = o->value, *c1, *c2;
	char *end;
	double f;

	if (!o->seen)
		return 0;
	c1 = strchr(v, ',');
	c2 = c1 != NULL ? strchr(c1 + 1, ',') : NULL;
	if (c2 == NULL || strchr(c2 + 1, ',') != NULL)
		return cli_usage_error(cli, "--backoff takes BASE,FACTOR,CAP, e.g. 1s,2,1h, not "
				       "'%s'", v);
	if (!backoff_ms(v, (size_t)(c1 - v), &po->backoff_ms))
		return cli_usage_error(cli, "bad first retry delay '%.*s' in --backoff: use a "
				       "duration from 0 to 1d, e.g. 1s", (int)(c1 - v), v);
	if (!backoff_ms(c2 + 1, strlen(c2 + 1), &po->backoff_max_ms))
		return cli_usage_error(cli, "bad delay cap '%s' in --backoff: use a duration from "
				       "0 to 1d, e.g. 1h", c2 + 1);
	errno = 0;
	f = strtod(c1 + 1, &end);
	if (end == c1 + 1 || end != c2 || errno != 0 || !isfinite(f) || f < 1 || f > 100)
		return cli_usage_error(cli, "bad factor '%.*s' in --backoff: use a number from 1 "
				       "to 100, e.g. 2", (int)(c2 - c1 - 1), c1 + 1);
	po->backoff_factor = f;
	return 0;
}

/* --every, --cron, --tz, --catch-up and --overlap into po. */
static int recurring_opts(const struct cli *cli, const struct cli_opt *o, cueq_push_opts *po)
{
	bool recurring = o[P_EVERY].seen || o[P_CRON].seen;

	if (o[P_EVERY].seen && o[P_CRON].seen)
		return cli_usage_error(cli, "give --every or --cron, not both");
	if (cli_duration_opt(cli, &o[P_EVERY], 1000, MAX_EVERY_MS, &po->every_ms) != 0)
		return CLI_EXIT_ERROR;
	if (o[P_CRON].seen) {
		size_t n = strlen(o[P_CRON].value);
		if (n == 0 || n > 128)
			return cli_usage_error(cli, "--cron needs an expression of 1 to 128 bytes, "
					       "such as '*/15 * * * *' or @daily");
		po->cron = o[P_CRON].value;
	}
	if (o[P_TZ].seen) {
		size_t n = strlen(o[P_TZ].value);
		if (!o[P_CRON].seen)
			return cli_usage_error(cli, "--tz is the zone --cron is read in: give --cron "
					       "too");
		if (n == 0 || n > 64)
			return cli_usage_error(cli, "--tz needs a zone name of 1 to 64 bytes, such "
					       "as Europe/Paris");
		po->tz = o[P_TZ].value;
	}
	if ((o[P_CATCH_UP].seen || o[P_OVERLAP].seen) && !recurring)
		return cli_usage_error(cli, "--catch-up and --overlap are for recurring cues: give "
				       "--every or --cron too");
	if (o[P_CATCH_UP].seen && (po->catch_up = cueq_catch_up_parse(o[P_CATCH_UP].value)) < 0)
		return cli_usage_error(cli, "bad --catch-up '%s': use one, all or none",
				       o[P_CATCH_UP].value);
	if (o[P_OVERLAP].seen && (po->overlap = cueq_overlap_parse(o[P_OVERLAP].value)) < 0)
		return cli_usage_error(cli, "bad --overlap '%s': use allow or skip",
				       o[P_OVERLAP].value);
	if (recurring && o[P_UNIQUE].seen)
		return cli_usage_error(cli, "a recurring cue takes no --unique: use --overlap skip "
				       "to run one fire at a time");
	return 0;
}

/* --key, --key-ttl and --unique into po. */
static int keys_opts(const struct cli *cli, const struct cli_opt *o, cueq_push_opts *po)
{
	if (o[P_KEY].seen) {
		size_t n = strlen(o[P_KEY].value);
		if (n == 0 || n > CUEQ_MAX_KEY)
			return cli_usage_error(cli, "--key needs 1 to %u bytes, not %zu", CUEQ_MAX_KEY,
					       n);
		po->key = o[P_KEY].value;
	}
	if (o[P_KEY_TTL].seen && !o[P_KEY].seen)
		return cli_usage_error(cli, "--key-ttl sets how long --key is remembered: give "
				       "--key too");
	if (cli_duration_opt(cli, &o[P_KEY_TTL], 1000, 2592000000LL, &po->key_ttl_ms) != 0)
		return CLI_EXIT_ERROR;
	if (o[P_UNIQUE].seen) {
		size_t n = strlen(o[P_UNIQUE].value);
		if (n == 0 || n > CUEQ_MAX_KEY)
			return cli_usage_error(cli, "--unique needs 1 to %u bytes, not %zu",
					       CUEQ_MAX_KEY, n);
		po->unique = o[P_UNIQUE].value;
	}
	return 0;
}

/* A push refused because an unfinished execution holds its unique key. */
static int push_conflict(const struct cli *cli, const char *queue, const char *unique,
			 const char *holder)
{
	char h[512];

	/* The broker's sentence normally names the holder already. */
	if (strstr(cueq_last_error(), holder) != NULL)
		snprintf(h, sizeof(h), "see it with `cueq get %s`", holder);
	else
		snprintf(h, sizeof(h),
			 "execution %s holds unique key '%.256s' until it finishes; see it "
			 "with `cueq get %s`",
			 holder, unique != NULL ? unique : "", holder);
	return cli_fail_hint(cli, CUEQ_ERR_CONFLICT, h, "push to queue '%s' refused", queue);
}

int cmd_push(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[P_PRIORITY] = { .name = "priority", .kind = OPT_VALUE },
		[P_MAX_ATTEMPTS] = { .name = "max-attempts", .kind = OPT_VALUE },
		[P_LEASE] = { .name = "lease", .kind = OPT_VALUE },
		[P_DELAY] = { .name = "delay", .kind = OPT_VALUE },
		[P_AT] = { .name = "at", .kind = OPT_VALUE },
		[P_KEY] = { .name = "key", .kind = OPT_VALUE },
		[P_KEY_TTL] = { .name = "key-ttl", .kind = OPT_VALUE },
		[P_UNIQUE] = { .name = "unique", .kind = OPT_VALUE },
		[P_EVERY] = { .name = "every", .kind = OPT_VALUE },
		[P_CRON] = { .name = "cron", .kind = OPT_VALUE },
		[P_TZ] = { .name = "tz", .kind = OPT_VALUE },
		[P_CATCH_UP] = { .name = "catch-up", .kind = OPT_VALUE },
		[P_OVERLAP] = { .name = "overlap", .kind = OPT_VALUE },
		[P_BACKOFF] = { .name = "backoff", .kind = OPT_VALUE },
		[P_NO_JITTER] = { .name = "no-jitter", .kind = OPT_FLAG },
		[P_MAX_EXPIRIES] = { .name = "max-expiries", .kind = OPT_VALUE },
		[P_WAIT] = { .name = "wait", .kind = OPT_VALUE },
		[P_GROUP] = { .name = "group", .kind = OPT_VALUE },
	};
	cueq_push_opts po = { 0 };
	cueq_push_result res = { 0 };
	const char *queue, *payload = "";
	char *owned = NULL;
	size_t len = 0;
	int64_t v = 0;
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos < 1)
		return cli_usage_error(cli, "push needs a QUEUE");
	if (npos > 2)
		return cli_usage_error(cli, "push takes QUEUE and one PAYLOAD; quote a payload "
				       "with spaces");
	queue = argv[1];
	if (cli_int_opt(cli, &o[P_PRIORITY], -1000, 1000, &v) != 0)
		return CLI_EXIT_ERROR;
	po.priority = (int32_t)v;
	v = 0;
	if (cli_int_opt(cli, &o[P_MAX_ATTEMPTS], 1, 1000, &v) != 0)
		return CLI_EXIT_ERROR;
	po.max_attempts = (uint32_t)v;
	v = 0;
	if (cli_int_opt(cli, &o[P_MAX_EXPIRIES], 1, 1000, &v) != 0)
		return CLI_EXIT_ERROR;
	po.max_expiries = (uint32_t)v;
	po.no_jitter = o[P_NO_JITTER].seen;
	if (backoff_opt(cli, &o[P_BACKOFF], &po) != 0)
		return CLI_EXIT_ERROR;
	if (cli_duration_opt(cli, &o[P_LEASE], 100, 86400000, &po.lease_ms) != 0 ||
	    cli_duration_opt(cli, &o[P_DELAY], 0, INT64_MAX / 2, &po.delay_ms) != 0)
		return CLI_EXIT_ERROR;
	if (o[P_AT].seen) {
		if (o[P_DELAY].seen)
			return cli_usage_error(cli, "give --delay or --at, not both");
		if (!cli_parse_time(o[P_AT].value, &po.run_at_ms))
			return cli_usage_error(cli, "bad time '%s' for --at: write RFC 3339 UTC "
					       "such as 2026-11-25T12:00:00Z, or @UNIXSECONDS",
					       o[P_AT].value);
	}
	if (keys_opts(cli, o, &po) != 0 || recurring_opts(cli, o, &po) != 0)
		return CLI_EXIT_ERROR;
	if (o[P_GROUP].seen) {
		size_t n = strlen(o[P_GROUP].value);
		if (n == 0 || n > 128)
			return cli_usage_error(cli, "--group needs 1 to 128 characters of A-Z a-z 0-9 . _ : -");
		po.group = o[P_GROUP].value;
	}
	int64_t wait_ms = 0;
	if (cli_duration_opt(cli, &o[P_WAIT], 0, CLI_NO_MAX, &wait_ms) != 0)
		return CLI_EXIT_ERROR;
	if (o[P_WAIT].seen && (po.every_ms || po.cron))
		return cli_usage_error(cli, "a recurring cue has no outcome of its own to --wait for: "
				       "wait for one of its executions with `cueq wait ID`");
	if (npos == 2 && strcmp(argv[2], "-") != 0) {
		payload = argv[2];
		len = strlen(payload);
		if (len > CUEQ_MAX_PAYLOAD)
			return cli_error("the payload is larger than %u bytes; store big data "
					 "elsewhere and push a reference to it", CUEQ_MAX_PAYLOAD);
	} else if (npos == 2 || !isatty(STDIN_FILENO)) {
		if (cli_read_stdin(CUEQ_MAX_PAYLOAD, "payload", "store big data elsewhere and "
				   "push a reference to it", &owned, &len) != 0)
			return CLI_EXIT_ERROR;
		payload = owned;
	}
	rc = cli_connect(cli);
	if (rc == 0) {
		err = cueq_push(cli->client, queue, payload, len, &po, &res);
		if (err == CUEQ_ERR_CONFLICT && res.holder[0] != '\0')
			rc = push_conflict(cli, queue, po.unique, res.holder);
		else if (err != CUEQ_OK)
			rc = cli_fail(cli, err, "push to queue '%s' failed", queue);
		else if (o[P_WAIT].seen)
			rc = wait_outcome(cli, res.execution_id, wait_ms, res.duplicate);
		else
			print_push(cli, queue, &res);
	}
	free(owned);
	return rc;
}

int cmd_wait(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = { { .name = "timeout", .kind = OPT_VALUE } };
	int64_t timeout_ms = -1;
	int npos, dd, rc;

	rc = cli_parse(cli, argc, argv, o, 1, &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos != 1)
		return cli_usage_error(cli, "wait needs exactly one execution ID");
	if (cli_duration_opt(cli, &o[0], 0, CLI_NO_MAX, &timeout_ms) != 0)
		return CLI_EXIT_ERROR;
	if ((rc = cli_connect(cli)) != 0)
		return rc;
	return wait_outcome(cli, argv[1], timeout_ms, false);
}
