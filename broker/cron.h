/*
 * cron.h - schedules of recurring cues: a cron expression, parsed once,
 * and the next time it fires after a given instant.  Self-contained (plain
 * libc and GLib's time zones), so both the engine and cueqd can link it.
 *
 * Expressions are Vixie cron's: five fields "minute hour day-of-month month
 * day-of-week", or one of the macros @yearly (= @annually, "0 0 1 1 *"),
 * @monthly ("0 0 1 * *"), @weekly ("0 0 * * 0"), @daily (= @midnight,
 * "0 0 * * *") and @hourly ("0 * * * *").  Fields are separated by spaces
 * or tabs; each is a list "a,b,..." of items "*", "n" and "a-b", each of
 * which may take a step "/n" ("a/n" runs from a to the field's end by n;
 * "*" with a step is every n-th from the start).  Ranges: minute 0-59,
 * hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 (0
 * and 7 are Sunday) or SUN-SAT; names are three letters, in any case, and
 * may stand in ranges (MON-FRI).  A step runs from 1 to the field's highest
 * value less its lowest (a step of 60 in the minute field, which could only
 * mean 0, is refused).
 *
 * Days: when both day fields are restricted (neither starts with '*'), a day
 * matches when either does ("0 0 13 * 5": the 13th and every Friday);
 * otherwise a day must match both, so a plain '*' leaves the other alone.
 * A fire is at second 0 of a matching minute of the zone's wall clock.
 * Refused at parse time, with one sentence naming the field and the reason:
 * empty fields or list items, a wrong number of fields, values out of range,
 * reversed ranges (5-1), step 0, characters that do not belong, unknown
 * macros or names, unknown zones, and day and month choices that can never
 * meet ("0 0 30 2 *", "0 0 31 4,6 *").
 *
 * Time zones (the system tz database, through GLib) move the wall clock:
 *  - a wall time that does not exist (the spring-forward gap: 02:30 in
 *    America/New_York on 2024-03-10) fires once, at the first instant after
 *    the gap (03:00 local), unless that instant fires anyway: every matching
 *    time of one gap and a normal match at its end make one fire;
 *  - a wall time that occurs twice (the fall-back overlap: 01:30 in New
 *    York on 2024-11-03) fires once, at its first occurrence (01:30 EDT);
 *    the repeated hour fires nothing, even for "* * * * *".
 * Fire times therefore never go backwards and never repeat.
 *
 * A struct cron is immutable after cron_parse: cron_next may be called from
 * any number of threads at once.
 */
#ifndef CUEQ_CRON_H
#define CUEQ_CRON_H

#include <stddef.h>
#include <stdint.h>

/* How far cron_next looks: more than the 8 years between two 29ths of
 * February (2096 to 2104), so that every accepted expression whose day
 * fields are plain or OR'ed is found.  Only a day-of-month "*" with a step,
 * ANDed with a weekday (every 15th day from the 1st, in February, when a
 * Monday), can fire more rarely than that. */
#define CRON_HORIZON_YEARS 10

/* The shortest buffer that holds any error of cron_parse whole (longer
 * input is cut short inside the quotes). */
#define CRON_ERR_MAX 256

struct cron; /* opaque, immutable after parse */

/* Parses expr (len bytes, need not end in NUL; surrounding whitespace is
 * ignored) in the zone tz (tz_len bytes): NULL or empty is UTC, else a name
 * of the system tz database (/usr/share/zoneinfo, or $TZDIR), such as
 * "Europe/Berlin".  Returns 0 and a new schedule in *out, which the caller
 * frees with cron_free; or -1 with *out NULL and one sentence in err (cut to
 * errlen bytes, always NUL-terminated when errlen > 0) that names the field
 * and says why: "cron field 2 (hour) '25': 25 is out of range 0-23". */
int cron_parse(const char *expr, size_t len, const char *tz, size_t tz_len, struct cron **out,
	       char *err, size_t errlen);

/* The first fire strictly after after_ms (Unix ms, a UTC instant), in Unix
 * ms; INT64_MAX when there is none within CRON_HORIZON_YEARS, or past the
 * year 9999.  Bounded work: whole months, days and hours that cannot match
 * are stepped over, never minute by minute. */
int64_t cron_next(const struct cron *c, int64_t after_ms);

/* Frees c; NULL is fine. */
void cron_free(struct cron *c);

/* The expression as given less surrounding whitespace, and the zone's name
 * as given ("UTC" when none); both live as long as c. */
const char *cron_text(const struct cron *c);
const char *cron_zone(const struct cron *c);

#endif /* CUEQ_CRON_H */
