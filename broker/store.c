/*
 * store.c - RocksDB behind the store.h interface.
 *
 * Tuned for a queue: small memtables (the broker's memory must follow the
 * pending work, not the write rate), LZ4, and the compact-on-deletion
 * collector because a queue deletes from the front constantly.  Debian's
 * RocksDB keeps its assertions on, so every iterator and column-family
 * handle is destroyed before the database closes.
 *
 * The turn's writes gather in a WriteBatchWithIndex, so reads and iterators
 * see them before they are written: nothing is ever written in the middle
 * of a turn, and one request can never be split over two writes.  Two kinds
 * of writes are kept aside and appended to the same write at commit: range
 * deletes (which that batch does not take), and the writes of the column
 * families that the hot requests never read (WRITE_ONLY below), which so
 * skip the cost of the batch's index.  Those families are read only at
 * start-up; by the retention and key sweeps, which keep their cursor in
 * memory, so an entry not yet written is only seen by a later sweep (they
 * are recent, never due yet); or by get, list, steps and the answer to a
 * late lease token (the execution record: memory holds every live one),
 * which first write the turn so far (emb_settle, before their request
 * changed anything: the requests before them are whole, so no request is
 * split).
 *
 * Failure is sticky (see store.h): after the first failed write or sync,
 * RocksDB is never written or synced again by this process.  That is also
 * what keeps RocksDB's own assertions out of reach: a WAL file writer that
 * saw a failed append asserts when it is synced afterwards (or appended to,
 * or anything is logged to the info log after a failed append to it).
 * Writes and syncs take turns under one mutex, so RocksDB never sees a
 * write racing a sync that fails, nor a sync after a write that failed.
 * (Letting writes overlap syncs once left the broker hung under ASan, when
 * a write raced a failing fdatasync.)  The core does not wait for the
 * syncer's sync, though: a commit that finds a sync under way leaves the
 * batch pending, and the next turn's writes join it (store_commit without
 * wait).
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"

static const char *const cf_names[CF_COUNT] = {
	"default", "exec", "payload", "active", "hist", "done", "expiry", "meta",
	"idem",	   "idemexp", "unique", "steps", "cues",
};

struct store {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_block_based_table_options_t *table;
	rocksdb_cache_t *cache;
	rocksdb_column_family_handle_t *cf[CF_COUNT];
	rocksdb_writeoptions_t *wopts;
	rocksdb_writeoptions_t *wopts_sync;
	rocksdb_readoptions_t *ropts;
	rocksdb_writebatch_wi_t *batch; /* this turn's writes, readable */
	struct range *ranges;		/* this turn's range deletes */
	size_t n_ranges, cap_ranges;
	char *aside;	      /* this turn's writes to WRITE_ONLY families */
	size_t aside_len, aside_cap;
	pthread_mutex_t io; /* one write or sync at a time; guards failed */
	bool failed;	    /* a write or sync failed: never write again */
	struct fault *fault;
};

/* Families no request reads back within the turn that wrote them. */
static const bool WRITE_ONLY[CF_COUNT] = {
	[CF_EXEC] = true,   [CF_ACTIVE] = true,	 [CF_HIST] = true,   [CF_DONE] = true,
	[CF_EXPIRY] = true, [CF_IDEMEXP] = true, [CF_META] = true,
};

/* An aside record: cf(1) op(1) klen(4) vlen(4) key value. */
#define ASIDE_HDR 10

struct range {
	int cf;
	char *from, *to;
	size_t fl, tl;
};

struct store_iter {
	rocksdb_iterator_t *it;
	rocksdb_readoptions_t *ro;
	char *lo, *hi; /* RocksDB keeps pointers to the bounds */
	size_t ll, hl;
	char *k, *v; /* copies of the current entry: writes to the batch */
	size_t kl, vl, kcap, vcap; /* may move what the iterator points at */
	bool valid;
};

void store_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint64_t store_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void store_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint32_t store_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static char *dup_bytes(const void *p, size_t n)
{
	char *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, p, n);
	return d;
}

static int grow(char **p, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	char *n = realloc(*p, c);
	if (n == NULL)
		return -1;
	*p = n, *cap = c;
	return 0;
}

static void clear_ranges(struct store *s)
{
	for (size_t i = 0; i < s->n_ranges; i++) {
		free(s->ranges[i].from);
		free(s->ranges[i].to);
	}
	s->n_ranges = 0;
}

static int take_err(char *rerr, const char *what, char *err, size_t errlen)
{
	if (rerr == NULL)
		return 0;
	if (err)
		snprintf(err, errlen, "%s: %s", what, rerr);
	else
		log_error("storage: %s: %s", what, rerr);
	free(rerr);
	return -1;
}

/* Writes and syncs a small file in dir (created if missing) and removes
 * it: a disk that is full or failing is refused here with a clear line,
 * before RocksDB's open writes its LOG header, whose writer would assert at
 * the line after a failed append.  0, or -1 with a sentence in err. */
static int probe_dir(const char *dir, char *err, size_t errlen)
{
	char path[4096], block[4096] = {0};
	int fd, e = 0;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create the data directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (snprintf(path, sizeof(path), "%s/.cueq-probe", dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "the data directory's path is too long");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) ||
	    fdatasync(fd) != 0)
		e = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	unlink(path);
	if (e != 0) {
		snprintf(err, errlen,
			 "cannot write to the data directory %s: %s; free space or fix the disk, then start cueqd again",
			 dir, strerror(e));
		return -1;
	}
	return 0;
}

int store_open(const char *dir, int max_open_files, struct store **out, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	char *rerr = NULL;
	const rocksdb_options_t *cf_opts[CF_COUNT];

	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&s->io, NULL);
	if (probe_dir(dir, err, errlen) != 0 ||
	    fault_parse(getenv("CUEQ_FAULT"), &s->fault, err, errlen) != 0) {
		pthread_mutex_destroy(&s->io);
		free(s);
		return -1;
	}
	if (s->fault)
		log_warn("storage fault injection is on (CUEQ_FAULT=%s): for tests only", getenv("CUEQ_FAULT"));
	s->opts = rocksdb_options_create();
	/* the table cache is bounded so that client connections can never
	 * take the descriptors the store needs (main.c reserves them) */
	if (max_open_files > 0)
		rocksdb_options_set_max_open_files(s->opts, max_open_files);
	rocksdb_options_set_create_if_missing(s->opts, 1);
	rocksdb_options_set_create_missing_column_families(s->opts, 1);
	/* What the WAL replays at open is written to synced table files
	 * before the store is used: RocksDB's default (avoid_flush_during_
	 * recovery false, which its C API cannot change), said here because
	 * the engine counts on it: everything recovered is durable (the
	 * early claim answers, embedded.c). */
	rocksdb_options_increase_parallelism(s->opts, 2);
	rocksdb_options_set_write_buffer_size(s->opts, 4u << 20);
	rocksdb_options_set_max_write_buffer_number(s->opts, 2);
	rocksdb_options_set_db_write_buffer_size(s->opts, 8u << 20);
	rocksdb_options_set_compression(s->opts, rocksdb_lz4_compression);
	/* RocksDB's own info log (LOG) keeps only its header, written at open:
	 * on a full or failing disk its writer asserts (Debian's build aborts)
	 * at the next message after a failed append, which is exactly when the
	 * WAL write fails too.  Our log says what failed instead: every RocksDB
	 * error comes back to us with its text. */
	rocksdb_options_set_info_log_level(s->opts, 5 /* HEADER_LEVEL */);
	rocksdb_options_set_keep_log_file_num(s->opts, 4);
	rocksdb_options_set_max_log_file_size(s->opts, 8u << 20);
	rocksdb_options_add_compact_on_deletion_collector_factory(s->opts, 10000, 5000);
	s->cache = rocksdb_cache_create_lru(16u << 20);
	s->table = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(s->table, s->cache);
	/* Key lookups (idempotency, unique keys) mostly miss: bloom filters
	 * (about 1.25 bytes a key) answer those without reading data blocks. */
	rocksdb_block_based_options_set_filter_policy(s->table, rocksdb_filterpolicy_create_bloom(10));
	rocksdb_options_set_block_based_table_factory(s->opts, s->table);
	for (int i = 0; i < CF_COUNT; i++)
		cf_opts[i] = s->opts;

	/* Open every column family there is (list them first), creating ours. */
	size_t n_existing = 0;
	char **existing = rocksdb_list_column_families(s->opts, dir, &n_existing, &rerr);
	free(rerr); /* a new directory has none: not an error */
	rerr = NULL;
	size_t n_total = CF_COUNT;
	const char **names = calloc(CF_COUNT + n_existing, sizeof(char *));
	const rocksdb_options_t **opts_all = calloc(CF_COUNT + n_existing, sizeof(void *));
	rocksdb_column_family_handle_t **handles =
		calloc(CF_COUNT + n_existing, sizeof(rocksdb_column_family_handle_t *));
	if (names == NULL || opts_all == NULL || handles == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < CF_COUNT; i++)
		names[i] = cf_names[i], opts_all[i] = cf_opts[i];
	for (size_t i = 0; i < n_existing; i++) {
		bool ours = false;
		for (int j = 0; j < CF_COUNT; j++)
			ours |= strcmp(existing[i], cf_names[j]) == 0;
		if (!ours)
			names[n_total] = existing[i], opts_all[n_total++] = s->opts;
	}
	s->db = rocksdb_open_column_families(s->opts, dir, (int)n_total, names, opts_all, handles,
					     &rerr);
	if (take_err(rerr, "cannot open the RocksDB database", err, errlen) != 0)
		goto fail;
	for (int i = 0; i < CF_COUNT; i++)
		s->cf[i] = handles[i];
	for (size_t i = CF_COUNT; i < n_total; i++)
		rocksdb_column_family_handle_destroy(handles[i]);
	free(names), free(opts_all), free(handles);
	if (existing)
		rocksdb_list_column_families_destroy(existing, n_existing);

	s->wopts = rocksdb_writeoptions_create();
	s->wopts_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(s->wopts_sync, 1);
	s->ropts = rocksdb_readoptions_create();
	s->batch = rocksdb_writebatch_wi_create(0, 1);
	*out = s;
	return 0;
fail:
	free(names), free(opts_all), free(handles);
	if (existing)
		rocksdb_list_column_families_destroy(existing, n_existing);
	store_close(s);
	return -1;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->batch)
		rocksdb_writebatch_wi_destroy(s->batch);
	clear_ranges(s);
	free(s->ranges);
	for (int i = 0; i < CF_COUNT; i++)
		if (s->cf[i])
			rocksdb_column_family_handle_destroy(s->cf[i]);
	if (s->db)
		rocksdb_close(s->db);
	if (s->wopts)
		rocksdb_writeoptions_destroy(s->wopts);
	if (s->wopts_sync)
		rocksdb_writeoptions_destroy(s->wopts_sync);
	if (s->ropts)
		rocksdb_readoptions_destroy(s->ropts);
	if (s->opts)
		rocksdb_options_destroy(s->opts);
	if (s->table)
		rocksdb_block_based_options_destroy(s->table);
	if (s->cache)
		rocksdb_cache_destroy(s->cache);
	fault_free(s->fault);
	free(s->aside);
	pthread_mutex_destroy(&s->io);
	free(s);
}

static void put_aside(struct store *s, int cf, char op, const void *k, size_t kl, const void *v,
		      size_t vl)
{
	size_t need = s->aside_len + ASIDE_HDR + kl + vl;
	if (need > s->aside_cap && grow(&s->aside, &s->aside_cap, need) != 0) {
		log_error("out of memory in the store; stopping without committing this turn");
		abort();
	}
	char *p = s->aside + s->aside_len;
	uint32_t k32 = (uint32_t)kl, v32 = (uint32_t)vl;
	p[0] = (char)cf;
	p[1] = op;
	memcpy(p + 2, &k32, 4);
	memcpy(p + 6, &v32, 4);
	memcpy(p + ASIDE_HDR, k, kl);
	if (vl)
		memcpy(p + ASIDE_HDR + kl, v, vl);
	s->aside_len = need;
}

void store_put(struct store *s, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
	if (WRITE_ONLY[cf])
		put_aside(s, cf, 'p', k, kl, v, vl);
	else
		rocksdb_writebatch_wi_put_cf(s->batch, s->cf[cf], k, kl, v, vl);
}

void store_del(struct store *s, int cf, const void *k, size_t kl)
{
	if (WRITE_ONLY[cf])
		put_aside(s, cf, 'd', k, kl, NULL, 0);
	else
		rocksdb_writebatch_wi_delete_cf(s->batch, s->cf[cf], k, kl);
}

void store_del_range(struct store *s, int cf, const void *from, size_t fl, const void *to, size_t tl)
{
	if (s->n_ranges == s->cap_ranges) {
		size_t cap = s->cap_ranges ? s->cap_ranges * 2 : 64;
		struct range *r = realloc(s->ranges, cap * sizeof(*r));
		if (r == NULL)
			goto oom;
		s->ranges = r, s->cap_ranges = cap;
	}
	struct range *r = &s->ranges[s->n_ranges];
	r->cf = cf, r->fl = fl, r->tl = tl;
	r->from = dup_bytes(from, fl);
	r->to = dup_bytes(to, tl);
	if (r->from == NULL || r->to == NULL)
		goto oom;
	s->n_ranges++;
	return;
oom:
	log_error("out of memory in the store; stopping without committing this turn");
	abort();
}

bool store_dirty(const struct store *s)
{
	return rocksdb_writebatch_wi_count(s->batch) > 0 || s->n_ranges > 0 || s->aside_len > 0;
}

/* The batch, with what was kept aside appended: one atomic write. */
static void write_batch(struct store *s, char **rerr)
{
	if (s->n_ranges == 0 && s->aside_len == 0) {
		rocksdb_write_writebatch_wi(s->db, s->wopts, s->batch, rerr);
		return;
	}
	size_t n;
	const char *rep = rocksdb_writebatch_wi_data(s->batch, &n);
	rocksdb_writebatch_t *b = rocksdb_writebatch_create_from(rep, n);
	for (size_t off = 0; off < s->aside_len;) {
		const char *p = s->aside + off;
		uint32_t kl, vl;
		memcpy(&kl, p + 2, 4);
		memcpy(&vl, p + 6, 4);
		rocksdb_column_family_handle_t *cf = s->cf[(unsigned char)p[0]];
		if (p[1] == 'p')
			rocksdb_writebatch_put_cf(b, cf, p + ASIDE_HDR, kl, p + ASIDE_HDR + kl, vl);
		else
			rocksdb_writebatch_delete_cf(b, cf, p + ASIDE_HDR, kl);
		off += ASIDE_HDR + kl + vl;
	}
	for (size_t i = 0; i < s->n_ranges; i++) {
		const struct range *r = &s->ranges[i];
		rocksdb_writebatch_delete_range_cf(b, s->cf[r->cf], r->from, r->fl, r->to, r->tl);
	}
	rocksdb_write(s->db, s->wopts, b, rerr);
	rocksdb_writebatch_destroy(b);
}

int store_commit(struct store *s, bool wait)
{
	char *rerr = NULL;
	int rc = 0;

	if (wait)
		pthread_mutex_lock(&s->io);
	else if (pthread_mutex_trylock(&s->io) != 0)
		return 1; /* a sync is under way: the batch waits for it */
	if (s->failed) {
		rc = -1;
	} else if (store_dirty(s)) {
		enum fault_verdict f = fault_check(s->fault, FAULT_WRITE);
		if (f == FAULT_FAIL) {
			log_error("storage: write failed: injected I/O error (CUEQ_FAULT)");
			rc = -1;
		} else {
			write_batch(s, &rerr);
			if (rerr == NULL && f == FAULT_EXIT_AFTER)
				fault_die();
			rc = take_err(rerr, "write failed", NULL, 0);
		}
		s->failed = rc != 0;
	}
	pthread_mutex_unlock(&s->io);
	rocksdb_writebatch_wi_clear(s->batch);
	clear_ranges(s);
	s->aside_len = 0;
	return rc;
}

int store_sync(struct store *s)
{
	char *rerr = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->io);
	if (!s->failed) {
		enum fault_verdict f = fault_check(s->fault, FAULT_SYNC);
		if (f == FAULT_FAIL) {
			log_error("storage: WAL sync failed: injected I/O error (CUEQ_FAULT)");
			rc = -1;
		} else {
			rocksdb_flush_wal(s->db, 1, &rerr);
			if (rerr == NULL && f == FAULT_EXIT_AFTER)
				fault_die();
			rc = take_err(rerr, "WAL sync failed", NULL, 0);
		}
		s->failed = rc != 0;
	}
	pthread_mutex_unlock(&s->io);
	return rc;
}

int store_put_now(struct store *s, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
	char *rerr = NULL;
	rocksdb_put_cf(s->db, s->wopts_sync, s->cf[cf], k, kl, v, vl, &rerr);
	if (rerr)
		s->failed = true;
	return take_err(rerr, "synced write failed", NULL, 0);
}

int store_get(struct store *s, int cf, const void *k, size_t kl, char **v, size_t *vl)
{
	char *rerr = NULL;
	*v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(s->batch, s->db, s->ropts, s->cf[cf], k,
							      kl, vl, &rerr);
	if (take_err(rerr, "read failed", NULL, 0) != 0)
		return -1;
	return *v != NULL;
}

size_t store_estimate_keys(struct store *s, int cf)
{
	char *v = rocksdb_property_value_cf(s->db, s->cf[cf], "rocksdb.estimate-num-keys");
	size_t n = v != NULL ? (size_t)strtoull(v, NULL, 10) : 0;
	rocksdb_free(v);
	return n;
}

uint64_t store_figure(struct store *s, int cf, int f)
{
	static const char *const props[SF_COUNT] = {
		[SF_MEMTABLE_BYTES] = "rocksdb.cur-size-all-mem-tables",
		[SF_SST_BYTES] = "rocksdb.total-sst-files-size",
		[SF_LIVE_BYTES] = "rocksdb.estimate-live-data-size",
		[SF_KEYS] = "rocksdb.estimate-num-keys",
		[SF_PENDING_COMPACTION_BYTES] = "rocksdb.estimate-pending-compaction-bytes",
		[SF_RUNNING_COMPACTIONS] = "rocksdb.num-running-compactions",
		[SF_RUNNING_FLUSHES] = "rocksdb.num-running-flushes",
	};
	uint64_t v = 0;
	if (f == SF_BLOCK_CACHE_BYTES)
		return rocksdb_cache_get_usage(s->cache);
	if (f == SF_BLOCK_CACHE_CAPACITY_BYTES)
		return rocksdb_cache_get_capacity(s->cache);
	if (f < 0 || f >= SF_COUNT || props[f] == NULL)
		return 0;
	if (f < SF_PER_CF && cf >= 0 && cf < CF_COUNT)
		return rocksdb_property_int_cf(s->db, s->cf[cf], props[f], &v) == 0 ? v : 0;
	return rocksdb_property_int(s->db, props[f], &v) == 0 ? v : 0;
}

const char *store_cf_name(int cf)
{
	return cf >= 0 && cf < CF_COUNT ? cf_names[cf] : "unknown";
}

void store_free(void *p)
{
	rocksdb_free(p);
}

/* Copies the entry the iterator is at (or marks it done past hi: the
 * batch's part of the iterator does not honour the upper bound). */
static void iter_load(struct store_iter *it)
{
	size_t kl, vl;
	const char *k, *v;
	it->valid = false;
	if (!rocksdb_iter_valid(it->it))
		return;
	k = rocksdb_iter_key(it->it, &kl);
	if (it->hi) {
		size_t m = kl < it->hl ? kl : it->hl;
		int c = memcmp(k, it->hi, m);
		if (c > 0 || (c == 0 && kl >= it->hl))
			return;
	}
	v = rocksdb_iter_value(it->it, &vl);
	if ((kl > it->kcap && grow(&it->k, &it->kcap, kl) != 0) ||
	    (vl > it->vcap && grow(&it->v, &it->vcap, vl) != 0)) {
		log_error("out of memory in the store; stopping without committing this turn");
		abort();
	}
	memcpy(it->k, k, kl);
	if (vl)
		memcpy(it->v, v, vl);
	it->kl = kl, it->vl = vl;
	it->valid = true;
}

struct store_iter *store_iter_new(struct store *s, int cf, const void *from, size_t fl,
				  const void *to, size_t tl)
{
	struct store_iter *it = calloc(1, sizeof(*it));
	if (it == NULL)
		return NULL;
	it->ro = rocksdb_readoptions_create();
	it->lo = dup_bytes(from, fl);
	it->ll = fl;
	if (to)
		it->hi = dup_bytes(to, tl), it->hl = tl;
	if (it->lo == NULL || (to && it->hi == NULL) || grow(&it->k, &it->kcap, 64) != 0 ||
	    grow(&it->v, &it->vcap, 64) != 0) {
		store_iter_free(it);
		return NULL;
	}
	rocksdb_readoptions_set_iterate_lower_bound(it->ro, it->lo, fl);
	if (to)
		rocksdb_readoptions_set_iterate_upper_bound(it->ro, it->hi, tl);
	/* scans of a whole family (start-up reads a million entries) read
	 * through the block cache without filling it */
	rocksdb_readoptions_set_fill_cache(it->ro, 0);
	rocksdb_iterator_t *base = rocksdb_create_iterator_cf(s->db, it->ro, s->cf[cf]);
	if (WRITE_ONLY[cf]) /* never in the indexed batch: nothing to merge */
		it->it = base;
	else /* takes base over: destroying it->it destroys both */
		it->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(s->batch, base, s->cf[cf]);
	rocksdb_iter_seek(it->it, it->lo, fl);
	iter_load(it);
	return it;
}

bool store_iter_valid(struct store_iter *it)
{
	return it->valid;
}

void store_iter_next(struct store_iter *it)
{
	rocksdb_iter_next(it->it);
	iter_load(it);
}

void store_iter_seek(struct store_iter *it, const void *k, size_t kl)
{
	size_t m = kl < it->ll ? kl : it->ll;
	int c = memcmp(k, it->lo, m);
	if (c < 0 || (c == 0 && kl < it->ll))
		rocksdb_iter_seek(it->it, it->lo, it->ll);
	else
		rocksdb_iter_seek(it->it, k, kl);
	iter_load(it);
}

const char *store_iter_key(struct store_iter *it, size_t *kl)
{
	*kl = it->kl;
	return it->k;
}

const char *store_iter_value(struct store_iter *it, size_t *vl)
{
	*vl = it->vl;
	return it->v;
}

int store_iter_status(struct store_iter *it)
{
	char *rerr = NULL;
	rocksdb_iter_get_error(it->it, &rerr);
	return take_err(rerr, "read (iteration) failed", NULL, 0);
}

void store_iter_free(struct store_iter *it)
{
	if (it == NULL)
		return;
	if (it->it)
		rocksdb_iter_destroy(it->it);
	if (it->ro)
		rocksdb_readoptions_destroy(it->ro);
	free(it->lo);
	free(it->hi);
	free(it->k);
	free(it->v);
	free(it);
}
