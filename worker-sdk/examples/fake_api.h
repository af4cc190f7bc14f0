/*
 * fake_api.h - a stand-in for the third-party APIs an order-sync worker
 * calls (a CRM, a billing service, a mailer), kept in a directory so that a
 * test can count what really happened.
 *
 * It behaves like a real API that honours an Idempotency-Key header: the
 * first request with a key creates an object and answers its new ID; every
 * later request with that key answers the same ID and creates nothing; a
 * later request with the same key but another body is refused.  An object
 * of kind K with key KEY is the file DIR/K/KEY ("ID\nBODY\n"), created with
 * O_CREAT|O_EXCL; each real creation also appends the line
 * "ORDER KEY ID" to DIR/K.log, so counting lines counts real side effects.
 */
#ifndef CUEQ_EXAMPLE_FAKE_API_H
#define CUEQ_EXAMPLE_FAKE_API_H

#include <stdbool.h>
#include <stddef.h>

enum {
	FAKE_API_OK = 0,
	FAKE_API_ERROR = -1,	/* the store failed: retry later */
	FAKE_API_MISMATCH = -2, /* the key was used with another body */
};

/* Creates the object of kind (a directory name: "invoices") for key, or
 * finds the one created earlier with that key.  order goes into the log
 * line; body is the request (one line, no newline).  id[size] gets the
 * object's ID, *created whether this call made it (may be NULL).  On
 * failure err[errsize] gets a sentence. */
int fake_api_create(const char *dir, const char *kind, const char *key, const char *order,
		    const char *body, char *id, size_t size, bool *created, char *err,
		    size_t errsize);

#endif /* CUEQ_EXAMPLE_FAKE_API_H */
