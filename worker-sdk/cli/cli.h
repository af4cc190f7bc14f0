/*
 * cli.h - what the files of the cueq command-line client share.
 *
 * The client links only the public SDK (cueq/cueq.h), and jansson for its
 * JSON.  main.c owns the command table and the connection; each command
 * handler parses its own flags with cli_parse() (args.c), calls the SDK,
 * and prints either text for people or one JSON object per line (json.c,
 * output.c).  Handlers return the process exit code, so the mapping from
 * SDK errors to exit codes (cli_fail) lives in one place.
 */
#ifndef CUEQ_CLI_H
#define CUEQ_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cueq/cueq.h>

/* Exit codes of the command-line contract (shared/DESIGN.md). */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,	  /* usage or any other error */
	CLI_EXIT_EMPTY = 3,	  /* nothing to claim */
	CLI_EXIT_CONFLICT = 4,	  /* stale lease, conflict, idempotency mismatch */
	CLI_EXIT_NOT_FOUND = 5,	  /* no such execution */
	CLI_EXIT_UNREACHABLE = 6, /* broker unreachable */
	/* wait, push --wait: the outcome (0 when it succeeded) */
	CLI_EXIT_DEAD = 7,	  /* the execution is dead */
	CLI_EXIT_CANCELLED = 8,	  /* the execution was cancelled */
	CLI_EXIT_NO_OUTCOME = 9,  /* the wait ended before the outcome */
};

#define CLI_DEFAULT_URL "tcp://127.0.0.1:7700"

struct cli_command;

/* The state of one run of the program. */
struct cli {
	const char *url;		/* --url, $CUEQ_URL or the default */
	const char *token;		/* --auth-token or $CUEQ_TOKEN; NULL: none */
	const char *tls_ca;		/* --tls-ca or $CUEQ_TLS_CA; NULL: the system's */
	bool json;			/* --json: machine output */
	bool detach_claims;		/* cli_connect: claims outlive the process */
	int64_t timeout_ms;		/* --timeout; 0: the SDK's defaults */
	const struct cli_command *cmd;	/* the command being run */
	cueq_client *client;		/* set by cli_connect, closed by main */
};

typedef int (*cli_handler)(struct cli *cli, int argc, char **argv);

/* One row of the command table in main.c. */
struct cli_command {
	const char *name;
	cli_handler run;
	const char *usage; /* "push QUEUE [PAYLOAD|-] [flags]" */
	const char *brief; /* one line for `cueq --help` */
	const char *help;  /* the flags, for `cueq CMD --help` */
};

/* ---- main.c ----------------------------------------------------------- */

/* Connects cli->client to cli->url; on failure prints the error and
 * returns its exit code. */
int cli_connect(struct cli *cli);
/* Prints "cueq: <doing>: <the SDK's message>; <what to do>" for err and
 * returns the exit code that belongs to err. */
int cli_fail(const struct cli *cli, int err, const char *doing, ...)
	__attribute__((format(printf, 3, 4)));
/* cli_fail with h as what to do (NULL: the usual advice for err). */
int cli_fail_hint(const struct cli *cli, int err, const char *h, const char *doing, ...)
	__attribute__((format(printf, 4, 5)));
/* Prints "cueq: <message>; see 'cueq CMD --help'" and returns 1. */
int cli_usage_error(const struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints "cueq: <message>" and returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The exit code for an SDK error code. */
int cli_exit_code(int err);

/* ---- args.c ----------------------------------------------------------- */

enum { OPT_FLAG, OPT_VALUE };

/* A command's flag.  cli_parse fills value and seen. */
struct cli_opt {
	const char *name;  /* long name without the dashes */
	int kind;	   /* OPT_FLAG or OPT_VALUE */
	const char *value; /* out: the last value given */
	bool seen;	   /* out: given at least once */
	bool later;	   /* refused: a feature this version does not have */
};

#define CLI_PARSE_HELP (-1)

/*
 * Parses argv[1..argc) (argv[0] is the command name): the command's opts,
 * the global flags (--url, --json, --timeout, --help/-h) and positional
 * arguments, which are moved to the front of argv + 1; *npos gets their
 * number.  "--" ends the flags; *dashdash gets the index among the
 * positionals of the first one after it (-1 without "--").  Returns 0,
 * CLI_PARSE_HELP after printing the command's help, or 1 after printing a
 * usage error.
 */
int cli_parse(struct cli *cli, int argc, char **argv, struct cli_opt *opts, size_t nopts,
	      int *npos, int *dashdash);
/* RFC 3339 ("2026-11-25T12:00:00Z", fractions and offsets allowed) or
 * "@UNIXSECONDS" -> Unix ms.  Returns false for anything else. */
bool cli_parse_time(const char *s, int64_t *ms);
/* A decimal integer within [min, max]. */
bool cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
/* No upper bound, as max of a duration (the parser stops at INT64_MAX). */
#define CLI_NO_MAX (INT64_MAX / 2)
/* Parses v, the value of --flag, as a duration into *ms, checking [min,
 * max] (a 0 below min is refused with the range, not as a bad duration).
 * cli may be NULL (flags before the command).  Returns 0 or 1 after
 * printing a usage error. */
int cli_parse_duration(const struct cli *cli, const char *flag, const char *v, int64_t min,
		       int64_t max, int64_t *ms);
/* cli_parse_duration for the duration flag o, if given. */
int cli_duration_opt(const struct cli *cli, const struct cli_opt *o, int64_t min, int64_t max,
		     int64_t *ms);
/* The same for an integer flag. */
int cli_int_opt(const struct cli *cli, const struct cli_opt *o, int64_t min, int64_t max,
		int64_t *out);

/* ---- json.c ----------------------------------------------------------- */

#define JW_MAX_DEPTH 8

struct json_t; /* jansson's; only json.c looks inside */

/* Writes one JSON object (or array) per line, built with jansson.  Values
 * take a key, NULL inside arrays; keys come out in the order given. */
struct jw {
	FILE *f;
	struct json_t *open[JW_MAX_DEPTH]; /* open containers; [0] NULL in a list */
	int depth;			    /* open[depth] takes the next value */
	size_t n;			    /* a list's elements written so far */
	bool failed;			    /* out of memory: the rest is dropped */
};

/* An object, written whole with a newline by jw_end. */
void jw_begin(struct jw *w, FILE *f);
void jw_end(struct jw *w);
/* A top-level array: '[' now, each element when it is complete, "]\n" at
 * the end. */
void jw_list_begin(struct jw *w, FILE *f);
void jw_list_end(struct jw *w);
void jw_object_begin(struct jw *w, const char *key);
void jw_object_end(struct jw *w);
void jw_array_begin(struct jw *w, const char *key);
void jw_array_end(struct jw *w);
/* s NULL writes null; invalid UTF-8 becomes U+FFFD. */
void jw_str(struct jw *w, const char *key, const char *s);
void jw_strn(struct jw *w, const char *key, const char *s, size_t len);
void jw_int(struct jw *w, const char *key, int64_t v);
void jw_uint(struct jw *w, const char *key, uint64_t v);
void jw_bool(struct jw *w, const char *key, bool v);
void jw_null(struct jw *w, const char *key);
/* Unix ms as "2026-11-25T11:00:00.123Z"; 0 writes null. */
void jw_time(struct jw *w, const char *key, int64_t ms);
/* Bytes under key k: text when p is valid UTF-8, else base64 under
 * "<k>_base64". */
void jw_bytes(struct jw *w, const char *k, const void *p, size_t len);
/* jw_bytes with "payload". */
void jw_payload(struct jw *w, const void *p, size_t len);

/* True when a JSON line or element was dropped for want of memory (its
 * error was printed); cli_flush then fails. */
bool jw_failed(void);

/* Writes the len bytes at p in base64 (RFC 4648, with padding). */
void cli_base64(FILE *f, const void *p, size_t len);
/* True when the len bytes at p are valid UTF-8. */
bool cli_utf8_valid(const void *p, size_t len);
/* Length of the longest prefix of s, at most max bytes, that does not end
 * inside a UTF-8 sequence. */
size_t cli_utf8_cut(const char *s, size_t len, size_t max);

/* ---- output.c --------------------------------------------------------- */

/* Unix ms as RFC 3339 UTC with milliseconds into buf (at least 32 bytes);
 * "-" for 0.  Returns buf. */
const char *cli_time_str(int64_t ms, char *buf, size_t size);
/* A duration for people: "30s", "1500ms", "2h". */
const char *cli_duration_str(int64_t ms, char *buf, size_t size);
/* The name of a state, "unknown" for an unexpected value. */
const char *cli_state_str(int state);
/* All fields of an execution (get): text or one JSON object. */
void cli_print_execution(const struct cli *cli, const cueq_execution *e);
/* The fields of an execution without payload and history (list). */
void cli_print_execution_brief_json(const cueq_execution *e);
/* Calls row for each execution of queue (or, queue NULL, of every queue
 * the broker counts, in name order) in state (-1: any), oldest first,
 * after the execution ID after (NULL: from the start), until limit rows:
 * page by page, so any number costs several requests, not one huge reply.
 * Returns CLI_EXIT_OK or the exit code of a failure it reported. */
typedef void (*cli_row_fn)(const cueq_execution *e, void *arg);
int cli_each_execution(struct cli *cli, const char *queue, int state, int64_t limit,
		       const char *after, cli_row_fn row, void *arg);
/* At most max bytes of s on one line of stdout: control characters become
 * spaces, a cut ends in "...". */
void cli_one_line(const char *s, size_t max);
/* The same fields into an object the caller opened (dead's array). */
void cli_execution_json(struct jw *w, const cueq_execution *e);
/* A recurring cue (get): text or one JSON object with its fires. */
void cli_print_cue(const struct cli *cli, const cueq_cue *c);
/* The fields of a cue without payload and fires (cues), one JSON object. */
void cli_print_cue_brief_json(const cueq_cue *c);
/* "every 5m" or "cron '0 9 * * *' Europe/Paris" into buf.  Returns buf. */
const char *cli_cue_schedule(const cueq_cue *c, char *buf, size_t size);
/* Writes payload bytes as they are, with a newline if they lack one. */
void cli_print_payload_raw(const void *p, size_t len);
/* Flushes stdout; returns 0, or 1 after reporting a write error or when
 * jw_failed(). */
int cli_flush(void);
/* A step as one line "NAME VALUE" (TIME first when with_time): the value
 * as it is when it is one line of text, else "base64:" and its base64. */
void cli_print_step_line(const cueq_step *s, bool with_time);
/* A step's JSON fields: name, value or value_base64, at. */
void cli_step_json(struct jw *w, const cueq_step *s);

/* ---- input.c ---------------------------------------------------------- */

/* Reads all of standard input, at most max bytes, into a malloc'd *out
 * (NUL-terminated); more than max is refused with "the <what> on standard
 * input is larger than max bytes; <advice>".  Returns 0, or 1 after
 * printing the error. */
int cli_read_stdin(size_t max, const char *what, const char *advice, char **out, size_t *len);

/* ---- command handlers ------------------------------------------------- */

int cmd_ping(struct cli *cli, int argc, char **argv);
int cmd_push(struct cli *cli, int argc, char **argv);
int cmd_claim(struct cli *cli, int argc, char **argv);
int cmd_ack(struct cli *cli, int argc, char **argv);
int cmd_nack(struct cli *cli, int argc, char **argv);
int cmd_extend(struct cli *cli, int argc, char **argv);
int cmd_get(struct cli *cli, int argc, char **argv);
int cmd_wait(struct cli *cli, int argc, char **argv);
int cmd_limit(struct cli *cli, int argc, char **argv);
/* "concurrency 2, rate 10/1s" or "none", into out. */
void cli_limit_text(const cueq_limit *l, char *out, size_t size);
void cli_limit_json(struct jw *w, const char *key, const cueq_limit *l);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_step(struct cli *cli, int argc, char **argv);
int cmd_steps(struct cli *cli, int argc, char **argv);
int cmd_work(struct cli *cli, int argc, char **argv);
int cmd_dead(struct cli *cli, int argc, char **argv);
int cmd_retry(struct cli *cli, int argc, char **argv);
int cmd_cancel(struct cli *cli, int argc, char **argv);
int cmd_purge(struct cli *cli, int argc, char **argv);
int cmd_pause(struct cli *cli, int argc, char **argv);
int cmd_resume(struct cli *cli, int argc, char **argv);
int cmd_cues(struct cli *cli, int argc, char **argv);

#endif /* CUEQ_CLI_H */
