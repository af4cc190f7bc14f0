/*
 * cmd_inspect.c - `cueq get`, `list` and `stats`: read-only views.
 *
 * get shows every field of one execution and its history, or of a
 * recurring cue with its next fires and last executions: one request
 * answers either.  list (and dead, in cmd_operate.c) page through the
 * broker's answers (cli_each_execution: at most 1000 per request) until
 * --limit is reached, so a large limit costs several requests, not one
 * huge reply; --all walks every queue stats counts.
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

void cli_one_line(const char *s, size_t max)
{
	size_t n = cli_utf8_cut(s, strlen(s), max);

	for (size_t i = 0; i < n; i++)
		fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i], stdout);
	if (n < strlen(s))
		fputs("...", stdout);
}

/* One queue's executions, page by page, while *left lasts. */
static int each_of_queue(struct cli *cli, const char *queue, int state, int64_t *left,
			 const char *after, cli_row_fn row, void *arg)
{
	char from[CUEQ_ID_SIZE] = "";
	if (after != NULL)
		snprintf(from, sizeof(from), "%s", after);
	while (*left > 0) {
		size_t want = *left > CUEQ_MAX_BATCH ? CUEQ_MAX_BATCH : (size_t)*left, n = 0;
		cueq_execution *list = NULL;
		int err = cueq_list(cli->client, queue, state, want, from[0] ? from : NULL, &list, &n);
		if (err != CUEQ_OK)
			return cli_fail(cli, err, "list of queue '%s' failed", queue);
		for (size_t i = 0; i < n; i++)
			row(&list[i], arg);
		if (n > 0)
			memcpy(from, list[n - 1].execution_id, CUEQ_ID_SIZE);
		cueq_list_free(list, n);
		*left -= (int64_t)n;
		if (n < want)
			break;
	}
	return CLI_EXIT_OK;
}

int cli_each_execution(struct cli *cli, const char *queue, int state, int64_t limit,
		       const char *after, cli_row_fn row, void *arg)
{
	if (queue != NULL)
		return each_of_queue(cli, queue, state, &limit, after, row, arg);
	cueq_queue_stats *st = NULL;
	size_t n = 0;
	int err = cueq_stats(cli->client, NULL, &st, &n), rc = CLI_EXIT_OK;
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "stats (to find the queues) failed");
	for (size_t i = 0; i < n && rc == CLI_EXIT_OK && limit > 0; i++) {
		const cueq_queue_stats *q = &st[i];
		uint64_t here = state < 0 ? q->scheduled + q->ready + q->leased + q->succeeded +
						    q->dead + q->cancelled
			      : state == CUEQ_SCHEDULED ? q->scheduled
			      : state == CUEQ_READY	? q->ready
			      : state == CUEQ_LEASED	? q->leased
			      : state == CUEQ_SUCCEEDED ? q->succeeded
			      : state == CUEQ_DEAD	? q->dead
							: q->cancelled;
		if (here > 0) /* a queue with none of them costs no request */
			rc = each_of_queue(cli, q->queue, state, &limit, NULL, row, arg);
	}
	cueq_stats_free(st, n);
	return rc;
}

struct list_out {
	bool json, queues; /* queues: a QUEUE column (--all) */
};

static void list_row(const cueq_execution *e, void *arg)
{
	const struct list_out *o = arg;
	char created[40], run[40], attempts[32];

	if (o->json) {
		cli_print_execution_brief_json(e);
		return;
	}
	snprintf(attempts, sizeof(attempts), "%u/%u", e->attempt, e->max_attempts);
	if (o->queues)
		printf("%-20s  ", e->queue);
	printf("%-16s  %-9s  %-7s  %8d  %-24s  %-24s  ", e->execution_id, cli_state_str(e->state),
	       attempts, e->priority, cli_time_str(e->created_at_ms, created, sizeof(created)),
	       cli_time_str(e->run_at_ms, run, sizeof(run)));
	if (e->error != NULL && e->error[0] != '\0')
		cli_one_line(e->error, 80);
	else
		fputs("-", stdout);
	fputs("\n", stdout);
}

enum { L_STATE, L_LIMIT, L_AFTER, L_ALL };

int cmd_list(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[L_STATE] = { .name = "state", .kind = OPT_VALUE },
		[L_LIMIT] = { .name = "limit", .kind = OPT_VALUE },
		[L_AFTER] = { .name = "after", .kind = OPT_VALUE },
		[L_ALL] = { .name = "all", .kind = OPT_FLAG },
	};
	int64_t limit = 100;
	int npos, dd, rc, state = -1;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	bool all = o[L_ALL].seen;
	if (npos != (all ? 0 : 1))
		return cli_usage_error(cli, all ? "list --all takes no QUEUE"
						: "list needs exactly one QUEUE (or --all)");
	if (all && o[L_AFTER].seen)
		return cli_usage_error(cli, "--after goes with one QUEUE, not --all");
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
	struct list_out out = { .json = cli->json, .queues = all };
	if (!cli->json) {
		if (all)
			printf("%-20s  ", "QUEUE");
		printf("%-16s  %-9s  %-7s  %8s  %-24s  %-24s  %s\n", "EXECUTION_ID", "STATE",
		       "ATTEMPT", "PRIORITY", "CREATED_AT", "RUN_AT", "ERROR");
	}
	return cli_each_execution(cli, all ? NULL : argv[1], state, limit,
				  o[L_AFTER].seen ? o[L_AFTER].value : NULL, list_row, &out);
}

void cli_limit_text(const cueq_limit *l, char *out, size_t size)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = { { 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" }, { 1, "ms" } };
	size_t n = 0;
	out[0] = '\0';
	if (l->concurrency)
		n += (size_t)snprintf(out, size, "concurrency %u", l->concurrency);
	if (l->rate && n < size) {
		size_t u = 0;
		while (l->per_ms % units[u].ms != 0)
			u++;
		n += (size_t)snprintf(out + n, size - n, "%srate %u/%lld%s", n ? ", " : "", l->rate,
				      (long long)(l->per_ms / units[u].ms), units[u].unit);
	}
	if (n == 0)
		snprintf(out, size, "none");
}

void cli_limit_json(struct jw *w, const char *key, const cueq_limit *l)
{
	jw_object_begin(w, key);
	jw_uint(w, "concurrency", l->concurrency);
	jw_uint(w, "rate", l->rate);
	jw_int(w, "per_ms", l->per_ms);
	jw_object_end(w);
}

/* The limits and groups of one queue: JSON fields of its stats object, or
 * lines under its row. */
static void stats_groups(const struct cli *cli, struct jw *w, const cueq_limit lims[2],
			 const cueq_group_stats *g, size_t n)
{
	char a[96], b[96];
	if (cli->json) {
		cli_limit_json(w, "limits", &lims[0]);
		cli_limit_json(w, "per_group", &lims[1]);
		jw_array_begin(w, "groups");
		for (size_t i = 0; i < n; i++) {
			jw_object_begin(w, NULL);
			jw_str(w, "group", g[i].group);
			jw_uint(w, "ready", g[i].ready);
			jw_uint(w, "leased", g[i].leased);
			jw_uint(w, "unfinished", g[i].unfinished);
			jw_bool(w, "own_limit", g[i].own_limit);
			cli_limit_json(w, "limit", &g[i].limit);
			jw_object_end(w);
		}
		jw_array_end(w);
		return;
	}
	cli_limit_text(&lims[0], a, sizeof(a));
	cli_limit_text(&lims[1], b, sizeof(b));
	if (n == 0 && strcmp(a, "none") == 0 && strcmp(b, "none") == 0)
		return;
	printf("\nlimits: the queue %s; each group %s\n", a, b);
	if (n == 0)
		return;
	int width = 5;
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(g[i].group) > width)
			width = (int)strlen(g[i].group);
	printf("%-*s  %9s  %9s  %10s  %s\n", width, "GROUP", "READY", "LEASED", "UNFINISHED", "LIMIT");
	for (size_t i = 0; i < n; i++) {
		cli_limit_text(&g[i].limit, a, sizeof(a));
		printf("%-*s  %9llu  %9llu  %10llu  %s%s\n", width, g[i].group,
		       (unsigned long long)g[i].ready, (unsigned long long)g[i].leased,
		       (unsigned long long)g[i].unfinished, a,
		       g[i].own_limit ? " (its own)" : "");
	}
}

static void stats_row(const struct cli *cli, const cueq_queue_stats *s, int width,
		      const cueq_limit *lims, const cueq_group_stats *g, size_t ng)
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
		if (lims != NULL)
			stats_groups(cli, &w, lims, g, ng);
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
	if (lims != NULL)
		stats_groups(cli, NULL, lims, g, ng);
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	cueq_queue_stats *st = NULL, empty = { 0 };
	cueq_group_stats *groups = NULL;
	cueq_limit lims[2] = { { 0 } };
	size_t n = 0, ng = 0;
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
	if (queue != NULL && (err = cueq_groups(cli->client, queue, lims, &groups, &ng)) != CUEQ_OK) {
		cueq_stats_free(st, n);
		return cli_fail(cli, err, "stats of the groups of '%s' failed", queue);
	}
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
		stats_row(cli, &st[i], width, queue ? lims : NULL, groups, ng);
	if (empty.queue[0] != '\0')
		stats_row(cli, &empty, width, lims, groups, ng);
	cueq_stats_free(st, n);
	cueq_groups_free(groups, ng);
	return CLI_EXIT_OK;
}
