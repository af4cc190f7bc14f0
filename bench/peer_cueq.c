/*
 * peer_cueq.c - cueq one request per operation, through the public SDK:
 * cueq_push, cueq_claim (one execution, a lease of cfg.lease_ms, a long
 * poll), cueq_ack; fill with cueq_push_many; count with cueq_stats.  The
 * SDK's batching (cueq_pusher, cueq_worker) is compare_sdk.c.
 */
#include "compare.h"

#include <cueq/cueq.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cq {
	cueq_client *c;
	const struct cmp_cfg *cfg;
	size_t pushed; /* cq_push: the group of the next */
	const char *queue;
	int64_t lease_ms;
};

static void cq_close(void *conn)
{
	struct cq *q = conn;

	if (q == NULL)
		return;
	if (q->c != NULL)
		cueq_close(q->c);
	free(q);
}

static void *cq_open(const struct cmp_cfg *cfg)
{
	struct cq *q = calloc(1, sizeof(*q));
	cueq_client_opts o = { .connect_timeout_ms = cfg->connect_timeout_ms };

	if (q == NULL)
		return NULL;
	q->queue = cfg->queue;
	q->cfg = cfg;
	q->lease_ms = cfg->lease_ms;
	if (cueq_connect(cfg->url, &o, &q->c) != CUEQ_OK) {
		cmp_err("cueq: connect to %s: %s", cfg->url, cueq_last_error());
		q->c = NULL;
		cq_close(q);
		return NULL;
	}
	return q;
}

static int cq_setup(void *conn)
{
	struct cq *q = conn; /* queues exist once pushed to; a limit may come first */
	return cmp_cueq_group_limit(q->c, q->cfg);
}

int cmp_cueq_group_limit(cueq_client *c, const struct cmp_cfg *cfg)
{
	cueq_limit_spec s = { .each_group = true, .concurrency = cfg->group_limit,
			      .rate = CUEQ_LIMIT_KEEP };
	if (cfg->group_limit == 0)
		return 0;
	if (cueq_set_limit(c, cfg->queue, &s, NULL) != CUEQ_OK) {
		cmp_err("cueq: limit: %s", cueq_last_error());
		return -1;
	}
	return 0;
}

static int cq_ping(void *conn)
{
	struct cq *q = conn;

	if (cueq_ping(q->c, NULL) != CUEQ_OK) {
		cmp_err("cueq: ping: %s", cueq_last_error());
		return -1;
	}
	return 0;
}

static int cq_push(void *conn, const void *payload, size_t len)
{
	struct cq *q = conn;
	char g[16];
	cueq_push_opts o = { .group = cmp_group(q->cfg, q->pushed++, g) };
	int rc = cueq_push(q->c, q->queue, payload, len, &o, NULL);

	if (rc != CUEQ_OK) {
		cmp_err("cueq: push: %s", cueq_last_error());
		return -1;
	}
	return 0;
}

static int cq_claim(void *conn, int wait_ms, struct job_ref *j)
{
	struct cq *q = conn;
	cueq_job *job = NULL;
	size_t n = 0;
	int rc = cueq_claim(q->c, q->queue, 1, q->lease_ms, wait_ms, &job, &n);

	if (rc == CUEQ_ERR_EMPTY || (rc == CUEQ_OK && n == 0))
		return 0;
	if (rc != CUEQ_OK) {
		cmp_err("cueq: claim: %s", cueq_last_error());
		return -1;
	}
	j->own = job;
	j->payload = cueq_job_payload(job, &j->len);
	return 1;
}

static int cq_ack(void *conn, struct job_ref *j)
{
	struct cq *q = conn;
	cueq_job *job = j->own;
	int rc = cueq_ack(q->c, cueq_job_id(job), cueq_job_token(job), NULL);

	if (rc != CUEQ_OK)
		cmp_err("cueq: ack of %s: %s", cueq_job_id(job), cueq_last_error());
	cueq_job_free(job);
	j->own = NULL;
	return rc == CUEQ_OK ? 0 : -1;
}

static void cq_drop(void *conn, struct job_ref *j)
{
	(void)conn;
	cueq_job_free(j->own);
	j->own = NULL;
}

static int cq_fill(void *conn, const struct tally *t, size_t first, size_t end)
{
	struct cq *q = conn;
	size_t n = end - first, done = 0;
	unsigned char *bufs = malloc(t->payload * (n ? n : 1));
	cueq_job_spec *specs = calloc(n ? n : 1, sizeof(*specs));
	cueq_push_result *res = calloc(n ? n : 1, sizeof(*res));
	char(*groups)[16] = q->cfg->groups ? calloc(n ? n : 1, sizeof(*groups)) : NULL;
	int rc = -1;

	if (bufs == NULL || specs == NULL || res == NULL || (q->cfg->groups && groups == NULL)) {
		cmp_err("cueq: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		payload_fill(t, bufs + i * t->payload, first + i, now_ns());
		specs[i].queue = q->queue;
		specs[i].payload = bufs + i * t->payload;
		specs[i].payload_len = t->payload;
		if (groups != NULL)
			specs[i].opts.group = cmp_group(q->cfg, first + i, groups[i]);
	}
	while (done < n) {
		size_t k = n - done < CUEQ_MAX_BATCH ? n - done : CUEQ_MAX_BATCH;

		if (cueq_push_many(q->c, specs + done, k, res + done) != CUEQ_OK) {
			cmp_err("cueq: push_many: %s", cueq_last_error());
			goto out;
		}
		for (size_t i = done; i < done + k; i++)
			if (res[i].err != CUEQ_OK) {
				cmp_err("cueq: push_many refused job %zu: %s", first + i,
					cueq_strerror(res[i].err));
				goto out;
			}
		done += k;
	}
	rc = 0;
out:
	free(bufs);
	free(specs);
	free(res);
	free(groups);
	return rc;
}

static int cq_pending(void *conn, size_t *n)
{
	struct cq *q = conn;
	cueq_queue_stats *st = NULL;
	size_t k = 0;

	if (cueq_stats(q->c, q->queue, &st, &k) != CUEQ_OK) {
		cmp_err("cueq: stats: %s", cueq_last_error());
		return -1;
	}
	*n = 0;
	for (size_t i = 0; i < k; i++)
		if (strcmp(st[i].queue, q->queue) == 0)
			*n += (size_t)(st[i].scheduled + st[i].ready + st[i].leased);
	cueq_stats_free(st, k);
	return 0;
}

const struct peer peer_cueq = {
	.name = "cueq",
	.polls = false,
	.open = cq_open,
	.close = cq_close,
	.setup = cq_setup,
	.ping = cq_ping,
	.push = cq_push,
	.claim = cq_claim,
	.ack = cq_ack,
	.drop = cq_drop,
	.fill = cq_fill,
	.pending = cq_pending,
};
