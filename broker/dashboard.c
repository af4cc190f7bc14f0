/* Looks up the dashboard's assets by URL path.  The table itself is
 * generated at build time (embed.cmake writes dashboard_assets.c from the
 * files of broker/dashboard/), so editing a page rebuilds cueqd with it. */
#include "dashboard.h"

#include <string.h>

/* Defined in the generated dashboard_assets.c. */
extern const struct dashboard_asset dashboard_assets[];
extern const size_t dashboard_nassets;

const struct dashboard_asset *dashboard_find(const char *path)
{
	if (path == NULL)
		return NULL;
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	for (size_t i = 0; i < dashboard_nassets; i++)
		if (strcmp(dashboard_assets[i].path, path) == 0)
			return &dashboard_assets[i];
	return NULL;
}
