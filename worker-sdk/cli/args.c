/*
 * args.c - flags, durations, times and integers of the command line.
 *
 * getopt_long would permute argv behind our back and knows nothing of our
 * global flags, so cli_parse is a small table-driven parser: each command
 * passes its flags; --url, --auth-token, --tls-ca, --json, --timeout and
 * --help are accepted after every command too.  Values come as "--flag value" or "--flag=value"; a
 * value is taken as given even when it starts with '-' (--priority -5).
 * Flags of features this version does not have yet are in the tables, so
 * they are refused by name instead of being taken for a typo (or worse,
 * silently ignored).  Every parse checks the whole string and its range:
 * a bare number is not a duration, but for 0 (zero in any unit); a flag
 * for which zero makes no sense says its range.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static struct cli_opt *find_opt(struct cli_opt *opts, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
			return &opts[i];
	return NULL;
}

/* The global flags, accepted after the command as well. */
static int global_opt(struct cli *cli, const char *name, size_t len, const char *v)
{
	if (len == 3 && strncmp(name, "url", 3) == 0) {
		cli->url = v;
		return 0;
	}
	if (len == 10 && strncmp(name, "auth-token", 10) == 0) {
		cli->token = *v != '\0' ? v : NULL;
		return 0;
	}
	if (len == 6 && strncmp(name, "tls-ca", 6) == 0) {
		cli->tls_ca = *v != '\0' ? v : NULL;
		return 0;
	}
	return cli_parse_duration(cli, "timeout", v, 1, CLI_NO_MAX, &cli->timeout_ms);
}

static bool is_global_value(const char *name, size_t len)
{
	return (len == 3 && strncmp(name, "url", 3) == 0) ||
	       (len == 10 && strncmp(name, "auth-token", 10) == 0) ||
	       (len == 6 && strncmp(name, "tls-ca", 6) == 0) ||
	       (len == 7 && strncmp(name, "timeout", 7) == 0);
}

int cli_parse(struct cli *cli, int argc, char **argv, struct cli_opt *opts, size_t nopts,
	      int *npos, int *dashdash)
{
	int n = 0, i;

	*dashdash = -1;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *v = NULL;
		struct cli_opt *o;
		size_t len;

		if (*dashdash >= 0 || a[0] != '-' || a[1] == '\0') {
			argv[1 + n++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			*dashdash = n;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf("usage: cueq %s\n%s", cli->cmd->usage, cli->cmd->help);
			return CLI_PARSE_HELP;
		}
		if (a[1] != '-')
			return cli_usage_error(cli, "unknown flag '%s'", a);
		name = a + 2;
		len = strcspn(name, "=");
		if (name[len] == '=')
			v = name + len + 1;
		if (len == 4 && strncmp(name, "json", 4) == 0 && v == NULL) {
			cli->json = true;
			continue;
		}
		o = find_opt(opts, nopts, name, len);
		if (o == NULL && !is_global_value(name, len))
			return cli_usage_error(cli, "unknown flag '--%.*s' for %s", (int)len, name,
					       cli->cmd->name);
		if (o != NULL && o->later)
			return cli_error("--%.*s is not supported yet by this version of cueq; "
					 "leave it out", (int)len, name);
		if (o != NULL && o->kind == OPT_FLAG) {
			if (v != NULL)
				return cli_usage_error(cli, "--%s takes no value", o->name);
			o->seen = true;
			continue;
		}
		if (v == NULL) {
			if (i + 1 >= argc)
				return cli_usage_error(cli, "--%.*s needs a value", (int)len, name);
			v = argv[++i];
		}
		if (o == NULL) {
			if (global_opt(cli, name, len, v) != 0)
				return CLI_EXIT_ERROR;
			continue;
		}
		o->seen = true;
		o->value = v;
	}
	*npos = n;
	return 0;
}

/* Reads exactly n digits. */
static bool digits(const char **s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*s)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*s += n;
	*out = v;
	return true;
}

static bool expect(const char **s, const char *one_of)
{
	if (**s == '\0' || strchr(one_of, **s) == NULL)
		return false;
	(*s)++;
	return true;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dm[m - 1];
}

bool cli_parse_time(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, t;

	if (s == NULL)
		return false;
	if (*s == '@') {
		if (!cli_parse_int(s + 1, 0, INT64_MAX / 1000, &t))
			return false;
		*ms = t * 1000;
		return true;
	}
	if (!digits(&s, 4, &y) || !expect(&s, "-") || !digits(&s, 2, &mo) || !expect(&s, "-") ||
	    !digits(&s, 2, &d) || !expect(&s, "Tt ") || !digits(&s, 2, &h) || !expect(&s, ":") ||
	    !digits(&s, 2, &mi) || !expect(&s, ":") || !digits(&s, 2, &sec))
		return false;
	if (*s == '.') {
		int64_t scale = 100;
		s++;
		if (*s < '0' || *s > '9')
			return false;
		for (; *s >= '0' && *s <= '9'; s++, scale /= 10)
			frac += (*s - '0') * scale;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '+' ? 1 : -1;
		if (!digits(&s, 2, &oh) || !expect(&s, ":") || !digits(&s, 2, &om) || oh > 23 ||
		    om > 59)
			return false;
	} else {
		return false;
	}
	if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 60)
		return false;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	if (t < 0)
		return false;
	*ms = t * 1000 + frac;
	return true;
}

bool cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || *s == ' ')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

int cli_parse_duration(const struct cli *cli, const char *flag, const char *v, int64_t min,
		       int64_t max, int64_t *ms)
{
	char lo[32], hi[32];

	if (cueq_parse_duration(v, ms) != CUEQ_OK) {
		if (*v != '\0' && strspn(v, "0123456789") == strlen(v))
			return cli_usage_error(cli,
					       "bad duration '%s' for --%s: a number needs a unit; "
					       "write e.g. %ss or %sms (only 0 goes without one)",
					       v, flag, v, v);
		return cli_usage_error(cli,
				       "bad duration '%s' for --%s: write a number with a unit, "
				       "e.g. 250ms, 30s, 5m, 2h, 1d, or 0",
				       v, flag);
	}
	if (*ms >= min && *ms <= max)
		return 0;
	cli_duration_str(min, lo, sizeof(lo));
	if (max < CLI_NO_MAX)
		return cli_usage_error(cli, "--%s %s is out of range: use %s to %s", flag, v, lo,
				       cli_duration_str(max, hi, sizeof(hi)));
	if (*ms < min)
		return cli_usage_error(cli, "--%s %s is out of range: use at least %s", flag, v, lo);
	return cli_usage_error(cli, "--%s %s is too long", flag, v);
}

int cli_duration_opt(const struct cli *cli, const struct cli_opt *o, int64_t min, int64_t max,
		     int64_t *ms)
{
	if (!o->seen)
		return 0;
	return cli_parse_duration(cli, o->name, o->value, min, max, ms);
}

int cli_int_opt(const struct cli *cli, const struct cli_opt *o, int64_t min, int64_t max,
		int64_t *out)
{
	if (!o->seen)
		return 0;
	if (!cli_parse_int(o->value, min, max, out))
		return cli_usage_error(cli, "bad value '%s' for --%s: use a whole number from "
				       "%lld to %lld", o->value, o->name, (long long)min,
				       (long long)max);
	return 0;
}
