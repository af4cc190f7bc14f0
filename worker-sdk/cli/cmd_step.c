/*
 * cmd_step.c - `cueq step set`, `cueq step get` and `cueq steps`: the
 * execution's step ledger by hand, or from a `cueq work` command.
 *
 * step set needs the live lease token (a stale one exits 4 and writes
 * nothing); reads need none.  step get prints the value's bytes as they are
 * (with a newline when they lack one), so `v=$(cueq step get ...)` gets the
 * value; a missing step exits 5.  steps prints one "NAME VALUE" line per
 * step (values that are not one line of text in base64), or with --json
 * one object per step, one per line, like every other listing.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

enum { S_TOKEN };

static int step_set(struct cli *cli, int npos, char **argv, const struct cli_opt *token)
{
	const char *id, *name, *value;
	char *owned = NULL;
	size_t len;
	int rc, err;

	if (npos != 4)
		return cli_usage_error(cli, "step set needs ID NAME VALUE (VALUE '-' reads "
				       "standard input)");
	id = argv[2];
	name = argv[3];
	if (!token->seen || token->value[0] == '\0')
		return cli_usage_error(cli, "step set %s %s needs --token TOKEN, the lease_token "
				       "of the live claim", id, name);
	if (strcmp(argv[4], "-") == 0) {
		if (cli_read_stdin(CUEQ_MAX_STEP_VALUE, "step value", "record an ID or a "
				   "reference, not the data", &owned, &len) != 0)
			return CLI_EXIT_ERROR;
		value = owned;
	} else {
		value = argv[4];
		len = strlen(value);
		if (len > CUEQ_MAX_STEP_VALUE)
			return cli_error("the step value is %zu bytes; the limit is %u: record an "
					 "ID or a reference, not the data", len,
					 CUEQ_MAX_STEP_VALUE);
	}
	rc = cli_connect(cli);
	if (rc == 0) {
		err = cueq_step_set(cli->client, id, token->value, name, value, len);
		if (err != CUEQ_OK) {
			rc = cli_fail(cli, err, "step set %s %s refused", id, name);
		} else if (cli->json) {
			struct jw w;
			jw_begin(&w, stdout);
			jw_str(&w, "execution_id", id);
			jw_str(&w, "name", name);
			jw_end(&w);
		} else {
			printf("%s step %s recorded\n", id, name);
		}
	}
	free(owned);
	return rc;
}

static int step_get(struct cli *cli, int npos, char **argv)
{
	const char *id, *name;
	void *value = NULL;
	size_t len = 0;
	char h[200];
	int rc, err;

	if (npos != 3)
		return cli_usage_error(cli, "step get needs ID NAME");
	id = argv[2];
	name = argv[3];
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_step_get(cli->client, id, name, &value, &len);
	if (err == CUEQ_ERR_NO_STEP) {
		snprintf(h, sizeof(h), "`cueq steps %.40s` lists what it has", id);
		return cli_fail_hint(cli, err, h, "step get %s %s", id, name);
	}
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "step get %s %s failed", id, name);
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "execution_id", id);
		jw_str(&w, "name", name);
		jw_bytes(&w, "value", value, len);
		jw_end(&w);
	} else {
		cli_print_payload_raw(value, len);
	}
	cueq_value_free(value);
	return CLI_EXIT_OK;
}

int cmd_step(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[S_TOKEN] = { .name = "token", .kind = OPT_VALUE },
	};
	int npos, dd, rc;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos >= 1 && strcmp(argv[1], "set") == 0)
		return step_set(cli, npos, argv, &o[S_TOKEN]);
	if (npos >= 1 && strcmp(argv[1], "get") == 0) {
		if (o[S_TOKEN].seen)
			return cli_usage_error(cli, "step get reads without a token; leave --token "
					       "out");
		return step_get(cli, npos, argv);
	}
	if (npos == 0)
		return cli_usage_error(cli, "step needs 'set' or 'get'");
	return cli_usage_error(cli, "unknown step command '%s': use 'set' or 'get' (or "
			       "`cueq steps ID` for all of them)", argv[1]);
}

int cmd_steps(struct cli *cli, int argc, char **argv)
{
	cueq_step *steps = NULL;
	size_t n = 0;
	int npos, dd, rc, err;

	rc = cli_parse(cli, argc, argv, NULL, 0, &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (npos != 1)
		return cli_usage_error(cli, "steps needs exactly one execution ID");
	rc = cli_connect(cli);
	if (rc != 0)
		return rc;
	err = cueq_steps(cli->client, argv[1], &steps, &n);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "steps of %s failed", argv[1]);
	for (size_t i = 0; i < n; i++) {
		if (cli->json) {
			struct jw w;
			jw_begin(&w, stdout);
			jw_str(&w, "execution_id", argv[1]);
			cli_step_json(&w, &steps[i]);
			jw_end(&w);
		} else {
			cli_print_step_line(&steps[i], false);
		}
	}
	cueq_steps_free(steps, n);
	return CLI_EXIT_OK;
}
