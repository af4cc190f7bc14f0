/*
 * config.c - parsing cueqd's flags, with errors that say what to write
 * instead.  Every flag takes "--flag VALUE" or "--flag=VALUE".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "loop.h"
#include "proto.h"

static const char usage[] =
	"usage: cueqd [--data DIR] [--listen URL]... [--fsync always|interval|never]\n"
	"             [--fsync-interval D] [--retention D] [--idempotency-window D]\n"
	"             [--max-connections N] [--release-on-disconnect on|off]\n"
	"             [--max-parked N] [--max-parked-per-connection N] [--max-queues N]\n"
	"             [--max-payload BYTES] [--max-frame BYTES]\n"
	"             [--auth FILE] [--insecure] [--tls-cert FILE --tls-key FILE]\n"
	"             [--http HOST:PORT|off] [--hook QUEUE:OPTIONS]...\n"
	"             [--log-level debug|info|warn|error]\n"
	"\n"
	"The cueq broker: an at-least-once job queue with worker claim/lease.\n"
	"\n"
	"  --data DIR           where RocksDB keeps the queues (default ./cueq-data)\n"
	"  --listen URL         tcp://HOST:PORT, tls+tcp://HOST:PORT or ipc:///PATH;\n"
	"                       repeat for several (default tcp://127.0.0.1:7700)\n"
	"  --tls-cert FILE      the certificate (PEM, chain leaf first) of tls+tcp://\n"
	"                       listeners; --tls-key FILE its private key (PEM,\n"
	"                       unencrypted)\n"
	"  --fsync POLICY       always: pushes and acks are answered after the fsync that\n"
	"                       covers them (default; survives power loss);\n"
	"                       interval: fsync every --fsync-interval (survives a crash\n"
	"                       of cueqd, not of the machine); never: leave it to the OS\n"
	"  --fsync-interval D   for --fsync interval (default 100ms)\n"
	"  --retention D        keep finished executions this long (default 7d)\n"
	"  --idempotency-window D\n"
	"                       remember a push's idempotency key this long, unless\n"
	"                       the push sets its own (default 24h)\n"
	"  --max-connections N  client connections served at once; more are closed as\n"
	"                       they connect (default 1024, less when the descriptor\n"
	"                       limit, raised to its hard limit at start, is lower)\n"
	"  --max-parked N       claims waiting for work (wait_ms) at once, in all\n"
	"                       (default 4096); one more is answered UNAVAILABLE\n"
	"  --max-parked-per-connection N\n"
	"                       the same for one connection (default 256), so one\n"
	"                       client cannot hold every server context\n"
	"  --max-queues N       queues at once (default 100000; 0: no limit); a push\n"
	"                       that would make one more is answered UNAVAILABLE (a\n"
	"                       queue with nothing in it is forgotten)\n"
	"  --max-payload BYTES  a job's payload at most (default and most 1048576);\n"
	"                       bigger ones are answered TOO_LARGE\n"
	"  --max-frame BYTES    a request at most (default and most 4194304); bigger\n"
	"                       ones are answered TOO_LARGE (past 8 MiB the connection\n"
	"                       is closed)\n"
	"  --release-on-disconnect on|off\n"
	"                       on (default): when a worker's connection closes, the\n"
	"                       leases it holds end at once, so its executions are\n"
	"                       delivered again in milliseconds and its tokens fenced\n"
	"  --auth FILE          clients must send a token listed in FILE, one per line:\n"
	"                         ROLE NAME TOKEN [QUEUE-PREFIX...]\n"
	"                       ROLE producer (push), worker (claim, ack, nack, extend,\n"
	"                       steps) or admin (everything, operator actions too);\n"
	"                       all three may ping and inspect (get, list, stats, cues,\n"
	"                       metrics);\n"
	"                       prefixes limit it to queues whose names start so;\n"
	"                       TOKEN 16-256 characters; '#' starts a comment.  A\n"
	"                       request without a listed token is UNAUTHORIZED (a ping\n"
	"                       without a token is answered).  SIGHUP reads FILE again\n"
	"  --http HOST:PORT     the HTTP face: JSON API under /v1, webhooks, /metrics\n"
	"                       and the dashboard at / (default 127.0.0.1:7701; off:\n"
	"                       none); the same --auth tokens, as Authorization: Bearer\n"
	"  --hook QUEUE:OPTIONS webhook intake at POST /v1/hooks/QUEUE; OPTIONS are\n"
	"                       key-header=NAME or key-field=FIELD (each delivery's ID,\n"
	"                       so a repeat is a duplicate: 200, a new one 202), and\n"
	"                       signature=github|stripe|hmac-sha256:HEADER with\n"
	"                       secret-file=PATH to check the sender's HMAC-SHA256\n"
	"  --log-level LEVEL    log lines (logfmt on stderr: ts=... level=... msg=\"...\")\n"
	"                       of LEVEL and above: debug, info (default), warn, error\n"
	"  --insecure           listen beyond loopback without --auth (refused without\n"
	"                       it: any client there could push, claim and ack)\n"
	"  --help               this text\n"
	"  --version            print the version\n"
	"\n"
	"Durations: 250ms, 30s, 5m, 2h, 1d.  SIGTERM or SIGINT stops it cleanly.\n"
	"\n"
	"Exit status: 0 stopped cleanly; 1 could not start; 2 storage failed (a write\n"
	"or fsync was refused: the requests it carried got no answer, everything\n"
	"answered is on disk; fix the disk and start it again).\n";

/* Whether url can be reached from this machine only: ipc://, inproc://,
 * or tcp:// on a loopback address. */
bool config_local_url(const char *url)
{
	static const char *const local[] = {"ipc://", "inproc://", "tcp://127.", "tcp://localhost:",
					    "tcp://[::1]:", "tcp4://127.", "tcp6://[::1]:",
					    "tls+tcp://127.", "tls+tcp://localhost:", "tls+tcp://[::1]:"};
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (strncmp(url, local[i], strlen(local[i])) == 0)
			return true;
	return false;
}

bool config_local_addr(const char *addr)
{
	char url[128];
	return (size_t)snprintf(url, sizeof(url), "tcp://%s", addr) < sizeof(url) &&
	       config_local_url(url);
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "cueqd: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nRun 'cueqd --help' for the flags.\n");
	return -1;
}

static int duration(const char *flag, const char *v, int64_t min, int64_t *out)
{
	if (!proto_parse_duration(v, out) || *out < min) {
		fprintf(stderr, "cueqd: %s '%s' is not a duration of at least %lldms; write e.g. 250ms, 30s, 5m, 2h or 1d\n",
			flag, v, (long long)min);
		return -1;
	}
	return 0;
}

/* The --hook flags: one cueqd, one command line. */
static struct http_hook hooks[CONFIG_MAX_HOOKS];

int config_parse(struct config *c, int argc, char **argv)
{
	*c = (struct config){
		.data_dir = "./cueq-data",
		.fsync = FSYNC_ALWAYS,
		.fsync_interval_ms = 100,
		.retention_ms = 7 * 86400000ll,
		.idem_window_ms = 86400000ll,
		.release_on_disconnect = true,
		.max_parked = 4096,
		.max_parked_per_conn = 256,
		.max_queues = 100000,
		.max_payload = CUEQ_MAX_PAYLOAD,
		.max_frame = PROTO_MAX_FRAME,
		.http = "127.0.0.1:7701",
	};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL, *eq = strchr(a, '=');
		char flag[32];
		size_t fl = eq ? (size_t)(eq - a) : strlen(a);

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage, stdout);
			return 1;
		}
		if (strcmp(a, "--version") == 0) {
			printf("cueqd 0.1.0 (protocol %d)\n", PROTO_VERSION);
			return 1;
		}
		if (strcmp(a, "--insecure") == 0) { /* a switch: takes no value */
			c->insecure = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || fl >= sizeof(flag))
			return bad("unexpected argument '%s'", a);
		memcpy(flag, a, fl);
		flag[fl] = '\0';
		if (eq)
			v = eq + 1;
		else if (i + 1 < argc)
			v = argv[++i];
		else
			return bad("%s needs a value", flag);

		if (strcmp(flag, "--data") == 0) {
			if (*v == '\0')
				return bad("%s needs a directory", flag);
			c->data_dir = v;
		} else if (strcmp(flag, "--listen") == 0) {
			if (c->n_listen == CONFIG_MAX_LISTEN)
				return bad("too many --listen (the limit is 16): %s", v);
			c->listen[c->n_listen++] = v;
		} else if (strcmp(flag, "--fsync") == 0) {
			if (strcmp(v, "always") == 0)
				c->fsync = FSYNC_ALWAYS;
			else if (strcmp(v, "interval") == 0)
				c->fsync = FSYNC_INTERVAL;
			else if (strcmp(v, "never") == 0)
				c->fsync = FSYNC_NEVER;
			else
				return bad("--fsync '%s' is not a policy; use always, interval or never", v);
		} else if (strcmp(flag, "--fsync-interval") == 0) {
			if (duration(flag, v, 1, &c->fsync_interval_ms) != 0)
				return -1;
		} else if (strcmp(flag, "--idempotency-window") == 0) {
			if (duration(flag, v, 1000, &c->idem_window_ms) != 0)
				return -1;
		} else if (strcmp(flag, "--max-connections") == 0) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || n < 1 || n > 1000000)
				return bad("--max-connections '%s' is not a number from 1 to 1000000", v);
			c->max_connections = (int)n;
		} else if (strcmp(flag, "--max-parked") == 0 ||
			   strcmp(flag, "--max-parked-per-connection") == 0) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || n < 1 || n > 1000000)
				return bad("%s needs a number from 1 to 1000000", flag);
			if (strcmp(flag, "--max-parked") == 0)
				c->max_parked = n;
			else
				c->max_parked_per_conn = n;
		} else if (strcmp(flag, "--max-queues") == 0) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || n < 0 || n > 100000000)
				return bad("--max-queues '%s' is not a number from 0 (no limit) to 100000000", v);
			c->max_queues = n;
		} else if (strcmp(flag, "--max-payload") == 0 || strcmp(flag, "--max-frame") == 0) {
			bool payload = flag[6] == 'p';
			long most = payload ? (long)CUEQ_MAX_PAYLOAD : (long)PROTO_MAX_FRAME, least = payload ? 1024 : 65536;
			char *end;
			long n = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || n < least || n > most) {
				fprintf(stderr, "cueqd: %s '%s' is not a number of bytes from %ld to %ld\n", flag,
					v, least, most);
				return -1;
			}
			*(payload ? &c->max_payload : &c->max_frame) = n;
		} else if (strcmp(flag, "--release-on-disconnect") == 0) {
			if (strcmp(v, "on") == 0)
				c->release_on_disconnect = true;
			else if (strcmp(v, "off") == 0)
				c->release_on_disconnect = false;
			else
				return bad("--release-on-disconnect '%s' is not on or off", v);
		} else if (strcmp(flag, "--auth") == 0) {
			if (*v == '\0')
				return bad("%s needs a file", flag);
			c->auth_file = v;
		} else if (strcmp(flag, "--log-level") == 0) {
			if (log_set_level(v) != 0)
				return bad("--log-level '%s' is not debug, info, warn or error", v);
		} else if (strcmp(flag, "--tls-cert") == 0 || strcmp(flag, "--tls-key") == 0) {
			if (*v == '\0')
				return bad("%s needs a file", flag);
			if (flag[6] == 'c')
				c->tls_cert = v;
			else
				c->tls_key = v;
		} else if (strcmp(flag, "--http") == 0) {
			if (strcmp(v, "off") == 0)
				c->http = NULL;
			else if (!http_addr_ok(v))
				return bad("--http '%s' is not HOST:PORT (e.g. 127.0.0.1:7701 or [::1]:7701) or off", v);
			else
				c->http = v;
		} else if (strcmp(flag, "--hook") == 0) {
			char err[400];
			if (c->n_hooks == CONFIG_MAX_HOOKS)
				return bad("too many --hook (the limit is 64): %s", v);
			c->hooks = hooks;
			if (http_hook_parse(v, &c->hooks[c->n_hooks], err, sizeof(err)) != 0)
				return bad("%s", err);
			for (size_t k = 0; k < c->n_hooks; k++)
				if (strcmp(c->hooks[k].queue, c->hooks[c->n_hooks].queue) == 0)
					return bad("--hook %s is given twice", c->hooks[k].queue);
			c->n_hooks++;
		} else if (strcmp(flag, "--retention") == 0) {
			if (duration(flag, v, 1000, &c->retention_ms) != 0)
				return -1;
		} else {
			return bad("unknown flag '%s'", flag);
		}
	}
	if (c->n_listen == 0)
		c->listen[c->n_listen++] = "tcp://127.0.0.1:7700";
	if (c->http == NULL && c->n_hooks > 0)
		return bad("%s", "--hook needs the HTTP face: drop --http off");
	if (c->http != NULL && !c->insecure && c->auth_file == NULL && !config_local_addr(c->http)) {
		fprintf(stderr,
			"cueqd: --http %s is reachable from other machines, and this broker has no authentication: any client there could push, claim, ack and purge. Give --auth FILE with tokens, serve HTTP on loopback (127.0.0.1:PORT), or give --insecure to accept that risk\n",
			c->http);
		return -1;
	}
	bool tls = false;
	for (size_t i = 0; i < c->n_listen; i++)
		tls |= strncmp(c->listen[i], "tls+", 4) == 0;
	if (tls && (c->tls_cert == NULL || c->tls_key == NULL))
		return bad("%s needs both --tls-cert FILE and --tls-key FILE", "a tls+tcp:// --listen");
	if (!tls && (c->tls_cert != NULL || c->tls_key != NULL))
		return bad("%s: no --listen is tls+tcp://HOST:PORT", c->tls_cert ? "--tls-cert" : "--tls-key");
	for (size_t i = 0; i < c->n_listen && !c->insecure && c->auth_file == NULL; i++)
		if (!config_local_url(c->listen[i])) {
			fprintf(stderr,
				"cueqd: --listen %s is reachable from other machines, and this broker has no authentication: any client there could push, claim and ack. Give --auth FILE with tokens, listen on loopback (tcp://127.0.0.1:PORT) or ipc://, or give --insecure to accept that risk\n",
				c->listen[i]);
			return -1;
		}
	return 0;
}
