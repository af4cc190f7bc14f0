/*
 * store.c - RocksDB behind the store.h interface.
 *
 * Tuned for a queue: small memtables (the broker's memory must follow the
 * pending work, not the write rate), LZ4, and the compact-on-deletion
 * collector because a queue deletes from the front constantly.  Debian's
 * RocksDB keeps its assertions on, so every iterator and column-family
 * handle is destroyed before the database closes.
 */
#include "store.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *const cf_names[CF_COUNT] = {
	"default", "exec", "payload", "active", "hist", "done", "expiry", "meta",
	"idem",	   "idemexp", "unique", "steps",
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
	rocksdb_writebatch_t *batch;
};

struct store_iter {
	rocksdb_iterator_t *it;
	rocksdb_readoptions_t *ro;
	char *lo, *hi; /* RocksDB keeps pointers to the bounds */
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

int store_open(const char *dir, struct store **out, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	char *rerr = NULL;
	const rocksdb_options_t *cf_opts[CF_COUNT];

	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(s->opts, 1);
	rocksdb_options_set_create_missing_column_families(s->opts, 1);
	rocksdb_options_increase_parallelism(s->opts, 2);
	rocksdb_options_set_write_buffer_size(s->opts, 4u << 20);
	rocksdb_options_set_max_write_buffer_number(s->opts, 2);
	rocksdb_options_set_db_write_buffer_size(s->opts, 8u << 20);
	rocksdb_options_set_compression(s->opts, rocksdb_lz4_compression);
	rocksdb_options_set_info_log_level(s->opts, 2 /* WARN */);
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
	s->batch = rocksdb_writebatch_create();
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
		rocksdb_writebatch_destroy(s->batch);
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
	free(s);
}

void store_put(struct store *s, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
	rocksdb_writebatch_put_cf(s->batch, s->cf[cf], k, kl, v, vl);
}

void store_del(struct store *s, int cf, const void *k, size_t kl)
{
	rocksdb_writebatch_delete_cf(s->batch, s->cf[cf], k, kl);
}

void store_del_range(struct store *s, int cf, const void *from, size_t fl, const void *to, size_t tl)
{
	rocksdb_writebatch_delete_range_cf(s->batch, s->cf[cf], from, fl, to, tl);
}

bool store_dirty(const struct store *s)
{
	return rocksdb_writebatch_count(s->batch) > 0;
}

int store_commit(struct store *s)
{
	char *rerr = NULL;
	if (!store_dirty(s))
		return 0;
	rocksdb_write(s->db, s->wopts, s->batch, &rerr);
	rocksdb_writebatch_clear(s->batch);
	return take_err(rerr, "write failed", NULL, 0);
}

int store_sync(struct store *s)
{
	char *rerr = NULL;
	rocksdb_flush_wal(s->db, 1, &rerr);
	return take_err(rerr, "WAL sync failed", NULL, 0);
}

int store_put_now(struct store *s, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
	char *rerr = NULL;
	rocksdb_put_cf(s->db, s->wopts_sync, s->cf[cf], k, kl, v, vl, &rerr);
	return take_err(rerr, "synced write failed", NULL, 0);
}

int store_get(struct store *s, int cf, const void *k, size_t kl, char **v, size_t *vl)
{
	char *rerr = NULL;
	*v = rocksdb_get_cf(s->db, s->ropts, s->cf[cf], k, kl, vl, &rerr);
	if (take_err(rerr, "read failed", NULL, 0) != 0)
		return -1;
	return *v != NULL;
}

void store_free(void *p)
{
	rocksdb_free(p);
}

static char *dup_bytes(const void *p, size_t n)
{
	char *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, p, n);
	return d;
}

struct store_iter *store_iter_new(struct store *s, int cf, const void *from, size_t fl,
				  const void *to, size_t tl)
{
	struct store_iter *it = calloc(1, sizeof(*it));
	if (it == NULL)
		return NULL;
	it->ro = rocksdb_readoptions_create();
	it->lo = dup_bytes(from, fl);
	if (to)
		it->hi = dup_bytes(to, tl);
	if (it->lo == NULL || (to && it->hi == NULL)) {
		store_iter_free(it);
		return NULL;
	}
	rocksdb_readoptions_set_iterate_lower_bound(it->ro, it->lo, fl);
	if (to)
		rocksdb_readoptions_set_iterate_upper_bound(it->ro, it->hi, tl);
	it->it = rocksdb_create_iterator_cf(s->db, it->ro, s->cf[cf]);
	rocksdb_iter_seek(it->it, it->lo, fl);
	return it;
}

bool store_iter_valid(struct store_iter *it)
{
	return rocksdb_iter_valid(it->it) != 0;
}

void store_iter_next(struct store_iter *it)
{
	rocksdb_iter_next(it->it);
}

const char *store_iter_key(struct store_iter *it, size_t *kl)
{
	return rocksdb_iter_key(it->it, kl);
}

const char *store_iter_value(struct store_iter *it, size_t *vl)
{
	return rocksdb_iter_value(it->it, vl);
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
	free(it);
}
