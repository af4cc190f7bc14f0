/*
 * cmd_lease.c - `cueq claim`, `ack`, `nack` and `extend`: a worker by hand.
 *
 * claim prints what a script needs to finish the job: the execution ID, the
 * lease token and the attempt, then the payload (text: "name: value" lines,
 * a blank line and the payload bytes as they are; JSON: one object).  Its
 * exit status is 3 when nothing was ready, so `while cueq claim q; do ...`
 * loops.  ack, nack and extend need the lease token: a stale one is refused
 * by the broker and exits 4.
 */
#include "cli.h"

#include <string.h>

enum { C_LEASE, C_WAIT };

static void print_claim(const struct cli *cli, const cueq_job *j)
{
	size_t len = 0;
	const void *p = cueq_job_payload(j, &len);
	char buf[40];

	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "execution_id", cueq_job_id(j));
		jw_str(&w, "cue_id", cueq_job_cue_id(j));
		jw_str(&w, "queue", cueq_job_queue(j));
		jw_str(&w, "state", "leased");
		jw_uint(&w, "attempt", cueq_job_attempt(j));
		jw_str(&w, "lease_token", cueq_job_token(j));
		jw_time(&w, "lease_deadline", cueq_job_lease_deadline(j));
		jw_payload(&w, p, len);
		jw_end(&w);
		return;
	}
	printf("execution_id: %s\n", cueq_job_id(j));
	printf("lease_token: %s\n", cueq_job_token(j));
	printf("attempt: %u\n", cueq_job_attempt(j));
	printf("queue: %s\n", cueq_job_queue(j));
	printf("lease_deadline: %s\n",
	       cli_time_str(cueq_job_lease_deadline(j), buf, sizeof(buf)));
	if (len > 0 && !cli_utf8_valid(p, len)) {
		printf("payload_base64: ");
		cli_base64(stdout, p, len);
		printf("\n");
		return;
	}
	printf("\n");
	cli_print_payload_raw(p, len);
}

int cmd_claim(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[C_LEASE] = { .name = "lease", .kind = OPT_VALUE },
		[C_WAIT] = { .name = "wait", .kind = OPT_VALUE },
	};
	int64_t lease_ms = 0, wait_ms = 0;
	cueq_job *job = NULL;
	size_t n = 0;
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos != 1)
		return cli_usage_error(cli, "claim needs exactly one QUEUE");
	if (cli_duration_opt(cli, &o[C_LEASE], 100, 86400000, &lease_ms) != 0 ||
	    cli_duration_opt(cli, &o[C_WAIT], 0, 300000, &wait_ms) != 0)
		return CLI_EXIT_ERROR;
	/* the job is finished by another cueq process: its lease must outlive
	 * this one's connection */
	cli->detach_claims = true;
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_claim(cli->client, argv[1], 1, lease_ms, wait_ms, &job, &n);
	if (err == CUEQ_ERR_EMPTY || (err == CUEQ_OK && n == 0)) {
		fprintf(stderr, "cueq: nothing to claim in queue '%s'\n", argv[1]);
		return CLI_EXIT_EMPTY;
	}
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "claim from queue '%s' failed", argv[1]);
	print_claim(cli, job);
	cueq_job_free(job);
	return CLI_EXIT_OK;
}

/* The ID and the required --token of ack, nack and extend. */
static int id_and_token(struct cli *cli, int npos, char **argv, const struct cli_opt *token)
{
	if (npos != 1)
		return cli_usage_error(cli, "%s needs exactly one execution ID", cli->cmd->name);
	if (!token->seen || token->value[0] == '\0')
		return cli_usage_error(cli, "%s %s needs --token TOKEN, the lease_token printed "
				       "by claim", cli->cmd->name, argv[1]);
	return 0;
}

static void print_outcome(const struct cli *cli, const char *id, int state, int64_t deadline,
			  const char *token)
{
	char buf[40];

	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "execution_id", id);
		jw_str(&w, "state", cli_state_str(state));
		if (state == CUEQ_LEASED) {
			jw_str(&w, "lease_token", token);
			jw_time(&w, "lease_deadline", deadline);
		}
		jw_end(&w);
	} else if (state == CUEQ_LEASED) {
		printf("%s leased until %s\n", id, cli_time_str(deadline, buf, sizeof(buf)));
	} else {
		printf("%s %s\n", id, cli_state_str(state));
	}
}

enum { A_TOKEN, A_RESULT };

int cmd_ack(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[A_TOKEN] = { .name = "token", .kind = OPT_VALUE },
		[A_RESULT] = { .name = "result", .kind = OPT_VALUE },
	};
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (id_and_token(cli, npos, argv, &o[A_TOKEN]) != 0)
		return CLI_EXIT_ERROR;
	if (o[A_RESULT].seen && strlen(o[A_RESULT].value) > CUEQ_MAX_TEXT)
		return cli_error("--result is longer than %u bytes; store big results "
				 "elsewhere", CUEQ_MAX_TEXT);
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_ack(cli->client, argv[1], o[A_TOKEN].value, o[A_RESULT].value);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "ack %s refused", argv[1]);
	print_outcome(cli, argv[1], CUEQ_SUCCEEDED, 0, NULL);
	return CLI_EXIT_OK;
}

enum { N_TOKEN, N_ERROR, N_RETRY_IN, N_TERMINAL };

int cmd_nack(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[N_TOKEN] = { .name = "token", .kind = OPT_VALUE },
		[N_ERROR] = { .name = "error", .kind = OPT_VALUE },
		[N_RETRY_IN] = { .name = "retry-in", .kind = OPT_VALUE },
		[N_TERMINAL] = { .name = "terminal", .kind = OPT_FLAG },
	};
	int64_t retry_ms = -1;
	int npos, dd, rc, err, state = -1;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (id_and_token(cli, npos, argv, &o[N_TOKEN]) != 0 ||
	    cli_duration_opt(cli, &o[N_RETRY_IN], 0, INT64_MAX / 2, &retry_ms) != 0)
		return CLI_EXIT_ERROR;
	if (o[N_RETRY_IN].seen && o[N_TERMINAL].seen)
		return cli_usage_error(cli, "give --retry-in or --terminal, not both");
	if (o[N_ERROR].seen && strlen(o[N_ERROR].value) > CUEQ_MAX_TEXT)
		return cli_error("--error is longer than %u bytes; shorten it", CUEQ_MAX_TEXT);
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_nack(cli->client, argv[1], o[N_TOKEN].value, o[N_ERROR].value, retry_ms,
			o[N_TERMINAL].seen, &state);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "nack %s refused", argv[1]);
	print_outcome(cli, argv[1], state, 0, NULL);
	return CLI_EXIT_OK;
}

enum { E_TOKEN, E_LEASE };

int cmd_extend(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[E_TOKEN] = { .name = "token", .kind = OPT_VALUE },
		[E_LEASE] = { .name = "lease", .kind = OPT_VALUE },
	};
	int64_t lease_ms = 0, deadline = 0;
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (id_and_token(cli, npos, argv, &o[E_TOKEN]) != 0)
		return CLI_EXIT_ERROR;
	if (!o[E_LEASE].seen)
		return cli_usage_error(cli, "extend needs --lease D, the new lease length");
	if (cli_duration_opt(cli, &o[E_LEASE], 100, 86400000, &lease_ms) != 0)
		return CLI_EXIT_ERROR;
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_extend(cli->client, argv[1], o[E_TOKEN].value, lease_ms, &deadline);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "extend %s refused", argv[1]);
	print_outcome(cli, argv[1], CUEQ_LEASED, deadline, o[E_TOKEN].value);
	return CLI_EXIT_OK;
}
