/*
 * fuzz_core.c - the core fuzz_request drives (fuzz_core.h): the embedded
 * engine on a temp directory (TMPDIR, else /dev/shm, else /tmp), a clock
 * the session can move forward, the turn's commit and sync, and an auth
 * file's principals.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fuzz_core.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "proto.h"

static struct core the_core;

static int64_t core_clock(void *arg)
{
	const struct core *c = arg;
	return proto_now_ms() + c->ahead_ms;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static const char *temp_root(void)
{
	struct stat st;
	const char *tmp = getenv("TMPDIR");
	if (tmp != NULL && *tmp != '\0')
		return tmp;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode))
		return "/dev/shm";
	return "/tmp";
}

static void write_auth(struct core *c)
{
	char path[sizeof(c->dir) + 16], err[512];
	snprintf(path, sizeof(path), "%s/auth", c->dir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		fuzz_fail("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "producer prod %s %s\nworker work %s %s\nadmin ops %s %s\nadmin adm %s\n",
		FUZZ_TOKEN_PRODUCER, FUZZ_PREFIX, FUZZ_TOKEN_WORKER, FUZZ_PREFIX,
		FUZZ_TOKEN_ADMIN_FZ, FUZZ_PREFIX, FUZZ_TOKEN_ADMIN);
	fclose(f);
	chmod(path, 0600);
	if ((c->auth = auth_load(path, err, sizeof(err))) == NULL)
		fuzz_fail("%s", err);
}

/* Opens the engine in c->dir (new or not). */
static void engine_open(struct core *c)
{
	char loc[sizeof(c->dir) + 16], err[512] = "";
	snprintf(loc, sizeof(loc), "%s/engine", c->dir);
	struct eng_config cfg = {
		.location = loc,
		.retention_ms = 3600000,
		.idem_window_ms = 86400000,
		.clock = core_clock,
		.clock_arg = c,
	};
	if (c->eo->open(&cfg, &c->e, err, sizeof(err)) != 0)
		fuzz_fail("cannot open the engine at %s: %s", loc, err);
}

static void core_open(struct core *c)
{
	snprintf(c->dir, sizeof(c->dir), "%s/cueq-fuzz-XXXXXX", temp_root());
	if (mkdtemp(c->dir) == NULL)
		fuzz_fail("mkdtemp %s: %s", c->dir, strerror(errno));
	unsetenv("CUEQ_FAULT");
	c->eo = &embedded_engine;
	c->ahead_ms = 0;
	c->inputs = 0;
	engine_open(c);
	write_auth(c);
}

int64_t core_now(const struct core *c)
{
	return core_clock((void *)c);
}

void core_restart(struct core *c)
{
	core_turn(c, 0);
	c->eo->close(c->e);
	engine_open(c);
	c->eo->tick(c->e, core_clock(c));
}

void core_close(void)
{
	struct core *c = &the_core;
	if (c->e == NULL)
		return;
	c->eo->close(c->e);
	c->e = NULL;
	auth_free(c->auth);
	c->auth = NULL;
	nftw(c->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static unsigned reopen_every(void)
{
	const char *env = getenv("CUEQ_FUZZ_REOPEN");
	long n = env ? strtol(env, NULL, 10) : 0;
	return n > 0 ? (unsigned)n : FUZZ_REOPEN;
}

struct core *core_begin(void)
{
	struct core *c = &the_core;
	if (c->e != NULL && c->inputs >= reopen_every())
		core_close();
	if (c->e == NULL) {
		static bool registered;
		core_open(c);
		/* libFuzzer ends by exit(): close before RocksDB's statics, which
		 * its first open made, are destroyed */
		if (!registered && atexit(core_close) == 0)
			registered = true;
	}
	c->inputs++;
	c->eo->tick(c->e, core_clock(c));
	return c;
}

void core_turn(struct core *c, int64_t advance_ms)
{
	bool durable = false;
	if (c->eo->commit(c->e, true, &durable) != 0)
		fuzz_fail("the engine's commit failed");
	if (durable && c->eo->sync(c->e) != 0)
		fuzz_fail("the engine's sync failed");
	c->ahead_ms += advance_ms;
	c->eo->tick(c->e, core_clock(c));
}

const struct principal *core_who(const struct core *c, const msgpack_object *root)
{
	const char *tok = NULL;
	size_t n = 0;
	proto_error err;
	if (proto_str(root, "auth", false, AUTH_MAX_TOKEN, &tok, &n, &err) != CUEQ_OK || tok == NULL)
		return NULL;
	return auth_find(c->auth, tok, n);
}
