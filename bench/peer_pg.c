/*
 * peer_pg.c - PostgreSQL as a job queue: one table, claims with
 * SELECT ... FOR UPDATE SKIP LOCKED that set a lease deadline, acks that
 * delete the row, through libpq.  Every statement is its own transaction,
 * so with synchronous_commit on each push, claim and ack waits for its WAL
 * flush, as each of cueq's does with --fsync always.
 *
 *   setup  CREATE TABLE q (id bigserial PRIMARY KEY, payload bytea,
 *                          lease_until timestamptz, attempts int)
 *   push   INSERT INTO q (payload) VALUES ($1)
 *   claim  UPDATE q SET lease_until = now + lease, attempts = attempts + 1
 *          WHERE id = (SELECT id FROM q WHERE lease_until IS NULL OR
 *                      lease_until < now() ORDER BY id LIMIT 1
 *                      FOR UPDATE SKIP LOCKED) RETURNING id, attempts, payload
 *   ack    DELETE FROM q WHERE id = $1 AND attempts = $2   (the lease's token)
 *   fill   COPY q (payload) FROM STDIN, a chunk per COPY
 *   count  SELECT count(*) FROM q
 *
 * PostgreSQL cannot wait for a row to appear, so workers poll (the core
 * backs off on an empty claim).  Built without libpq, every call says how
 * to get it.
 */
#include "compare.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CMP_HAVE_LIBPQ
#include <libpq-fe.h>

struct pg {
	PGconn *c;
	char table[64];
	int lease_ms;
	bool prepared;
	PGresult *last; /* the last claim's row: the payload lives in it */
};

static void pg_forget(struct pg *g)
{
	if (g->last != NULL)
		PQclear(g->last);
	g->last = NULL;
}

static void pg_close(void *conn)
{
	struct pg *g = conn;

	if (g == NULL)
		return;
	pg_forget(g);
	if (g->c != NULL)
		PQfinish(g->c);
	free(g);
}

static void *pg_open(const struct cmp_cfg *cfg)
{
	struct pg *g = calloc(1, sizeof(*g));
	char info[256];

	if (g == NULL)
		return NULL;
	for (const char *s = cfg->queue; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_') {
			cmp_err("postgres: the queue name %s is not a plain identifier", cfg->queue);
			free(g);
			return NULL;
		}
	snprintf(g->table, sizeof(g->table), "%s", cfg->queue);
	g->lease_ms = (int)cfg->lease_ms;
	snprintf(info, sizeof(info),
		 "host=%s port=%d user=postgres dbname=postgres connect_timeout=5", cfg->host,
		 cfg->port);
	g->c = PQconnectdb(info);
	if (g->c == NULL || PQstatus(g->c) != CONNECTION_OK) {
		cmp_err("postgres: connect to %s:%d: %s", cfg->host, cfg->port,
			g->c ? PQerrorMessage(g->c) : "out of memory");
		pg_close(g);
		return NULL;
	}
	return g;
}

/* Checks that res has status want; clears it and says why otherwise. */
static PGresult *check(struct pg *g, PGresult *res, ExecStatusType want, const char *what)
{
	if (res != NULL && PQresultStatus(res) == want)
		return res;
	cmp_err("postgres: %s: %s", what,
		res ? PQresultErrorMessage(res) : PQerrorMessage(g->c));
	PQclear(res);
	return NULL;
}

static int exec_ok(struct pg *g, const char *sql)
{
	PGresult *res = check(g, PQexec(g->c, sql), PGRES_COMMAND_OK, sql);

	PQclear(res);
	return res ? 0 : -1;
}

static int pg_setup(void *conn)
{
	struct pg *g = conn;
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, payload bytea NOT NULL,"
		 " lease_until timestamptz, attempts int NOT NULL DEFAULT 0)",
		 g->table);
	return exec_ok(g, sql);
}

/* Prepares the statements on first use (the table must exist by then). */
static int prepare(struct pg *g)
{
	char push[256], claim[768], ack[256];
	PGresult *res;

	if (g->prepared)
		return 0;
	snprintf(push, sizeof(push), "INSERT INTO %s (payload) VALUES ($1)", g->table);
	snprintf(claim, sizeof(claim),
		 "UPDATE %s SET lease_until = clock_timestamp() + $1::int * interval '1 millisecond',"
		 " attempts = attempts + 1"
		 " WHERE id = (SELECT id FROM %s WHERE lease_until IS NULL OR lease_until < now()"
		 " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
		 " RETURNING id, attempts, payload",
		 g->table, g->table);
	snprintf(ack, sizeof(ack), "DELETE FROM %s WHERE id = $1::int8 AND attempts = $2::int4",
		 g->table);
	const char *names[] = { "push", "claim", "ack" }, *sqls[] = { push, claim, ack };
	for (size_t i = 0; i < 3; i++) {
		res = check(g, PQprepare(g->c, names[i], sqls[i], 0, NULL), PGRES_COMMAND_OK,
			    names[i]);
		if (res == NULL)
			return -1;
		PQclear(res);
	}
	g->prepared = true;
	return 0;
}

static int pg_ping(void *conn)
{
	struct pg *g = conn;
	PGresult *res = check(g, PQexec(g->c, "SELECT 1"), PGRES_TUPLES_OK, "SELECT 1");

	PQclear(res);
	return res ? 0 : -1;
}

static int pg_push(void *conn, const void *payload, size_t len)
{
	struct pg *g = conn;
	const char *vals[1] = { payload };
	int lens[1] = { (int)len }, fmts[1] = { 1 };
	PGresult *res;

	if (prepare(g) != 0)
		return -1;
	res = check(g, PQexecPrepared(g->c, "push", 1, vals, lens, fmts, 0), PGRES_COMMAND_OK,
		    "push");
	PQclear(res);
	return res ? 0 : -1;
}

static uint64_t be64(const char *p)
{
	uint32_t hi, lo;

	memcpy(&hi, p, 4);
	memcpy(&lo, p + 4, 4);
	return ((uint64_t)ntohl(hi) << 32) | ntohl(lo);
}

static int pg_claim(void *conn, int wait_ms, struct job_ref *j)
{
	struct pg *g = conn;
	char lease[24];
	const char *vals[1] = { lease };
	PGresult *res;
	uint32_t att;

	(void)wait_ms; /* it cannot wait: the caller polls */
	pg_forget(g);
	if (prepare(g) != 0)
		return -1;
	snprintf(lease, sizeof(lease), "%d", g->lease_ms);
	res = check(g, PQexecPrepared(g->c, "claim", 1, vals, NULL, NULL, 1), PGRES_TUPLES_OK,
		    "claim");
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	if (PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 8 || PQgetlength(res, 0, 1) != 4) {
		cmp_err("postgres: claim: a row of an unexpected shape");
		PQclear(res);
		return -1;
	}
	memcpy(&att, PQgetvalue(res, 0, 1), 4);
	j->num = be64(PQgetvalue(res, 0, 0));
	j->token = ntohl(att);
	j->payload = PQgetvalue(res, 0, 2);
	j->len = (size_t)PQgetlength(res, 0, 2);
	g->last = res;
	return 1;
}

static int pg_ack(void *conn, struct job_ref *j)
{
	struct pg *g = conn;
	char id[24], att[16];
	const char *vals[2] = { id, att };
	PGresult *res;
	int ok;

	pg_forget(g);
	snprintf(id, sizeof(id), "%llu", (unsigned long long)j->num);
	snprintf(att, sizeof(att), "%llu", (unsigned long long)j->token);
	res = check(g, PQexecPrepared(g->c, "ack", 2, vals, NULL, NULL, 0), PGRES_COMMAND_OK,
		    "ack");
	if (res == NULL)
		return -1;
	ok = strcmp(PQcmdTuples(res), "1") == 0;
	if (!ok)
		cmp_err("postgres: ack of job %s (attempt %s) deleted %s rows, not 1", id, att,
			PQcmdTuples(res));
	PQclear(res);
	return ok ? 0 : -1;
}

static void pg_drop(void *conn, struct job_ref *j)
{
	(void)j;
	pg_forget(conn);
}

static int pg_fill(void *conn, const struct tally *t, size_t first, size_t end)
{
	struct pg *g = conn;
	size_t line_len = 3 + 2 * t->payload + 1;
	unsigned char *buf = malloc(t->payload);
	char *line = malloc(line_len + 1), sql[128];
	static const char hex[] = "0123456789abcdef";
	PGresult *res;
	int rc = -1;

	if (buf == NULL || line == NULL)
		goto out;
	snprintf(sql, sizeof(sql), "COPY %s (payload) FROM STDIN", g->table);
	if ((res = check(g, PQexec(g->c, sql), PGRES_COPY_IN, "COPY")) == NULL)
		goto out;
	PQclear(res);
	for (size_t seq = first; seq < end; seq++) {
		/* Text COPY: bytea in hex as \x..., the backslash escaped. */
		char *o = line;

		payload_fill(t, buf, seq, now_ns());
		*o++ = '\\';
		*o++ = '\\';
		*o++ = 'x';
		for (size_t i = 0; i < t->payload; i++) {
			*o++ = hex[buf[i] >> 4];
			*o++ = hex[buf[i] & 15];
		}
		*o++ = '\n';
		if (PQputCopyData(g->c, line, (int)(o - line)) != 1) {
			cmp_err("postgres: COPY: %s", PQerrorMessage(g->c));
			goto out;
		}
	}
	if (PQputCopyEnd(g->c, NULL) != 1) {
		cmp_err("postgres: COPY: %s", PQerrorMessage(g->c));
		goto out;
	}
	res = check(g, PQgetResult(g->c), PGRES_COMMAND_OK, "COPY");
	if (res != NULL) {
		rc = 0;
		PQclear(res);
	}
	while ((res = PQgetResult(g->c)) != NULL)
		PQclear(res);
out:
	free(buf);
	free(line);
	return rc;
}

static int pg_pending(void *conn, size_t *n)
{
	struct pg *g = conn;
	char sql[128];
	PGresult *res;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", g->table);
	if ((res = check(g, PQexec(g->c, sql), PGRES_TUPLES_OK, sql)) == NULL)
		return -1;
	*n = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

const struct peer peer_postgres = {
	.name = "postgres",
	.polls = true,
	.open = pg_open,
	.close = pg_close,
	.setup = pg_setup,
	.ping = pg_ping,
	.push = pg_push,
	.claim = pg_claim,
	.ack = pg_ack,
	.drop = pg_drop,
	.fill = pg_fill,
	.pending = pg_pending,
};

#else /* no libpq */

static void *pg_missing(const struct cmp_cfg *cfg)
{
	(void)cfg;
	cmp_err("postgres: built without libpq: install libpq-dev and build again");
	return NULL;
}

const struct peer peer_postgres = { .name = "postgres", .open = pg_missing };

#endif
