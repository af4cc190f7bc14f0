/*
 * lease.c - the execution state machine of the embedded engine: claim,
 * ack/nack, extend, and time (due jobs, expired leases); push is push.c,
 * the operator's changes operate.c, recurring cues cues.c.
 *
 *   scheduled --due--> ready --claim--> leased --ack--> succeeded
 *                        ^                |--nack--> scheduled / ready
 *                        |                |--nack (failures used up)--> dead
 *                        '--lease expired-'--(expiries used up)--> dead
 *
 * Every change rewrites the execution's record in the turn's batch; the
 * payload is written once at push.  A lease token is checked on every
 * worker write (fencing).  An ack/nack that arrives with a token that is no
 * longer live is compared with the stored last outcome, so a resend after a
 * lost reply gets the original answer instead of an error.
 */
#include "embedded.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Payload bytes in one claim reply: stays under the frame limit. */
#define CLAIM_REPLY_BYTES (PROTO_MAX_FRAME - (64u << 10))

static const char *state_name(int s)
{
	const char *n = proto_state_name(s);
	return n ? n : "unknown";
}

bool emb_has_ready(struct engine *e, const char *queue, size_t qlen)
{
	struct queue *q = emb_queue(e, queue, qlen, false);
	return q != NULL && emb_queue_open(q);
}

/* What a claimer learns of j's live lease (the payload aside). */
static void claimed_of(struct engine *e, const struct job *j, struct eng_claimed *c)
{
	/* created by a synced write, and this lease its first delivery: a
	 * job ready again after a nack is ready by a write that may not be
	 * synced yet, so its answer waits as before */
	c->durable = j->id <= atomic_load(&e->synced_id) && j->attempt <= 1 &&
		     !(j->flags & JOB_F_UNSYNCED);
	c->id = j->id;
	c->cue_id = j->cue_id;
	c->token = j->token;
	c->attempt = j->attempt;
	c->deadline = j->deadline;
}

int emb_claim(struct engine *e, const char *queue, size_t qlen, size_t max, uint32_t lease_ms,
	      const char *worker, size_t wlen, struct eng_claimed *out, size_t *n, proto_error *err)
{
	struct queue *q = emb_queue(e, queue, qlen, false);
	int64_t now = emb_now(e);
	struct job *j;
	size_t bytes = 0;

	*n = 0;
	if (q == NULL)
		return CUEQ_OK;
	/* the group at the ring's cursor gives its top job; each claim moves
	 * the cursor on (groups.c) */
	while (*n < max && emb_queue_open(q) && (j = heap_top(&q->ring->ready)) != NULL) {
		struct eng_claimed *c = &out[*n];
		struct exec_rec rec;
		uint8_t k[8];
		int rc;

		emb_key(k, j->id);
		*c = (struct eng_claimed){0};
		rc = store_get(e->st, CF_PAYLOAD, k, 8, &c->payload, &c->payload_len);
		if (rc < 0) {
			if (*n > 0)
				break;
			return proto_fail(err, CUEQ_ERR_UNAVAILABLE,
					  "the broker could not read a payload; try again later");
		}
		if (*n > 0 && bytes + c->payload_len > CLAIM_REPLY_BYTES) {
			store_free(c->payload); /* the reply is full: it stays ready */
			break;
		}
		bytes += c->payload_len;
		if (rc == 0)
			log_error("execution %016llx has no stored payload; delivering it empty",
				  (unsigned long long)j->id);
		j->attempt++;
		q->deliveries++;
		e->counted.claimed++;
		emb_counts_dirty(e, q);
		j->token = emb_next_token(e);
		c->lease_ms = lease_ms ? lease_ms : j->lease_ms;
		j->deadline = now + c->lease_ms;
		struct group *g = j->group;
		emb_set_state(e, j, CUEQ_LEASED);
		emb_group_took(e, q, g, now);
		emb_history(e, j, EV_CLAIMED, j->attempt, j->token, wlen ? worker : NULL, wlen, now);
		emb_rec_from_job(e, j, &rec);
		emb_put_rec(e, &rec);
		claimed_of(e, j, c);
		(*n)++;
	}
	return CUEQ_OK;
}

int emb_claimed_again(struct engine *e, const uint64_t *ids, const uint64_t *tokens, size_t n,
		      struct eng_claimed *out, size_t *nout, proto_error *err)
{
	*nout = 0;
	for (size_t i = 0; i < n; i++) {
		struct job *j = jobs_find(e->jobs, ids[i]);
		struct eng_claimed *c = &out[*nout];
		uint8_t k[8];
		if (j == NULL || j->state != CUEQ_LEASED || j->token != tokens[i])
			continue; /* that lease ended: it is not the claimer's any more */
		*c = (struct eng_claimed){0};
		emb_key(k, j->id);
		int rc = store_get(e->st, CF_PAYLOAD, k, 8, &c->payload, &c->payload_len);
		if (rc < 0) {
			for (size_t m = 0; m < *nout; m++)
				emb_claimed_free(e, &out[m]);
			*nout = 0;
			return proto_fail(err, CUEQ_ERR_UNAVAILABLE,
					  "the broker could not read a payload; try again later");
		}
		claimed_of(e, j, c);
		(*nout)++;
	}
	return CUEQ_OK;
}

void emb_claimed_free(struct engine *e, struct eng_claimed *c)
{
	(void)e;
	store_free(c->payload);
	c->payload = NULL;
}

static uint64_t outcome_hash(const struct eng_outcome *o)
{
	uint64_t h = RECORD_HASH_INIT;
	uint8_t kind = (uint8_t)o->kind, has = o->text != NULL, term = o->terminal;
	int64_t retry = o->retry_in_ms < 0 ? -1 : o->retry_in_ms;

	h = record_hash(h, &kind, 1);
	h = record_hash(h, &has, 1);
	if (o->text)
		h = record_hash(h, o->text, o->text_len);
	if (o->kind == OUT_NACK) {
		h = record_hash(h, &retry, sizeof(retry));
		h = record_hash(h, &term, 1);
	}
	return h;
}

void emb_end_rec(struct engine *e, const struct job *j, int state, int64_t now, const char *why,
		 struct exec_rec *rec)
{
	emb_rec_from_job(e, j, rec);
	rec->state = (uint8_t)state;
	rec->deadline = 0;
	rec->token = 0;
	rec->finished_at = now;
	if (why != NULL) {
		rec->why = why;
		rec->why_len = strlen(why);
	}
}

/* Finishes j for good: record, history, indexes; j is released. */
static void end(struct engine *e, struct job *j, const struct eng_outcome *o, int state,
		const char *why, int64_t now)
{
	struct exec_rec rec;
	if (why)
		emb_history(e, j, EV_DEAD, j->attempt, 0, why, strlen(why), now);
	else if (state == CUEQ_SUCCEEDED)
		emb_history(e, j, EV_SUCCEEDED, j->attempt, o->token, NULL, 0, now);
	emb_end_rec(e, j, state, now, why, &rec);
	if (o != NULL) {
		if (o->kind == OUT_ACK) {
			rec.result = o->text;
			rec.result_len = o->text_len;
		}
		rec.out_kind = (uint8_t)o->kind;
		rec.out_state = (uint8_t)state;
		rec.out_token = o->token;
		rec.out_hash = outcome_hash(o);
	}
	emb_put_rec(e, &rec);
	emb_retire(e, j, state, now);
}

static void set_error(struct job *j, const char *text, size_t len)
{
	free(j->error);
	j->error = NULL;
	j->error_len = 0;
	if (text == NULL)
		return;
	j->error = emb_oom(malloc(len + 1));
	memcpy(j->error, text, len);
	j->error[len] = '\0';
	j->error_len = (uint32_t)len;
}

/* A uniform draw from [0, n] (xorshift64*: jitter needs spread, not
 * secrecy). */
static uint64_t draw(struct engine *e, uint64_t n)
{
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return n == 0 ? 0 : (e->rng * 0x2545f4914f6cdd1dull) % (n + 1);
}

/* The delay before j's next try after its failures-th failure. */
static int64_t backoff(struct engine *e, const struct job *j)
{
	uint64_t d = j->backoff_ms, cap = j->backoff_max_ms;
	for (unsigned i = 1; i < j->failures && d < cap; i++)
		d = d * j->backoff_factor / 1000;
	if (d > cap)
		d = cap;
	return (int64_t)((j->flags & REC_F_NO_JITTER) ? d : draw(e, d));
}

static void apply_nack(struct engine *e, struct job *j, struct eng_outcome *o, int64_t now)
{
	struct exec_rec rec;
	struct queue *q = emb_queue_at(e, j->queue);
	j->failures++;
	q->failures++;
	e->counted.nacked++;
	emb_counts_dirty(e, q);
	set_error(j, o->text, o->text_len);
	emb_history(e, j, EV_NACKED, j->attempt, o->token, o->text, o->text ? o->text_len : 0, now);
	if (o->terminal || j->failures >= j->max_attempts) {
		char why[96];
		if (o->terminal)
			snprintf(why, sizeof(why), "failed terminally");
		else
			snprintf(why, sizeof(why), "failed %u times (max_attempts %u)", j->failures,
				 j->max_attempts);
		o->state = CUEQ_DEAD;
		o->run_at = 0;
		end(e, j, o, CUEQ_DEAD, why, now);
		return;
	}
	int64_t retry = o->retry_in_ms >= 0 ? o->retry_in_ms : backoff(e, j);
	j->run_at = now + retry;
	j->token = 0;
	emb_set_state(e, j, retry > 0 ? CUEQ_SCHEDULED : CUEQ_READY);
	o->state = j->state;
	o->run_at = j->run_at;
	emb_rec_from_job(e, j, &rec);
	rec.out_kind = OUT_NACK;
	rec.out_state = j->state;
	rec.out_token = o->token;
	rec.out_hash = outcome_hash(o);
	rec.out_run_at = j->run_at;
	emb_put_rec(e, &rec);
}

/* The answer to o, whose token is not live, from r: the execution's
 * record (rc 1), or rc 0 (none) or -1 (the read failed). */
static void not_live_answer(struct eng_outcome *o, const struct exec_rec *r, int rc)
{
	char id[PROTO_ID_LEN + 1], tk[PROTO_ID_LEN + 1];

	proto_id_fmt(o->id, id);
	proto_id_fmt(o->token, tk);
	o->state = rc == 1 ? r->state : -1; /* what a refusal tells of it now */
	if (rc < 0) {
		proto_fail(&o->err, CUEQ_ERR_UNAVAILABLE, "the broker could not read execution %s; try again", id);
	} else if (rc == 0) {
		proto_fail(&o->err, CUEQ_ERR_NOT_FOUND,
			   "no execution %s (never pushed, or deleted after the retention window)", id);
	} else if (o->kind != OUT_NONE && r->out_kind != OUT_NONE && r->out_token == o->token) {
		if (r->out_kind == o->kind && r->out_hash == outcome_hash(o)) {
			o->state = r->out_state;
			o->run_at = r->out_run_at;
		} else if (r->state >= CUEQ_SUCCEEDED) {
			proto_fail(&o->err, CUEQ_ERR_CONFLICT,
				   "execution %s already finished as %s under lease %s; a different outcome is refused",
				   id, state_name(r->state), tk);
		} else {
			proto_fail(&o->err, CUEQ_ERR_STALE_LEASE,
				   "lease %s of execution %s was already ended by a %s; a different outcome is refused",
				   tk, id, r->out_kind == OUT_ACK ? "ack" : "nack");
		}
	} else if (r->state == CUEQ_CANCELLED) {
		proto_fail(&o->err, CUEQ_ERR_STALE_LEASE,
			   "execution %s was cancelled by an operator: stop its work, and do not retry its side effects",
			   id);
	} else {
		proto_fail(&o->err, CUEQ_ERR_STALE_LEASE,
			   "lease token %s is not the live lease of execution %s (it is %s): your lease ended, so stop and do not retry its side effects",
			   tk, id, state_name(r->state));
	}
}

void emb_not_live(struct engine *e, struct eng_outcome *o)
{
	struct exec_rec r;
	msgpack_unpacked up;
	char *buf;
	int rc = emb_read_rec(e, o->id, &r, &up, &buf);

	not_live_answer(o, &r, rc);
	emb_rec_release(&up, buf);
}

/* An earlier item of the same request that ended o's lease, or NULL: its
 * record is not written yet, so o is answered from that item. */
static const struct eng_outcome *ended_earlier(const struct eng_outcome *items, size_t i)
{
	for (size_t k = i; k-- > 0;)
		if (items[k].id == items[i].id && items[k].token == items[i].token &&
		    items[k].err.code == CUEQ_OK && items[k].kind != OUT_NONE)
			return &items[k];
	return NULL;
}

static bool live(struct engine *e, uint64_t id, uint64_t token)
{
	struct job *j = jobs_find(e->jobs, id);
	return j != NULL && j->state == CUEQ_LEASED && j->token == token;
}

/* A token that is not live is answered from the stored record, which is
 * written aside (store.c): a request holding one first writes the turn so
 * far, while it has changed nothing.  false: that write failed. */
#define SETTLE_FOR_LATE_TOKENS(e, items, n, settled)                              \
	do {                                                                      \
		for (size_t i_ = 0; i_ < (n); i_++)                               \
			if (!live((e), (items)[i_].id, (items)[i_].token)) {      \
				(settled) = emb_settle(e) == 0;                   \
				break;                                            \
			}                                                         \
	} while (0)

void emb_finish(struct engine *e, struct eng_outcome *items, size_t n)
{
	int64_t now = emb_now(e);
	bool settled = true;
	SETTLE_FOR_LATE_TOKENS(e, items, n, settled);
	for (size_t i = 0; i < n; i++) {
		struct eng_outcome *o = &items[i];
		struct job *j = jobs_find(e->jobs, o->id);
		o->state = -1;
		o->err.code = CUEQ_OK;
		o->err.msg[0] = '\0';
		o->run_at = 0;
		if (j == NULL || j->state != CUEQ_LEASED || j->token != o->token) {
			const struct eng_outcome *first = ended_earlier(items, i);
			if (first != NULL) {
				struct exec_rec r = {
					.state = (uint8_t)first->state,
					.out_kind = (uint8_t)first->kind,
					.out_state = (uint8_t)first->state,
					.out_token = first->token,
					.out_hash = outcome_hash(first),
					.out_run_at = first->run_at,
				};
				not_live_answer(o, &r, 1);
			} else if (settled) {
				emb_not_live(e, o);
			} else {
				proto_fail(&o->err, CUEQ_ERR_UNAVAILABLE,
					   "the broker's storage failed; try again");
			}
			continue;
		}
		if (emb_unique_load(e, j) != 0) { /* before any write of this item */
			proto_fail(&o->err, CUEQ_ERR_UNAVAILABLE,
				   "the broker could not read the execution's unique key; try again");
			continue;
		}
		e->durable = true;
		if (o->kind == OUT_ACK) {
			o->state = CUEQ_SUCCEEDED;
			end(e, j, o, CUEQ_SUCCEEDED, NULL, now);
		} else {
			apply_nack(e, j, o, now);
		}
	}
}

void emb_extend(struct engine *e, struct eng_extend *items, size_t n)
{
	int64_t now = emb_now(e);
	bool settled = true;
	SETTLE_FOR_LATE_TOKENS(e, items, n, settled);
	for (size_t i = 0; i < n; i++) {
		struct eng_extend *x = &items[i];
		struct job *j = jobs_find(e->jobs, x->id);
		struct exec_rec rec;

		x->err.code = CUEQ_OK;
		x->err.msg[0] = '\0';
		x->state = -1;
		if (j == NULL || j->state != CUEQ_LEASED || j->token != x->token) {
			/* kind OUT_NONE matches no stored outcome: always refused */
			struct eng_outcome probe = {.id = x->id, .token = x->token, .kind = OUT_NONE};
			if (settled)
				emb_not_live(e, &probe);
			else
				proto_fail(&probe.err, CUEQ_ERR_UNAVAILABLE,
					   "the broker's storage failed; try again");
			x->err = probe.err;
			x->state = probe.state;
			continue;
		}
		j->deadline = now + x->lease_ms;
		heap_fix(&e->timers, j);
		emb_history(e, j, EV_EXTENDED, j->attempt, j->token, NULL, 0, now);
		emb_rec_from_job(e, j, &rec);
		emb_put_rec(e, &rec);
		x->deadline = j->deadline;
	}
}

void emb_lease_ended(struct engine *e, struct job *j, bool released, int64_t now)
{
	struct queue *q = emb_queue_at(e, j->queue);
	struct exec_rec rec;
	uint64_t token = j->token;
	bool last = emb_last_expiry(j);

	j->expiries++;
	q->expiries++;
	q->releases += released;
	if (released)
		e->counted.released++;
	else
		e->counted.expired++;
	emb_counts_dirty(e, q);
	j->token = 0;
	static const char gone[] = "the worker's connection closed";
	emb_history(e, j, released ? EV_RELEASED : EV_EXPIRED, j->attempt, token,
		    released ? gone : NULL, released ? sizeof(gone) - 1 : 0, now);
	if (last) {
		char why[96];
		snprintf(why, sizeof(why),
			 "lease expired %u times (max_expiries %u): it keeps killing or outliving its workers",
			 j->expiries, j->max_expiries ? j->max_expiries : MAX_EXPIRIES);
		if (j->error == NULL)
			set_error(j, why, strlen(why));
		end(e, j, NULL, CUEQ_DEAD, why, now);
		return;
	}
	j->run_at = now;
	emb_set_state(e, j, CUEQ_READY);
	emb_rec_from_job(e, j, &rec);
	emb_put_rec(e, &rec);
}

int64_t emb_tick(struct engine *e, int64_t now)
{
	struct job *j;
	while ((j = heap_top(&e->timers)) != NULL && job_due(j) <= now) {
		if (j->state == CUEQ_SCHEDULED) {
			/* not stored: start-up derives readiness from run_at */
			emb_set_state(e, j, CUEQ_READY);
			continue;
		}
		if (emb_last_expiry(j) && emb_unique_load(e, j) != 0)
			break; /* nothing changed: the next turn tries again */
		emb_lease_ended(e, j, false, now);
	}
	emb_throttle_tick(e, now);
	emb_cues_fire(e, now);
	emb_sweep(e, now);
	return emb_next_due(e);
}

int64_t emb_next_due(struct engine *e)
{
	struct job *j = heap_top(&e->timers);
	int64_t next = j ? job_due(j) : INT64_MAX, cue = emb_cues_next(e);
	if (cue < next)
		next = cue;
	int64_t thr = emb_throttle_next(e);
	if (thr < next)
		next = thr;
	return next < e->next_sweep ? next : e->next_sweep;
}
