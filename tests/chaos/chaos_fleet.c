/*
 * chaos_fleet.c - starting, killing, stopping and restarting the chaos
 * test's producers, workers and broker (see chaos_fleet.h).
 *
 * Each worker process writes its own event log (worker-K.G.log for slot
 * K's G-th start); a producer slot keeps one log across its restarts,
 * since a restarted producer reads it to go on where it was.
 */
#include "chaos_fleet.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cueq/cueq.h"

#ifndef CHAOS_PRODUCER_PATH
#error "CHAOS_PRODUCER_PATH must name chaos-producer (set by tests/chaos/CMakeLists.txt)"
#endif
#ifndef CHAOS_WORKER_PATH
#error "CHAOS_WORKER_PATH must name chaos-worker (set by tests/chaos/CMakeLists.txt)"
#endif

#define KILLED_DOWN_MS 400 /* a killed worker starts again within this */
#define BROKER_DOWN_MS 300 /* the broker stays down up to this */
#define STOP_PAST_MS 700   /* a stop lasts the lease and up to this more */
#define TAIL_BYTES 8192    /* of a worker's log, to see whether it is busy */
#define STOP_MS 15000      /* SIGTERM to exit: a healthy child takes a second */

static int64_t now_ms(void)
{
	return th_now_ms();
}

/* A line of conductor.log: what was done to slot k (pid), when. */
static void note(chaos_fleet *fl, const char *what, int k, pid_t pid)
{
	if (fl->notes > 0)
		chaos_log(fl->notes, "%s %d %d %lld %lld", what, k, (int)pid,
			  (long long)chaos_mono_ms(), (long long)chaos_real_ms());
}

static unsigned draw(unsigned *seed, unsigned n)
{
	return n == 0 ? 0 : (unsigned)rand_r(seed) % n;
}

static int start_producer(chaos_fleet *fl, unsigned k)
{
	struct chaos_child *ch = &fl->prod[k];
	char slot[16], rate[32], lease[32];

	snprintf(slot, sizeof(slot), "%u", k);
	snprintf(rate, sizeof(rate), "%g", fl->rate);
	snprintf(lease, sizeof(lease), "%lld", (long long)fl->lease_ms);
	snprintf(ch->log, sizeof(ch->log), "%s/producer-%u.log", fl->dir, k);
	snprintf(ch->out, sizeof(ch->out), "%s/producer-%u.out", fl->dir, k);
	char *argv[] = { (char *)CHAOS_PRODUCER_PATH, "--url", fl->b->url, "--slot", slot,
			 "--log", ch->log, "--rate", rate, "--batch", "4", "--lease", lease, NULL };
	ch->pid = proc_spawn(argv, &(proc_opts){ .log = ch->out });
	ch->gen++;
	ch->restart_at = 0;
	note(fl, "producer-start", (int)k, ch->pid);
	return ch->pid > 0 ? 0 : -1;
}

static int start_worker(chaos_fleet *fl, unsigned k)
{
	struct chaos_child *ch = &fl->work[k];
	char conc[16], work[32];

	ch->gen++;
	snprintf(conc, sizeof(conc), "%u", fl->concurrency);
	snprintf(work, sizeof(work), "%lld", (long long)fl->work_ms);
	snprintf(ch->log, sizeof(ch->log), "%s/worker-%u.%u.log", fl->dir, k, ch->gen);
	snprintf(ch->out, sizeof(ch->out), "%s/worker-%u.out", fl->dir, k);
	char *argv[] = { (char *)CHAOS_WORKER_PATH, "--url", fl->b->url, "--log", ch->log,
			 "--concurrency", conc, "--work-ms", work, NULL };
	ch->pid = proc_spawn(argv, &(proc_opts){ .log = ch->out });
	ch->stopped = false;
	ch->restart_at = 0;
	note(fl, "worker-start", (int)k, ch->pid);
	return ch->pid > 0 ? 0 : -1;
}

int chaos_fleet_start(chaos_fleet *fl)
{
	char path[PATH_MAX + 64];

	snprintf(fl->dir, sizeof(fl->dir), "%s/chaos", fl->b->dir);
	if (mkdir(fl->dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "chaos: mkdir %s: %s\n", fl->dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/conductor.log", fl->dir);
	if ((fl->notes = chaos_log_open(path)) < 0)
		return -1;
	note(fl, "broker-up", 0, fl->b->pid);
	for (unsigned k = 0; k < fl->n_prod; k++)
		if (start_producer(fl, k) != 0)
			return -1;
	for (unsigned k = 0; k < fl->n_work; k++)
		if (start_worker(fl, k) != 0)
			return -1;
	return 0;
}

int chaos_fleet_tick(chaos_fleet *fl)
{
	int64_t now = now_ms();

	for (unsigned k = 0; k < fl->n_work; k++) {
		struct chaos_child *ch = &fl->work[k];
		if (ch->stopped && now >= ch->cont_at) {
			note(fl, "worker-cont", (int)k, ch->pid);
			kill(ch->pid, SIGCONT);
			ch->stopped = false;
		}
		if (ch->pid == 0 && ch->restart_at != 0 && now >= ch->restart_at &&
		    start_worker(fl, k) != 0)
			return -1;
	}
	return 0;
}

static int supervise_one(const char *what, unsigned k, struct chaos_child *ch)
{
	int status = 0;
	char how[96];

	if (ch->pid <= 0 || waitpid(ch->pid, &status, WNOHANG) != ch->pid)
		return 0;
	ch->pid = 0;
	proc_describe(status, how, sizeof(how));
	fprintf(stderr, "chaos: %s %u ended by itself (%s)\n", what, k, how);
	proc_dump_tail(ch->out, 3000);
	return -1;
}

int chaos_fleet_supervise(chaos_fleet *fl)
{
	int rc = 0;

	for (unsigned k = 0; k < fl->n_prod; k++)
		rc |= supervise_one("producer", k, &fl->prod[k]);
	for (unsigned k = 0; k < fl->n_work; k++)
		rc |= supervise_one("worker", k, &fl->work[k]);
	return rc;
}

/* After the broker came back on another port: everyone starts again. */
static int restart_everyone(chaos_fleet *fl)
{
	for (unsigned k = 0; k < fl->n_prod; k++) {
		proc_kill9(fl->prod[k].pid);
		if (start_producer(fl, k) != 0)
			return -1;
	}
	for (unsigned k = 0; k < fl->n_work; k++) {
		proc_kill9(fl->work[k].pid);
		fl->work[k].pid = 0;
		if (start_worker(fl, k) != 0)
			return -1;
	}
	return 0;
}

int chaos_kill_broker(chaos_fleet *fl, unsigned *seed)
{
	char url[sizeof(fl->b->url)];

	snprintf(url, sizeof(url), "%s", fl->b->url);
	note(fl, "broker-kill", 0, fl->b->pid);
	if (th_broker_kill9(fl->b) != 0)
		return -1;
	th_sleep_ms(draw(seed, BROKER_DOWN_MS));
	if (th_broker_restart(fl->b) != 0) {
		fprintf(stderr, "chaos: the broker did not come back after kill -9 number %llu\n",
			(unsigned long long)fl->f->broker_kills + 1);
		return -1;
	}
	fl->f->broker_kills++;
	note(fl, "broker-up", 0, fl->b->pid);
	if (strcmp(url, fl->b->url) == 0)
		return 0;
	fprintf(stderr, "chaos: the broker came back on %s (was %s): restarting everyone\n",
		fl->b->url, url);
	fl->f->url_changes++;
	return restart_everyone(fl);
}

/* A random worker slot that is running (and not stopped, unless
 * stopped_too); -1 when none is. */
static int pick_worker(chaos_fleet *fl, unsigned *seed, bool stopped_too)
{
	unsigned cand[CHAOS_MAX_CHILDREN], n = 0;

	for (unsigned k = 0; k < fl->n_work; k++)
		if (fl->work[k].pid > 0 && (stopped_too || !fl->work[k].stopped))
			cand[n++] = k;
	return n == 0 ? -1 : (int)cand[draw(seed, n)];
}

int chaos_kill_worker(chaos_fleet *fl, unsigned *seed)
{
	int k = pick_worker(fl, seed, true);

	if (k < 0)
		return 1;
	struct chaos_child *ch = &fl->work[k];
	note(fl, "worker-kill", k, ch->pid);
	if (proc_kill9(ch->pid) != 0)
		return -1;
	ch->pid = 0;
	ch->stopped = false;
	ch->restart_at = now_ms() + draw(seed, KILLED_DOWN_MS) + 1;
	fl->f->worker_kills++;
	return 0;
}

/* How many jobs worker log path shows in hand: started, not yet acked
 * or given up, among its last lines. */
static int in_hand(const char *path)
{
	char buf[TAIL_BYTES + 1], *save = NULL;
	uint64_t tokens[TAIL_BYTES / 64];
	size_t n_tok = 0;
	FILE *f = fopen(path, "r");
	int n = 0;

	if (f == NULL)
		return 0;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, size > TAIL_BYTES ? size - TAIL_BYTES : 0, SEEK_SET);
	size_t len = fread(buf, 1, TAIL_BYTES, f);
	fclose(f);
	buf[len] = '\0';
	for (char *l = strtok_r(buf, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		char kind[16], id[20], token[20];
		if (sscanf(l, "%15s %19s %19s", kind, id, token) != 3)
			continue;
		uint64_t t = strtoull(token, NULL, 16);
		if (strcmp(kind, "start") == 0 && n_tok < sizeof(tokens) / sizeof(tokens[0])) {
			tokens[n_tok++] = t;
		} else if (strcmp(kind, "ack") == 0 || strcmp(kind, "giveup") == 0) {
			for (size_t i = 0; i < n_tok; i++)
				if (tokens[i] == t)
					tokens[i] = 0;
		}
	}
	for (size_t i = 0; i < n_tok; i++)
		n += tokens[i] != 0;
	return n;
}

int chaos_stop_worker(chaos_fleet *fl, unsigned *seed, bool busy_only)
{
	int k = pick_worker(fl, seed, false);

	if (busy_only) { /* a random one of those with jobs in hand */
		unsigned cand[CHAOS_MAX_CHILDREN], n = 0;
		for (unsigned i = 0; i < fl->n_work; i++)
			if (fl->work[i].pid > 0 && !fl->work[i].stopped && in_hand(fl->work[i].log) > 0)
				cand[n++] = i;
		k = n == 0 ? -1 : (int)cand[draw(seed, n)];
	}

	if (k < 0)
		return 1;
	struct chaos_child *ch = &fl->work[k];
	note(fl, "worker-stop", k, ch->pid);
	if (kill(ch->pid, SIGSTOP) != 0) {
		fprintf(stderr, "chaos: SIGSTOP to worker %d: %s\n", k, strerror(errno));
		return -1;
	}
	ch->stopped = true;
	ch->cont_at = now_ms() + fl->lease_ms + 100 + draw(seed, STOP_PAST_MS);
	fl->f->worker_stops++;
	return 0;
}

int chaos_kill_producer(chaos_fleet *fl, unsigned *seed)
{
	unsigned k = draw(seed, fl->n_prod);

	if (fl->n_prod == 0 || fl->prod[k].pid <= 0)
		return 1;
	note(fl, "producer-kill", (int)k, fl->prod[k].pid);
	if (proc_kill9(fl->prod[k].pid) != 0)
		return -1;
	fl->f->producer_kills++;
	return start_producer(fl, k);
}

/* ---- the end ---- */

/* SIGTERM to the n children of ch, then waits for them all up to
 * STOP_MS.  One that exits other than 0 fails the stop; one still there
 * then is wedged: it is killed and counted, not failed (libnng 1.5.2 can
 * hang a client for good after a connection closes with replies still
 * unread: an nng bug, fixed in 1.6.0, which a stop across a broker
 * restart provokes). */
static int stop_all(chaos_fleet *fl, const char *what, struct chaos_child *ch, unsigned n)
{
	int64_t end = now_ms() + STOP_MS;
	unsigned left = 0;
	int rc = 0;

	for (unsigned k = 0; k < n; k++)
		if (ch[k].pid > 0) {
			note(fl, strcmp(what, "worker") == 0 ? "worker-term" : "producer-term", (int)k,
			     ch[k].pid);
			kill(ch[k].pid, SIGTERM);
			left++;
		}
	while (left > 0 && now_ms() < end) {
		th_sleep_ms(20);
		for (unsigned k = 0; k < n; k++) {
			int status = 0;
			char how[96];
			if (ch[k].pid <= 0 || waitpid(ch[k].pid, &status, WNOHANG) != ch[k].pid)
				continue;
			ch[k].pid = 0;
			left--;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				continue;
			proc_describe(status, how, sizeof(how));
			fprintf(stderr, "chaos: %s %u did not stop cleanly on SIGTERM (%s)\n", what, k,
				how);
			proc_dump_tail(ch[k].out, 3000);
			rc = -1;
		}
	}
	for (unsigned k = 0; k < n; k++) {
		if (ch[k].pid <= 0)
			continue;
		fprintf(stderr,
			"chaos: %s %u (pid %d) is wedged: still there %d ms after SIGTERM; killing "
			"it (see %s)\n",
			what, k, (int)ch[k].pid, STOP_MS, ch[k].log);
		proc_dump_tail(ch[k].out, 600);
		note(fl, strcmp(what, "worker") == 0 ? "worker-wedged" : "producer-wedged", (int)k,
		     ch[k].pid);
		proc_kill9(ch[k].pid);
		ch[k].pid = 0;
		fl->f->wedged++;
	}
	return rc;
}

/* How many keys producer slot k's log holds: its jobs are p<k>-0 .. -(n-1). */
static int producer_jobs(const struct chaos_child *ch, unsigned k, uint64_t *n)
{
	chaos_logs logs = { 0 };
	char why[512];

	*n = 0;
	if (access(ch->log, F_OK) != 0)
		return 0; /* it never had an answer */
	if (chaos_logs_read(&logs, ch->log, why, sizeof(why)) != 0) {
		fprintf(stderr, "chaos: %s\n", why);
		return -1;
	}
	for (size_t i = 0; i < logs.n; i++) {
		unsigned slot;
		uint64_t index;
		if (chaos_parse_key(logs.recs[i].key, &slot, &index) && slot == k && index >= *n)
			*n = index + 1;
	}
	chaos_logs_free(&logs);
	return 0;
}

int chaos_fleet_end_pushes(chaos_fleet *fl, uint64_t *jobs)
{
	int rc = 0;

	for (unsigned k = 0; k < fl->n_work; k++) {
		struct chaos_child *ch = &fl->work[k];
		if (ch->stopped)
			ch->cont_at = 0;
		if (ch->pid == 0)
			ch->restart_at = 1;
	}
	if (chaos_fleet_tick(fl) != 0)
		return -1;
	*jobs = 0;
	rc = stop_all(fl, "producer", fl->prod, fl->n_prod);
	for (unsigned k = 0; k < fl->n_prod; k++) {
		uint64_t n;
		rc |= producer_jobs(&fl->prod[k], k, &n);
		*jobs += n;
	}
	return rc;
}

int chaos_fleet_drain(chaos_fleet *fl, uint64_t jobs, int64_t limit_ms)
{
	int64_t end = now_ms() + limit_ms;
	cueq_client *c = NULL;
	cueq_queue_stats s = { 0 };

	if (cueq_connect(fl->b->url, NULL, &c) != CUEQ_OK) {
		fprintf(stderr, "chaos: cannot reach the broker at %s: %s\n", fl->b->url,
			cueq_last_error());
		return -1;
	}
	while (now_ms() < end) {
		cueq_queue_stats *st = NULL;
		size_t n = 0;
		if (chaos_fleet_supervise(fl) != 0)
			break;
		if (cueq_stats(c, CHAOS_QUEUE, &st, &n) == CUEQ_OK && n == 1)
			s = st[0];
		cueq_stats_free(st, n);
		if (s.scheduled + s.ready + s.leased == 0 && s.succeeded + s.dead >= jobs) {
			cueq_close(c);
			return 0;
		}
		th_sleep_ms(200);
	}
	cueq_close(c);
	fprintf(stderr,
		"chaos: after %lld ms the broker has finished %llu of %llu jobs (succeeded %llu, "
		"dead %llu; scheduled %llu, ready %llu, leased %llu)\n",
		(long long)limit_ms, (unsigned long long)(s.succeeded + s.dead),
		(unsigned long long)jobs, (unsigned long long)s.succeeded, (unsigned long long)s.dead,
		(unsigned long long)s.scheduled, (unsigned long long)s.ready,
		(unsigned long long)s.leased);
	return -1;
}

int chaos_fleet_stop_workers(chaos_fleet *fl)
{
	return stop_all(fl, "worker", fl->work, fl->n_work);
}

int chaos_fleet_read_logs(const chaos_fleet *fl, chaos_logs *logs, char *why, size_t why_size)
{
	char path[PATH_MAX + 64];

	for (unsigned k = 0; k < fl->n_prod; k++)
		if (chaos_logs_read(logs, fl->prod[k].log, why, why_size) != 0)
			return -1;
	for (unsigned k = 0; k < fl->n_work; k++)
		for (unsigned g = 1; g <= fl->work[k].gen; g++) {
			snprintf(path, sizeof(path), "%s/worker-%u.%u.log", fl->dir, k, g);
			if (access(path, F_OK) == 0 && chaos_logs_read(logs, path, why, why_size) != 0)
				return -1;
		}
	return 0;
}

void chaos_fleet_kill_all(chaos_fleet *fl)
{
	for (unsigned k = 0; k < fl->n_prod; k++) {
		proc_kill9(fl->prod[k].pid);
		fl->prod[k].pid = 0;
	}
	for (unsigned k = 0; k < fl->n_work; k++) {
		proc_kill9(fl->work[k].pid);
		fl->work[k].pid = 0;
	}
	if (fl->notes > 0)
		close(fl->notes);
	fl->notes = -1;
}

void chaos_fleet_dump(const chaos_fleet *fl)
{
	for (unsigned k = 0; k < fl->n_prod; k++)
		proc_dump_tail(fl->prod[k].out, 1500);
	for (unsigned k = 0; k < fl->n_work; k++)
		proc_dump_tail(fl->work[k].out, 1500);
	th_broker_dump_log(fl->b);
}
