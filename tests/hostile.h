/*
 * hostile.h - what the hostile-input test files share: the context with the
 * raw connection and the pre-existing jobs, and hostile_expect(), which
 * sends one frame and checks the answer, recording (not aborting on) each
 * case that is not answered as specified.
 */
#ifndef CUEQ_HOSTILE_H
#define CUEQ_HOSTILE_H

#include "harness.h"

#define F_ITEM 1      /* the error may be in results[0] of an ok reply */
#define F_MAY_CLOSE 2 /* no reply at all is acceptable */
#define F_NO_RID 4    /* the rid need not be echoed */

typedef struct ctx {
	th_broker *b;
	th_raw r;
	size_t cases, failures;
	/* In queue "pre": a leased job (id, token) and a ready one. */
	char pre_id[PROTO_ID_LEN + 1], pre_tok[PROTO_ID_LEN + 1], ready_id[PROTO_ID_LEN + 1];
} ctx;

/* Records a failed case with a line on stderr. */
void hostile_failed(ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends one frame; expects ok=false (or, with F_ITEM, results[0].ok=false)
 * with err c1 (or c2 when not NULL) and a msg, and the rid echoed when rid
 * is not NULL (unless F_NO_RID).  With F_MAY_CLOSE no reply is fine. */
void hostile_expect(ctx *x, const char *what, const void *buf, size_t len, const char *rid,
		    int flags, const char *c1, const char *c2);
/* The same for a built request (freed here). */
void hostile_expect_req(ctx *x, const char *what, th_req *q, int flags, const char *c1,
			const char *c2);
/* th_req_begin that fails the test when it cannot. */
msgpack_packer *hostile_begin(th_req *q, const char *op, size_t n);

/* The groups of cases (hostile_frames.c, hostile_fields.c, hostile_ops.c,
 * hostile_ops2.c). */
void hostile_framing(ctx *x);
void hostile_random(ctx *x);
void hostile_sizes(ctx *x);
void hostile_headers(ctx *x);
void hostile_push(ctx *x);
void hostile_claim(ctx *x);
void hostile_finish(ctx *x);
void hostile_inspect(ctx *x);
void hostile_operate(ctx *x); /* hostile_ops.c */
void hostile_ops2(ctx *x);    /* hostile_ops2.c: every field of the other ops, the envelope */
/* The auth field, against a broker started with --auth; x->pre_id is an
 * execution there, producer a producer's token. */
void hostile_auth(ctx *x, const char *producer);

#endif /* CUEQ_HOSTILE_H */
