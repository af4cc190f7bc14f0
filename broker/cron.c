/*
 * cron.c - cron expressions: parsed into five bit sets, and the next fire
 * found on the zone's wall clock.
 *
 * cron_next walks the zone's wall clock forward from the instant asked
 * about, jumping to the next month, day, hour or minute whose bit is set, so
 * a yearly schedule costs a few dozen steps, not half a million minutes.
 * Each wall time found is then turned into an instant: its first occurrence,
 * or for a time that does not exist the end of its gap (cron.h has the
 * rules).  That mapping never goes backwards as the wall clock goes
 * forwards, so the first wall time whose instant is after the one asked
 * about is the answer; the only wall times stepped over are those of a
 * repeated hour whose first occurrence is already past.
 *
 * Offsets come from GLib's GTimeZone (the tz database, with its rules for
 * the years past its tables), asked only for the offset at a UTC instant:
 * GLib's own reading of local times takes the later of two occurrences,
 * which is not the rule here.  The calendar is proleptic Gregorian
 * arithmetic on day numbers, years 1 to 9999.
 */
#include "cron.h"

#include <ctype.h>
#include <glib.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MIN_S (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define MAX_S 253402300799LL   /* 9999-12-31T23:59:59Z */
#define QUOTE_MAX 40	       /* bytes of the user's text quoted in an error */
#define CUT(n) ((int)((n) > 20 ? 20 : (n))) /* a number or name quoted in one */

struct cron {
	uint64_t minute; /* bit n: minute n */
	uint32_t hour;	 /* bit n: hour n */
	uint32_t dom;	 /* bit n: day n of the month, 1-31 */
	uint16_t month;	 /* bit n: month n, 1-12 */
	uint8_t dow;	 /* bit n: weekday n, 0 Sunday (a 7 is folded into 0) */
	bool and_days;	 /* a day field starts with '*': a day must match both */
	GTimeZone *tz;	 /* NULL for UTC, which needs no lookups */
	char *text;	 /* the expression, trimmed */
	char *zone;	 /* the zone's name, "UTC" when none */
};

/* ---- parsing ----------------------------------------------------------- */

static const char *const month_names[] = { "JAN", "FEB", "MAR", "APR", "MAY", "JUN",
					   "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL };
static const char *const dow_names[] = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL };

static const struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* three-letter names of lo, lo + 1, ...; or NULL */
} fields[5] = {
	{ "minute", 0, 59, NULL },
	{ "hour", 0, 23, NULL },
	{ "day-of-month", 1, 31, NULL },
	{ "month", 1, 12, month_names },
	{ "day-of-week", 0, 7, dow_names },
};

static const struct {
	const char *name, *expr;
} macros[] = {
	{ "@yearly", "0 0 1 1 *" },  { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
	{ "@weekly", "0 0 * * 0" },  { "@daily", "0 0 * * *" },	   { "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};
#define MACRO_LIST "@yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
#define FIELD_LIST "minute hour day-of-month month day-of-week"

/* One field being parsed, for the errors that quote it. */
struct parse {
	char *err;
	size_t errlen;
	int field;     /* 0-4 */
	const char *s; /* the field's text, len bytes */
	size_t len;
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (errlen > 0)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* The user's text s (len bytes) for quoting in an error: at most QUOTE_MAX
 * bytes, "..." when cut, and '?' for a byte that would garble the sentence
 * (a control byte, or anything past ASCII). */
static const char *quote(char buf[QUOTE_MAX + 4], const char *s, size_t len)
{
	size_t n = len > QUOTE_MAX ? QUOTE_MAX : len;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		buf[i] = isprint(ch) ? (char)ch : isspace(ch) ? ' ' : '?';
	}
	strcpy(buf + n, len > QUOTE_MAX ? "..." : "");
	return buf;
}

/* "cron field 2 (hour) '25': " and then why. */
static int field_fail(const struct parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int field_fail(const struct parse *p, const char *fmt, ...)
{
	char why[160], q[QUOTE_MAX + 4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return fail(p->err, p->errlen, "cron field %d (%s) '%s': %s", p->field + 1,
		    fields[p->field].name, quote(q, p->s, p->len), why);
}

/* What stands at s[i], for "unexpected ...". */
static const char *what(const struct parse *p, size_t i, char buf[16])
{
	unsigned char ch = (unsigned char)p->s[i];

	if (isprint(ch))
		snprintf(buf, 16, "'%c'", ch);
	else
		snprintf(buf, 16, "byte 0x%02x", ch);
	return buf;
}

/* Reads a number, or a name where the field has them, at s[*i]. */
static int value(struct parse *p, size_t *i, int *v)
{
	const struct field *f = &fields[p->field];
	const char *s = p->s;
	size_t j = *i;
	char buf[16];

	if (j == p->len)
		return field_fail(p, "a number is missing at its end");
	if (isdigit((unsigned char)s[j])) {
		long n = 0;

		for (; j < p->len && isdigit((unsigned char)s[j]); j++)
			if (n < 1000000) /* enough to be out of range, never to overflow */
				n = n * 10 + (s[j] - '0');
		if (n < f->lo || n > f->hi)
			return field_fail(p, "%.*s is out of range %d-%d", CUT(j - *i), s + *i,
					  f->lo, f->hi);
		*v = (int)n;
		*i = j;
		return 0;
	}
	if (!isalpha((unsigned char)s[j]))
		return field_fail(p, "unexpected %s where a number is expected", what(p, j, buf));
	for (; j < p->len && isalpha((unsigned char)s[j]); j++)
		;
	if (f->names == NULL)
		return field_fail(p, "'%.*s' is not a number (names are for months and weekdays)",
				  CUT(j - *i), s + *i);
	for (int k = 0; f->names[k] && j - *i == 3; k++)
		if (strncasecmp(s + *i, f->names[k], 3) == 0) {
			*v = f->lo + k;
			*i = j;
			return 0;
		}
	return field_fail(p, "unknown %s name '%.*s' (names are %s-%s)",
			  p->field == 3 ? "month" : "weekday", CUT(j - *i), s + *i, f->names[0],
			  p->field == 3 ? "DEC" : "SAT");
}

/* Parses one field into *bits: a list of items "*", "n" or "a-b", each with
 * an optional step "/n"; "a/n" runs from a to the field's end. */
static int field(struct parse *p, uint64_t *bits)
{
	const struct field *f = &fields[p->field];
	const char *s = p->s;
	size_t i = 0;
	char buf[16];

	*bits = 0;
	for (;;) {
		size_t start = i;
		int lo = f->lo, hi = f->hi, step = 1;
		bool single = false;

		if (i == p->len || s[i] == ',')
			return field_fail(p, "empty list item");
		if (s[i] == '*') {
			i++;
		} else {
			if (value(p, &i, &lo) < 0)
				return -1;
			hi = lo;
			single = true;
			if (i < p->len && s[i] == '-') {
				single = false;
				i++;
				if (value(p, &i, &hi) < 0)
					return -1;
				if (hi < lo)
					return field_fail(p, "range %.*s runs backwards (%d-%d)",
							  CUT(i - start), s + start, lo, hi);
			}
		}
		if (i < p->len && s[i] == '/') {
			long n = 0;
			size_t d = ++i;

			for (; i < p->len && isdigit((unsigned char)s[i]); i++)
				if (n < 1000000)
					n = n * 10 + (s[i] - '0');
			if (i == d)
				return field_fail(p, "a step needs a number after '/'");
			if (n == 0)
				return field_fail(p, "step 0 never advances (steps are 1-%d)",
						  f->hi - f->lo);
			if (n > f->hi - f->lo)
				return field_fail(p, "step %.*s is out of range 1-%d", CUT(i - d),
						  s + d, f->hi - f->lo);
			step = (int)n;
			if (single)
				hi = f->hi; /* "a/n": from a to the end */
		}
		for (int v = lo; v <= hi; v += step)
			*bits |= 1ull << v;
		if (i == p->len)
			break;
		if (s[i] != ',')
			return field_fail(p, "unexpected %s after '%.*s'", what(p, i, buf),
					  CUT(i - start), s + start);
		i++;
	}
	return 0;
}

/* The most days month m (1-12) ever has. */
static int month_max_days(int m)
{
	return m == 2 ? 29 : (m == 4 || m == 6 || m == 9 || m == 11) ? 30 : 31;
}

/* The five fields of expr: 0, or -1 with the error written. */
static int fields_parse(struct cron *c, const char *expr, size_t len, char *err, size_t errlen)
{
	struct parse p = { err, errlen, 0, NULL, 0 };
	const char *text[5];
	size_t tlen[5];
	int n = 0;
	uint64_t bits;
	char q[QUOTE_MAX + 4];

	for (size_t i = 0; i < len;) {
		size_t j = i;

		while (j < len && expr[j] != ' ' && expr[j] != '\t')
			j++;
		if (n < 5) {
			text[n] = expr + i;
			tlen[n] = j - i;
		}
		n++;
		while (j < len && (expr[j] == ' ' || expr[j] == '\t'))
			j++;
		i = j;
	}
	if (n != 5)
		return fail(err, errlen,
			    "cron expression '%s' has %d field%s; it needs 5 (" FIELD_LIST
			    ") or a macro such as @daily",
			    quote(q, expr, len), n, n == 1 ? "" : "s");
	for (p.field = 0; p.field < 5; p.field++) {
		p.s = text[p.field];
		p.len = tlen[p.field];
		if (field(&p, &bits) < 0)
			return -1;
		switch (p.field) {
		case 0: c->minute = bits; break;
		case 1: c->hour = (uint32_t)bits; break;
		case 2: c->dom = (uint32_t)bits; break;
		case 3: c->month = (uint16_t)bits; break;
		case 4: c->dow = (uint8_t)(bits | bits >> 7) & 0x7f; break;
		}
	}
	/* Vixie cron's rule: a '*' (with or without a step) leads either day
	 * field, and a day must match both; else either will do. */
	c->and_days = text[2][0] == '*' || text[4][0] == '*';

	/* Under the AND rule some chosen day must exist in some chosen month
	 * (every date falls on every weekday in time); under OR the weekdays
	 * alone fire every month. */
	if (c->and_days) {
		for (int m = 1; m <= 12; m++) {
			uint32_t days = ((1u << month_max_days(m)) - 1) << 1; /* bits 1 to max */

			if ((c->month & (1u << m)) && (c->dom & days))
				return 0;
		}
		p.field = 2;
		p.s = text[2];
		p.len = tlen[2];
		return field_fail(&p,
				  "never fires: no chosen month (field 4 '%s') has such a day",
				  quote(q, text[3], tlen[3]));
	}
	return 0;
}

/* Opens the zone name (name_len bytes) of the system tz database.  GLib
 * also takes offsets ("+05:00") and POSIX rules ("ABC5") as identifiers;
 * the contract here is a database name, so the file must be there too. */
static int zone_open(struct cron *c, const char *name, size_t name_len, char *err, size_t errlen)
{
	const char *dir = getenv("TZDIR");
	bool ok = name_len > 0 && name_len < 256 && isalpha((unsigned char)name[0]);
	char path[512], q[QUOTE_MAX + 4];
	struct stat st;

	if (dir == NULL || dir[0] == '\0')
		dir = "/usr/share/zoneinfo";
	for (size_t i = 0; ok && i < name_len; i++) {
		unsigned char ch = (unsigned char)name[i];

		ok = isalnum(ch) || ch == '_' || ch == '+' || ch == '-' ||
		     (ch == '/' && i + 1 < name_len && name[i + 1] != '/');
	}
	if (ok) {
		c->zone = strndup(name, name_len);
		if (c->zone == NULL)
			return fail(err, errlen, "out of memory opening time zone '%s'",
				    quote(q, name, name_len));
		snprintf(path, sizeof(path), "%s/%s", dir, c->zone);
		ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
	}
	if (ok)
		ok = (c->tz = g_time_zone_new_identifier(c->zone)) != NULL;
	if (!ok)
		return fail(err, errlen,
			    "unknown time zone '%s': not a name of the tz database in %s, such as "
			    "Europe/Berlin",
			    quote(q, name, name_len), dir);
	return 0;
}

int cron_parse(const char *expr, size_t len, const char *tz, size_t tz_len, struct cron **out,
	       char *err, size_t errlen)
{
	struct cron *c;
	const char *src;
	size_t srclen;
	char q[QUOTE_MAX + 4];

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (expr == NULL)
		len = 0;
	while (len > 0 && isspace((unsigned char)expr[0]))
		expr++, len--;
	while (len > 0 && isspace((unsigned char)expr[len - 1]))
		len--;
	if (len == 0)
		return fail(err, errlen,
			    "cron expression is empty: it needs 5 fields (" FIELD_LIST
			    ") or a macro such as @daily");

	src = expr;
	srclen = len;
	if (expr[0] == '@') {
		size_t w = 0, rest, k;

		while (w < len && !isspace((unsigned char)expr[w]))
			w++;
		for (k = 0; k < sizeof(macros) / sizeof(macros[0]); k++)
			if (strlen(macros[k].name) == w &&
			    strncasecmp(expr, macros[k].name, w) == 0)
				break;
		if (k == sizeof(macros) / sizeof(macros[0]))
			return fail(err, errlen, "unknown cron macro '%s' (known: " MACRO_LIST ")",
				    quote(q, expr, w));
		for (rest = w; rest < len && isspace((unsigned char)expr[rest]); rest++)
			;
		if (rest < len)
			return fail(err, errlen,
				    "cron macro '%s' stands alone, but '%s' follows it",
				    macros[k].name, quote(q, expr + rest, len - rest));
		src = macros[k].expr;
		srclen = strlen(src);
	}

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return fail(err, errlen, "out of memory parsing a cron expression");
	if (fields_parse(c, src, srclen, err, errlen) < 0)
		goto out;
	if (tz != NULL && tz_len > 0) {
		if (zone_open(c, tz, tz_len, err, errlen) < 0)
			goto out;
	} else {
		c->zone = strdup("UTC");
	}
	c->text = strndup(expr, len);
	if (c->zone == NULL || c->text == NULL) {
		fail(err, errlen, "out of memory parsing a cron expression");
		goto out;
	}
	*out = c;
	return 0;
out:
	cron_free(c);
	return -1;
}

void cron_free(struct cron *c)
{
	if (c == NULL)
		return;
	if (c->tz)
		g_time_zone_unref(c->tz);
	free(c->text);
	free(c->zone);
	free(c);
}

const char *cron_text(const struct cron *c)
{
	return c->text;
}

const char *cron_zone(const struct cron *c)
{
	return c->zone;
}

/* ---- the next fire ------------------------------------------------------ */

/* A wall-clock minute of the zone. */
struct wall {
	int y, mon, day, hour, min; /* mon 1-12, day 1-31 */
};

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard
 * Hinnant's algorithms: exact for every year, no tables). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, struct wall *w)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;

	w->day = (int)(doy - (153 * mp + 2) / 5 + 1);
	w->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
	w->y = (int)(yoe + era * 400 + (w->mon <= 2));
}

static int days_in_month(int y, int m)
{
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 ? 28 + leap : month_max_days(m);
}

/* The lowest set bit of mask at from or above; -1 when none. */
static int next_bit(uint64_t mask, int from)
{
	if (from > 63)
		return -1;
	mask &= ~0ull << from;
	return mask ? __builtin_ctzll(mask) : -1;
}

static bool day_matches(const struct cron *c, const struct wall *w)
{
	int64_t days = days_from_civil(w->y, w->mon, w->day);
	int dow = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
	bool dom = c->dom & (1u << w->day), wd = c->dow & (1u << dow);

	return c->and_days ? dom && wd : dom || wd;
}

/* Moves w forward to the first wall time at or after it that c matches;
 * false when that lies past the month numbered last (year * 12 + month - 1).
 * w may come in with its minute, hour or day one past its end. */
static bool next_match(const struct cron *c, struct wall *w, int64_t last)
{
	int h, m;

	for (;;) {
		if ((int64_t)w->y * 12 + w->mon - 1 > last)
			return false;
		if (!(c->month & (1u << w->mon))) {
			m = next_bit(c->month, w->mon + 1);
			if (m < 0) {
				w->y++;
				m = next_bit(c->month, 1);
			}
			*w = (struct wall){ w->y, m, 1, 0, 0 };
			continue;
		}
		if (w->day > days_in_month(w->y, w->mon)) {
			if (++w->mon > 12) {
				w->y++;
				w->mon = 1;
			}
			w->day = 1;
			w->hour = w->min = 0;
			continue;
		}
		if (!day_matches(c, w) || (h = next_bit(c->hour, w->hour)) < 0) {
			w->day++;
			w->hour = w->min = 0;
			continue;
		}
		if (h != w->hour) {
			w->hour = h;
			w->min = 0;
		}
		if ((m = next_bit(c->minute, w->min)) < 0) {
			w->hour++;
			w->min = 0;
			continue;
		}
		w->min = m;
		return true;
	}
}

/* The zone's offset from UTC, in seconds, at the instant t (Unix s). */
static int32_t offset_at(const struct cron *c, int64_t t)
{
	if (c->tz == NULL)
		return 0;
	return g_time_zone_get_offset(c->tz,
				      g_time_zone_find_interval(c->tz, G_TIME_TYPE_UNIVERSAL, t));
}

/* The instant (Unix s) at which the wall time wall (seconds of the zone's
 * clock counted like Unix time) fires: its first occurrence, or when the
 * clock jumps over it, the instant of the jump. */
static int64_t instant_of(const struct cron *c, int64_t wall)
{
	int32_t off[3];
	int64_t best = INT64_MAX, lo, hi;

	if (c->tz == NULL)
		return wall;
	/* The offsets a day before and after (and at wall read as UTC) are
	 * those a wall time near a transition can have. */
	off[0] = offset_at(c, wall - 86400);
	off[1] = offset_at(c, wall);
	off[2] = offset_at(c, wall + 86400);
	for (int i = 0; i < 3; i++) {
		int64_t t = wall - off[i];

		if (t < best && offset_at(c, t) == off[i])
			best = t;
	}
	if (best != INT64_MAX)
		return best;

	/* A gap: the clock reads less than wall at lo and more at hi; the
	 * jump is the first instant at which it reads more. */
	lo = wall - (off[0] > off[2] ? off[0] : off[2]);
	hi = wall - (off[0] > off[2] ? off[2] : off[0]);
	if (lo + offset_at(c, lo) >= wall || hi + offset_at(c, hi) <= wall)
		return wall - off[2]; /* no plain gap: the later offset it is */
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;

		if (mid + offset_at(c, mid) > wall)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

int64_t cron_next(const struct cron *c, int64_t after_ms)
{
	int64_t after_s, minute, days, last;
	struct wall w;

	if (after_ms >= MAX_S * 1000)
		return INT64_MAX;
	if (after_ms < MIN_S * 1000)
		after_ms = MIN_S * 1000;
	after_s = floor_div(after_ms, 1000);
	/* The wall clock's next minute after the instant. */
	minute = floor_div(after_s + offset_at(c, after_s), 60) + 1;
	days = floor_div(minute, 1440);
	civil_from_days(days, &w);
	w.hour = (int)(minute - days * 1440) / 60;
	w.min = (int)(minute - days * 1440) % 60;
	last = (int64_t)w.y * 12 + w.mon - 1 + CRON_HORIZON_YEARS * 12;

	while (next_match(c, &w, last)) {
		int64_t wall = days_from_civil(w.y, w.mon, w.day) * 86400 + w.hour * 3600 +
			       w.min * 60;
		int64_t at = instant_of(c, wall);

		if (at > MAX_S)
			return INT64_MAX;
		if (at * 1000 > after_ms)
			return at * 1000;
		w.min++; /* a repeated hour, its first occurrence already past */
	}
	return INT64_MAX;
}
