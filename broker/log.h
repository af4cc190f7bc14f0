/*
 * log.h - one-line log messages to stderr, in logfmt:
 *   ts=2026-12-01T19:32:06.153Z level=info msg="recovered 12 unfinished executions"
 * with a level threshold (cueqd --log-level).  The broker logs what failed
 * and what it did about it; nothing per request.
 */
#ifndef CUEQ_LOG_H
#define CUEQ_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the threshold by name (debug, info, warn, error): 0, or -1 for
 * another name (nothing changes). */
int log_set_level(const char *name);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
