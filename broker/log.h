/*
 * log.h - one-line log messages to stderr with a timestamp and level.
 * The broker logs what failed and what it did about it; nothing per request.
 */
#ifndef CUEQ_LOG_H
#define CUEQ_LOG_H

void log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...) log_msg("info", __VA_ARGS__)
#define log_warn(...) log_msg("warn", __VA_ARGS__)
#define log_error(...) log_msg("error", __VA_ARGS__)

#endif
