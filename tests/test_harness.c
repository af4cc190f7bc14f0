/*
 * test_harness.c - the harness's own promises about the broker it starts,
 * the ones storage-fault tests build on: extra environment entries and a
 * descriptor limit reach the broker, a start that dies is reported with
 * its exit status, a broker that exits by itself can be waited for, and a
 * restart whose port was taken meanwhile moves to another one.
 *
 * What the broker got is read back from /proc/PID, not from its log, so
 * these tests need no broker support for any of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Setup: a zero-filled broker, not started (th_fixture_stop frees it). */
static int unstarted(void **state)
{
	*state = calloc(1, sizeof(th_broker));
	return *state != NULL ? 0 : -1;
}

/* Reads a whole (small) file into buf; returns its length. */
static size_t slurp(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n;
}

static void test_env_and_nofile_reach_the_broker(void **state)
{
	th_broker *b = *state;
	char path[64], buf[65536], *line;
	size_t n;
	bool found = false;
	unsigned long soft = 0, hard = 0;

	b->env[b->n_env++] = "CUEQ_TEST_MARK=harness-42";
	b->nofile = 256;
	assert_int_equal(th_broker_start(b, NULL), 0);

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)b->pid);
	n = slurp(path, buf, sizeof(buf));
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
		found = found || strcmp(buf + i, "CUEQ_TEST_MARK=harness-42") == 0;
	if (!found)
		fail_msg("CUEQ_TEST_MARK=harness-42 is not in the broker's environment");

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)b->pid);
	slurp(path, buf, sizeof(buf));
	line = strstr(buf, "Max open files");
	assert_non_null(line);
	assert_int_equal(sscanf(line + strlen("Max open files"), "%lu %lu", &soft, &hard), 2);
	assert_int_equal(soft, 256);
	assert_int_equal(hard, 256);
}

static void test_launch_reports_a_broker_that_dies(void **state)
{
	th_broker *b = *state;
	char buf[65536];
	int status = 0;

	/* Too few descriptors to serve anyone: cueqd refuses to start (1). */
	b->nofile = 8;
	assert_int_equal(th_broker_launch(b, &status), 1);
	assert_int_equal(b->pid, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	slurp(b->log, buf, sizeof(buf));
	if (strstr(buf, "the descriptor limit is 8") == NULL) {
		th_broker_dump_log(b);
		fail_msg("the log does not say why the broker stopped");
	}
	/* The same dir, without the limit, starts. */
	b->nofile = 0;
	assert_int_equal(th_broker_restart(b), 0);
}

static void test_wait_for_a_broker_that_exits(void **state)
{
	th_broker *b = *state;
	int status = -1;

	assert_int_equal(th_broker_start(b, NULL), 0);
	assert_int_equal(th_broker_wait(b, 100, &status), -1);
	assert_true(b->pid > 0); /* a timeout leaves it running */
	/* Something outside the harness makes it stop. */
	kill(b->pid, SIGTERM);
	assert_int_equal(th_broker_wait(b, 15000, &status), 0);
	assert_int_equal(b->pid, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(th_broker_wait(b, 0, &status), -1); /* no longer running */
}

static void test_restart_moves_off_a_taken_port(void **state)
{
	th_broker *b = *state;
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd, one = 1, port;

	assert_int_equal(th_broker_start(b, NULL), 0);
	port = b->port;
	assert_int_equal(th_broker_kill9(b), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1) != 0) {
		close(fd); /* someone else took it first: nothing to test */
		skip();
	}
	assert_int_equal(th_broker_restart(b), 0);
	close(fd);
	assert_int_not_equal(b->port, port);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_env_and_nofile_reach_the_broker, unstarted,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_launch_reports_a_broker_that_dies, unstarted,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_wait_for_a_broker_that_exits, unstarted,
						th_fixture_stop),
		cmocka_unit_test_setup_teardown(test_restart_moves_off_a_taken_port, unstarted,
						th_fixture_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
