/*
 * cmd_operate.c - the operator's commands: `cueq dead`, `retry`, `cancel`,
 * `purge`, `pause`, `resume` and `cues`.
 *
 * Each is one SDK call (retry --all and purge loop inside the SDK until the
 * broker has nothing left, so one command covers a queue of any size) and
 * one line of output saying what happened, or one JSON object.  dead is a
 * list of the dead with why they died; its --json is one array, so a
 * script reads every dead execution of the queue in one parse.  What is
 * refused exits as the contract says: 4 when the state does not allow it
 * (retry of what is not dead, cancel of what already finished), 5 when
 * there is no such ID.
 */
#include "cli.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Exactly one QUEUE, or a usage error. */
static int one_queue(struct cli *cli, int npos)
{
	if (npos != 1)
		return cli_usage_error(cli, "%s needs exactly one QUEUE", cli->cmd->name);
	return 0;
}

struct dead_out {
	struct jw *w; /* --json: the array */
	bool queues;  /* --all: a QUEUE column */
};

static void dead_row(const cueq_execution *e, void *arg)
{
	const struct dead_out *o = arg;
	char at[40], fails[32], exps[32];
	bool reason = e->reason != NULL && e->reason[0] != '\0';
	bool error = e->error != NULL && e->error[0] != '\0';

	if (o->w != NULL) {
		jw_object_begin(o->w, NULL);
		cli_execution_json(o->w, e);
		jw_object_end(o->w);
		return;
	}
	snprintf(fails, sizeof(fails), "%u/%u", e->failures, e->max_attempts);
	snprintf(exps, sizeof(exps), "%u/%u", e->expiries, e->max_expiries);
	if (o->queues)
		printf("%-20s  ", e->queue);
	printf("%-16s  %7u  %8s  %8s  %-24s  ", e->execution_id, e->attempt, fails, exps,
	       cli_time_str(e->finished_at_ms, at, sizeof(at)));
	if (reason)
		cli_one_line(e->reason, 200);
	if (error) {
		fputs(reason ? "; last error: " : "last error: ", stdout);
		cli_one_line(e->error, 200);
	}
	fputs(reason || error ? "\n" : "-\n", stdout);
}

enum { D_LIMIT, D_ALL };

int cmd_dead(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[D_LIMIT] = { .name = "limit", .kind = OPT_VALUE },
		[D_ALL] = { .name = "all", .kind = OPT_FLAG },
	};
	int64_t limit = 100;
	struct jw w;
	int npos, dd, rc = 0;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	bool all = o[D_ALL].seen;
	if (all && npos != 0)
		return cli_usage_error(cli, "dead --all takes no QUEUE");
	if ((!all && one_queue(cli, npos) != 0) ||
	    cli_int_opt(cli, &o[D_LIMIT], 1, 1000000, &limit) != 0)
		return CLI_EXIT_ERROR;
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	struct dead_out out = { .w = cli->json ? &w : NULL, .queues = all };
	if (cli->json) {
		jw_list_begin(&w, stdout);
	} else {
		if (all)
			printf("%-20s  ", "QUEUE");
		printf("%-16s  %7s  %8s  %8s  %-24s  %s\n", "EXECUTION_ID", "ATTEMPT", "FAILURES",
		       "EXPIRIES", "DIED_AT", "REASON; LAST ERROR");
	}
	rc = cli_each_execution(cli, all ? NULL : argv[1], CUEQ_DEAD, limit, NULL, dead_row, &out);
	if (cli->json)
		jw_list_end(&w); /* a valid array even when a page failed */
	return rc;
}

enum { R_QUEUE, R_ALL };

int cmd_retry(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[R_QUEUE] = { .name = "queue", .kind = OPT_VALUE },
		[R_ALL] = { .name = "all", .kind = OPT_FLAG },
	};
	uint64_t n = 0;
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (o[R_ALL].seen || o[R_QUEUE].seen) {
		if (npos != 0)
			return cli_usage_error(cli, "give an execution ID or --queue Q --all, not "
					       "both");
		if (!o[R_ALL].seen)
			return cli_usage_error(cli, "--queue retries the whole queue's dead only "
					       "with --all: give --all too");
		if (!o[R_QUEUE].seen)
			return cli_usage_error(cli, "--all needs --queue QUEUE");
	} else if (npos != 1) {
		return cli_usage_error(cli, "retry needs one execution ID, or --queue Q --all");
	}
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	if (o[R_ALL].seen) {
		err = cueq_retry_all(cli->client, o[R_QUEUE].value, &n);
		if (err != CUEQ_OK) {
			if (n > 0)
				fprintf(stderr, "cueq: %llu retried before the failure\n",
					(unsigned long long)n);
			return cli_fail(cli, err, "retry of the dead of queue '%s' failed",
					o[R_QUEUE].value);
		}
	} else {
		err = cueq_retry(cli->client, argv[1]);
		if (err == CUEQ_ERR_CONFLICT)
			return cli_fail_hint(cli, err, "only a dead execution can be retried; see "
					     "its state with `cueq get ID`",
					     "retry of %s refused", argv[1]);
		if (err != CUEQ_OK)
			return cli_fail(cli, err, "retry of %s failed", argv[1]);
		n = 1;
	}
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "execution_id", o[R_ALL].seen ? NULL : argv[1]);
		jw_str(&w, "queue", o[R_ALL].seen ? o[R_QUEUE].value : NULL);
		jw_uint(&w, "retried", n);
		jw_end(&w);
	} else if (o[R_ALL].seen) {
		printf("%llu retried in queue %s\n", (unsigned long long)n, o[R_QUEUE].value);
	} else {
		printf("1 retried: %s is ready again\n", argv[1]);
	}
	return CLI_EXIT_OK;
}

int cmd_cancel(struct cli *cli, int argc, char **argv)
{
	int npos, dd, rc, err, kind = CUEQ_KIND_EXECUTION, state = CUEQ_CANCELLED;
	const char *kind_name;

	rc = cli_parse(cli, argc, argv, NULL, 0, &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos != 1)
		return cli_usage_error(cli, "cancel needs exactly one execution or cue ID");
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_cancel(cli->client, argv[1], &kind, &state);
	if (err == CUEQ_ERR_CONFLICT)
		return cli_fail_hint(cli, err, "an execution that succeeded or is dead stays so; "
				     "see it with `cueq get ID`",
				     "cancel of %s refused", argv[1]);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "cancel of %s failed", argv[1]);
	kind_name = kind == CUEQ_KIND_CUE ? "cue" : "execution";
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "execution_id", kind == CUEQ_KIND_CUE ? NULL : argv[1]);
		jw_str(&w, "cue_id", kind == CUEQ_KIND_CUE ? argv[1] : NULL);
		jw_str(&w, "kind", kind_name);
		jw_str(&w, "state", cli_state_str(state));
		jw_end(&w);
	} else {
		printf("%s %s %s\n", kind_name, argv[1], cli_state_str(state));
	}
	return CLI_EXIT_OK;
}

enum { U_STATE };

int cmd_purge(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[U_STATE] = { .name = "state", .kind = OPT_VALUE },
	};
	uint64_t n = 0;
	int npos, dd, rc, err, state;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (one_queue(cli, npos) != 0)
		return CLI_EXIT_ERROR;
	if (!o[U_STATE].seen)
		return cli_usage_error(cli, "purge needs --state dead, succeeded or cancelled");
	state = cueq_state_parse(o[U_STATE].value);
	if (state != CUEQ_DEAD && state != CUEQ_SUCCEEDED && state != CUEQ_CANCELLED)
		return cli_usage_error(cli, "purge deletes finished executions: --state is dead, "
				       "succeeded or cancelled, not '%s'", o[U_STATE].value);
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_purge(cli->client, argv[1], state, &n);
	if (err != CUEQ_OK) {
		if (n > 0)
			fprintf(stderr, "cueq: %llu purged before the failure\n", (unsigned long long)n);
		return cli_fail(cli, err, "purge of queue '%s' failed", argv[1]);
	}
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "queue", argv[1]);
		jw_str(&w, "state", cli_state_str(state));
		jw_uint(&w, "purged", n);
		jw_end(&w);
	} else {
		printf("%llu %s purged from queue %s\n", (unsigned long long)n, cli_state_str(state),
		       argv[1]);
	}
	return CLI_EXIT_OK;
}

static int pause_or_resume(struct cli *cli, int argc, char **argv, bool pause)
{
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, NULL, 0, &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (one_queue(cli, npos) != 0)
		return CLI_EXIT_ERROR;
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = pause ? cueq_pause(cli->client, argv[1]) : cueq_resume(cli->client, argv[1]);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "%s of queue '%s' failed", cli->cmd->name, argv[1]);
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "queue", argv[1]);
		jw_bool(&w, "paused", pause);
		jw_end(&w);
	} else {
		printf("queue %s %s\n", argv[1], pause ? "paused" : "resumed");
	}
	return CLI_EXIT_OK;
}

int cmd_pause(struct cli *cli, int argc, char **argv)
{
	return pause_or_resume(cli, argc, argv, true);
}

int cmd_resume(struct cli *cli, int argc, char **argv)
{
	return pause_or_resume(cli, argc, argv, false);
}

int cmd_cues(struct cli *cli, int argc, char **argv)
{
	cueq_cue *list = NULL;
	size_t n = 0;
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, NULL, 0, &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (one_queue(cli, npos) != 0)
		return CLI_EXIT_ERROR;
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_cues(cli->client, argv[1], &list, &n);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "cues of queue '%s' failed", argv[1]);
	if (!cli->json)
		printf("%-16s  %-9s  %-24s  %8s  %-27s  %s\n", "CUE_ID", "STATE", "NEXT_FIRE", "FIRES",
		       "LAST_EXECUTION", "SCHEDULE");
	for (size_t i = 0; i < n; i++) {
		char next[40], sched[256];
		const cueq_cue *c = &list[i];
		const char *st = cueq_cue_state_name(c->state);

		if (cli->json) {
			cli_print_cue_brief_json(c);
			continue;
		}
		char last[40] = "-";
		if (c->executions_len > 0)
			snprintf(last, sizeof(last), "%s %s", c->executions[0].execution_id,
				 c->executions[0].state >= 0 ? cli_state_str(c->executions[0].state)
							     : "gone");
		printf("%-16s  %-9s  %-24s  %8llu  %-27s  %s\n", c->cue_id, st != NULL ? st : "unknown",
		       cli_time_str(c->n_next_fires > 0 ? c->next_fires_ms[0] : 0, next,
				    sizeof(next)),
		       (unsigned long long)c->fires, last, cli_cue_schedule(c, sched, sizeof(sched)));
	}
	cueq_cues_free(list, n);
	return CLI_EXIT_OK;
}

/* --rate N/PERIOD: "10/s", "100/5m", "0" (none). */
static int rate_opt(const struct cli *cli, const char *v, int64_t *rate, int64_t *per_ms)
{
	char num[32], per[32];
	const char *slash = strchr(v, '/');
	int64_t n;

	if (strcmp(v, "0") == 0) {
		*rate = 0, *per_ms = 0;
		return 0;
	}
	if (slash == NULL || (size_t)(slash - v) >= sizeof(num) || strlen(slash + 1) + 2 > sizeof(per))
		return cli_usage_error(cli, "--rate takes N/PERIOD, e.g. 10/s or 600/1m (0 removes it), "
				       "not '%s'", v);
	memcpy(num, v, (size_t)(slash - v));
	num[slash - v] = '\0';
	/* a bare unit is one of it: "s" is "1s" */
	snprintf(per, sizeof(per), "%s%s", isdigit((unsigned char)slash[1]) ? "" : "1", slash + 1);
	if (!cli_parse_int(num, 1, 1000000, &n))
		return cli_usage_error(cli, "bad count '%s' in --rate: use 1 to 1000000 claims per "
				       "period", num);
	if (cueq_parse_duration(per, per_ms) != CUEQ_OK || *per_ms < 1 || *per_ms > 86400000)
		return cli_usage_error(cli, "bad period '%s' in --rate: use a duration from 1ms to 1d, "
				       "e.g. s, 1m, 500ms", slash + 1);
	*rate = n;
	return 0;
}

int cmd_limit(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		{ .name = "group", .kind = OPT_VALUE },
		{ .name = "concurrency", .kind = OPT_VALUE },
		{ .name = "rate", .kind = OPT_VALUE },
	};
	cueq_limit_spec spec = { .concurrency = CUEQ_LIMIT_KEEP, .rate = CUEQ_LIMIT_KEEP };
	cueq_limit now;
	char text[96];
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, o, 3, &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (one_queue(cli, npos) != 0)
		return CLI_EXIT_ERROR;
	if (!o[1].seen && !o[2].seen)
		return cli_usage_error(cli, "limit needs --concurrency N or --rate N/PERIOD (or both; 0 "
				       "removes one)");
	if (o[0].seen && strcmp(o[0].value, "*") == 0)
		spec.each_group = true;
	else if (o[0].seen)
		spec.group = o[0].value;
	if (o[1].seen && cli_int_opt(cli, &o[1], 0, 100000, &spec.concurrency) != 0)
		return CLI_EXIT_ERROR;
	if (o[2].seen && rate_opt(cli, o[2].value, &spec.rate, &spec.per_ms) != 0)
		return CLI_EXIT_ERROR;
	if ((rc = cli_connect(cli)) != 0)
		return rc;
	err = cueq_set_limit(cli->client, argv[1], &spec, &now);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "limit of queue '%s' failed", argv[1]);
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "queue", argv[1]);
		jw_str(&w, "group", spec.group);
		jw_bool(&w, "each_group", spec.each_group);
		jw_uint(&w, "concurrency", now.concurrency);
		jw_uint(&w, "rate", now.rate);
		jw_int(&w, "per_ms", now.per_ms);
		jw_end(&w);
	} else {
		cli_limit_text(&now, text, sizeof(text));
		if (spec.group != NULL)
			printf("queue %s, group %s: %s\n", argv[1], spec.group, text);
		else if (spec.each_group)
			printf("queue %s, each group without its own limit: %s\n", argv[1], text);
		else
			printf("queue %s: %s\n", argv[1], text);
	}
	return CLI_EXIT_OK;
}
