/*
 * faults_conn.h - many connections at once, for the descriptor tests of
 * test_faults.c (faults_conn.c): raw connections that ping together, TCP
 * connections that stop at (or before) the SP handshake, and a number read
 * back from the broker's log.
 */
#ifndef CUEQ_TEST_FAULTS_CONN_H
#define CUEQ_TEST_FAULTS_CONN_H

#include <stdatomic.h>
#include <stddef.h>

#include "harness.h"

/* A raw connection that pings asynchronously, so that many wait at once. */
typedef struct fx_pinger {
	th_raw r;
	nng_aio *aio;
	int stage;	   /* 0 sending, 1 receiving */
	atomic_int result; /* 0 waiting, 1 answered ok, -1 failed */
} fx_pinger;

/* Opens n raw connections to url (fails the test), or closes them. */
void fx_open_all(fx_pinger *ps, size_t n, const char *url);
void fx_close_all(fx_pinger *ps, size_t n);
/* Pings on every connection at once: how many answered ok within
 * timeout_ms (what still waits then is cancelled). */
size_t fx_ping_all(fx_pinger *ps, size_t n, int timeout_ms);

/* A TCP connection to port that speaks only the SP handshake of a REQ
 * socket: 1 when the broker closes it within timeout_ms, 0 when it stays
 * open (closed before returning either way). */
int fx_sp_connect_closed(int port, int timeout_ms);
/* A bare TCP connection to port, nothing sent: its descriptor, or -1. */
int fx_bare_connect(int port);
/* The same without waiting for the connection (a broker that accepts no
 * more would leave a blocking connect waiting): a non-blocking socket
 * whose connect was started, or -1. */
int fx_bare_connect_start(int port);
/* 1 when the peer closed fd (EOF or reset) within timeout_ms, else 0. */
int fx_closed_within(int fd, int timeout_ms);

/* The number after the last occurrence of prefix in the broker's log
 * ("at most 160 connections"), or -1. */
long fx_log_number(const th_broker *b, const char *prefix);

#endif /* CUEQ_TEST_FAULTS_CONN_H */
