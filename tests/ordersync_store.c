/*
 * ordersync_store.c - reads the store of the fake third-party APIs that the
 * order-sync examples write (worker-sdk/examples/fake_api.h): one line
 * "ORDER KEY ID" in DIR/KIND.log per object really created, and the object
 * DIR/KIND/KEY holding "ID\nBODY\n".  test_ordersync counts the lines per
 * order: exactly one invoice and one mail each is the point of the ledger.
 */
#include "ordersync_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return -1;
}

int os_read_log(const char *dir, const char *kind, size_t n, os_entry *entries, char *why,
		size_t why_size)
{
	char path[4096], line[1024];
	size_t lineno = 0;
	FILE *f;

	memset(entries, 0, n * sizeof(*entries));
	snprintf(path, sizeof(path), "%s/%s.log", dir, kind);
	if ((f = fopen(path, "r")) == NULL)
		return fail(why, why_size, "cannot open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		char order[64], key[OS_KEY_SIZE], id[OS_VALUE_SIZE], extra[8];
		unsigned long i;
		char *end;

		lineno++;
		if (sscanf(line, "%63s %191s %127s %7s", order, key, id, extra) != 3 ||
		    strncmp(order, "order-", 6) != 0) {
			fclose(f);
			return fail(why, why_size, "%s:%zu is not 'ORDER KEY ID': %s", path, lineno, line);
		}
		errno = 0;
		i = strtoul(order + 6, &end, 10);
		if (*end != '\0' || errno != 0 || i >= n) {
			fclose(f);
			return fail(why, why_size, "%s:%zu names an order never pushed: %s", path, lineno,
				    order);
		}
		if (entries[i].count++ == 0) {
			strcpy(entries[i].key, key);
			strcpy(entries[i].id, id);
		}
	}
	fclose(f);
	return 0;
}

int os_object_id(const char *dir, const char *kind, const char *key, char *id, size_t size)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, kind, key);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(id, (int)size, f) == NULL) {
		fclose(f);
		return -1;
	}
	fclose(f);
	id[strcspn(id, "\n")] = '\0';
	return 0;
}
