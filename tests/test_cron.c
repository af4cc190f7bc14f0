/*
 * test_cron.c - unit tests of the schedule module (broker/cron.c), no
 * broker.
 *
 * Expected fires are written as ISO 8601 instants, with the zone's offset
 * where a zone is involved, so that a row reads as the wall clock a cron
 * user would check it against; GLib turns them into Unix ms (and the first
 * test pins that conversion to figures from date(1)).  A brute-force scan
 * over a year, minute by minute, checks the calendar walk independently,
 * and whole years of fires check the DST rules as counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <glib.h>

#include "cron.h"

#define NY "America/New_York"
#define BERLIN "Europe/Berlin"
#define TOKYO "Asia/Tokyo"
#define MINUTE_MS 60000
#define HOUR_MS (60 * MINUTE_MS)

/* Unix ms of an ISO 8601 instant that carries its offset ("Z", "-04:00"). */
static int64_t iso(const char *s)
{
	GDateTime *dt = g_date_time_new_from_iso8601(s, NULL);
	int64_t ms;

	if (dt == NULL)
		fail_msg("the test's instant '%s' does not parse", s);
	ms = g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
	g_date_time_unref(dt);
	return ms;
}

/* ms as an ISO instant in UTC, for failure messages. */
static const char *show(int64_t ms, char buf[40])
{
	GDateTime *dt;
	gchar *s;

	if (ms == INT64_MAX)
		return "never";
	dt = g_date_time_new_from_unix_utc(ms / 1000);
	s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
	snprintf(buf, 40, "%s%s", s, ms % 1000 ? " (+ms)" : "");
	g_free(s);
	g_date_time_unref(dt);
	return buf;
}

static struct cron *parse(const char *expr, const char *tz)
{
	struct cron *c = NULL;
	char err[CRON_ERR_MAX];

	if (cron_parse(expr, strlen(expr), tz, tz ? strlen(tz) : 0, &c, err, sizeof(err)) != 0)
		fail_msg("'%s' (%s) refused: %s", expr, tz ? tz : "UTC", err);
	assert_non_null(c);
	return c;
}

/* ---- tests ----------------------------------------------------------- */

/* The conversion the tables rely on, against date -u -d ... +%s. */
static void test_iso_conversion(void **state)
{
	(void)state;
	assert_int_equal(iso("2024-01-01T00:00:00Z"), 1704067200000LL);
	assert_int_equal(iso("2024-03-10T03:00:00-04:00"), 1710054000000LL);
	assert_int_equal(iso("2024-03-10T03:00:00-04:00"), iso("2024-03-10T07:00:00Z"));
}

static const struct fires {
	const char *expr, *tz, *from;
	const char *want[6]; /* the successive fires after from; NULL ends */
} fires[] = {
	/* Every minute, steps, hours. */
	{ "* * * * *", NULL, "2024-05-05T10:20:30Z",
	  { "2024-05-05T10:21:00Z", "2024-05-05T10:22:00Z" } },
	{ "* * * * *", NULL, "2024-12-31T23:59:00Z", { "2025-01-01T00:00:00Z" } },
	{ "*/15 * * * *", NULL, "2024-05-05T10:20:00Z",
	  { "2024-05-05T10:30:00Z", "2024-05-05T10:45:00Z", "2024-05-05T11:00:00Z" } },
	{ "0 * * * *", NULL, "2024-12-31T23:30:00Z",
	  { "2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z" } },
	{ "@hourly", NULL, "2024-12-31T23:30:00Z",
	  { "2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z" } },
	/* Macros. */
	{ "@daily", NULL, "2024-02-28T12:00:00Z",
	  { "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z" } },
	{ "@midnight", NULL, "2023-02-28T00:00:00Z", { "2023-03-01T00:00:00Z" } },
	{ "@weekly", NULL, "2024-05-01T00:00:00Z",
	  { "2024-05-05T00:00:00Z", "2024-05-12T00:00:00Z" } },
	{ "@monthly", NULL, "2024-01-31T00:00:00Z",
	  { "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z" } },
	{ "@yearly", NULL, "2024-06-01T00:00:00Z",
	  { "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z" } },
	{ "@Annually", NULL, "2025-01-01T00:00:00Z", { "2026-01-01T00:00:00Z" } },
	/* Month ends and leap days. */
	{ "0 0 31 * *", NULL, "2024-04-01T00:00:00Z",
	  { "2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z",
	    "2024-10-31T00:00:00Z" } },
	{ "0 0 30 * *", NULL, "2024-02-01T00:00:00Z", { "2024-03-30T00:00:00Z" } },
	{ "0 0 31 */2 *", NULL, "2024-02-01T00:00:00Z", /* months 1, 3, 5, 7, 9, 11 */
	  { "2024-03-31T00:00:00Z", "2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z",
	    "2025-01-31T00:00:00Z" } },
	{ "0 0 29 2 *", NULL, "2025-03-01T00:00:00Z",
	  { "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z" } },
	/* 2100 is no leap year: 8 years to the next 29th of February. */
	{ "0 0 29 2 *", NULL, "2096-03-01T00:00:00Z", { "2104-02-29T00:00:00Z" } },
	/* Weekdays: 0 and 7 are both Sunday; names; ranges through 7. */
	{ "0 12 * * 0", NULL, "2024-05-01T00:00:00Z",
	  { "2024-05-05T12:00:00Z", "2024-05-12T12:00:00Z" } },
	{ "0 12 * * 7", NULL, "2024-05-01T00:00:00Z",
	  { "2024-05-05T12:00:00Z", "2024-05-12T12:00:00Z" } },
	{ "0 12 * * sun", NULL, "2024-05-01T00:00:00Z", { "2024-05-05T12:00:00Z" } },
	{ "0 12 * * 5-7", NULL, "2024-05-01T00:00:00Z",
	  { "2024-05-03T12:00:00Z", "2024-05-04T12:00:00Z", "2024-05-05T12:00:00Z",
	    "2024-05-10T12:00:00Z" } },
	{ "0 0 * * 1/2", NULL, "2024-05-01T00:00:00Z", /* 1,3,5,7: Mon, Wed, Fri, Sun */
	  { "2024-05-03T00:00:00Z", "2024-05-05T00:00:00Z", "2024-05-06T00:00:00Z",
	    "2024-05-08T00:00:00Z" } },
	{ "0 9 * * MON-FRI", NULL, "2024-05-03T10:00:00Z", /* a Friday */
	  { "2024-05-06T09:00:00Z", "2024-05-07T09:00:00Z" } },
	{ "0 9 * * 1-5", NULL, "2024-05-03T10:00:00Z", { "2024-05-06T09:00:00Z" } },
	/* Both day fields restricted: the 13th OR a Friday (Oct 13 2024 is a
	 * Sunday). */
	{ "0 0 13 * 5", NULL, "2024-10-05T00:00:00Z",
	  { "2024-10-11T00:00:00Z", "2024-10-13T00:00:00Z", "2024-10-18T00:00:00Z",
	    "2024-10-25T00:00:00Z", "2024-11-01T00:00:00Z" } },
	/* A day field led by '*': both must match (Vixie cron), here the 1st,
	 * 11th, 21st or 31st when a Monday. */
	{ "0 0 */10 * 1", NULL, "2024-01-01T00:00:00Z",
	  { "2024-03-11T00:00:00Z", "2024-04-01T00:00:00Z", "2024-07-01T00:00:00Z",
	    "2024-10-21T00:00:00Z" } },
	/* Month names in any case, in lists and in ranges with steps. */
	{ "0 0 1 JAN,jul *", NULL, "2024-02-01T00:00:00Z",
	  { "2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z" } },
	{ "0 0 1 dec *", NULL, "2024-12-01T00:00:00Z", { "2025-12-01T00:00:00Z" } },
	{ "0 0 1 Feb-Apr/2 *", NULL, "2024-02-15T00:00:00Z",
	  { "2024-04-01T00:00:00Z", "2025-02-01T00:00:00Z" } },
	/* Ranges with steps, "a/n", lists of both. */
	{ "10-30/10 9-17/4 * * *", NULL, "2024-05-05T09:30:00Z",
	  { "2024-05-05T13:10:00Z", "2024-05-05T13:20:00Z", "2024-05-05T13:30:00Z",
	    "2024-05-05T17:10:00Z", "2024-05-05T17:20:00Z" } },
	{ "5/20 * * * *", NULL, "2024-05-05T10:00:00Z",
	  { "2024-05-05T10:05:00Z", "2024-05-05T10:25:00Z", "2024-05-05T10:45:00Z",
	    "2024-05-05T11:05:00Z" } },
	{ "0,30 8-9,17 * * *", NULL, "2024-05-05T09:45:00Z",
	  { "2024-05-05T17:00:00Z", "2024-05-05T17:30:00Z", "2024-05-06T08:00:00Z" } },
	{ " \t0\t0  * *   *  ", NULL, "2024-05-05T12:00:00Z", { "2024-05-06T00:00:00Z" } },
	{ "0 0 * * *", "UTC", "2024-05-05T12:00:00Z", { "2024-05-06T00:00:00Z" } },

	/* New York, spring forward on 2024-03-10 at 02:00 EST: 02:30 does
	 * not exist and fires at 03:00 EDT. */
	{ "30 2 * * *", NY, "2024-03-09T12:00:00-05:00",
	  { "2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00" } },
	/* 02:00, 02:20, 02:40 and the normal 03:00 are one fire. */
	{ "*/20 * * * *", NY, "2024-03-10T01:30:00-05:00",
	  { "2024-03-10T01:40:00-05:00", "2024-03-10T03:00:00-04:00",
	    "2024-03-10T03:20:00-04:00" } },
	{ "0,30 2,3 * * *", NY, "2024-03-10T01:00:00-05:00",
	  { "2024-03-10T03:00:00-04:00", "2024-03-10T03:30:00-04:00",
	    "2024-03-11T02:00:00-04:00" } },
	/* From the gap's end itself: its fire is not after it. */
	{ "15 2 * * *", NY, "2024-03-10T03:00:00-04:00", { "2024-03-11T02:15:00-04:00" } },
	{ "0 9 * * *", NY, "2024-03-09T10:00:00-05:00",
	  { "2024-03-10T09:00:00-04:00", "2024-03-11T09:00:00-04:00" } },
	/* Fall back on 2024-11-03 at 02:00 EDT: 01:00-01:59 comes twice and
	 * fires the first time only. */
	{ "30 1 * * *", NY, "2024-11-02T12:00:00-04:00",
	  { "2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00" } },
	{ "30 1 * * *", NY, "2024-11-03T01:00:00-05:00", { "2024-11-04T01:30:00-05:00" } },
	{ "*/30 * * * *", NY, "2024-11-03T00:45:00-04:00",
	  { "2024-11-03T01:00:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-03T02:00:00-05:00",
	    "2024-11-03T02:30:00-05:00" } },
	/* From inside the second pass, the next is after it. */
	{ "*/30 * * * *", NY, "2024-11-03T01:10:00-05:00", { "2024-11-03T02:00:00-05:00" } },

	/* Berlin: forward on 2024-03-31 at 02:00 CET, back on 2024-10-27 at
	 * 03:00 CEST. */
	{ "30 2 * * *", BERLIN, "2024-03-30T12:00:00+01:00",
	  { "2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00" } },
	{ "30 2 * * *", BERLIN, "2024-10-26T12:00:00+02:00",
	  { "2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00" } },
	{ "0 9 * * *", BERLIN, "2024-03-30T10:00:00+01:00",
	  { "2024-03-31T09:00:00+02:00", "2024-04-01T09:00:00+02:00" } },
	{ "0 0 1 * *", BERLIN, "2024-10-15T00:00:00+02:00", { "2024-11-01T00:00:00+01:00" } },

	/* Tokyo keeps +09:00 all year; its days begin at 15:00 UTC. */
	{ "0 9 * * *", TOKYO, "2024-03-09T23:59:59Z",
	  { "2024-03-10T09:00:00+09:00", "2024-03-11T09:00:00+09:00" } },
	{ "0 0 1 * *", TOKYO, "2024-01-31T14:00:00Z",
	  { "2024-02-01T00:00:00+09:00", "2024-03-01T00:00:00+09:00" } },
	{ "30 2 10 3 *", TOKYO, "2024-01-01T00:00:00+09:00",
	  { "2024-03-10T02:30:00+09:00", "2025-03-10T02:30:00+09:00" } },
};

static void test_fires(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fires) / sizeof(fires[0]); i++) {
		const struct fires *f = &fires[i];
		struct cron *c = parse(f->expr, f->tz);
		int64_t at = iso(f->from);

		for (int k = 0; k < 6 && f->want[k]; k++) {
			int64_t got = cron_next(c, at), want = iso(f->want[k]);
			char b1[40], b2[40];

			if (got != want)
				fail_msg("'%s' (%s) from %s: fire %d is %s, want %s (%s)", f->expr,
					 f->tz ? f->tz : "UTC", f->from, k + 1, show(got, b1),
					 show(want, b2), f->want[k]);
			at = got;
		}
		cron_free(c);
	}
}

/* Strictly after, to the millisecond; instants before 1970; the ends. */
static void test_edges(void **state)
{
	struct cron *c = parse("* * * * *", NULL);
	struct cron *y = parse("0 0 1 1 *", NULL);
	int64_t t = iso("2024-05-05T10:00:00Z");

	(void)state;
	assert_int_equal(cron_next(c, t - 1), t);
	assert_int_equal(cron_next(c, t), t + MINUTE_MS);
	assert_int_equal(cron_next(c, t + MINUTE_MS - 1), t + MINUTE_MS);
	assert_int_equal(cron_next(y, -1), 0);
	assert_int_equal(cron_next(y, iso("1969-06-01T00:00:00Z") - 1), 0);
	assert_int_equal(cron_next(y, iso("1900-01-01T00:00:00Z")), iso("1901-01-01T00:00:00Z"));
	assert_true(cron_next(y, INT64_MIN) < 0);
	assert_int_equal(cron_next(y, iso("9999-01-01T00:00:00Z")), INT64_MAX);
	assert_int_equal(cron_next(c, INT64_MAX), INT64_MAX);
	cron_free(c);
	cron_free(y);
}

/* Past the horizon there is no fire: a Monday the 1st or 29th of February
 * comes 11 years after 2027-02-01 (an AND of a '*' step and a weekday). */
static void test_horizon(void **state)
{
	struct cron *c = parse("0 0 */28 2 1", NULL);

	(void)state;
	assert_int_equal(cron_next(c, iso("2021-02-02T00:00:00Z")), iso("2027-02-01T00:00:00Z"));
	assert_int_equal(cron_next(c, iso("2027-02-02T00:00:00Z")), INT64_MAX);
	cron_free(c);
}

/* The calendar walk against a plain scan of every minute of 2024. */
static bool brute_weekdays(const struct tm *t)
{
	return t->tm_min % 7 == 0 && t->tm_hour >= 9 && t->tm_hour <= 17 && t->tm_wday >= 1 &&
	       t->tm_wday <= 5;
}
static bool brute_or(const struct tm *t)
{
	return t->tm_min == 0 && t->tm_hour == 0 && (t->tm_mday == 13 || t->tm_wday == 5);
}
static bool brute_or_week(const struct tm *t)
{
	return (t->tm_min == 15 || t->tm_min == 45) && t->tm_hour % 6 == 0 &&
	       (t->tm_mday <= 7 || t->tm_wday == 1);
}
static bool brute_and(const struct tm *t)
{
	return t->tm_min == 0 && t->tm_hour == 12 && t->tm_mday % 10 == 1 && t->tm_wday == 1;
}
static bool brute_ends(const struct tm *t)
{
	return t->tm_min == 59 && t->tm_hour == 23 && t->tm_mday >= 30 &&
	       (t->tm_mon == 0 || t->tm_mon == 1 || t->tm_mon >= 8);
}

static void test_against_scan(void **state)
{
	static const struct {
		const char *expr;
		bool (*match)(const struct tm *t);
	} cases[] = {
		{ "*/7 9-17 * * MON-FRI", brute_weekdays },
		{ "0 0 13 * 5", brute_or },
		{ "15,45 */6 1-7 * 1", brute_or_week },
		{ "0 12 */10 * 1", brute_and },
		{ "59 23 30,31 jan,feb,sep-dec *", brute_ends },
	};
	int64_t from = iso("2024-01-01T00:00:00Z"), to = iso("2025-01-01T00:00:00Z");

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cron *c = parse(cases[i].expr, NULL);
		int64_t next = cron_next(c, from - 1);
		int n = 0;

		for (int64_t ms = from; ms < to; ms += MINUTE_MS) {
			time_t s = (time_t)(ms / 1000);
			struct tm t;
			char b1[40], b2[40];

			gmtime_r(&s, &t);
			if (!cases[i].match(&t))
				continue;
			if (next != ms)
				fail_msg("'%s': cron_next gave %s where the scan found %s",
					 cases[i].expr, show(next, b1), show(ms, b2));
			next = cron_next(c, ms);
			n++;
		}
		assert_true(n > 0);
		assert_true(next >= to);
		cron_free(c);
	}
}

/* A whole year of fires in New York: "every 20 minutes" loses 02:00,
 * 02:20 and 02:40 to the spring gap (they are the fire at 03:00) and fires
 * nothing in the repeated hour; once a day fires once every day. */
static void test_dst_years(void **state)
{
	static const struct {
		const char *expr, *tz;
		int fires;
		int64_t longest; /* the longest time between two fires */
	} cases[] = {
		{ "*/20 * * * *", NY, 366 * 72 - 3, 80 * MINUTE_MS },
		{ "30 1 * * *", NY, 366, 25 * HOUR_MS },
		{ "30 2 * * *", NY, 366, 25 * HOUR_MS }, /* Nov 2 EDT to Nov 3 EST */
		{ "30 2 * * *", BERLIN, 366, 25 * HOUR_MS },
		{ "0 * * * *", TOKYO, 366 * 24, HOUR_MS },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cron *c = parse(cases[i].expr, cases[i].tz);
		/* 2024 of the zone's own calendar, from its offset in winter. */
		GTimeZone *tz = g_time_zone_new_identifier(cases[i].tz);
		GDateTime *a = g_date_time_new(tz, 2024, 1, 1, 0, 0, 0);
		GDateTime *b = g_date_time_new(tz, 2025, 1, 1, 0, 0, 0);
		int64_t at = g_date_time_to_unix(a) * 1000 - 1, end = g_date_time_to_unix(b) * 1000;
		int64_t prev = 0, longest = 0;
		int n = 0;

		for (;;) {
			int64_t next = cron_next(c, at);

			assert_true(next > at);
			if (next >= end)
				break;
			if (n > 0 && next - prev > longest)
				longest = next - prev;
			prev = at = next;
			n++;
		}
		if (n != cases[i].fires || longest != cases[i].longest)
			fail_msg("'%s' in %s: %d fires in 2024, longest gap %lld min; "
				 "want %d and %lld",
				 cases[i].expr, cases[i].tz, n, (long long)(longest / MINUTE_MS),
				 cases[i].fires, (long long)(cases[i].longest / MINUTE_MS));
		g_date_time_unref(a);
		g_date_time_unref(b);
		g_time_zone_unref(tz);
		cron_free(c);
	}
}

/* The text as given less its surrounding space; the zone as given; the
 * lengths are honoured (neither string need end in NUL). */
static void test_text_and_zone(void **state)
{
	const char expr[] = "  */5 * * * *\t\n;and more";
	const char zone[] = "Europe/Berlin, then junk";
	struct cron *c = NULL;
	char err[CRON_ERR_MAX];

	(void)state;
	assert_int_equal(cron_parse(expr, 15, zone, 13, &c, err, sizeof(err)), 0);
	assert_string_equal(cron_text(c), "*/5 * * * *");
	assert_string_equal(cron_zone(c), "Europe/Berlin");
	cron_free(c);

	c = parse("@daily", NULL);
	assert_string_equal(cron_text(c), "@daily");
	assert_string_equal(cron_zone(c), "UTC");
	cron_free(c);
	assert_int_equal(cron_parse("@daily", 6, "", 0, &c, err, sizeof(err)), 0);
	assert_string_equal(cron_zone(c), "UTC");
	cron_free(c);
	cron_free(NULL);
}

static const struct bad {
	const char *expr, *tz, *want;
} bads[] = {
	{ "", NULL, "cron expression is empty" },
	{ " \t ", NULL, "cron expression is empty" },
	{ "* * * *", NULL, "has 4 fields; it needs 5" },
	{ "* * * * * *", NULL, "has 6 fields; it needs 5" },
	{ "60 * * * *", NULL, "cron field 1 (minute) '60': 60 is out of range 0-59" },
	{ "* 25 * * *", NULL, "cron field 2 (hour) '25': 25 is out of range 0-23" },
	{ "* * 0 * *", NULL, "cron field 3 (day-of-month) '0': 0 is out of range 1-31" },
	{ "* * 32 * *", NULL, "cron field 3 (day-of-month) '32': 32 is out of range 1-31" },
	{ "* * * 13 *", NULL, "cron field 4 (month) '13': 13 is out of range 1-12" },
	{ "* * * * 8", NULL, "cron field 5 (day-of-week) '8': 8 is out of range 0-7" },
	{ "99999999999999999999 * * * *", NULL, "99999999999999999999 is out of range 0-59" },
	{ "1,2,70 * * * *", NULL, "(minute) '1,2,70': 70 is out of range 0-59" },
	{ "5-1 * * * *", NULL, "cron field 1 (minute) '5-1': range 5-1 runs backwards" },
	{ "0 0 * * FRI-SUN", NULL, "(day-of-week) 'FRI-SUN': range FRI-SUN runs backwards" },
	{ "*/0 * * * *", NULL, "cron field 1 (minute) '*/0': step 0 never advances" },
	{ "* 1-5/0 * * *", NULL, "(hour) '1-5/0': step 0" },
	{ "*/60 * * * *", NULL, "(minute) '*/60': step 60 is out of range 1-59" },
	{ "* */24 * * *", NULL, "(hour) '*/24': step 24 is out of range 1-23" },
	{ "*/ * * * *", NULL, "(minute) '*/': a step needs a number after '/'" },
	{ "*/x * * * *", NULL, "(minute) '*/x': a step needs a number" },
	{ "1,,2 * * * *", NULL, "(minute) '1,,2': empty list item" },
	{ "1, * * * *", NULL, "(minute) '1,': empty list item" },
	{ "* ,1 * * *", NULL, "(hour) ',1': empty list item" },
	{ "1- * * * *", NULL, "(minute) '1-': a number is missing" },
	{ "1x * * * *", NULL, "(minute) '1x': unexpected 'x' after '1'" },
	{ "1-5-7 * * * *", NULL, "(minute) '1-5-7': unexpected '-'" },
	{ "*-5 * * * *", NULL, "(minute) '*-5': unexpected '-'" },
	{ "? * * * *", NULL, "(minute) '?': unexpected '?'" },
	{ "* * L * *", NULL, "(day-of-month) 'L': 'L' is not a number" },
	{ "* * * * 1\x01", NULL, "(day-of-week) '1?': unexpected byte 0x01 after '1'" },
	{ "MON * * * *", NULL, "(minute) 'MON': 'MON' is not a number" },
	{ "* * * JANUARY *", NULL, "(month) 'JANUARY': unknown month name 'JANUARY'" },
	{ "* * * * FUN", NULL, "(day-of-week) 'FUN': unknown weekday name 'FUN'" },
	{ "* * * * MON-", NULL, "(day-of-week) 'MON-': a number is missing" },
	/* Days that no chosen month has. */
	{ "0 0 30 2 *", NULL, "cron field 3 (day-of-month) '30': never fires" },
	{ "0 0 30,31 FEB *", NULL, "(day-of-month) '30,31': never fires" },
	{ "0 0 31 4,6,9,11 *", NULL,
	  "(day-of-month) '31': never fires: no chosen month (field 4 '4,6,9,11')" },
	{ "0 0 31 2-4/2 *", NULL, "(day-of-month) '31': never fires" },
	/* Macros. */
	{ "@reboot", NULL, "unknown cron macro '@reboot'" },
	{ "@fortnightly", NULL, "unknown cron macro '@fortnightly' (known: @yearly" },
	{ "@daily 5", NULL, "cron macro '@daily' stands alone, but '5' follows it" },
	{ "daily", NULL, "has 1 field; it needs 5" },
	/* Zones. */
	{ "0 0 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'" },
	{ "0 0 * * *", "../../etc/passwd", "unknown time zone '../../etc/passwd'" },
	{ "0 0 * * *", "/usr/share/zoneinfo/UTC", "unknown time zone" },
	{ "0 0 * * *", "+05:00", "unknown time zone '+05:00'" },
	{ "0 0 * * *", "ABC5", "unknown time zone 'ABC5'" },
	{ "0 0 * * *", "Europe/", "unknown time zone 'Europe/'" },
	{ "0 0 * * *", "Europe", "unknown time zone 'Europe'" }, /* a directory */
};

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		struct cron *c = (struct cron *)1;
		char err[CRON_ERR_MAX];
		int rc = cron_parse(b->expr, strlen(b->expr), b->tz, b->tz ? strlen(b->tz) : 0, &c,
				    err, sizeof(err));

		if (rc != -1 || c != NULL)
			fail_msg("'%s' (%s) was accepted", b->expr, b->tz ? b->tz : "UTC");
		if (strstr(err, b->want) == NULL)
			fail_msg("'%s': error \"%s\" lacks \"%s\"", b->expr, err, b->want);
		assert_null(strchr(err, '\n'));
	}
}

/* Errors fit the buffer they are given, however small or long the input. */
static void test_error_buffers(void **state)
{
	char big[4000], err[CRON_ERR_MAX], tiny[8];
	struct cron *c = NULL;
	size_t n = 0;

	(void)state;
	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%d,", i % 50);
	n += (size_t)snprintf(big + n, sizeof(big) - n, "99 * * * *");
	assert_int_equal(cron_parse(big, n, NULL, 0, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "...': 99 is out of range 0-59"));
	assert_true(strlen(err) < CRON_ERR_MAX - 1);

	memset(tiny, 'x', sizeof(tiny));
	assert_int_equal(cron_parse("* 25 * * *", 10, NULL, 0, &c, tiny, sizeof(tiny)), -1);
	assert_string_equal(tiny, "cron fi");
	assert_int_equal(cron_parse("* 25 * * *", 10, NULL, 0, &c, NULL, 0), -1);
	assert_null(c);
	assert_int_equal(cron_parse(NULL, 0, NULL, 0, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iso_conversion), cmocka_unit_test(test_fires),
		cmocka_unit_test(test_edges),	       cmocka_unit_test(test_horizon),
		cmocka_unit_test(test_against_scan),   cmocka_unit_test(test_dst_years),
		cmocka_unit_test(test_text_and_zone),  cmocka_unit_test(test_bad),
		cmocka_unit_test(test_error_buffers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
