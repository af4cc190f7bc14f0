/*
 * finish.c - ack, nack and extend, in batch and single forms.
 *
 * The three share one shape: `items` of (execution_id, lease_token, ...)
 * out, `results` with one map per item back.  One function packs and reads
 * all three, switching on the kind only where their fields differ.  A batch
 * call fails only when the request as a whole failed; each item's own
 * answer lands in its err, and the first refused item's sentence becomes
 * the thread's last error.  A STALE_LEASE item may say the execution's
 * state now; an extend item keeps it, so a worker can tell a cancel from
 * a lease that ran out.
 */
#include "job.h"

#include <stdio.h>
#include <string.h>

enum kind { ACK, NACK, EXTEND };
static const char *const op_names[] = { "ack", "nack", "extend" };

size_t sdk_item_bytes(const char *text)
{
	return (text ? strlen(text) : 0) + 128;
}

/* The id, token and text of item i, whatever its kind. */
static void item_keys(enum kind k, void *items, size_t i, const char **id, const char **token,
		      const char **text)
{
	*text = NULL;
	if (k == ACK) {
		cueq_ack_item *it = (cueq_ack_item *)items + i;
		*id = it->execution_id, *token = it->lease_token, *text = it->result;
	} else if (k == NACK) {
		cueq_nack_item *it = (cueq_nack_item *)items + i;
		*id = it->execution_id, *token = it->lease_token, *text = it->error;
	} else {
		cueq_extend_item *it = (cueq_extend_item *)items + i;
		*id = it->execution_id, *token = it->lease_token;
	}
}

static int check_items(enum kind k, void *items, size_t n)
{
	size_t total = 0;
	char why[1024];

	if (items == NULL || n == 0 || n > CUEQ_MAX_BATCH)
		return sdk_fail(CUEQ_ERR_INVALID, "%s takes 1 to %u items, not %zu", op_names[k],
				CUEQ_MAX_BATCH, items == NULL ? 0 : n);
	for (size_t i = 0; i < n; i++) {
		const char *id, *token, *text;
		int rc;

		item_keys(k, items, i, &id, &token, &text);
		if ((rc = sdk_check_id("execution ID", id)) == CUEQ_OK &&
		    (rc = sdk_check_id("lease token", token)) == CUEQ_OK)
			rc = sdk_check_text(k == ACK ? "result" : "error", text);
		if (rc == CUEQ_OK && k == EXTEND)
			rc = sdk_check_lease("lease", ((cueq_extend_item *)items)[i].lease_ms, false);
		if (rc != CUEQ_OK) {
			if (n == 1)
				return rc;
			snprintf(why, sizeof(why), "%s", cueq_last_error());
			return sdk_fail(rc, "%s item %zu of %zu: %s", op_names[k], i, n, why);
		}
		total += sdk_item_bytes(text);
	}
	if (total > PROTO_MAX_FRAME - SDK_FRAME_MARGIN)
		return sdk_fail(CUEQ_ERR_TOO_LARGE,
				"these %zu %s items take about %zu bytes but one request holds at most "
				"%u (4 MiB): send them in smaller batches",
				n, op_names[k], total, PROTO_MAX_FRAME);
	return CUEQ_OK;
}

static void pack_item(msgpack_packer *pk, enum kind k, void *items, size_t i)
{
	const char *id, *token, *text;

	item_keys(k, items, i, &id, &token, &text);
	if (k == ACK) {
		msgpack_pack_map(pk, 2 + (text != NULL));
		proto_kv_cstr(pk, "execution_id", id);
		proto_kv_cstr(pk, "lease_token", token);
		if (text != NULL)
			proto_kv_cstr(pk, "result", text);
	} else if (k == NACK) {
		cueq_nack_item *it = (cueq_nack_item *)items + i;
		msgpack_pack_map(pk, 2 + (text != NULL) + (it->retry_in_ms >= 0) + it->terminal);
		proto_kv_cstr(pk, "execution_id", id);
		proto_kv_cstr(pk, "lease_token", token);
		if (text != NULL)
			proto_kv_cstr(pk, "error", text);
		if (it->retry_in_ms >= 0)
			proto_kv_uint(pk, "retry_in_ms", (uint64_t)it->retry_in_ms);
		if (it->terminal)
			proto_kv_bool(pk, "terminal", true);
	} else {
		cueq_extend_item *it = (cueq_extend_item *)items + i;
		msgpack_pack_map(pk, 3);
		proto_kv_cstr(pk, "execution_id", id);
		proto_kv_cstr(pk, "lease_token", token);
		proto_kv_uint(pk, "lease_ms", (uint64_t)it->lease_ms);
	}
}

/* Reads result m into item i. */
static int read_item(const msgpack_object *m, enum kind k, void *items, size_t i, proto_error *e)
{
	uint64_t v = 0;
	int code = CUEQ_OK, rc;

	if ((rc = sdk_item_status(m, &code, e)) != CUEQ_OK)
		return rc;
	if (k == ACK) {
		((cueq_ack_item *)items)[i].err = code;
	} else if (k == NACK) {
		cueq_nack_item *it = (cueq_nack_item *)items + i;
		it->err = code;
		if (code == CUEQ_OK || code == CUEQ_ERR_STALE_LEASE)
			return sdk_get_state(m, "state", false, &it->state, e);
	} else {
		cueq_extend_item *it = (cueq_extend_item *)items + i;
		it->err = code;
		it->state = -1;
		if (code == CUEQ_ERR_STALE_LEASE)
			return sdk_get_state(m, "state", false, &it->state, e);
		if (code != CUEQ_OK)
			return CUEQ_OK;
		if ((rc = proto_uint(m, "lease_deadline", true, 0, INT64_MAX, &v, e)) != CUEQ_OK)
			return rc;
		it->lease_deadline_ms = (int64_t)v;
	}
	return CUEQ_OK;
}

static int finish(cueq_client *c, enum kind k, void *items, size_t n, int64_t deadline,
		  struct sdk_cut *cut)
{
	struct sdk_request rq;
	struct sdk_reply rp;
	const msgpack_object_array *res;
	proto_error e = { 0 };
	int rc;

	if (c == NULL)
		return sdk_fail(CUEQ_ERR_INVALID, "%s needs a client", op_names[k]);
	if ((rc = check_items(k, items, n)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_request_begin(c, &rq, op_names[k], 1)) != CUEQ_OK)
		return rc;
	proto_key(sdk_pk(&rq), "items");
	msgpack_pack_array(sdk_pk(&rq), n);
	for (size_t i = 0; i < n; i++)
		pack_item(sdk_pk(&rq), k, items, i);
	rq.cut = cut;
	if ((rc = sdk_call(c, &rq, 0, deadline, &rp)) != CUEQ_OK)
		return rc;
	if ((rc = sdk_get_results(rp.root, n, &res, &e)) != CUEQ_OK) {
		rc = sdk_bad_reply(op_names[k], &e);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (read_item(&res->ptr[i], k, items, i, &e) != CUEQ_OK) {
			rc = sdk_bad_reply(op_names[k], &e);
			goto out;
		}
	}
out:
	sdk_reply_free(&rp);
	return rc;
}

int sdk_ack_many(cueq_client *c, cueq_ack_item *items, size_t n, int64_t deadline,
                 struct sdk_cut *cut)
{
	return finish(c, ACK, items, n, deadline, cut);
}

int sdk_nack_many(cueq_client *c, cueq_nack_item *items, size_t n, int64_t deadline,
                  struct sdk_cut *cut)
{
	return finish(c, NACK, items, n, deadline, cut);
}

int sdk_extend_many(cueq_client *c, cueq_extend_item *items, size_t n, int64_t deadline,
                    struct sdk_cut *cut)
{
	return finish(c, EXTEND, items, n, deadline, cut);
}

int cueq_ack_many(cueq_client *c, cueq_ack_item *items, size_t n)
{
	return finish(c, ACK, items, n, 0, NULL);
}

int cueq_nack_many(cueq_client *c, cueq_nack_item *items, size_t n)
{
	return finish(c, NACK, items, n, 0, NULL);
}

int cueq_extend_many(cueq_client *c, cueq_extend_item *items, size_t n)
{
	return finish(c, EXTEND, items, n, 0, NULL);
}

int cueq_ack(cueq_client *c, const char *id, const char *token, const char *result)
{
	cueq_ack_item it = { .execution_id = id, .lease_token = token, .result = result };
	int rc = finish(c, ACK, &it, 1, 0, NULL);

	return rc != CUEQ_OK ? rc : it.err;
}

int cueq_nack(cueq_client *c, const char *id, const char *token, const char *error,
	      int64_t retry_in_ms, bool terminal, int *state_out)
{
	cueq_nack_item it = { .execution_id = id, .lease_token = token, .error = error,
			      .retry_in_ms = retry_in_ms, .terminal = terminal, .state = -1 };
	int rc = finish(c, NACK, &it, 1, 0, NULL);

	if (rc == CUEQ_OK)
		rc = it.err;
	if (rc == CUEQ_OK && state_out != NULL)
		*state_out = it.state;
	return rc;
}

int cueq_extend(cueq_client *c, const char *id, const char *token, int64_t lease_ms,
		int64_t *deadline_ms_out)
{
	cueq_extend_item it = { .execution_id = id, .lease_token = token, .lease_ms = lease_ms };
	int rc = finish(c, EXTEND, &it, 1, 0, NULL);

	if (rc == CUEQ_OK)
		rc = it.err;
	if (rc == CUEQ_OK && deadline_ms_out != NULL)
		*deadline_ms_out = it.lease_deadline_ms;
	return rc;
}
