/*
 * config.h - cueqd's command line.
 */
#ifndef CUEQ_CONFIG_H
#define CUEQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_HOOKS 64

struct http_hook;

struct config {
	const char *data_dir;
	const char *listen[CONFIG_MAX_LISTEN];
	size_t n_listen;
	int fsync; /* enum fsync_policy */
	int64_t fsync_interval_ms;
	int64_t retention_ms;
	int64_t idem_window_ms;
	int max_connections; /* 0: the default, sized to the descriptor limit */
	bool release_on_disconnect; /* default on */
	bool insecure; /* --insecure: listen beyond loopback without authentication */
	const char *auth_file; /* --auth FILE, or NULL: every client may do anything */
	const char *tls_cert, *tls_key; /* --tls-cert, --tls-key: for tls+tcp:// */
	long max_parked, max_parked_per_conn; /* claims waiting, in all and per connection */
	long max_queues;		       /* --max-queues; 0: unbounded */
	long max_payload, max_frame;	       /* bytes, at most the protocol's */
	const char *http;		       /* --http HOST:PORT; NULL: off */
	struct http_hook *hooks;	       /* --hook, n_hooks of them */
	size_t n_hooks;
};

/* Parses argv.  Returns 0 to run, 1 when it printed help or version (exit
 * 0), -1 after printing a usage error (exit 1). */
int config_parse(struct config *c, int argc, char **argv);
/* Whether url can be reached from this machine only: ipc://, inproc://,
 * or tcp:// on a loopback address. */
bool config_local_url(const char *url);
/* The same for a HOST:PORT (--http). */
bool config_local_addr(const char *addr);

#endif /* CUEQ_CONFIG_H */
