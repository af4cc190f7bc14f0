/*
 * fdgate.c - accept() and accept4() that refuse descriptors at or above a
 * gate (see fdgate.h).  They call the system call directly, so that they
 * replace the C library's (and a sanitizer's) for nng.
 */
#define _GNU_SOURCE /* accept4 */
#include "fdgate.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"

static atomic_int gate = INT_MAX;
static atomic_ullong refused;
static _Atomic int64_t warned_at = INT64_MIN / 2; /* monotonic ms */

void fdgate_set(int fd)
{
	atomic_store(&gate, fd);
}

static int gated(int fd)
{
	if (fd < 0 || fd < atomic_load_explicit(&gate, memory_order_relaxed))
		return fd;
	close(fd);
	unsigned long long n = atomic_fetch_add(&refused, 1) + 1;
	int64_t now = proto_mono_ms(), last = atomic_load(&warned_at);
	if (now - last >= 10000 && atomic_compare_exchange_strong(&warned_at, &last, now))
		log_warn("refusing connections: the descriptors left are the store's (%d and up); %llu refused so far (connections that have not finished their handshake count too)",
			 atomic_load(&gate), n);
	errno = ECONNABORTED;
	return -1;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return gated((int)syscall(SYS_accept4, fd, addr, len, flags));
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return gated((int)syscall(SYS_accept4, fd, addr, len, 0));
}
