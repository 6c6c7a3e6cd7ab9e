/* config.c - parse and range-check HEAPINDEX_* environment variables. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

unsigned config_default_addr_bits(void)
{
#if defined(__x86_64__)
	return 47;
#else
	return 48;
#endif
}

/* Parse a whole decimal number in [min, max]; anything else is an error. */
static int parse_ranged(const char *name, unsigned min, unsigned max,
                        unsigned *out, char *err, size_t errlen)
{
	const char *text = getenv(name);
	if (!text)
		return 0;
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (errno || end == text || *end || *text == '-' || *text == '+' ||
	    v < min || v > max) {
		snprintf(err, errlen,
		         "heapindex: %s='%s' is invalid: expected a whole number from %u to %u",
		         name, text, min, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

int config_from_env(struct heapindex_config *cfg, char *err, size_t errlen)
{
	cfg->addr_bits = config_default_addr_bits();
	cfg->bin_shift = CONFIG_BIN_SHIFT_DEFAULT;
	cfg->stats_path = NULL;

	if (parse_ranged("HEAPINDEX_ADDR_BITS", CONFIG_ADDR_BITS_MIN,
	                 CONFIG_ADDR_BITS_MAX, &cfg->addr_bits, err, errlen) ||
	    parse_ranged("HEAPINDEX_BIN_SHIFT", CONFIG_BIN_SHIFT_MIN,
	                 CONFIG_BIN_SHIFT_MAX, &cfg->bin_shift, err, errlen))
		return -1;

	const char *stats = getenv("HEAPINDEX_STATS");
	if (stats && !*stats) {
		snprintf(err, errlen,
		         "heapindex: HEAPINDEX_STATS is set but empty: expected a file path to append JSON lines to");
		return -1;
	}
	cfg->stats_path = stats;
	return 0;
}
