/*
 * sync.c - waiting on the monotonic clock, and random bytes for request IDs.
 *
 * Every deadline in the SDK is a proto_mono_ms() time, so condition
 * variables are set to CLOCK_MONOTONIC: a wall-clock jump must not stretch
 * or cut a wait.
 */
#include "sdk.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int sdk_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	int rc;

	if (pthread_condattr_init(&a) != 0)
		return -1;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	rc = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return rc == 0 ? 0 : -1;
}

void sdk_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline)
{
	struct timespec ts;

	if (deadline <= 0) {
		pthread_cond_wait(cv, mu);
		return;
	}
	ts.tv_sec = (time_t)(deadline / 1000);
	ts.tv_nsec = (long)(deadline % 1000) * 1000000L;
	pthread_cond_timedwait(cv, mu, &ts);
}

void sdk_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* splitmix64: the last resort when the kernel gives no randomness. */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void sdk_random(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom(p + got, n - got, 0);
		if (r > 0)
			got += (size_t)r;
		else if (r < 0 && errno == EINTR)
			continue;
		else
			break;
	}
	if (got < n) {
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			while (got < n) {
				ssize_t r = read(fd, p + got, n - got);
				if (r > 0)
					got += (size_t)r;
				else if (!(r < 0 && errno == EINTR))
					break;
			}
			close(fd);
		}
	}
	if (got < n) {
		struct timespec ts;
		static _Thread_local uint64_t state;
		clock_gettime(CLOCK_REALTIME, &ts);
		state ^= (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid() ^
			 (uint64_t)(uintptr_t)&state;
		for (; got < n; got++)
			p[got] = (uint8_t)mix(&state);
	}
}
