/*
 * main.c - cueqd: parse flags, open the engine, listen, run the core loop
 * on the main thread, and stop cleanly on SIGTERM/SIGINT.
 *
 * Signals are blocked in every thread (nng's included, which start after
 * the mask is set) and taken by one thread with sigwait(), so the stop path
 * is ordinary code, not a signal handler.
 *
 * Running out of descriptors is a storage fault (RocksDB cannot open its
 * next WAL or table file), so it is made unlikely here: the soft limit is
 * raised to the hard one, the store's share is reserved (its table cache is
 * bounded to it), and client connections get only what is left
 * (--max-connections); connections nng has accepted but not yet counted
 * (their handshake is not done) are kept out of the store's share too
 * (fdgate.h).  When storage fails the broker stops with status 2
 * without closing the database: closing would write again to a store that
 * just refused a write, and what was answered is already on disk.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "engine.h"
#include "fdgate.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "ops.h"
#include "server.h"

static const char *const fsync_names[] = {"always", "interval", "never"};

struct sigctx {
	sigset_t set;
	struct loop *loop;
	struct server *srv;
	struct http *http;
	const char *auth_file;
};

/* SIGHUP: the --auth file again.  A file that no longer reads leaves the
 * principals as they were. */
static void reload_auth(struct sigctx *s)
{
	char err[512];
	if (s->auth_file == NULL) {
		log_info("SIGHUP: nothing to reload (no --auth)");
		return;
	}
	struct auth *a = auth_load(s->auth_file, err, sizeof(err));
	if (a == NULL) {
		log_error("SIGHUP: %s; the principals stay as they were", err);
		return;
	}
	log_info("SIGHUP: %zu principals from %s", a->n, s->auth_file);
	loop_set_auth(s->loop, a);
}

static void *signal_main(void *arg)
{
	struct sigctx *s = arg;
	int sig = 0;
	while (sigwait(&s->set, &sig) == 0) {
		if (sig == SIGUSR1) /* main asks this thread to end */
			return NULL;
		if (sig == SIGHUP) {
			reload_auth(s);
			continue;
		}
		log_info("signal %d: stopping; no new requests, finishing the current batch", sig);
		server_stop(s->srv);
		http_quiesce(s->http);
		loop_stop(s->loop);
		return NULL;
	}
	return NULL;
}

/* A clean stop has a deadline too.  Once the loop has ended everything is
 * synced; what is left is closing connections and the store.  nng 1.5.2
 * can hang closing a connection whose client does not read its answers,
 * so after STOP_MS the broker exits all the same: the store recovers on
 * its next start as after a crash, from the synced log, losing nothing. */
#define STOP_MS 10000

static void *stop_deadline(void *arg)
{
	(void)arg;
	struct timespec ts = {.tv_sec = STOP_MS / 1000, .tv_nsec = 0};
	nanosleep(&ts, NULL);
	log_warn("closing connections took more than %d ms (a client that does not read?); exiting now, everything is on disk",
		 STOP_MS);
	_exit(0);
	return NULL;
}

#define DEFAULT_MAX_CONNECTIONS 1024
#define FD_FIXED 64  /* listeners, nng's pollers, logs, the WAL, MANIFEST, LOCK... */
#define FD_MIN 128   /* below this cueqd does not start */
/* What the store opens at run time beside its table cache: the next WAL
 * and MANIFEST, tables being written, OPTIONS.  Accepted connections stay
 * below the top tables + FD_SPARE descriptors (fdgate.h). */
#define FD_SPARE 16

/* Sizes the store's table cache and the connection cap to the descriptor
 * limit (raised to the hard limit first).  -1 after logging why not. */
static int budget_descriptors(struct config *cfg, int *tables)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_error("cannot read the descriptor limit");
		return -1;
	}
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1u << 20))
		rl.rlim_max = 1u << 20;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	long nofile = (long)rl.rlim_cur;
	if (nofile < FD_MIN) {
		log_error("the descriptor limit is %ld; cueqd needs at least %d (raise ulimit -n)",
			  nofile, FD_MIN);
		return -1;
	}
	long t = nofile / 8;
	*tables = (int)(t < 32 ? 32 : t > 1024 ? 1024 : t);
	long clients = nofile - *tables - FD_FIXED;
	if (cfg->max_connections > clients) {
		log_error("--max-connections %d does not fit the descriptor limit %ld (the store keeps %d for itself); raise ulimit -n to at least %ld or ask for at most %ld connections",
			  cfg->max_connections, nofile, *tables + FD_FIXED,
			  (long)cfg->max_connections + *tables + FD_FIXED, clients);
		return -1;
	}
	if (cfg->max_connections == 0) {
		cfg->max_connections = DEFAULT_MAX_CONNECTIONS;
		if (clients < DEFAULT_MAX_CONNECTIONS) {
			cfg->max_connections = (int)clients;
			log_warn("the descriptor limit is %ld: serving at most %ld connections (raise ulimit -n for more)",
				 nofile, clients);
		}
	}
	/* connections still at their handshake are not counted by the cap:
	 * this keeps them out of the store's share too */
	fdgate_set((int)(nofile - *tables - FD_SPARE));
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct engine *e = NULL;
	struct loop *l = NULL;
	struct server *srv = NULL;
	struct http *http = NULL;
	const struct engine_ops *eo = &embedded_engine;
	struct sigctx sc;
	pthread_t sigthr;
	char err[512];
	int rc = config_parse(&cfg, argc, argv), status = 1, tables = 0;

	if (rc != 0)
		return rc > 0 ? 0 : 1;
	if (budget_descriptors(&cfg, &tables) != 0)
		return 1;
	/* RocksDB's memtable arenas come and go in blocks of a few hundred KiB.
	 * A fixed mmap threshold keeps them out of the heap, so memory freed by
	 * a flush goes back to the system instead of fragmenting the heap
	 * (glibc would otherwise raise the threshold after the first free). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGUSR1);
	sigaddset(&sc.set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (eo->version != ENGINE_OPS_VERSION) {
		log_error("the %s engine implements engine interface %u, this cueqd %d; rebuild them together",
			  eo->name, eo->version, ENGINE_OPS_VERSION);
		return 1;
	}
	/* the principals first: a bad file stops cueqd before it touches the data */
	struct auth *auth = NULL;
	sc.auth_file = cfg.auth_file;
	if (cfg.auth_file != NULL) {
		if ((auth = auth_load(cfg.auth_file, err, sizeof(err))) == NULL) {
			log_error("%s", err);
			return 1;
		}
		log_info("authentication on: %zu principals from %s", auth->n, cfg.auth_file);
		for (size_t i = 0; i < cfg.n_listen; i++)
			if (strncmp(cfg.listen[i], "tcp", 3) == 0 && !config_local_url(cfg.listen[i]))
				log_warn("--listen %s: tokens cross the network in clear text; use tls+tcp:// beyond this machine",
					 cfg.listen[i]);
	}
	struct eng_config ec = {
		.location = cfg.data_dir,
		.max_open_files = tables,
		.retention_ms = cfg.retention_ms,
		.idem_window_ms = cfg.idem_window_ms,
		.max_queues = (uint32_t)cfg.max_queues,
	};
	if (eo->open(&ec, &e, err, sizeof(err)) != 0) {
		log_error("cannot open the data directory %s: %s", cfg.data_dir, err);
		auth_free(auth);
		return 1;
	}
	if (loop_new(eo, e, cfg.fsync, cfg.fsync_interval_ms, cfg.release_on_disconnect,
		     (size_t)cfg.max_parked, (size_t)cfg.max_parked_per_conn, &l) != 0) {
		log_error("out of memory at start");
		auth_free(auth);
		goto out;
	}
	loop_set_auth(l, auth);
	loop_set_max_frame(l, (size_t)cfg.max_frame);
	ops_set_max_payload((size_t)cfg.max_payload);
	auth = NULL;
	struct server_tls tls = {.cert_file = cfg.tls_cert, .key_file = cfg.tls_key};
	if (server_start(cfg.listen, cfg.n_listen, cfg.max_connections, &tls, loop_deliver,
			 loop_pipe_gone, l, &srv, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	loop_set_server(l, srv);
	if (cfg.http != NULL) {
		struct http_config hc = {
			.addr = cfg.http,
			.max_connections = cfg.max_connections,
			.max_body = (size_t)cfg.max_frame,
			.idem_window_ms = cfg.idem_window_ms,
			.auth = cfg.auth_file != NULL,
			.hooks = cfg.hooks,
			.n_hooks = cfg.n_hooks,
		};
		if (http_hooks_load(cfg.hooks, cfg.n_hooks, err, sizeof(err)) != 0 ||
		    http_start(&hc, l, &http, err, sizeof(err)) != 0) {
			log_error("%s", err);
			goto out;
		}
		log_info("serving HTTP on http://%s (%zu webhook intakes)", cfg.http, cfg.n_hooks);
		if (cfg.auth_file != NULL && !config_local_addr(cfg.http))
			log_warn("--http %s: tokens cross the network in clear text; put a TLS-terminating proxy in front of it beyond this machine",
				 cfg.http);
	}
	sc.loop = l, sc.srv = srv, sc.http = http;
	if (pthread_create(&sigthr, NULL, signal_main, &sc) != 0) {
		log_error("cannot start the signal thread");
		goto out;
	}
	for (size_t i = 0; i < cfg.n_listen; i++)
		log_info("listening on %s", cfg.listen[i]);
	log_info("data in %s, fsync %s, boot epoch %llu, at most %d connections", cfg.data_dir,
		 fsync_names[cfg.fsync], (unsigned long long)eo->boot_id(e), cfg.max_connections);
	status = loop_run(l) == 0 ? 0 : 2;
	pthread_kill(sigthr, SIGUSR1);
	pthread_join(sigthr, NULL);
	if (status == 2) {
		/* fail-stop: no more writes of any kind, not even a close */
		server_close(srv);
		log_error("stopped: storage failed; everything answered is on disk, the requests of the failed write got no answer. Fix the disk (space, errors, descriptors) and start cueqd again: it recovers from what is on disk");
		_exit(2);
	}
	pthread_t deadline;
	if (status == 0 && pthread_create(&deadline, NULL, stop_deadline, NULL) == 0)
		pthread_detach(deadline);
out:
	server_close(srv);
	loop_free(l); /* drops what is left: its HTTP connections get 503 */
	http_stop(http);
	http_hooks_free(cfg.hooks, cfg.n_hooks);
	eo->close(e);
	if (status == 0)
		log_info("stopped cleanly");
	return status;
}
