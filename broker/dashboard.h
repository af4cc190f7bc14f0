/* The dashboard's assets (broker/dashboard/), compiled into cueqd by
 * embed.cmake so the broker serves its page with nothing to install beside
 * it and no build step for users.  The tables are constant and live as long
 * as the program: nothing here is freed, and any thread may call. */
#ifndef CUEQ_DASHBOARD_H
#define CUEQ_DASHBOARD_H

#include <stddef.h>

struct dashboard_asset {
	const char *path;          /* URL path, e.g. "/app.js" */
	const char *type;          /* Content-Type to answer with */
	const unsigned char *data; /* the file's bytes */
	size_t len;                /* how many */
};

/* The asset served at path, a URL path without its query ("/" is
 * index.html); NULL when there is none. */
const struct dashboard_asset *dashboard_find(const char *path);

#endif
