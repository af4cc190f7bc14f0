/*
 * input.c - reading a payload or a step value from standard input.
 *
 * Standard input is read up to one byte past the limit only, so an
 * oversized input is refused without reading all of it (or keeping it in
 * memory).  A process started without any standard input at all (closed
 * descriptor) gives an empty value rather than an error.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_read_stdin(size_t max, const char *what, const char *advice, char **out, size_t *len)
{
	size_t cap = max < 4096 ? max + 1 : 4096, n = 0;
	char *buf = malloc(cap + 1);

	if (buf == NULL)
		return cli_error("out of memory reading standard input");
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb;
			if (cap > max)
				break; /* one byte past the limit: too large */
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				free(buf);
				return cli_error("out of memory reading standard input");
			}
			buf = nb;
		}
		r = read(STDIN_FILENO, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EBADF && n == 0)
			break; /* no standard input at all: an empty value */
		if (r < 0) {
			int e = errno;
			free(buf);
			return cli_error("cannot read standard input: %s", strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max) {
		free(buf);
		return cli_error("the %s on standard input is larger than %zu bytes; %s", what, max,
				 advice);
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}
