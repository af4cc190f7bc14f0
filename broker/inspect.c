/*
 * inspect.c - read-only views of the embedded engine: get, list, stats,
 * and the figures of metrics (what RocksDB says of itself, by column
 * family: store.c reads the properties).
 *
 * Views are deep copies in engine.h's words (eng_exec, eng_event), so the
 * caller may hold them while the engine goes on and never sees a stored
 * record.  list walks an index in ID order (creation order) and stops after
 * LIST_SCAN keys, or once the page holds REPLY_TEXT_BUDGET bytes of text,
 * even when it found fewer than asked, returning where to continue: one
 * request never walks the whole history nor outgrows a frame.  get keeps
 * the first history events that fit in the same budget.
 */
#include "embedded.h"

#include <stdlib.h>
#include <string.h>

#define LIST_SCAN 20000
#define HISTORY_MAX 1000
/* Text bytes in one reply (results, errors, details): replies stay well
 * under the 4 MiB frame limit that clients accept. */
#define REPLY_TEXT_BUDGET (2u << 20)

static const char *dup(const char *s, size_t n)
{
	if (s == NULL)
		return NULL;
	char *d = emb_oom(malloc(n + 1));
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* Copies rec into v, overlaying the live state of an unfinished job. */
static void view_of(struct engine *e, const struct exec_rec *rec, struct eng_view *v)
{
	struct job *j = jobs_find(e->jobs, rec->id);
	*v = (struct eng_view){.exec = {
		.id = rec->id,
		.cue_id = rec->cue_id,
		.queue = dup(rec->queue, rec->queue_len),
		.queue_len = rec->queue_len,
		.group = rec->group_len ? dup(rec->group, rec->group_len) : NULL,
		.group_len = rec->group_len,
		.state = j != NULL ? j->state : rec->state,
		.priority = rec->priority,
		.attempt = rec->attempt,
		.expiries = rec->expiries,
		.failures = rec->failures,
		.max_attempts = rec->max_attempts,
		.max_expiries = rec->max_expiries ? rec->max_expiries : MAX_EXPIRIES,
		.lease_ms = rec->lease_ms,
		.created_at = rec->created_at,
		.run_at = rec->run_at,
		.deadline = rec->deadline,
		.finished_at = rec->finished_at,
		.token = rec->token,
		.result = dup(rec->result, rec->result_len),
		.error = dup(rec->error, rec->error_len),
		.result_len = rec->result_len,
		.error_len = rec->error_len,
		.reason = dup(rec->why, rec->why_len),
		.reason_len = rec->why_len,
	}};
}

/* The engine's word for a stored event (stored numbers never change). */
static int event_kind(int event)
{
	switch (event) {
	case EV_CLAIMED:
		return ENG_EV_CLAIMED;
	case EV_EXTENDED:
		return ENG_EV_EXTENDED;
	case EV_EXPIRED:
		return ENG_EV_EXPIRED;
	case EV_NACKED:
		return ENG_EV_NACKED;
	case EV_SUCCEEDED:
		return ENG_EV_SUCCEEDED;
	case EV_DEAD:
		return ENG_EV_DEAD;
	case EV_STEP:
		return ENG_EV_STEP;
	case EV_RELEASED:
		return ENG_EV_RELEASED;
	case EV_CANCELLED:
		return ENG_EV_CANCELLED;
	case EV_RETRIED:
		return ENG_EV_RETRIED;
	default:
		return ENG_EV_UNKNOWN;
	}
}

/* Reads after emb_settle (the record is written aside: store.c). */
static int read_view(struct engine *e, uint64_t id, struct eng_view *v, uint32_t *hist_seq,
		     proto_error *err)
{
	struct exec_rec rec;
	msgpack_unpacked up;
	char *buf, s[PROTO_ID_LEN + 1];
	int rc = emb_read_rec(e, id, &rec, &up, &buf);

	proto_id_fmt(id, s);
	if (rc <= 0)
		emb_rec_release(&up, buf);
	if (rc < 0)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read execution %s", s);
	if (rc == 0) {
		return proto_fail(err, CUEQ_ERR_NOT_FOUND,
				  "no execution %s (never pushed, or deleted after the retention window)", s);
	}
	view_of(e, &rec, v);
	if (hist_seq != NULL) {
		struct job *j = jobs_find(e->jobs, id);
		*hist_seq = j != NULL ? j->hist_seq : rec.hist_seq;
	}
	emb_rec_release(&up, buf);
	return CUEQ_OK;
}

bool emb_unfinished(struct engine *e, uint64_t id)
{
	return jobs_find(e->jobs, id) != NULL;
}

int emb_queue_of(struct engine *e, uint64_t id, char *out, size_t *len)
{
	const struct job *j = jobs_find(e->jobs, id);
	if (j != NULL) {
		const struct queue *q = emb_queue_at(e, j->queue);
		memcpy(out, q->name, q->len);
		out[q->len] = '\0';
		*len = q->len;
		return 1;
	}
	struct exec_rec rec; /* store reads see this turn's writes */
	msgpack_unpacked up;
	char *buf;
	int rc = emb_read_rec(e, id, &rec, &up, &buf);
	if (rc == 1) {
		*len = rec.queue_len <= PROTO_MAX_QUEUE ? rec.queue_len : PROTO_MAX_QUEUE;
		memcpy(out, rec.queue, *len);
		out[*len] = '\0';
	}
	emb_rec_release(&up, buf);
	return rc != 0 ? rc : emb_cue_queue(e, id, out, len);
}

int emb_get(struct engine *e, uint64_t id, struct eng_view *out, proto_error *err)
{
	uint8_t k[8], from[12] = {0}, to[12] = {0};
	char *payload;
	size_t plen, cap = 0;
	if (emb_settle(e) != 0) /* the record and history must hold this turn's changes */
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker's storage failed; try again");
	uint32_t hist_seq = 0;
	int rc = read_view(e, id, out, &hist_seq, err);

	if (rc != CUEQ_OK)
		return rc;
	emb_key(k, id);
	if (store_get(e->st, CF_PAYLOAD, k, 8, &payload, &plen) == 1) {
		out->payload = dup(payload, plen);
		out->payload_len = plen;
		store_free(payload);
	}
	store_be64(from, id);
	store_be64(to, id + 1);
	/* the newest HIST_KEEP (an older broker kept them all) */
	store_be32(from + 8, hist_seq > HIST_KEEP ? hist_seq - HIST_KEEP : 0);
	size_t budget = REPLY_TEXT_BUDGET;
	struct store_iter *it = store_iter_new(e->st, CF_HIST, from, 12, to, 12);
	for (; it && store_iter_valid(it) && out->n_hist < HISTORY_MAX; store_iter_next(it)) {
		size_t vl;
		const char *v = store_iter_value(it, &vl);
		msgpack_unpacked up;
		struct hist_rec h;
		if (record_unpack_event(v, vl, &up, &h) == 0) {
			if (h.detail_len + 64 > budget) {
				msgpack_unpacked_destroy(&up);
				break;
			}
			budget -= h.detail_len + 64;
			if (out->n_hist == cap) {
				cap = cap ? cap * 2 : 16;
				out->hist = emb_oom(realloc(out->hist, cap * sizeof(*out->hist)));
			}
			out->hist[out->n_hist++] = (struct eng_event){
				.at = h.at,
				.kind = event_kind(h.event),
				.attempt = h.attempt,
				.token = h.token,
				.detail = dup(h.detail, h.detail_len),
				.detail_len = h.detail_len,
			};
		}
		msgpack_unpacked_destroy(&up);
	}
	store_iter_free(it);
	out->hist_dropped = hist_seq > HIST_KEEP ? hist_seq - HIST_KEEP : 0;
	char uq[PROTO_MAX_QUEUE + 2 + CUEQ_MAX_KEY];
	size_t ul = 0;
	if (emb_unique_of(e, id, uq, sizeof(uq), &ul) != 0) {
		char s[PROTO_ID_LEN + 1];
		proto_id_fmt(id, s);
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE,
				  "the broker could not read the unique key of execution %s; try again", s);
	}
	const char *nul = ul ? memchr(uq, 0, ul) : NULL;
	if (nul != NULL) {
		out->unique_len = ul - (size_t)(nul + 1 - uq);
		out->unique = dup(nul + 1, out->unique_len);
	}
	return emb_steps(e, id, NULL, 0, out, err);
}

void emb_view_free(struct engine *e, struct eng_view *v)
{
	(void)e;
	free((char *)v->exec.queue);
	free((char *)v->exec.group);
	free((char *)v->exec.result);
	free((char *)v->exec.error);
	free((char *)v->exec.reason);
	free((char *)v->payload);
	for (size_t i = 0; i < v->n_hist; i++)
		free((char *)v->hist[i].detail);
	free(v->hist);
	for (size_t i = 0; i < v->n_steps; i++) {
		free((char *)v->steps[i].name);
		free((char *)v->steps[i].value);
	}
	free(v->steps);
	free((char *)v->unique);
	*v = (struct eng_view){0};
}

int emb_list(struct engine *e, const char *queue, size_t qlen, int state, uint64_t after,
	     size_t limit, struct eng_view *out, size_t *n, uint64_t *next, proto_error *err)
{
	uint8_t lo[PROTO_MAX_QUEUE + 10], hi[PROTO_MAX_QUEUE + 10];
	size_t lol, hil, idoff = 0, scanned = 0, text = 0;
	int cf;
	uint64_t last = 0;

	*n = 0;
	*next = 0;
	if (emb_settle(e) != 0) /* the indexes must hold this turn's changes */
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker's storage failed; try again");
	if (after == UINT64_MAX)
		return CUEQ_OK;
	if (state >= CUEQ_SUCCEEDED) {
		/* the done index: queue 0 state id */
		cf = CF_DONE;
		lol = emb_done_key(lo, queue, qlen, state, after + 1);
		hil = emb_done_key(hi, queue, qlen, state + 1, 0);
		idoff = qlen + 2;
	} else {
		/* unfinished: the active index; any state: every record */
		cf = state >= 0 ? CF_ACTIVE : CF_EXEC;
		store_be64(lo, after + 1);
		lol = 8;
		memset(hi, 0xff, 8);
		hil = 8;
	}
	struct store_iter *it = store_iter_new(e->st, cf, lo, lol, hi, hil);
	if (it == NULL)
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read its index");
	for (; store_iter_valid(it) && *n < limit && text < REPLY_TEXT_BUDGET;
	     store_iter_next(it)) {
		size_t kl;
		const char *k = store_iter_key(it, &kl);
		if (kl != idoff + 8)
			continue;
		if (scanned++ == LIST_SCAN)
			break; /* this key is not examined: continue from the last one */
		uint64_t id = store_get_be64((const uint8_t *)k + idoff);
		last = id;
		if (cf == CF_ACTIVE) {
			struct job *j = jobs_find(e->jobs, id);
			const struct queue *q = j ? emb_queue_at(e, j->queue) : NULL;
			if (j == NULL || j->state != state || q->len != qlen ||
			    memcmp(q->name, queue, qlen) != 0)
				continue;
		}
		struct eng_view v;
		if (read_view(e, id, &v, NULL, NULL) != CUEQ_OK)
			continue;
		if (cf == CF_EXEC && (v.exec.queue_len != qlen || memcmp(v.exec.queue, queue, qlen) != 0)) {
			emb_view_free(e, &v);
			continue;
		}
		text += v.exec.result_len + v.exec.error_len + v.exec.queue_len + 256;
		out[(*n)++] = v;
	}
	/* more may follow when the page is full or a budget ran out */
	if (store_iter_valid(it) && last != 0)
		*next = last; /* the last key examined, taken or not */
	bool failed = store_iter_status(it) != 0;
	store_iter_free(it);
	if (failed) {
		for (size_t i = 0; i < *n; i++)
			emb_view_free(e, &out[i]);
		*n = 0;
		*next = 0;
		return proto_fail(err, CUEQ_ERR_UNAVAILABLE, "the broker could not read its index; try again");
	}
	return CUEQ_OK;
}

int emb_stats(struct engine *e, const char *queue, size_t qlen, uint64_t from_pos, size_t limit,
	      struct eng_stats **out, size_t *n, uint64_t *next, proto_error *err)
{
	/* positions are queue table slots: a forgotten queue leaves a hole,
	 * which a page skips */
	uint32_t from = from_pos < e->nq ? (uint32_t)from_pos : e->nq, to = e->nq;
	(void)err;
	*out = NULL;
	*n = 0;
	*next = 0;
	if (queue != NULL) { /* one queue */
		struct queue *q = emb_queue(e, queue, qlen, false);
		if (q == NULL)
			return *out = emb_oom(calloc(1, sizeof(**out))), CUEQ_OK;
		from = q->idx, to = q->idx + 1, limit = 1;
	}
	*out = emb_oom(calloc(limit ? limit : 1, sizeof(**out)));
	for (uint32_t i = from; i < to; i++) {
		const struct queue *q = e->queues[i];
		if (q == NULL) /* a queue forgotten */
			continue;
		if (*n == limit) {
			*next = i;
			break;
		}
		struct eng_stats *s = &(*out)[(*n)++];
		memcpy(s->queue, q->name, q->len);
		s->queue[q->len] = '\0';
		memcpy(s->count, q->count, sizeof(s->count));
		s->paused = q->paused;
		s->cues = q->n_cues;
		s->deliveries = q->deliveries;
		s->expiries = q->expiries;
		s->failures = q->failures;
		s->releases = q->releases;
	}
	return CUEQ_OK;
}

void emb_metrics(struct engine *e, struct eng_metrics *out)
{
	static const struct {
		int f;
		const char *name, *help;
	} figs[] = {
		{SF_MEMTABLE_BYTES, "memtable_bytes",
		 "RocksDB: bytes in memtables (not yet flushed), by column family"},
		{SF_SST_BYTES, "sst_bytes",
		 "RocksDB: bytes of table files (SST) still referenced, by column family"},
		{SF_LIVE_BYTES, "live_data_bytes",
		 "RocksDB: estimated bytes of live data, by column family"},
		{SF_KEYS, "estimated_keys",
		 "RocksDB: estimated number of keys, by column family"},
		{SF_PENDING_COMPACTION_BYTES, "pending_compaction_bytes",
		 "RocksDB: estimated bytes compactions have yet to rewrite, by column family"},
		{SF_RUNNING_COMPACTIONS, "running_compactions", "RocksDB: compactions running now"},
		{SF_RUNNING_FLUSHES, "running_flushes", "RocksDB: memtable flushes running now"},
		{SF_BLOCK_CACHE_BYTES, "block_cache_bytes", "RocksDB: bytes held by the block cache"},
		{SF_BLOCK_CACHE_CAPACITY_BYTES, "block_cache_capacity_bytes",
		 "RocksDB: capacity of the block cache in bytes"},
	};
	out->counted = e->counted;
	out->n_fig = 0;
	for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]); i++) {
		/* a figure of a column family comes once for each of them */
		int n_cf = figs[i].f < SF_PER_CF ? CF_COUNT : 1;
		for (int cf = 0; cf < n_cf && out->n_fig < ENG_MAX_FIGURES; cf++)
			out->fig[out->n_fig++] = (struct eng_figure){
				.name = figs[i].name,
				.help = figs[i].help,
				.part = n_cf > 1 ? store_cf_name(cf) : NULL,
				.value = store_figure(e->st, cf, figs[i].f),
			};
	}
}
