/*
 * faults_kill.h - "kill at every write" (faults_kill.c): one request kind
 * at a time, the broker dies just before (or just after) its Kth write or
 * sync, for K = 1, 2, ... until the request completes, and every time the
 * execution must be wholly before or wholly after the request, and the
 * client's retry of the very same request must give one consistent answer.
 */
#ifndef CUEQ_TEST_FAULTS_KILL_H
#define CUEQ_TEST_FAULTS_KILL_H

#include "harness.h"

enum fx_kind {
	FK_ACK,	       /* ack of a leased execution */
	FK_NACK_DEAD,  /* nack terminal: dead */
	FK_NACK_RETRY, /* nack with retry_in_ms: scheduled */
	FK_PUSH,       /* push with an idempotency key and a unique key */
	FK_STEP,       /* step_set under the live lease */
	FK_EXTEND,     /* extend of the live lease */
	FK_RETENTION,  /* the retention sweep deleting a finished execution */
	FK_CANCEL,     /* an operator's cancel of a leased execution */
	FK_RETRY,      /* an operator's retry of a dead execution */
	FK_PURGE,      /* an operator's purge of a queue's dead executions */
};

/* The highest K tried: a request that has not completed by then fails. */
#define FX_MAX_K 8

/* Runs the loop for kind with CUEQ_FAULT=POINT:K:ACTION (point "write" or
 * "sync", action "exit" or "exit-after") on b (zero-filled or cleaned;
 * left stopped).  Returns the K at which the request completed without the
 * broker dying; fails the test on any inconsistency. */
int fx_kill_loop(th_broker *b, enum fx_kind kind, const char *point, const char *action);

#endif /* CUEQ_TEST_FAULTS_KILL_H */
