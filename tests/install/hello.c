/*
 * hello.c - a program built against an installed libcueq (pkg-config or
 * find_package(cueq)): pushes a job to the broker at argv[1], claims it,
 * acks it with a result, waits for the outcome and prints it.
 */
#include <cueq/cueq.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	cueq_client *c = NULL;
	cueq_push_result r;
	cueq_job *j = NULL;
	cueq_execution *e = NULL;
	size_t n = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: hello URL\n");
		return 2;
	}
	if (cueq_connect(argv[1], NULL, &c) != CUEQ_OK ||
	    cueq_push(c, "installed", "hi", 2, NULL, &r) != CUEQ_OK ||
	    cueq_claim(c, "installed", 1, 0, 5000, &j, &n) != CUEQ_OK || n != 1 ||
	    strcmp(cueq_job_id(j), r.execution_id) != 0 ||
	    cueq_ack(c, cueq_job_id(j), cueq_job_token(j), "done") != CUEQ_OK ||
	    cueq_wait(c, r.execution_id, 5000, &e) != CUEQ_OK) {
		fprintf(stderr, "hello: %s\n", cueq_last_error());
		return 1;
	}
	printf("hello: %s %s %s\n", e->execution_id, cueq_state_name(e->state), e->result);
	cueq_execution_free(e);
	cueq_job_free(j);
	cueq_close(c);
	return 0;
}
