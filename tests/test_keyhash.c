/*
 * test_keyhash.c - the broker's keyed hash (broker/keyhash.h): stable within
 * a process, different between processes (the key is random), so names a
 * client crafts to collide in one run do not collide in the next.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keyhash.h"

/* The hash of s in a new process. */
static uint64_t hash_elsewhere(const char *s)
{
	int fd[2];
	uint64_t h = 0;
	assert_int_equal(pipe(fd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t v = keyhash(s, strlen(s));
		_exit(write(fd[1], &v, sizeof(v)) == (ssize_t)sizeof(v) ? 0 : 1);
	}
	close(fd[1]);
	assert_int_equal(read(fd[0], &h, sizeof(h)), (ssize_t)sizeof(h));
	close(fd[0]);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return h;
}

static void test_keyed_per_process(void **state)
{
	(void)state;
	/* the child must make its own key: nothing made yet here */
	uint64_t other = hash_elsewhere("queue.a");
	assert_int_equal(keyhash_init(), 0);
	uint64_t a = keyhash("queue.a", 7), again = keyhash("queue.a", 7);
	assert_true(a == again);
	assert_true(a != keyhash("queue.b", 7));
	if (a == other)
		fail_msg("two processes hash 'queue.a' alike: the key is not random");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyed_per_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
