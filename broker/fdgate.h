/*
 * fdgate.h - accepted connections keep out of the store's descriptors.
 *
 * --max-connections counts connections once nng has finished their SP
 * handshake, but each TCP or IPC connection takes a descriptor as soon as
 * it is accepted, and nng 1.5.2 gives a connection 10 s to handshake (an
 * idle one holds its descriptor that long; one that sends a byte now and
 * then, longer), without any bound on how many may be at it.  A client
 * that opened sockets without handshaking took every descriptor, and
 * RocksDB, failing to open its next WAL, stopped the broker (status 2).
 *
 * So cueqd defines accept() and accept4(), which nng calls: a connection
 * accepted on a descriptor at or above the gate is closed at once
 * (ECONNABORTED, which nng skips).  Descriptors are given lowest first, so
 * one at the gate means every one below is taken: connections, handshaked
 * or not, never take the ones above it, which stay for the store.
 */
#ifndef CUEQ_FDGATE_H
#define CUEQ_FDGATE_H

/* Accepted connections get descriptors below fd only (INT_MAX: any). */
void fdgate_set(int fd);

#endif
