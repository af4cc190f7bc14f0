/*
 * child.h - run one command with input on its stdin, capturing its output.
 *
 * Used by `cueq work` for each execution, from several threads at once.
 */
#ifndef CUEQ_CLI_CHILD_H
#define CUEQ_CLI_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHILD_LAST_LINE 1024

struct child_spec {
	char *const *argv;	/* the command and its arguments, NULL-terminated */
	char *const *envp;	/* its whole environment, NULL-terminated */
	const void *input;	/* written to its standard input, then closed */
	size_t input_len;
	size_t out_cap;		/* bytes of standard output kept; the rest is read and dropped */
	/* Polled about every 100 ms while it runs; true: SIGTERM its process
	 * group, then SIGKILL kill_after_ms later if it is still running. */
	bool (*should_stop)(void *arg);
	void *arg;
	int64_t kill_after_ms;
};

struct child_result {
	int spawn_err;	/* errno when it could not be started, else 0 */
	int status;	/* its wait status (WIFEXITED, WEXITSTATUS, ...) */
	bool stopped;	/* should_stop said so and it was sent SIGTERM */
	char *out;	/* standard output, NUL-terminated; free with child_result_free */
	size_t out_len;
	char last_err[CHILD_LAST_LINE]; /* last non-blank line of standard error */
};

/*
 * Starts argv[0] (searched in PATH) in a process group of its own, feeds it
 * input, copies its standard error line by line to ours, keeps its
 * standard output and waits for it.  Returns 0 when it ran (see r->status),
 * or -1 with r->spawn_err set.  r must be released with child_result_free.
 */
int child_run(const struct child_spec *s, struct child_result *r);
void child_result_free(struct child_result *r);

#endif /* CUEQ_CLI_CHILD_H */
