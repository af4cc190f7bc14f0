/*
 * main.c - the cueq command-line client: command table and dispatch.
 *
 * Every command is one row of the table below {name, handler, usage, brief,
 * help}; `cueq --help` and `cueq CMD --help` are printed from it, so the
 * list of commands and their usage cannot drift apart.  Global flags may come
 * before the command (here) or after it (cli_parse).  The handler returns the
 * exit code; the connection it opened is closed here.  Errors are reported
 * in one line on stderr by cli_fail, which also maps SDK errors to the exit
 * codes of the contract (0 ok, 1 error, 3 empty, 4 conflict, 5 not found,
 * 6 unreachable).
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_command commands[] = {
	{ "ping", cmd_ping, "ping", "exit 0 when the broker answers",
	  "Prints the broker's version and clock.\n" },
	{ "push", cmd_push, "push QUEUE [PAYLOAD|-] [flags]",
	  "push a job; prints its execution ID (a cue ID when recurring)",
	  "The payload is PAYLOAD, or standard input with '-' or when PAYLOAD is\n"
	  "left out and standard input is not a terminal (at most 1 MiB).\n"
	  "  --priority N      higher runs first, -1000..1000 (default 0)\n"
	  "  --max-attempts N  handler failures (nacks) before it is dead, 1..1000\n"
	  "                    (default 5)\n"
	  "  --max-expiries N  leases that may run out (a worker died or hung) before\n"
	  "                    it is dead, 1..1000 (default 5)\n"
	  "  --backoff BASE,FACTOR,CAP\n"
	  "                    retry delay after a nack: BASE, times FACTOR after each\n"
	  "                    further failure, at most CAP (default 1s,2,1h; BASE and\n"
	  "                    CAP 0..1d, FACTOR 1..100)\n"
	  "  --no-jitter       retry after exactly that delay (default: a random delay\n"
	  "                    from 0 to it, so failing jobs do not retry in lockstep)\n"
	  "  --lease D         lease length of each claim (default 30s)\n"
	  "  --delay D         run no sooner than D from now\n"
	  "  --at TIME         run at TIME: 2026-11-25T12:00:00Z or @UNIXSECONDS\n"
	  "  --key K           idempotency key (1-256 bytes, per queue): the same push\n"
	  "                    with K again prints the first one's execution ID and\n"
	  "                    creates nothing (a note on standard error says so);\n"
	  "                    another push with K is refused (exit status 4)\n"
	  "  --key-ttl D       how long K is remembered (1s..30d; default: the\n"
	  "                    broker's window, 24h)\n"
	  "  --unique K        unique key (1-256 bytes, per queue): refused while an\n"
	  "                    unfinished execution holds K (exit status 4; the error\n"
	  "                    names that execution)\n"
	  "A recurring cue makes no execution now but one per fire, each with this\n"
	  "payload and these options; the push prints the cue's ID (see `cueq cues`,\n"
	  "`cueq get CUE_ID`; `cueq cancel CUE_ID` stops it):\n"
	  "  --every D         fire every D (1s..10 years): first at --at or after\n"
	  "                    --delay when given, else D from now\n"
	  "  --cron EXPR       fire on a 5-field cron schedule, 'MIN HOUR DOM MON DOW'\n"
	  "                    ('*/15 * * * *', '0 9 * * mon-fri') or @hourly, @daily,\n"
	  "                    @weekly, @monthly, @yearly\n"
	  "  --tz ZONE         the zone --cron is read in, e.g. Europe/Paris (default UTC)\n"
	  "  --catch-up one|all|none\n"
	  "                    fires missed while the broker was down: the latest one\n"
	  "                    (default), each, or none\n"
	  "  --overlap allow|skip\n"
	  "                    a fire while the previous one is unfinished: run it too\n"
	  "                    (default) or skip it\n"
	  "  --group K         concurrency group (a tenant, a site; 1-128 of\n"
	  "                    A-Z a-z 0-9 . _ : -): claims take the queue's groups in\n"
	  "                    turn, and `cueq limit` can cap each\n"
	  "  --wait D          then wait up to D for the outcome and print it, as\n"
	  "                    `cueq wait` does, with its exit status; with --key, a\n"
	  "                    repeat waits for the first push's execution\n"
	  "--json prints execution_id, cue_id, queue, state, run_at, recurring,\n"
	  "duplicate and durability (execution_id is null for a recurring cue).\n" },
	{ "claim", cmd_claim, "claim QUEUE [--lease D] [--wait D]",
	  "claim one execution: ID, lease token, attempt, payload",
	  "  --lease D   lease length (default: the job's own)\n"
	  "  --wait D    wait up to D for a job to be ready (default 0, at most 5m)\n"
	  "Exit status 3 when nothing was ready.\n" },
	{ "ack", cmd_ack, "ack ID --token T [--result R]", "finish an execution as succeeded",
	  "  --token T   the lease token from the claim (required)\n"
	  "  --result R  text stored with the outcome\n" },
	{ "nack", cmd_nack, "nack ID --token T [--error M] [--retry-in D] [--terminal]",
	  "fail an execution: retried later, or dead",
	  "  --token T     the lease token from the claim (required)\n"
	  "  --error M     why it failed\n"
	  "  --retry-in D  retry after D (default: the broker's backoff)\n"
	  "  --terminal    no more attempts: dead now\n" },
	{ "extend", cmd_extend, "extend ID --token T --lease D", "extend a lease",
	  "  --token T   the lease token from the claim (required)\n"
	  "  --lease D   new lease length from now (required)\n" },
	{ "step", cmd_step, "step set ID NAME VALUE --token T | step get ID NAME",
	  "write or read one step of an execution's ledger",
	  "step set records NAME = VALUE (VALUE '-' reads standard input; at most\n"
	  "4096 bytes) under the live lease: a stale token is refused with exit\n"
	  "status 4 and nothing is written.  NAME is 1-128 characters of\n"
	  "A-Z a-z 0-9 . _ : -.  step get prints the value; exit status 5 when\n"
	  "there is no such step.  Steps survive redeliveries, so a retried\n"
	  "handler can skip side effects already done.\n"
	  "  --token T   the lease token from the claim (step set only; required)\n" },
	{ "steps", cmd_steps, "steps ID", "list the steps of an execution",
	  "One line per step, in name order: NAME VALUE.  A value that is not one\n"
	  "line of text is shown as base64:DATA.  --json prints one object per\n"
	  "step: execution_id, name, value (or value_base64 when not UTF-8), at.\n" },
	{ "get", cmd_get, "get ID", "show an execution with its steps and history, or a cue",
	  "For an execution: its fields, payload, steps and history (why it is dead\n"
	  "or cancelled under reason).  For a recurring cue: its schedule, state,\n"
	  "options, the next fire times and its last executions.  Exit status 5 when\n"
	  "there is no such ID.\n" },
	{ "wait", cmd_wait, "wait ID [--timeout D]", "wait for an execution's outcome",
	  "Waits until the execution succeeded, is dead or was cancelled, and prints\n"
	  "its ID and state, then its result, error and reason when it has them.\n"
	  "The broker answers the moment the outcome is on disk; the wait holds no\n"
	  "thread there.  Exit status: 0 succeeded, 7 dead, 8 cancelled, 9 the\n"
	  "timeout passed first (it prints the state then), 5 no such execution.\n"
	  "--json prints the fields of `cueq list --json` with finished (false when\n"
	  "the timeout passed first) and duplicate.\n"
	  "  --timeout D  wait at most D (default: as long as it takes)\n" },
	{ "list", cmd_list, "list QUEUE|--all [--state S] [--limit N] [--after ID]",
	  "list executions of a queue, or of all",
	  "One line per execution, oldest first, with its last error.\n"
	  "  --state S   scheduled, ready, leased, succeeded, dead or cancelled\n"
	  "  --limit N   at most N executions (default 100)\n"
	  "  --after ID  the next page: those after execution ID (the last one shown)\n"
	  "  --all       every queue, with a QUEUE column\n" },
	{ "stats", cmd_stats, "stats [QUEUE]", "counts per state of each queue",
	  "Per queue: whether it is paused, the executions in each state, its active\n"
	  "recurring cues, and since the queue was created: deliveries (claims),\n"
	  "expiries (leases that ran out), failures (nacks) and releases (leases\n"
	  "ended by a worker's disconnect).  With QUEUE, also its limits and, per\n"
	  "group with unfinished executions, ready, leased and its limit (--json:\n"
	  "limits, per_group and groups).\n" },
	{ "limit", cmd_limit, "limit QUEUE [--group K|'*'] --concurrency N | --rate N/PERIOD",
	  "cap the leases or claims of a queue or of its groups",
	  "Without --group the limit is the queue's own: --concurrency counts every\n"
	  "lease of the queue.  --group K limits that group; --group '*' sets the\n"
	  "default of each group without its own.  Executions over a limit stay\n"
	  "ready and are claimed when a lease ends or the rate allows.  Limits are\n"
	  "stored: they survive restarts.  0 removes a limit.\n"
	  "  --concurrency N  at most N leased at once (0..100000)\n"
	  "  --rate N/PERIOD  at most N claims per PERIOD, e.g. 10/s, 600/1m (a token\n"
	  "                   bucket: up to N at once, then N per PERIOD)\n"
	  "--json prints queue, group, each_group, concurrency, rate and per_ms.\n" },
	{ "dead", cmd_dead, "dead QUEUE|--all [--limit N]", "list dead executions and why they died",
	  "One line per dead execution, oldest first: its ID, attempt, failures,\n"
	  "expiries, the reason it died and its last error.  `cueq retry ID` runs\n"
	  "one again, `cueq purge QUEUE --state dead` deletes them.  --json prints\n"
	  "one array of objects: execution_id, queue, state, attempt, max_attempts,\n"
	  "failures, expiries, max_expiries, reason, error, created_at, finished_at.\n"
	  "  --limit N   at most N executions (default 100)\n"
	  "  --all       the dead of every queue, with a QUEUE column\n" },
	{ "retry", cmd_retry, "retry ID | retry --queue Q --all",
	  "run dead executions again, same ID and steps",
	  "A dead execution is ready again with the same execution ID and step\n"
	  "ledger; attempt, failures and expiries start again from 0.  Exit status 4\n"
	  "when ID is not dead, 5 when there is none.  Prints how many were retried.\n"
	  "  --queue Q   with --all: every dead execution of queue Q\n"
	  "  --all       every dead one (needs --queue)\n" },
	{ "cancel", cmd_cancel, "cancel ID", "cancel an execution, or stop a recurring cue",
	  "An execution that is scheduled, ready or leased ends cancelled at once:\n"
	  "its lease token is refused from then on, and `cueq work` stops a command\n"
	  "running it.  A recurring cue fires no more (what it made is kept).\n"
	  "Prints the kind (execution or cue) and the state.  Exit status 4 when the\n"
	  "execution already succeeded or is dead, 5 when there is no such ID.\n" },
	{ "purge", cmd_purge, "purge QUEUE --state dead|succeeded|cancelled",
	  "delete finished executions of a queue",
	  "Deletes the queue's executions in that state, with their payload,\n"
	  "history, steps and keys, as the retention window would.  Prints how\n"
	  "many.\n"
	  "  --state S   dead, succeeded or cancelled (required)\n" },
	{ "pause", cmd_pause, "pause QUEUE", "stop claims from a queue until resumed",
	  "A paused queue still takes pushes and its recurring cues keep firing,\n"
	  "but claims get nothing (a claim with --wait waits) until `cueq resume`.\n"
	  "It stays paused across broker restarts.\n" },
	{ "resume", cmd_resume, "resume QUEUE", "let claims take from a paused queue again", "" },
	{ "cues", cmd_cues, "cues QUEUE", "list the recurring cues of a queue",
	  "One line per cue, oldest first: its ID, state (active or cancelled),\n"
	  "schedule, next fire and how many executions it made.  --json prints one\n"
	  "object per cue: cue_id, queue, state, every_ms or cron and tz, catch_up,\n"
	  "overlap, next_fires, fires, skipped, created_at and its job options.\n" },
	{ "work", cmd_work, "work QUEUE [flags] -- CMD ARGS...",
	  "run CMD for each execution of QUEUE",
	  "Each execution runs CMD with the payload on standard input and\n"
	  "CUEQ_EXECUTION_ID, CUEQ_ATTEMPT, CUEQ_LEASE_TOKEN, CUEQ_QUEUE, CUEQ_URL\n"
	  "in its environment; the lease is extended while it runs.  It may record\n"
	  "steps with `cueq step set \"$CUEQ_EXECUTION_ID\" NAME VALUE --token\n"
	  "\"$CUEQ_LEASE_TOKEN\"` and read them back on a later attempt.  Exit 0 acks\n"
	  "(the result is its standard output), anything else nacks (the error is\n"
	  "its exit status and last line of standard error).  SIGINT or SIGTERM\n"
	  "stops claiming at once and waits for running commands (an outcome the\n"
	  "broker does not take within 2s is given up: the execution comes back\n"
	  "when its lease expires), then exits 0; a second one terminates them.\n"
	  "A command whose execution an operator cancelled (or whose lease was\n"
	  "lost) gets SIGTERM, and SIGKILL if it still runs after the grace period;\n"
	  "it is neither acked nor nacked.\n"
	  "  --concurrency N  commands run at once (default 1)\n"
	  "  --lease D        lease length (default: each job's own)\n"
	  "  --max-jobs N     stop after N executions\n"
	  "  --grace D        from SIGTERM to SIGKILL of a stopped command (default 10s)\n"
	  "  --log-level L    what it says on stderr besides failed commands: quiet;\n"
	  "                   warn (jobs not run, leases lost, claims retried); info\n"
	  "                   (default; also connections made and lost); debug (also\n"
	  "                   each outcome the broker took)\n" },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char global_help[] =
	"Global flags:\n"
	"  --url URL       broker address (default $CUEQ_URL, else " CLI_DEFAULT_URL ")\n"
	"  --auth-token T  auth token for a broker started with --auth (default\n"
	"                  $CUEQ_TOKEN, which keeps it out of the process list)\n"
	"  --tls-ca FILE   for tls+tcp:// URLs: the CA (PEM) that signed the broker's\n"
	"                  certificate (default $CUEQ_TLS_CA, else the system's)\n"
	"  --json          machine output: one JSON object per line\n"
	"  --timeout D     give up on the broker after D (e.g. 5s)\n"
	"  -h, --help      help; `cueq CMD --help` for one command\n"
	"Durations: 250ms, 30s, 5m, 2h, 1d, or 0.  Exit status: 0 ok, 1 error,\n"
	"3 nothing to claim, 4 conflict or stale lease, 5 not found,\n"
	"6 broker unreachable; wait and push --wait: 7 dead, 8 cancelled,\n"
	"9 no outcome in time.\n";

static void print_usage(FILE *f)
{
	fprintf(f, "usage: cueq [--url URL] [--json] COMMAND [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-58s %s\n", commands[i].usage, commands[i].brief);
	fprintf(f, "\n%s", global_help);
}

static const struct cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int cli_exit_code(int err)
{
	switch (err) {
	case CUEQ_OK:
		return CLI_EXIT_OK;
	case CUEQ_ERR_EMPTY:
		return CLI_EXIT_EMPTY;
	case CUEQ_ERR_STALE_LEASE:
	case CUEQ_ERR_CONFLICT:
	case CUEQ_ERR_IDEMPOTENCY_MISMATCH:
		return CLI_EXIT_CONFLICT;
	case CUEQ_ERR_NOT_FOUND:
	case CUEQ_ERR_NO_STEP:
		return CLI_EXIT_NOT_FOUND;
	case CUEQ_ERR_UNREACHABLE:
		return CLI_EXIT_UNREACHABLE;
	default:
		return CLI_EXIT_ERROR;
	}
}

/* What to do about an error, from the command line.  The broker's and the
 * SDK's messages say what was wrong (often with advice of their own), so
 * these only add the next command to try; errors whose message is advice
 * enough (unreachable aside, see cli_fail) get none. */
static const char *hint(int err)
{
	switch (err) {
	case CUEQ_ERR_NOT_FOUND:
		return "find the IDs with `cueq list QUEUE`";
	case CUEQ_ERR_CONFLICT:
		return "see its state with `cueq get ID`";
	case CUEQ_ERR_STALE_LEASE:
		return "claim it again for a live token";
	case CUEQ_ERR_TOO_LARGE:
		return "make it smaller (payload 1 MiB, texts 64 KiB, step values 4 KiB)";
	case CUEQ_ERR_UNAVAILABLE:
		return "try again later";
	case CUEQ_ERR_INTERNAL:
		return "this is a broker bug; please report it";
	case CUEQ_ERR_UNREACHABLE:
		return "start cueqd there, or point --url or CUEQ_URL at it";
	default:
		return NULL;
	}
}

static int vfail(const struct cli *cli, int err, const char *h, const char *doing, va_list ap)
{
	const char *msg = cueq_last_error();
	bool asks;
	size_t len;

	if (msg == NULL || *msg == '\0')
		msg = cueq_strerror(err);
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '.' || msg[len - 1] == ' ' || msg[len - 1] == '\n'))
		len--;
	/* The SDK's unreachable message names the URL and asks whether cueqd
	 * runs; only the way to point elsewhere is added. */
	asks = len > 0 && msg[len - 1] == '?';
	if (err == CUEQ_ERR_UNREACHABLE && asks)
		h = "If it runs elsewhere, set --url or CUEQ_URL";
	fputs("cueq: ", stderr);
	vfprintf(stderr, doing, ap);
	if (err == CUEQ_ERR_BAD_REQUEST && cli->cmd != NULL)
		fprintf(stderr, ": %.*s; see 'cueq %s --help'\n", (int)len, msg, cli->cmd->name);
	else if (h != NULL)
		fprintf(stderr, ": %.*s%s %s\n", (int)len, msg, asks ? "" : ";", h);
	else
		fprintf(stderr, ": %.*s\n", (int)len, msg);
	return cli_exit_code(err);
}

int cli_fail(const struct cli *cli, int err, const char *doing, ...)
{
	va_list ap;
	int rc;

	va_start(ap, doing);
	rc = vfail(cli, err, hint(err), doing, ap);
	va_end(ap);
	return rc;
}

int cli_fail_hint(const struct cli *cli, int err, const char *h, const char *doing, ...)
{
	va_list ap;
	int rc;

	va_start(ap, doing);
	rc = vfail(cli, err, h != NULL ? h : hint(err), doing, ap);
	va_end(ap);
	return rc;
}

int cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	fputs("cueq: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cli != NULL && cli->cmd != NULL)
		fprintf(stderr, "; see 'cueq %s --help'\n", cli->cmd->name);
	else
		fputs("; see 'cueq --help'\n", stderr);
	return CLI_EXIT_ERROR;
}

int cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cueq: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_ERROR;
}

int cli_connect(struct cli *cli)
{
	cueq_client_opts o = { 0 };
	int err;

	o.detach_claims = cli->detach_claims;
	o.auth = cli->token;
	o.tls_ca_file = cli->tls_ca;
	if (cli->timeout_ms > 0) {
		o.connect_timeout_ms = cli->timeout_ms;
		o.request_timeout_ms = cli->timeout_ms;
		o.retry_deadline_ms = cli->timeout_ms;
	}
	err = cueq_connect(cli->url, &o, &cli->client);
	if (err != CUEQ_OK) {
		cli->client = NULL;
		return cli_fail(cli, err, "cannot connect");
	}
	return CLI_EXIT_OK;
}

/* Global flags before the command; returns the index of the command, or
 * -1 with *rc set when the program is done. */
static int parse_globals(struct cli *cli, int argc, char **argv, int *rc)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		size_t n;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "help") == 0) {
			const struct cli_command *c = i + 1 < argc ? find_command(argv[i + 1]) : NULL;
			if (c != NULL) {
				printf("usage: cueq %s\n%s", c->usage, c->help);
			} else {
				print_usage(stdout);
			}
			*rc = cli_flush();
			return -1;
		}
		if (strcmp(a, "--version") == 0) {
			printf("cueq %s\n", cueq_version());
			*rc = cli_flush();
			return -1;
		}
		if (strcmp(a, "--json") == 0) {
			cli->json = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
			break;
		n = strcspn(a + 2, "=");
		if (a[2 + n] == '=')
			v = a + 3 + n;
		if ((n != 3 || strncmp(a + 2, "url", 3) != 0) &&
		    (n != 10 || strncmp(a + 2, "auth-token", 10) != 0) &&
		    (n != 6 || strncmp(a + 2, "tls-ca", 6) != 0) &&
		    (n != 7 || strncmp(a + 2, "timeout", 7) != 0)) {
			*rc = cli_usage_error(NULL, "unknown flag '%s' before the command", a);
			return -1;
		}
		if (v == NULL) {
			if (i + 1 >= argc) {
				*rc = cli_usage_error(NULL, "%s needs a value", a);
				return -1;
			}
			v = argv[++i];
		}
		if (a[2] == 'u') {
			cli->url = v;
		} else if (n == 10) {
			cli->token = *v != '\0' ? v : NULL;
		} else if (n == 6) {
			cli->tls_ca = *v != '\0' ? v : NULL;
		} else if (cli_parse_duration(NULL, "timeout", v, 1, CLI_NO_MAX, &cli->timeout_ms) != 0) {
			*rc = CLI_EXIT_ERROR;
			return -1;
		}
	}
	return i;
}

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	const char *env = getenv("CUEQ_URL"), *token = getenv("CUEQ_TOKEN"),
		   *ca = getenv("CUEQ_TLS_CA");
	int rc = CLI_EXIT_OK, at;

	cli.url = env != NULL && *env != '\0' ? env : CLI_DEFAULT_URL;
	cli.token = token != NULL && *token != '\0' ? token : NULL;
	cli.tls_ca = ca != NULL && *ca != '\0' ? ca : NULL;
	at = parse_globals(&cli, argc, argv, &rc);
	if (at < 0)
		return rc;
	if (at >= argc) {
		print_usage(stderr);
		return CLI_EXIT_ERROR;
	}
	cli.cmd = find_command(argv[at]);
	if (cli.cmd == NULL)
		return cli_usage_error(NULL, "unknown command '%s'", argv[at]);
	rc = cli.cmd->run(&cli, argc - at, argv + at);
	if (cli.client != NULL)
		cueq_close(cli.client);
	if (cli_flush() != 0 && rc == CLI_EXIT_OK)
		rc = CLI_EXIT_ERROR;
	return rc;
}
