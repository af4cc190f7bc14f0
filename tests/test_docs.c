/*
 * test_docs.c - the C in the docs compiles and runs.  Every ```c block of
 * README.md and of the .md files in docs/ is cut out and compiled against cueq/cueq.h with
 * -Wall -Wextra -Werror, so the docs cannot drift from the header.  A
 * block with a main() is a whole program: it is linked with libcueq and
 * run against a real broker (its tcp://127.0.0.1:7700 pointed at the
 * test's), with a job waiting in each queue it works (the queue of its
 * cueq_worker_new or cueq_claim); the program must finish every one of
 * them within a few seconds (it is then
 * stopped, as a worker runs until it is stopped).
 */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
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

#define MAX_SNIPPET (64u << 10)

struct snippet {
	char where[256]; /* file:line */
	char *text;
};

static struct snippet snippets[64];
static size_t n_snippets;

static void collect(const char *path, const char *name)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot read %s", path);
	char line[4096];
	unsigned lineno = 0, start = 0;
	char *text = NULL;
	size_t len = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (text == NULL && strcmp(line, "```c\n") == 0) {
			text = calloc(1, MAX_SNIPPET);
			assert_non_null(text);
			len = 0, start = lineno;
		} else if (text != NULL && strncmp(line, "```", 3) == 0) {
			assert_true(n_snippets < sizeof(snippets) / sizeof(snippets[0]));
			struct snippet *s = &snippets[n_snippets++];
			snprintf(s->where, sizeof(s->where), "%s:%u", name, start);
			s->text = text;
			text = NULL;
		} else if (text != NULL) {
			size_t l = strlen(line);
			assert_true(len + l < MAX_SNIPPET);
			memcpy(text + len, line, l + 1);
			len += l;
		}
	}
	fclose(f);
	if (text != NULL)
		fail_msg("%s:%u: a ```c block that never ends", name, start);
}

static int setup(void **state)
{
	char path[512];
	(void)state;
	snprintf(path, sizeof(path), "%s/README.md", CUEQ_SOURCE_DIR);
	collect(path, "README.md");
	snprintf(path, sizeof(path), "%s/docs", CUEQ_SOURCE_DIR);
	DIR *d = opendir(path);
	for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
		size_t l = strlen(e->d_name);
		if (l > 3 && strcmp(e->d_name + l - 3, ".md") == 0) {
			char file[sizeof(path) + sizeof(e->d_name) + 2], name[sizeof(e->d_name) + 8];
			snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
			snprintf(name, sizeof(name), "docs/%s", e->d_name);
			collect(file, name);
		}
	}
	if (d != NULL)
		closedir(d);
	return 0;
}

/* Writes text (with the broker URL replaced by url) to dir/name.c and
 * compiles it: to an object, or with main to a program linked with
 * libcueq.  Fails the test, showing the compiler's words, if it does not. */
static void compile(const struct snippet *s, const char *dir, int i, const char *url, bool program,
		    char *exe, size_t exe_size)
{
	char src[256], cmd[2048], log[256];
	snprintf(src, sizeof(src), "%s/snippet%d.c", dir, i);
	snprintf(log, sizeof(log), "%s/snippet%d.log", dir, i);
	snprintf(exe, exe_size, "%s/snippet%d%s", dir, i, program ? "" : ".o");
	FILE *f = fopen(src, "w");
	assert_non_null(f);
	for (const char *p = s->text; *p;) {
		const char *hit = strstr(p, "tcp://127.0.0.1:7700");
		size_t n = hit ? (size_t)(hit - p) : strlen(p);
		fwrite(p, 1, n, f);
		if (hit == NULL)
			break;
		fputs(url, f);
		p = hit + strlen("tcp://127.0.0.1:7700");
	}
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "%s %s -std=c11 -Wall -Wextra -Werror -I%s %s %s -o %s %s > %s 2>&1", CUEQ_CC,
		 CUEQ_SNIPPET_FLAGS, CUEQ_SDK_INCLUDE, program ? "" : "-c", src, exe,
		 program ? "-L" CUEQ_SDK_LIBDIR " -Wl,-rpath," CUEQ_SDK_LIBDIR " -lcueq" : "", log);
	if (system(cmd) != 0) {
		char words[4096] = "";
		FILE *l = fopen(log, "r");
		if (l != NULL) {
			size_t n = fread(words, 1, sizeof(words) - 1, l);
			words[n] = '\0';
			fclose(l);
		}
		fail_msg("the C block at %s does not compile:\n%s", s->where, words);
	}
}

/* The queues a program works: the first string literal after each
 * cueq_worker_new( or cueq_claim(. */
static size_t queues_of(const char *text, char q[][64], size_t max)
{
	static const char *const calls[] = {"cueq_worker_new(", "cueq_claim("};
	size_t n = 0;
	for (size_t c = 0; c < 2; c++)
		for (const char *p = strstr(text, calls[c]); p != NULL && n < max;
		     p = strstr(p + 1, calls[c])) {
			const char *open = strchr(p, '"'), *end = open ? strchr(open + 1, '"') : NULL;
			size_t l = end ? (size_t)(end - open - 1) : 0;
			if (l > 0 && l < 64 && proto_queue_ok(open + 1, l)) {
				memcpy(q[n], open + 1, l);
				q[n++][l] = '\0';
			}
		}
	return n;
}

static void test_snippets_compile_and_run(void **state)
{
	(void)state;
	if (n_snippets == 0)
		fail_msg("no ```c block found in README.md or docs/*.md");
	char dir[] = "/tmp/cueq-docs-XXXXXX";
	assert_non_null(mkdtemp(dir));
	th_broker b = {0};
	assert_int_equal(th_broker_start(&b, NULL), 0);
	size_t programs = 0;
	for (size_t i = 0; i < n_snippets; i++) {
		const struct snippet *s = &snippets[i];
		bool program = strstr(s->text, "int main(") != NULL;
		char exe[300];
		compile(s, dir, (int)i, b.url, program, exe, sizeof(exe));
		if (!program)
			continue;
		programs++;
		char queues[16][64], ids[16][64];
		size_t nq = queues_of(s->text, queues, 16);
		th_proc p;
		for (size_t k = 0; k < nq; k++) {
			TH_CLI(&p, NULL, 0, "push", queues[k], "from the docs test", "--url", b.url);
			th_first_line(&p, ids[k], sizeof(ids[k]));
			th_proc_free(&p);
		}
		char *const argv[] = {exe, NULL};
		assert_int_equal(th_run(&p, NULL, 4000, argv, NULL), 0);
		th_proc_free(&p);
		for (size_t k = 0; k < nq; k++) {
			TH_CLI(&p, NULL, 0, "get", ids[k], "--json", "--url", b.url);
			if (strstr(p.out, "\"state\":\"succeeded\"") == NULL)
				fail_msg("the program at %s did not finish the job waiting in queue '%s': %s",
					 s->where, queues[k], p.out);
			th_proc_free(&p);
		}
	}
	assert_true(programs >= 1); /* the README's worker, at least */
	th_broker_cleanup(&b);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_snippets_compile_and_run, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
