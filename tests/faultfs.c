/*
 * faultfs.c - a preloaded library that makes the broker's file writes and
 * syncs fail as a full or broken disk would, below RocksDB: the storage
 * fault hook (broker/fault.c) fails our calls into the store, this fails
 * the system calls RocksDB itself makes, so its own error paths run.
 *
 * Loaded with LD_PRELOAD by test_faults only.  Configured by environment:
 *   CUEQ_FAULTFS_MATCH  substring of the file's path ("" or unset: any
 *                       regular file), e.g. ".log" for the WAL, ".sst"
 *   CUEQ_FAULTFS_ERRNO  ENOSPC (default), EIO or EMFILE
 *   CUEQ_FAULTFS_ARM    a path: faults happen only while that file exists,
 *                       so a test turns the fault on and off at run time
 *   CUEQ_FAULTFS_OPS    write, sync or all (default): which calls fail
 * write, pwrite, writev, pwritev, fsync, fdatasync and sync_file_range (but
 * not its no-op probe) on a matching file fail with that errno while armed;
 * nothing else changes.  The standard streams (descriptors 0-2) never fail:
 * they are the broker's log (a test's broker.log, which ".log" would match
 * too), and the log must say what failed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h> /* sync_file_range */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int fault_errno(void)
{
	const char *e = getenv("CUEQ_FAULTFS_ERRNO");
	if (e && strcmp(e, "EIO") == 0)
		return EIO;
	if (e && strcmp(e, "EMFILE") == 0)
		return EMFILE;
	return ENOSPC;
}

enum { OP_WRITE = 1, OP_SYNC = 2 };

/* True when a call (op) on fd must fail now; saves and restores errno. */
static int hit(int fd, int op)
{
	int saved = errno;
	const char *arm = getenv("CUEQ_FAULTFS_ARM"), *match = getenv("CUEQ_FAULTFS_MATCH");
	const char *ops = getenv("CUEQ_FAULTFS_OPS");
	struct stat st;
	char link[64], path[PATH_MAX];
	int rc = 0;

	if (ops && strcmp(ops, "write") == 0 && op != OP_WRITE)
		goto out;
	if (ops && strcmp(ops, "sync") == 0 && op != OP_SYNC)
		goto out;
	if (fd <= 2 || arm == NULL || stat(arm, &st) != 0)
		goto out;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		goto out;
	path[n] = '\0';
	rc = match == NULL || *match == '\0' || strstr(path, match) != NULL;
out:
	errno = saved;
	return rc;
}

/* The next definition of name (libc's), looked up once. */
#define REAL(ret, name, args) \
	static ret(*real_##name) args; \
	if (real_##name == NULL) \
		*(void **)&real_##name = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n)
{
	REAL(ssize_t, write, (int, const void *, size_t));
	if (hit(fd, OP_WRITE)) {
		errno = fault_errno();
		return -1;
	}
	return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	REAL(ssize_t, pwrite, (int, const void *, size_t, off_t));
	if (hit(fd, OP_WRITE)) {
		errno = fault_errno();
		return -1;
	}
	return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	REAL(ssize_t, pwrite64, (int, const void *, size_t, off_t));
	if (hit(fd, OP_WRITE)) {
		errno = fault_errno();
		return -1;
	}
	return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	REAL(ssize_t, writev, (int, const struct iovec *, int));
	if (hit(fd, OP_WRITE)) {
		errno = fault_errno();
		return -1;
	}
	return real_writev(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	REAL(ssize_t, pwritev, (int, const struct iovec *, int, off_t));
	if (hit(fd, OP_WRITE)) {
		errno = fault_errno();
		return -1;
	}
	return real_pwritev(fd, iov, cnt, off);
}

int fsync(int fd)
{
	REAL(int, fsync, (int));
	if (hit(fd, OP_SYNC)) {
		errno = fault_errno() == ENOSPC ? ENOSPC : EIO;
		return -1;
	}
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(int, fdatasync, (int));
	if (hit(fd, OP_SYNC)) {
		errno = fault_errno() == ENOSPC ? ENOSPC : EIO;
		return -1;
	}
	return real_fdatasync(fd);
}

int sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
	REAL(int, sync_file_range, (int, off_t, off_t, unsigned int));
	/* flags 0 is RocksDB's probe for support, which does no I/O */
	if (flags != 0 && hit(fd, OP_SYNC)) {
		errno = EIO;
		return -1;
	}
	return real_sync_file_range(fd, off, n, flags);
}
