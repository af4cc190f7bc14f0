/*
 * bench.h - what one benchmark run is asked to do and what it found.
 *
 * bench.c parses the command line, starts a private broker per run and
 * prints the table; run_single.c and run_sdk.c drive the two client styles
 * against the broker's URL; memory.c measures pending-job memory.  They
 * share only these two structs.
 */
#ifndef CUEQ_BENCH_H
#define CUEQ_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_cfg {
	unsigned producers;   /* producer threads */
	unsigned workers;     /* worker threads (sdk mode: one cueq_worker each) */
	unsigned concurrency; /* sdk mode: handler threads per cueq_worker */
	size_t jobs;
	size_t payload;	 /* bytes per job */
	double timeout_s; /* a run that is not done by then stops and reports */
	const char *queue;
	int broker_pid; /* watched: a run stops early when it dies (0: none) */
};

#define BENCH_NO_LAT UINT64_MAX /* a latency that the mode does not measure */

struct bench_result {
	double secs;		 /* first push to last ack */
	double rate;		 /* jobs per second over secs */
	uint64_t push[2];	 /* p50, p99 in ns */
	uint64_t claim[2];
	uint64_t ack[2];
	uint64_t e2e[2];	 /* push -> handler start, first delivery */
	size_t lost, dups, bad;	 /* from the tally */
	size_t errors;		 /* failed SDK calls or refused pushes */
	bool timed_out;		 /* not complete when the run stopped */
	bool broker_died;	 /* the broker exited during the run */
};

/* Each drives cfg->jobs jobs through the broker at url and fills r.
 * Returns 0 when the run could be carried out (r tells whether jobs were
 * lost), -1 when it could not start (message on stderr). */
int run_single(const char *url, const struct bench_cfg *cfg, struct bench_result *r);
int run_sdk(const char *url, const struct bench_cfg *cfg, struct bench_result *r);

#endif
