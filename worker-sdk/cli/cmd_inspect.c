/*
 * cmd_inspect.c - `cueq get`, `list` and `stats`: read-only views.
 *
 * get shows every field of one execution and its history, or of a
 * recurring cue with its next fires and last executions: one request
 * answers either.  list pages
 * through the broker's answer (at most 1000 per request) until --limit is
 * reached, so a large limit costs several requests, not one huge reply.
 * Text output is aligned tables; JSON output is one object per execution
 * or per queue, one per line, so it can be piped into line-based tools.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cmd_get(struct cli *cli, int argc, char **argv)
{
	cueq_execution *e = NULL;
	cueq_cue *cue = NULL;
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, NULL, 0, &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos != 1)
		return cli_usage_error(cli, "get needs exactly one execution or cue ID");
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_get_any(cli->client, argv[1], &e, &cue);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "get %s failed", argv[1]);
	if (e != NULL)
		cli_print_execution(cli, e);
	else
		cli_print_cue(cli, cue);
	cueq_execution_free(e);
	cueq_cue_free(cue);
	return CLI_EXIT_OK;
}

static void list_row(const cueq_execution *e)
{
	char created[40], run[40], attempts[32];

	snprintf(attempts, sizeof(attempts), "%u/%u", e->attempt, e->max_attempts);
	printf("%-16s  %-9s  %-7s  %8d  %-24s  %s\n", e->execution_id, cli_state_str(e->state),
	       attempts, e->priority, cli_time_str(e->created_at_ms, created, sizeof(created)),
	       cli_time_str(e->run_at_ms, run, sizeof(run)));
}

enum { L_STATE, L_LIMIT };

int cmd_list(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[L_STATE] = { .name = "state", .kind = OPT_VALUE },
		[L_LIMIT] = { .name = "limit", .kind = OPT_VALUE },
	};
	char after[CUEQ_ID_SIZE] = "";
	int64_t limit = 100;
	size_t shown = 0;
	int npos, dd, rc, state = -1;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos != 1)
		return cli_usage_error(cli, "list needs exactly one QUEUE");
	if (cli_int_opt(cli, &o[L_LIMIT], 1, 1000000, &limit) != 0)
		return CLI_EXIT_ERROR;
	if (o[L_STATE].seen) {
		state = cueq_state_parse(o[L_STATE].value);
		if (state < 0)
			return cli_usage_error(cli, "unknown state '%s': use scheduled, ready, "
					       "leased, succeeded, dead or cancelled",
					       o[L_STATE].value);
	}
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	if (!cli->json)
		printf("%-16s  %-9s  %-7s  %8s  %-24s  %s\n", "EXECUTION_ID", "STATE", "ATTEMPT",
		       "PRIORITY", "CREATED_AT", "RUN_AT");
	while (shown < (size_t)limit) {
		size_t want = (size_t)limit - shown, n = 0;
		cueq_execution *list = NULL;
		int err;

		if (want > CUEQ_MAX_BATCH)
			want = CUEQ_MAX_BATCH;
		err = cueq_list(cli->client, argv[1], state, want, after[0] ? after : NULL, &list,
				&n);
		if (err != CUEQ_OK)
			return cli_fail(cli, err, "list of queue '%s' failed", argv[1]);
		for (size_t i = 0; i < n; i++) {
			if (cli->json)
				cli_print_execution_brief_json(&list[i]);
			else
				list_row(&list[i]);
		}
		if (n > 0)
			memcpy(after, list[n - 1].execution_id, CUEQ_ID_SIZE);
		cueq_list_free(list, n);
		shown += n;
		if (n < want)
			break;
	}
	return CLI_EXIT_OK;
}

static void stats_row(const struct cli *cli, const cueq_queue_stats *s, int width)
{
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "queue", s->queue);
		jw_uint(&w, "scheduled", s->scheduled);
		jw_uint(&w, "ready", s->ready);
		jw_uint(&w, "leased", s->leased);
		jw_uint(&w, "succeeded", s->succeeded);
		jw_uint(&w, "dead", s->dead);
		jw_uint(&w, "cancelled", s->cancelled);
		jw_bool(&w, "paused", s->paused);
		jw_uint(&w, "cues", s->cues);
		jw_uint(&w, "deliveries", s->deliveries);
		jw_uint(&w, "expiries", s->expiries);
		jw_uint(&w, "failures", s->failures);
		jw_uint(&w, "releases", s->releases);
		jw_end(&w);
		return;
	}
	printf("%-*s  %-6s  %9llu  %9llu  %9llu  %9llu  %9llu  %9llu  %5llu  %10llu  %8llu  "
	       "%8llu\n",
	       width, s->queue, s->paused ? "yes" : "no", (unsigned long long)s->scheduled,
	       (unsigned long long)s->ready, (unsigned long long)s->leased,
	       (unsigned long long)s->succeeded, (unsigned long long)s->dead,
	       (unsigned long long)s->cancelled, (unsigned long long)s->cues,
	       (unsigned long long)s->deliveries, (unsigned long long)s->expiries,
	       (unsigned long long)s->failures);
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	cueq_queue_stats *st = NULL, empty = { 0 };
	size_t n = 0;
	int npos, dd, rc, err, width = 5;
	const char *queue;

	rc = cli_parse(cli, argc, argv, NULL, 0, &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos > 1)
		return cli_usage_error(cli, "stats takes at most one QUEUE");
	queue = npos == 1 ? argv[1] : NULL;
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_stats(cli->client, queue, &st, &n);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "stats failed");
	if (n == 0 && queue != NULL && strlen(queue) < sizeof(empty.queue)) {
		/* A queue exists from its first push: none yet means all zero. */
		memcpy(empty.queue, queue, strlen(queue) + 1);
	}
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(st[i].queue) > width)
			width = (int)strlen(st[i].queue);
	if (empty.queue[0] != '\0' && (int)strlen(empty.queue) > width)
		width = (int)strlen(empty.queue);
	if (!cli->json)
		printf("%-*s  %-6s  %9s  %9s  %9s  %9s  %9s  %9s  %5s  %10s  %8s  %8s\n", width,
		       "QUEUE", "PAUSED", "SCHEDULED", "READY", "LEASED", "SUCCEEDED", "DEAD",
		       "CANCELLED", "CUES", "DELIVERIES", "EXPIRIES", "FAILURES");
	for (size_t i = 0; i < n; i++)
		stats_row(cli, &st[i], width);
	if (empty.queue[0] != '\0')
		stats_row(cli, &empty, width);
	cueq_stats_free(st, n);
	return CLI_EXIT_OK;
}
