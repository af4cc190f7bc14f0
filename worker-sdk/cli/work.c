/*
 * work.c - `cueq work QUEUE -- CMD ARGS...`: any command becomes a worker.
 *
 * The SDK's worker loop claims, extends leases in the background and sends
 * the outcomes; this file only maps one execution to one run of CMD
 * (child.c) and the run's end to an outcome: exit 0 acks with the trimmed
 * standard output as the result, any other exit nacks with
 * "exit status N: <last line of stderr>", death by a signal nacks with
 * "killed by signal N".  A lost lease stops the command, and so does an
 * operator's cancel (the SDK learns it from the next extension, within a
 * third of the lease): SIGTERM, then SIGKILL after --grace.  Its outcome
 * is not sent, since the lease is gone.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread and taken by one
 * thread with sigwait(), so no SDK call is ever interrupted and the stop
 * needs no async-signal-safe trickery.  The first stops claiming at once
 * (cueq_worker_shutdown: a claim waiting for a broker that is gone is
 * dropped) and lets running commands finish; their outcomes are sent, each
 * given STOP_GRACE_MS when the broker does not answer (then it counts as
 * lost, and the execution comes back when its lease expires), so a stop
 * never waits out the client's 30 s retry deadline.  Such a stop exits 0.
 * The second signal terminates the running commands (they are nacked and
 * come back); the third exits at once.
 */
#include "child.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_GRACE_MS 10000 /* from SIGTERM to SIGKILL of a stopped command */
#define STOP_GRACE_MS 2000 /* after a stop, for each outcome the broker does not take */

struct work {
	const char *queue;
	const char *url;
	const char *token; /* --auth-token or $CUEQ_TOKEN, NULL: none */
	const char *tls_ca; /* --tls-ca or $CUEQ_TLS_CA, NULL: none */
	char **cmd;	 /* NULL-terminated */
	char **env;	 /* our environment less the variables set per job */
	size_t nenv;
	int64_t grace_ms; /* --grace */
	int log_level;	  /* --log-level, LOG_* */
};

static atomic_int signals_seen;

static const char *const job_vars[] = {
	"CUEQ_EXECUTION_ID=", "CUEQ_ATTEMPT=", "CUEQ_LEASE_TOKEN=", "CUEQ_QUEUE=", "CUEQ_URL=",
	"CUEQ_TOKEN=", "CUEQ_TLS_CA=",
};
#define N_JOB_VARS (sizeof(job_vars) / sizeof(job_vars[0]))

/* ---- the environment of each job ------------------------------------- */

static int base_env(struct work *w)
{
	size_t n = 0;

	for (char **e = environ; *e != NULL; e++)
		n++;
	w->env = calloc(n + 1, sizeof(char *));
	if (w->env == NULL)
		return -1;
	for (char **e = environ; *e != NULL; e++) {
		bool ours = false;
		for (size_t i = 0; i < N_JOB_VARS; i++)
			if (strncmp(*e, job_vars[i], strlen(job_vars[i])) == 0)
				ours = true;
		if (!ours)
			w->env[w->nenv++] = *e;
	}
	return 0;
}

/* The base environment plus the job's variables; free() the result and the
 * strings from index w->nenv on. */
static char **job_env(const struct work *w, const cueq_job *job)
{
	char **env = calloc(w->nenv + N_JOB_VARS + 1, sizeof(char *));
	char attempt[16];
	const char *val[N_JOB_VARS];

	if (env == NULL)
		return NULL;
	snprintf(attempt, sizeof(attempt), "%u", cueq_job_attempt(job));
	val[0] = cueq_job_id(job);
	val[1] = attempt;
	val[2] = cueq_job_token(job);
	val[3] = cueq_job_queue(job);
	val[4] = w->url;
	val[5] = w->token != NULL ? w->token : ""; /* so its `cueq step` calls are let in */
	val[6] = w->tls_ca != NULL ? w->tls_ca : "";
	memcpy(env, w->env, w->nenv * sizeof(char *));
	for (size_t i = 0; i < N_JOB_VARS; i++) {
		size_t a = strlen(job_vars[i]), b = strlen(val[i]);
		char *s = malloc(a + b + 1);
		if (s == NULL) {
			for (size_t j = 0; j < i; j++)
				free(env[w->nenv + j]);
			free(env);
			return NULL;
		}
		memcpy(s, job_vars[i], a);
		memcpy(s + a, val[i], b + 1);
		env[w->nenv + i] = s;
	}
	return env;
}

static void job_env_free(const struct work *w, char **env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; i < N_JOB_VARS; i++)
		free(env[w->nenv + i]);
	free(env);
}

/* ---- one execution ---------------------------------------------------- */

static bool job_should_stop(void *arg)
{
	return cueq_job_lease_lost(arg) || atomic_load(&signals_seen) >= 2;
}

/* Trims white space at both ends, then cuts to CUEQ_MAX_TEXT bytes. */
static char *trimmed(char *s, size_t len)
{
	size_t start = 0;

	while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL)
		len--;
	while (start < len && strchr(" \t\r\n", s[start]) != NULL)
		start++;
	s += start;
	len -= start;
	len = cli_utf8_cut(s, len, CUEQ_MAX_TEXT);
	s[len] = '\0';
	return s;
}

static int outcome(const struct work *w, cueq_job *job, struct child_result *r)
{
	char msg[CHILD_LAST_LINE + 64];

	if (r->spawn_err != 0) {
		snprintf(msg, sizeof(msg), "cannot start %s: %s", w->cmd[0],
			 strerror(r->spawn_err));
	} else if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0) {
		cueq_job_set_result(job, trimmed(r->out, r->out_len));
		return CUEQ_OK;
	} else if (WIFEXITED(r->status)) {
		if (r->last_err[0] != '\0')
			snprintf(msg, sizeof(msg), "exit status %d: %s", WEXITSTATUS(r->status),
				 r->last_err);
		else
			snprintf(msg, sizeof(msg), "exit status %d", WEXITSTATUS(r->status));
	} else {
		snprintf(msg, sizeof(msg), "killed by signal %d", WTERMSIG(r->status));
	}
	fprintf(stderr, "cueq: %s attempt %u failed: %s%s\n", cueq_job_id(job),
		cueq_job_attempt(job), msg,
		r->stopped && cueq_job_lease_lost(job) ? " (its lease was lost)" : "");
	cueq_job_fail(job, msg, -1, false);
	return CUEQ_ERR_INTERNAL; /* any value but CUEQ_OK nacks */
}

/* A command whose execution was cancelled: no outcome goes out (the lease
 * is gone, the worker sends nothing for it), only a line for people. */
static int cancelled(cueq_job *job, const struct child_result *r)
{
	char how[64];

	if (r->spawn_err == 0 && WIFEXITED(r->status))
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(r->status));
	else if (r->spawn_err == 0)
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(r->status));
	else
		snprintf(how, sizeof(how), "not started");
	fprintf(stderr, "cueq: %s attempt %u stopped: an operator cancelled it (%s)\n",
		cueq_job_id(job), cueq_job_attempt(job), how);
	return CUEQ_ERR_LEASE_LOST;
}

static int handle(cueq_job *job, void *arg)
{
	const struct work *w = arg;
	struct child_result r;
	struct child_spec s = { 0 };
	char **env = job_env(w, job);
	int rc;

	if (env == NULL) {
		cueq_job_fail(job, "cueq work ran out of memory", -1, false);
		return CUEQ_ERR_NOMEM;
	}
	if (atomic_load(&signals_seen) >= 2) {
		/* Told to terminate: a job claimed ahead is handed back unrun. */
		job_env_free(w, env);
		cueq_job_fail(job, "not run: cueq work was terminated", 0, false);
		return CUEQ_ERR_CLOSED;
	}
	s.argv = w->cmd;
	s.envp = env;
	s.input = cueq_job_payload(job, &s.input_len);
	s.out_cap = CUEQ_MAX_TEXT;
	s.should_stop = job_should_stop;
	s.arg = job;
	s.kill_after_ms = w->grace_ms;
	child_run(&s, &r);
	rc = cueq_job_cancelled(job) ? cancelled(job, &r) : outcome(w, job, &r);
	child_result_free(&r);
	job_env_free(w, env);
	return rc;
}

/* ---- signals ---------------------------------------------------------- */

struct sigctl {
	sigset_t set;	  /* SIGINT, SIGTERM, SIGUSR1 */
	cueq_worker *w;
	atomic_bool done; /* SIGUSR1 with done set ends the thread */
};

static void *signal_thread(void *arg)
{
	struct sigctl *sc = arg;

	for (;;) {
		int sig = 0;

		if (sigwait(&sc->set, &sig) != 0)
			continue;
		if (sig == SIGUSR1) {
			if (atomic_load(&sc->done))
				return NULL;
			continue;
		}
		switch (atomic_fetch_add(&signals_seen, 1)) {
		case 0:
			fprintf(stderr, "cueq: stopping: no more claims, waiting for running "
					"commands (signal again to terminate them)\n");
			cueq_worker_shutdown(sc->w, STOP_GRACE_MS);
			break;
		case 1:
			fprintf(stderr, "cueq: terminating running commands\n");
			break;
		default:
			fprintf(stderr, "cueq: exiting now; unfinished leases will expire\n");
			_exit(CLI_EXIT_ERROR);
		}
	}
}

/* ---- the command ------------------------------------------------------ */

/* True when cmd can be run: a path to an executable file, or found in PATH. */
static bool runnable(const char *cmd)
{
	const char *path = getenv("PATH");
	char buf[4096];
	struct stat st;

	if (strchr(cmd, '/') != NULL)
		return access(cmd, X_OK) == 0 && stat(cmd, &st) == 0 && S_ISREG(st.st_mode);
	if (path == NULL)
		path = "/usr/bin:/bin";
	while (*path != '\0') {
		size_t n = strcspn(path, ":");
		int len = snprintf(buf, sizeof(buf), "%.*s/%s", n > 0 ? (int)n : 1,
				   n > 0 ? path : ".", cmd);
		if (len > 0 && (size_t)len < sizeof(buf) && access(buf, X_OK) == 0 &&
		    stat(buf, &st) == 0 && S_ISREG(st.st_mode))
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

/* Standard input, output and error must be open, or a pipe could take
 * their numbers and be closed or overwritten by mistake. */
static void open_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
			if (n >= 0 && n != fd) {
				dup2(n, fd);
				close(n);
			}
		}
	}
}

/* The worker's events, one line each on stderr, so an operator sees why
 * a job was not run or a lease was lost. */
enum { LOG_QUIET, LOG_WARN, LOG_INFO, LOG_DEBUG };
static const char *const log_levels[] = {"quiet", "warn", "info", "debug"};

static void log_event(const cueq_worker_event *ev, void *arg)
{
	const struct work *wk = arg;
	int level = ev->kind == CUEQ_WORKER_FINISHED	     ? LOG_DEBUG
		    : ev->kind == CUEQ_WORKER_CONNECTED ||
			      ev->kind == CUEQ_WORKER_DISCONNECTED ? LOG_INFO
							       : LOG_WARN;
	if (level > wk->log_level)
		return;
	switch (ev->kind) {
	case CUEQ_WORKER_DROPPED:
		fprintf(stderr, "cueq: %s attempt %u not run: %s\n", ev->execution_id, ev->attempt,
			ev->detail);
		break;
	case CUEQ_WORKER_LEASE_LOST:
		fprintf(stderr, "cueq: %s attempt %u lost its lease: %s\n", ev->execution_id,
			ev->attempt, ev->detail);
		break;
	case CUEQ_WORKER_RETRYING:
		fprintf(stderr, "cueq: claiming failed, trying again: %s\n", ev->detail);
		break;
	case CUEQ_WORKER_CANCELLED: /* said by the handler when it stops the command */
		break;
	case CUEQ_WORKER_CONNECTED:
	case CUEQ_WORKER_DISCONNECTED:
		fprintf(stderr, "cueq: %s\n", ev->detail);
		break;
	case CUEQ_WORKER_FINISHED:
		fprintf(stderr, "cueq: %s attempt %u %s%s%s\n", ev->execution_id, ev->attempt,
			ev->acked ? "acked" : "nacked", ev->acked ? "" : ": ", ev->acked ? "" : ev->detail);
		break;
	}
}

static int run_worker(struct cli *cli, struct work *wk, const cueq_worker_opts *wo)
{
	struct sigctl sc = { 0 };
	cueq_worker_counts counts = { 0 };
	pthread_t st;
	int err, rc = CLI_EXIT_OK;

	err = cueq_worker_new(cli->client, wk->queue, handle, wk, wo, &sc.w);
	if (err != CUEQ_OK)
		return cli_fail(cli, err, "cannot start a worker on queue '%s'", wk->queue);
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGUSR1);
	err = pthread_create(&st, NULL, signal_thread, &sc);
	if (err != 0) {
		cueq_worker_free(sc.w);
		return cli_error("cannot start the signal thread: %s", strerror(err));
	}
	err = cueq_worker_run(sc.w);
	atomic_store(&sc.done, true);
	pthread_kill(st, SIGUSR1);
	pthread_join(st, NULL);
	cueq_worker_get_counts(sc.w, &counts);
	if (err != CUEQ_OK)
		rc = cli_fail(cli, err, "the worker on queue '%s' stopped", wk->queue);
	cueq_worker_free(sc.w);
	if (cli->json) {
		struct jw w;
		jw_begin(&w, stdout);
		jw_str(&w, "queue", wk->queue);
		jw_uint(&w, "succeeded", counts.succeeded);
		jw_uint(&w, "failed", counts.failed);
		jw_uint(&w, "lost", counts.lost);
		jw_end(&w);
	} else {
		printf("worker on queue %s stopped: %llu succeeded, %llu failed, %llu lost\n",
		       wk->queue, (unsigned long long)counts.succeeded,
		       (unsigned long long)counts.failed, (unsigned long long)counts.lost);
	}
	return rc;
}

enum { W_CONCURRENCY, W_LEASE, W_MAX_JOBS, W_GRACE, W_LOG };

int cmd_work(struct cli *cli, int argc, char **argv)
{
	struct cli_opt o[] = {
		[W_CONCURRENCY] = { .name = "concurrency", .kind = OPT_VALUE },
		[W_LEASE] = { .name = "lease", .kind = OPT_VALUE },
		[W_MAX_JOBS] = { .name = "max-jobs", .kind = OPT_VALUE },
		[W_GRACE] = { .name = "grace", .kind = OPT_VALUE },
		[W_LOG] = { .name = "log-level", .kind = OPT_VALUE },
	};
	cueq_worker_opts wo = { 0 };
	struct work wk = { 0 };
	int64_t conc = 1, max_jobs = 0;
	sigset_t block;
	int npos, dd, rc;

	rc = cli_parse(cli, argc, argv, o, sizeof(o) / sizeof(o[0]), &npos, &dd);
	if (rc != 0)
		return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
	if (dd < 0 || dd >= npos)
		return cli_usage_error(cli, "work needs the command after '--': "
				       "cueq work QUEUE -- CMD ARGS...");
	if (dd != 1)
		return cli_usage_error(cli, "work needs exactly one QUEUE before '--'");
	if (cli_int_opt(cli, &o[W_CONCURRENCY], 1, 1024, &conc) != 0 ||
	    cli_duration_opt(cli, &o[W_LEASE], 100, 86400000, &wo.lease_ms) != 0 ||
	    cli_int_opt(cli, &o[W_MAX_JOBS], 1, INT64_MAX, &max_jobs) != 0)
		return CLI_EXIT_ERROR;
	wk.grace_ms = DEFAULT_GRACE_MS;
	if (cli_duration_opt(cli, &o[W_GRACE], 0, 3600000, &wk.grace_ms) != 0)
		return CLI_EXIT_ERROR;
	wk.log_level = LOG_INFO;
	if (o[W_LOG].seen) {
		wk.log_level = -1;
		for (int i = 0; i < 4; i++)
			if (strcmp(o[W_LOG].value, log_levels[i]) == 0)
				wk.log_level = i;
		if (wk.log_level < 0)
			return cli_usage_error(cli, "--log-level '%s' is not quiet, warn, info or debug",
					       o[W_LOG].value);
	}
	wo.concurrency = (unsigned)conc;
	wo.prefetch = 1; /* a claimed job waits for a free slot holding its lease: keep one */
	wo.max_jobs = (uint64_t)max_jobs;
	wo.on_event = log_event;
	wo.event_arg = &wk;
	wk.queue = argv[1];
	wk.url = cli->url;
	wk.token = cli->token;
	wk.tls_ca = cli->tls_ca;
	wk.cmd = argv + 1 + dd;
	wk.cmd[npos - dd] = NULL; /* argv[argc] is NULL and positionals moved down */
	if (!runnable(wk.cmd[0]))
		return cli_error("cannot run '%s': no such executable file%s; check the name "
				 "and PATH", wk.cmd[0],
				 strchr(wk.cmd[0], '/') != NULL ? "" : " in PATH");
	if (base_env(&wk) != 0)
		return cli_error("out of memory");
	open_std_fds();
	signal(SIGPIPE, SIG_IGN); /* a command that does not read its stdin gives EPIPE */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &block, NULL); /* before any thread starts */
	rc = cli_connect(cli);
	if (rc == 0)
		rc = run_worker(cli, &wk, &wo);
	free(wk.env);
	return rc;
}
