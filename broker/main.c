/*
 * main.c - cueqd: parse flags, open the engine, listen, run the core loop
 * on the main thread, and stop cleanly on SIGTERM/SIGINT.
 *
 * Signals are blocked in every thread (nng's included, which start after
 * the mask is set) and taken by one thread with sigwait(), so the stop path
 * is ordinary code, not a signal handler.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "engine.h"
#include "log.h"
#include "loop.h"
#include "server.h"

static const char *const fsync_names[] = {"always", "interval", "never"};

struct sigctx {
	sigset_t set;
	struct loop *loop;
	struct server *srv;
};

static void *signal_main(void *arg)
{
	struct sigctx *s = arg;
	int sig = 0;
	if (sigwait(&s->set, &sig) == 0) {
		if (sig == SIGUSR1) /* main asks this thread to end */
			return NULL;
		log_info("signal %d: stopping; no new requests, finishing the current batch", sig);
		server_stop(s->srv);
		loop_stop(s->loop);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct engine *e = NULL;
	struct loop *l = NULL;
	struct server *srv = NULL;
	const struct engine_ops *eo = &embedded_engine;
	struct sigctx sc;
	pthread_t sigthr;
	char err[512];
	int rc = config_parse(&cfg, argc, argv), status = 1;

	if (rc != 0)
		return rc > 0 ? 0 : 1;
	/* RocksDB's memtable arenas come and go in blocks of a few hundred KiB.
	 * A fixed mmap threshold keeps them out of the heap, so memory freed by
	 * a flush goes back to the system instead of fragmenting the heap
	 * (glibc would otherwise raise the threshold after the first free). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (eo->version != ENGINE_OPS_VERSION) {
		log_error("the %s engine implements engine interface %u, this cueqd %d; rebuild them together",
			  eo->name, eo->version, ENGINE_OPS_VERSION);
		return 1;
	}
	struct eng_config ec = {
		.location = cfg.data_dir,
		.retention_ms = cfg.retention_ms,
		.idem_window_ms = cfg.idem_window_ms,
	};
	if (eo->open(&ec, &e, err, sizeof(err)) != 0) {
		log_error("cannot open the data directory %s: %s", cfg.data_dir, err);
		return 1;
	}
	if (loop_new(eo, e, cfg.fsync, cfg.fsync_interval_ms, &l) != 0) {
		log_error("out of memory at start");
		goto out;
	}
	if (server_start(cfg.listen, cfg.n_listen, loop_deliver, loop_pipe_gone, l, &srv, err,
			 sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	loop_set_server(l, srv);
	sc.loop = l, sc.srv = srv;
	if (pthread_create(&sigthr, NULL, signal_main, &sc) != 0) {
		log_error("cannot start the signal thread");
		goto out;
	}
	for (size_t i = 0; i < cfg.n_listen; i++)
		log_info("listening on %s", cfg.listen[i]);
	log_info("data in %s, fsync %s, boot epoch %llu", cfg.data_dir, fsync_names[cfg.fsync],
		 (unsigned long long)eo->boot_id(e));
	status = loop_run(l) == 0 ? 0 : 2;
	pthread_kill(sigthr, SIGUSR1);
	pthread_join(sigthr, NULL);
out:
	server_close(srv);
	loop_free(l);
	eo->close(e);
	if (status == 0)
		log_info("stopped cleanly");
	return status;
}
