/*
 * store.h - the broker's RocksDB storage, and nothing else knows RocksDB.
 *
 * Column families (keys are big-endian so they sort by number):
 *   exec     id(8)                  -> execution record (record.h)
 *   payload  id(8)                  -> payload bytes, written once
 *   active   id(8)                  -> "" while the execution is unfinished;
 *                                      start-up rebuilds memory from this only
 *   hist     id(8) seq(4)           -> history event (record.h)
 *   done     queue 0 state(1) id(8) -> "" for finished executions (list by state)
 *   expiry   finished_at(8) id(8)   -> queue 0 state(1): the retention sweep
 *   meta     name                   -> boot epoch, format version, counters
 *   idem     queue 0 key            -> idempotency record (record.h)
 *            0 'r' rid              -> a remembered request (ridstore.c)
 *   idemexp  expires_at(8) queue 0 key -> "": the idempotency sweep
 *            expires_at(8) 0 'r' rid
 *   unique   'k' queue 0 key        -> holder id(8), while it is unfinished
 *            'r' id(8)              -> queue 0 key (to free it at the end,
 *                                      and take it again on a retry; kept
 *                                      until retention deletes the execution)
 *   steps    id(8) name             -> step record (record.h)
 *   cues     id(8)                  -> recurring cue record (record.h), kept
 *                                      after its cancel
 *
 * Writes of the core thread gather in one pending batch per loop turn, which
 * reads and iterators already see, except in the families exec, active,
 * hist, done, expiry, idemexp and meta (see store.c): commit first to read those
 * with everything written so far; store_commit() writes it as one atomic
 * RocksDB write without sync, store_sync() (any thread) makes everything
 * written so far durable with one WAL fsync.  That split is the group
 * commit: the core keeps working while the sync runs.
 *
 * The failure rule (fail-stop, as PostgreSQL does on a failed fsync): the
 * first write or sync that fails makes the store failed for good.  Every
 * later commit and sync returns -1 at once without touching RocksDB, so
 * nothing written after a failure can be acknowledged, and the caller stops
 * the broker without answering the requests of the failed batch; restart
 * recovers from what is on disk.  A failed read changes nothing and is
 * answered UNAVAILABLE by the caller.
 *
 * Writes and syncs can be made to fail, or the process to die at them, for
 * tests: see fault.h (CUEQ_FAULT).
 */
#ifndef CUEQ_STORE_H
#define CUEQ_STORE_H

#ifndef CUEQ_EMBEDDED_ENGINE
#error "store.h is private to the embedded engine: outside it, use engine.h"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_cf {
	CF_DEFAULT,
	CF_EXEC,
	CF_PAYLOAD,
	CF_ACTIVE,
	CF_HIST,
	CF_DONE,
	CF_EXPIRY,
	CF_META,
	CF_IDEM,
	CF_IDEMEXP,
	CF_UNIQUE,
	CF_STEPS,
	CF_CUES,
	CF_COUNT
};

struct store;
struct store_iter;

/* Opens (creating) the database in dir, keeping at most max_open_files
 * table files open (0: RocksDB's default, unbounded).  On failure returns
 * -1 with a sentence in err. */
int store_open(const char *dir, int max_open_files, struct store **out, char *err, size_t errlen);
/* Closes; a pending batch is discarded (commit first). */
void store_close(struct store *s);

/* Add to the pending batch (core thread only).  Range deletes are not seen
 * by reads of the same turn: use them only for keys no request of the turn
 * reads (what retention deletes). */
void store_put(struct store *s, int cf, const void *k, size_t kl, const void *v, size_t vl);
void store_del(struct store *s, int cf, const void *k, size_t kl);
void store_del_range(struct store *s, int cf, const void *from, size_t fl, const void *to, size_t tl);
/* True when the pending batch holds anything. */
bool store_dirty(const struct store *s);
/* Writes the pending batch as one atomic write (no sync) and empties it.
 * 0, or -1 after logging why; -1 at once when the store has failed before,
 * even with nothing to write.  Without wait, while a sync is under way it
 * writes nothing and returns 1: the batch stays pending (and readable), to
 * go with a later commit. */
int store_commit(struct store *s, bool wait);
/* Syncs the WAL: everything committed before the call is durable after it.
 * Thread-safe.  0, or -1 after logging why (or when failed before). */
int store_sync(struct store *s);

/* Writes k=v synced, at once (start-up only). */
int store_put_now(struct store *s, int cf, const void *k, size_t kl, const void *v, size_t vl);

/* Reads k from the pending batch and what is committed.  Returns 1 found
 * (*v malloc'd, free with store_free), 0 absent, -1 error. */
int store_get(struct store *s, int cf, const void *k, size_t kl, char **v, size_t *vl);
void store_free(void *p);

/* Iterates cf over keys in [from, to) (to may be NULL: no upper bound),
 * the pending batch included.  The bounds are copied, and so is each entry:
 * key and value stay valid until the next step even when the batch is
 * written to meanwhile. */
struct store_iter *store_iter_new(struct store *s, int cf, const void *from, size_t fl,
				  const void *to, size_t tl);
bool store_iter_valid(struct store_iter *it);
void store_iter_next(struct store_iter *it);
/* Moves to the first key >= k (and >= from). */
void store_iter_seek(struct store_iter *it, const void *k, size_t kl);
const char *store_iter_key(struct store_iter *it, size_t *kl);
const char *store_iter_value(struct store_iter *it, size_t *vl);
/* 0 when the iteration ended because the range did, -1 (after logging
 * why) when a read failed: then what it returned is incomplete. */
int store_iter_status(struct store_iter *it);
void store_iter_free(struct store_iter *it);

/* RocksDB's estimate of the number of keys in cf (0 when unknown). */
size_t store_estimate_keys(struct store *s, int cf);

/* Figures RocksDB keeps of itself, for metrics: the first five of a
 * column family, the others of the whole database. */
enum store_figure {
	SF_MEMTABLE_BYTES,	       /* memtables, active and immutable */
	SF_SST_BYTES,		       /* table files, every version still referenced */
	SF_LIVE_BYTES,		       /* estimate of the live data */
	SF_KEYS,		       /* estimate of the keys */
	SF_PENDING_COMPACTION_BYTES,   /* estimate of what compactions have to rewrite */
	SF_RUNNING_COMPACTIONS,	       /* of the database from here on */
	SF_RUNNING_FLUSHES,
	SF_BLOCK_CACHE_BYTES,	       /* what the block cache holds */
	SF_BLOCK_CACHE_CAPACITY_BYTES,
	SF_COUNT
};
#define SF_PER_CF SF_RUNNING_COMPACTIONS
/* Figure f of cf (ignored for the database's own); 0 when RocksDB does
 * not know it.  Any thread; answers from RocksDB's memory. */
uint64_t store_figure(struct store *s, int cf, int f);
/* The name of column family cf ("exec"). */
const char *store_cf_name(int cf);

/* Big-endian helpers for keys. */
void store_be64(uint8_t *p, uint64_t v);
uint64_t store_get_be64(const uint8_t *p);
void store_be32(uint8_t *p, uint32_t v);
uint32_t store_get_be32(const uint8_t *p);

#endif /* CUEQ_STORE_H */
