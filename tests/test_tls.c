/*
 * test_tls.c - tls+tcp:// listeners.  Certificates are made here with
 * openssl (a CA-less self-signed one for 127.0.0.1, one for another name,
 * one of another key); a real cueqd listens on tcp:// (for the harness)
 * and tls+tcp:// with the first.  Over TLS the SDK and the CLI push, claim
 * and ack; a client that does not trust the certificate, or finds another
 * name in it, never gets through (the CLI exits 6, unreachable), nor does a
 * plain tcp client on the TLS port; cueqd refuses to start with a
 * tls+tcp:// listener but no key, or with files that are not a PEM pair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

struct fx {
	th_broker b;
	char dir[64];
	char cert[96], key[96];	      /* CN=127.0.0.1, the broker's */
	char other_cert[96], other_key[96]; /* CN=elsewhere.example */
	char stranger[96];		      /* CN=127.0.0.1, another key */
	char tls_url[64];
};

static void make_cert(const char *dir, const char *name, const char *cn, char *cert, char *key)
{
	char cmd[512];
	snprintf(cert, 96, "%s/%s.pem", dir, name);
	snprintf(key, 96, "%s/%s.key", dir, name);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=%s -keyout %s -out %s 2>/dev/null",
		 cn, key, cert);
	if (system(cmd) != 0)
		fail_msg("openssl could not make a certificate: %s", cmd);
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	char skey[96];
	assert_non_null(x);
	strcpy(x->dir, "/tmp/cueq-tls-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	make_cert(x->dir, "broker", "127.0.0.1", x->cert, x->key);
	make_cert(x->dir, "other", "elsewhere.example", x->other_cert, x->other_key);
	make_cert(x->dir, "stranger", "127.0.0.1", x->stranger, skey);
	char listen[64];
	int port = th_free_port();
	snprintf(listen, sizeof(listen), "tls+tcp://127.0.0.1:%d", port);
	snprintf(x->tls_url, sizeof(x->tls_url), "%s", listen);
	const char *extra[] = {"--listen", x->tls_url, "--tls-cert", x->cert, "--tls-key", x->key, NULL};
	assert_int_equal(th_broker_start(&x->b, extra), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	char cmd[128];
	th_broker_cleanup(&x->b);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
	assert_int_equal(system(cmd), 0);
	free(x);
	return 0;
}

/* The SDK over TLS: push, claim, ack, get. */
static void test_sdk_over_tls(void **state)
{
	struct fx *x = *state;
	cueq_client_opts o = {.tls_ca_file = x->cert};
	cueq_client *c = NULL;
	int rc = cueq_connect(x->tls_url, &o, &c);
	if (rc != CUEQ_OK)
		fail_msg("connect over TLS: %s", cueq_last_error());
	cueq_push_result pr;
	assert_int_equal(cueq_push(c, "tq", "secret payload", 14, NULL, &pr), CUEQ_OK);
	const char *id = pr.execution_id;
	cueq_job *j = NULL;
	size_t n = 0;
	assert_int_equal(cueq_claim(c, "tq", 1, 30000, 1000, &j, &n), CUEQ_OK);
	assert_int_equal(n, 1);
	assert_string_equal(cueq_job_id(j), id);
	assert_int_equal(cueq_ack(c, id, cueq_job_token(j), "done"), CUEQ_OK);
	cueq_job_free(j);
	cueq_execution *e = NULL;
	assert_int_equal(cueq_get(c, id, &e), CUEQ_OK);
	assert_int_equal(e->state, CUEQ_SUCCEEDED);
	cueq_execution_free(e);
	cueq_close(c);

	/* a client that trusts another certificate, or expects another
	 * name, gets no connection */
	cueq_client_opts bad[] = {
		{.tls_ca_file = x->stranger, .connect_timeout_ms = 1500},
		{.tls_ca_file = x->cert, .tls_server_name = "elsewhere.example", .connect_timeout_ms = 1500},
	};
	for (size_t i = 0; i < 2; i++) {
		c = NULL;
		assert_int_equal(cueq_connect(x->tls_url, &bad[i], &c), CUEQ_ERR_UNREACHABLE);
		assert_null(c);
		assert_non_null(strstr(cueq_last_error(), "CA"));
	}
	cueq_client_opts missing = {.tls_ca_file = "/nonexistent/ca.pem"};
	assert_int_equal(cueq_connect(x->tls_url, &missing, &c), CUEQ_ERR_INVALID);
	assert_non_null(strstr(cueq_last_error(), "/nonexistent/ca.pem"));
}

/* The CLI over TLS with --tls-ca or CUEQ_TLS_CA; untrusted: exit 6. */
static void test_cli_over_tls(void **state)
{
	struct fx *x = *state;
	th_proc p;
	char id[64], tok[64];
	TH_CLI(&p, NULL, 0, "push", "cq", "over tls", "--json", "--tls-ca", x->cert, "--url",
	       x->tls_url);
	assert_true(th_json_str(p.out, "execution_id", id, sizeof(id)));
	th_proc_free(&p);

	char env[160];
	snprintf(env, sizeof(env), "CUEQ_TLS_CA=%s", x->cert);
	char *const envs[] = {env, NULL};
	char *const claim[] = {(char *)th_cli_path, "--json", "claim", "cq", "--url", x->tls_url, NULL};
	assert_int_equal(th_run(&p, NULL, 20000, claim, envs), 0);
	if (p.exit_code != 0)
		th_proc_dump("claim over TLS", &p), fail();
	assert_true(th_json_str(p.out, "lease_token", tok, sizeof(tok)));
	th_proc_free(&p);
	TH_CLI(&p, NULL, 0, "ack", id, "--token", tok, "--tls-ca", x->cert, "--url", x->tls_url);
	th_proc_free(&p);

	TH_CLI(&p, NULL, 6, "ping", "--timeout", "1500ms", "--tls-ca", x->stranger, "--url",
	       x->tls_url);
	assert_non_null(strstr(p.err, "signed by the CA"));
	th_proc_free(&p);
	/* plain tcp to the TLS port: no answer either */
	char plain[64];
	snprintf(plain, sizeof(plain), "tcp://%s", x->tls_url + strlen("tls+tcp://"));
	TH_CLI(&p, NULL, 6, "ping", "--timeout", "1500ms", "--url", plain);
	th_proc_free(&p);
	/* and the job acked over TLS is done, seen over plain loopback tcp */
	TH_CLI(&p, NULL, 0, "get", id, "--json", "--url", x->b.url);
	assert_non_null(strstr(p.out, "\"succeeded\""));
	th_proc_free(&p);
}

/* cueqd refuses TLS it cannot serve, saying what is missing or wrong. */
static void test_broker_refuses_bad_tls(void **state)
{
	struct fx *x = *state;
	char data[96];
	snprintf(data, sizeof(data), "%s/data", x->dir);
	static const char *const url = "tls+tcp://127.0.0.1:1";
	const struct {
		const char *cert, *key, *says;
	} cases[] = {
		{x->cert, NULL, "needs both --tls-cert FILE and --tls-key FILE"},
		{NULL, NULL, "needs both --tls-cert FILE and --tls-key FILE"},
		{x->cert, x->other_key, "the key unencrypted and matching the certificate"},
		{x->cert, "/nonexistent/key.pem", "/nonexistent/key.pem: cannot open it"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[14] = {th_cueqd_path, "--data", data, "--listen", url, "--http", "off"};
		size_t n = 7;
		if (cases[i].cert)
			argv[n++] = "--tls-cert", argv[n++] = cases[i].cert;
		if (cases[i].key)
			argv[n++] = "--tls-key", argv[n++] = cases[i].key;
		argv[n] = NULL;
		th_proc p;
		assert_int_equal(th_run(&p, NULL, 20000, (char *const *)argv, NULL), 0);
		if (p.exit_code != 1 || strstr(p.err, cases[i].says) == NULL) {
			th_proc_dump("cueqd with bad TLS flags", &p);
			fail_msg("case %zu: want exit 1 saying \"%s\"", i, cases[i].says);
		}
		th_proc_free(&p);
	}
	/* a certificate without a TLS listener is a mistake too */
	const char *argv[] = {th_cueqd_path, "--data", data, "--tls-cert", x->cert, "--tls-key",
			      x->key, NULL};
	th_proc p;
	assert_int_equal(th_run(&p, NULL, 20000, (char *const *)argv, NULL), 0);
	assert_int_equal(p.exit_code, 1);
	assert_non_null(strstr(p.err, "no --listen is tls+tcp://"));
	th_proc_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sdk_over_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_over_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broker_refuses_bad_tls, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
