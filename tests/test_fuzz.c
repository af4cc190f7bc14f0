/*
 * test_fuzz.c - the fuzz corpus replayed in the suite: every file of
 * tests/fuzz/corpus/frame goes through fuzz_frame and every file of
 * corpus/request through fuzz_request, the fuzz targets themselves
 * (tests/fuzz) linked with this main instead of libFuzzer, so that each
 * run of the suite (plain and under ASan/UBSan) replays what fuzzing
 * found.  A target aborts on whatever it finds wrong.
 *
 *   test_fuzz                          the committed corpus
 *   test_fuzz frame|request FILE...    those inputs (a crash to look at)
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

typedef int (*target_fn)(const uint8_t *data, size_t size);

static void replay_file(target_fn fn, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "test_fuzz: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	size_t cap = 4096, n = 0, got;
	uint8_t *buf = malloc(cap);
	while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0)
		if ((n += got) == cap)
			buf = realloc(buf, cap *= 2);
	fclose(f);
	if (buf == NULL) {
		fprintf(stderr, "test_fuzz: out of memory reading %s\n", path);
		exit(1);
	}
	fn(buf, n);
	free(buf);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every file of dir in name order; how many. */
static size_t replay_dir(target_fn fn, const char *dir)
{
	DIR *d = opendir(dir);
	char **names = NULL, path[4096];
	size_t n = 0;
	struct dirent *ent;
	if (d == NULL) {
		fprintf(stderr, "test_fuzz: %s: %s\n", dir, strerror(errno));
		exit(1);
	}
	while ((ent = readdir(d)) != NULL) {
		if (ent->d_name[0] == '.')
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		if (names == NULL || (names[n] = strdup(ent->d_name)) == NULL)
			exit(1);
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		replay_file(fn, path);
		free(names[i]);
	}
	free(names);
	return n;
}

static target_fn target_named(const char *name)
{
	if (strcmp(name, "frame") == 0)
		return fuzz_frame;
	if (strcmp(name, "request") == 0)
		return fuzz_request;
	fprintf(stderr, "test_fuzz: no target '%s' (frame or request)\n", name);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc > 2) {
		target_fn fn = target_named(argv[1]);
		for (int i = 2; i < argc; i++)
			replay_file(fn, argv[i]);
	} else if (argc == 1) {
		size_t nf = replay_dir(fuzz_frame, CUEQ_FUZZ_CORPUS "/frame");
		size_t nr = replay_dir(fuzz_request, CUEQ_FUZZ_CORPUS "/request");
		printf("test_fuzz: replayed %zu frames and %zu sessions of requests\n", nf, nr);
		if (nf == 0 || nr == 0)
			return 1;
	} else {
		fprintf(stderr, "usage: test_fuzz [frame|request FILE...]\n");
		return 2;
	}
	fuzz_request_done();
	return 0;
}
