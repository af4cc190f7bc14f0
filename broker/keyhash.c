/*
 * keyhash.c - SipHash-2-4 under a random key of the process (keyhash.h).
 */
#include "keyhash.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static unsigned char key[crypto_shorthash_KEYBYTES];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ready = -1;

static void make_key(void)
{
	if (sodium_init() < 0) {
		log_error("cannot start libsodium: no randomness for the hash key");
		return;
	}
	crypto_shorthash_keygen(key);
	ready = 0;
}

int keyhash_init(void)
{
	pthread_once(&once, make_key);
	return ready;
}

uint64_t keyhash(const void *p, size_t n)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;
	if (keyhash_init() != 0)
		abort(); /* keyhash_init is checked at start: cannot happen */
	crypto_shorthash(out, p, n, key);
	memcpy(&h, out, sizeof(h));
	return h;
}
