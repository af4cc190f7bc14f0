/*
 * compare.h - cueq-compare: the same workloads through cueq and its peers.
 *
 * One program drives one run against one server that bench/compare has
 * started (a free loopback port, a fresh data dir): beanstalkd, Redis
 * streams, PostgreSQL or cueq.  Each server is a struct peer of a few
 * calls (open a connection, push one job, claim one with a lease, ack it,
 * push many for a pre-filled backlog, count what is pending); the workload
 * loops in compare_core.c call only those, so every server runs exactly
 * the same loop.  cueq's SDK defaults (cueq_pusher + cueq_worker) cannot be
 * one call per operation, so compare_sdk.c runs the same workloads with
 * them, measured the same way.
 *
 * Every job carries its sequence number and push time (tally.h); a job
 * never delivered, delivered twice, or refused fails the run.
 */
#ifndef CUEQ_BENCH_COMPARE_H
#define CUEQ_BENCH_COMPARE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "latency.h"
#include "tally.h"

enum cmp_workload {
	WL_SINGLE,	/* (a) one client: push, claim, ack, one job at a time */
	WL_CAPPED,	/* (b) producers + workers, backlog held under cfg.cap */
	WL_UNCAPPED,	/* (c) producers + workers, producers never wait */
	WL_DRAIN,	/* (d) fill cfg.jobs, then workers drain them */
	WL_FILL,	/* (e1) fill cfg.jobs and exit (before a kill -9) */
	WL_FIRST_CLAIM, /* (e2) after a restart: time to the first claim */
};

struct cmp_cfg {
	const char *server; /* beanstalkd, redis, postgres, cueq */
	bool sdk;	    /* cueq only: SDK pusher + worker instead of one op per request */
	const char *host;
	int port;
	char url[96]; /* cueq: tcp://host:port */
	pid_t pid;    /* the server process (0: not watched) */
	bool pss_tree; /* memory: Pss summed over pid's process tree (PostgreSQL) */
	enum cmp_workload workload;
	size_t jobs;
	size_t payload;
	unsigned producers, workers;
	size_t cap;	    /* WL_CAPPED: producers wait while pushed - acked >= cap */
	double max_secs;    /* pushing stops after this; then as long again to finish */
	int64_t lease_ms;   /* the lease of every claim (beanstalkd: TTR) */
	const char *queue;  /* queue, tube, stream or table name */
	int64_t since_ns;   /* WL_FIRST_CLAIM: CLOCK_REALTIME of the restart */
	int connect_timeout_ms; /* cueq: the SDK's connect timeout (0: its default) */
	const char *pid_file;	/* the server's pid is this file's first line (PostgreSQL) */
	unsigned groups;	/* cueq: job i pushed in group "g<i % groups>" (0: none) */
	unsigned group_limit;	/* cueq: each group's concurrency limit (0: none) */
};

/* The group of job seq when cfg->groups > 0, into out (16 bytes). */
static inline const char *cmp_group(const struct cmp_cfg *cfg, size_t seq, char *out)
{
	if (cfg->groups == 0)
		return NULL;
	snprintf(out, 16, "g%u", (unsigned)(seq % cfg->groups));
	return out;
}

/* A claimed job as a peer hands it back; payload is valid until the next
 * call on the same connection (or the ack). */
struct job_ref {
	uint64_t num;	    /* beanstalkd, PostgreSQL: the job's id */
	uint64_t token;	    /* PostgreSQL: the claim's attempt number, checked by the ack */
	char id[48];	    /* Redis: the stream entry's id */
	void *own;	    /* cueq: the cueq_job */
	const void *payload;
	size_t len;
};

/* One server kind.  Every call returns 0 (claim: 1 got one, 0 none came
 * within wait_ms) or -1 after one line on stderr (unless cmp_quiet). */
struct peer {
	const char *name;
	bool polls; /* claim never waits at the server: the loop backs off on empty */
	/* One connection, used by one thread; NULL on failure. */
	void *(*open)(const struct cmp_cfg *c);
	void (*close)(void *conn);
	/* Once per server, before the run: tube, consumer group, table. */
	int (*setup)(void *conn);
	int (*ping)(void *conn);
	int (*push)(void *conn, const void *payload, size_t len);
	int (*claim)(void *conn, int wait_ms, struct job_ref *j);
	int (*ack)(void *conn, struct job_ref *j);
	/* Forgets a claimed job without acking it (its lease runs out). */
	void (*drop)(void *conn, struct job_ref *j);
	/* Pushes the jobs of t numbered [first, end) the fastest way the
	 * server has (pipelined, batched, COPY); not measured. */
	int (*fill)(void *conn, const struct tally *t, size_t first, size_t end);
	/* Jobs not yet acked: ready, leased, delayed. */
	int (*pending)(void *conn, size_t *n);
};

extern const struct peer peer_beanstalkd, peer_redis, peer_postgres, peer_cueq;

/* What a run found.  Latencies are nanoseconds, CMP_NO_LAT when the mode
 * does not see them. */
#define CMP_NO_LAT UINT64_MAX
struct cmp_result {
	size_t pushed;	     /* pushes answered ok (fill included) */
	size_t acked;	     /* acks answered ok */
	double secs;	     /* first push (drain: first claim) to last ack */
	double rate;	     /* acked / secs */
	double push_secs;    /* first push to last push answered */
	double push_rate;    /* pushed / push_secs */
	double ack_rate_push; /* acks while producers pushed, per second of push_secs */
	uint64_t push[2], claim[2], ack[2]; /* p50, p99 */
	uint64_t e2e[2];     /* push -> ack (SDK: push -> handler), p50, p99 */
	double server_cpu_s; /* utime + stime of the server (and its children) */
	double cpu_us_per_job;
	double rss_mib;	     /* VmHWM (pss_tree: peak sampled Pss sum) */
	double restart_s;    /* WL_FIRST_CLAIM */
	size_t lost, dups, bad, errors;
	bool timed_out, server_died;
};

/* Shared state of one run's threads. */
struct cmp_run {
	const struct cmp_cfg *cfg;
	struct tally tally;
	atomic_uchar *pushed_ok; /* per sequence number: push answered ok */
	struct lat push, claim, ack, e2e;
	atomic_size_t next;	 /* next sequence number to push */
	atomic_size_t pushed;	 /* pushes answered ok */
	atomic_size_t acked;	 /* acks answered ok */
	atomic_size_t errors;
	atomic_uint producers_left;
	atomic_uint running;	 /* threads of the run still going */
	atomic_bool stop;	 /* the server died or the hard deadline passed */
	uint64_t t0;		 /* start of the measured phase */
	uint64_t push_deadline;	 /* monotonic ns: no new pushes after */
	uint64_t hard_deadline;	 /* monotonic ns: every thread stops */
	_Atomic uint64_t t_first_push, t_last_push, t_last_ack;
	uint64_t t_done;	 /* when the watcher saw the run complete */
	atomic_size_t acked_at_push_end;
	double rss_peak_kb;	 /* sampled by the watcher (pss_tree) */
};

extern bool cmp_quiet; /* probes: failures are expected, say nothing */
void cmp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Counts an error of the run and says what it was (the first few only). */
void cmp_run_err(struct cmp_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* compare_core.c: the run's life and the loops for one-op-per-request. */
int cmp_run_init(struct cmp_run *r, const struct cmp_cfg *cfg);
void cmp_run_free(struct cmp_run *r);
/* Starts the clock of the measured phase: pushing stops cfg.max_secs
 * from now, and everything max(cfg.max_secs, 10 s) after that. */
void cmp_run_start(struct cmp_run *r);
/* Watches the server until done() says so, or the run must stop: samples
 * memory, notices a dead server, enforces the hard deadline. */
void cmp_watch(struct cmp_run *r, bool (*done)(struct cmp_run *), struct cmp_result *res);
/* Fills the result's common fields (rates, percentiles, lost/dups). */
void cmp_finish(struct cmp_run *r, struct cmp_result *res);
/* Records one delivery (payload check, push -> claim) and returns the
 * push time carried in it, or 0 when the payload is not one of ours. */
uint64_t cmp_seen(struct cmp_run *r, const void *payload, size_t len, uint64_t now);
/* Waits while the backlog is at the cap (WL_CAPPED) and hands out the
 * next sequence number, or SIZE_MAX when the producers are done.
 * acked() says how many acks were answered (NULL: r->acked). */
size_t cmp_next_seq(struct cmp_run *r, size_t (*acked)(struct cmp_run *));
/* A producer's last act: records the end of the push phase if last. */
void cmp_producer_done(struct cmp_run *r, size_t (*acked)(struct cmp_run *));
/* Every pushed job delivered once and every delivery acked. */
bool cmp_all_done(struct cmp_run *r);

int cmp_op_run(const struct peer *p, const struct cmp_cfg *cfg, struct cmp_result *res);
/* compare_sdk.c: cueq's SDK defaults through the same workloads. */
int cmp_sdk_run(const struct cmp_cfg *cfg, struct cmp_result *res);
/* cueq: sets cfg->group_limit as each group's concurrency limit of the
 * queue (nothing when 0): 0, or -1 said. */
struct cueq_client;
int cmp_cueq_group_limit(struct cueq_client *c, const struct cmp_cfg *cfg);

/* compare_proc.c: the server's CPU and memory, from /proc. */
/* utime + stime (+ reaped children) of pid and its live descendants. */
double tree_cpu_s(pid_t pid);
/* Pss summed over pid and its live descendants, kB; -1 if unreadable. */
long tree_pss_kb(pid_t pid);
/* cfg->pid, or the first line of cfg->pid_file; 0 when neither is known. */
pid_t cmp_server_pid(const struct cmp_cfg *cfg);

/* compare_report.c: the markdown tables, summary CSV and plot data. */
int cmp_report(const char *raw_csv, const char *out_dir);
const char *cmp_csv_header(void);

#endif
