/* describe.c - heapindex_describe: one human line about any address, built
 * from heapindex_lookup (hooks.c) and the symbolizer.  Not for the
 * allocation path: symbolizing allocates. */
#include <stdio.h>

#include "heapindex.h"
#include "sites.h"

__attribute__((visibility("default"))) int heapindex_describe(const void *addr, char *buf,
                                                              size_t len)
{
	void *base;
	size_t size;
	const void *site;
	if (!heapindex_lookup(addr, &base, &size, &site)) {
		snprintf(buf, len, "%p is not in a live heap chunk", addr);
		return 0;
	}
	char where[512] = "an unknown site";
	if (site)
		sites_format(sites_leaf((uintptr_t)site), where, sizeof where);
	snprintf(buf, len, "%p is %zu bytes into a %zu-byte chunk allocated at %s", addr,
	         (size_t)((const char *)addr - (const char *)base), size, where);
	return 1;
}
