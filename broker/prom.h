/*
 * prom.h - the metrics op's answer (PROTOCOL.md, "metrics") in the
 * Prometheus text exposition format 0.0.4, for GET /metrics.
 *
 * The HTTP face sends {op: "metrics"} to the core like any request and
 * renders the reply here, so the numbers are the op's and the core's
 * state is read on the core thread only.  Names are cueq_..., units in
 * the names (_seconds, _bytes, _total for counters), every family with
 * HELP and TYPE, histograms as cumulative _bucket{le=...}, _sum, _count.
 */
#ifndef CUEQ_PROM_H
#define CUEQ_PROM_H

#include <stddef.h>

/* What GET /metrics answers with. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The text for reply (len bytes: a whole reply of the metrics op),
 * NUL-terminated, *out_len bytes without the NUL; malloc'd, the caller
 * frees.  NULL when reply is not an ok answer of the metrics op (an error
 * reply: answer it as such) or when out of memory.  Any thread. */
char *prom_render(const void *reply, size_t len, size_t *out_len);

#endif /* CUEQ_PROM_H */
