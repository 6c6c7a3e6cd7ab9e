/* config.c - parse and range-check HEAPINDEX_* environment variables. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "index.h"

int config_meta_for(const struct heapindex_config *cfg, const char *index, unsigned caps,
                    char *err, size_t errlen)
{
	if (cfg->meta > META_HEADER && cfg->lookup_cache) {
		snprintf(err, errlen, "heapindex: HEAPINDEX_LOOKUP_CACHE needs the header placement, not "
		         "HEAPINDEX_META=%s (its mark lives in the header): expected HEAPINDEX_META=header",
		         chunk_meta_name((enum chunk_meta)cfg->meta));
		return -1;
	}
	/* The census takes a freed chunk off its site's row: under side only an
	 * index with records knows that site (it hands it back at remove). */
	if (cfg->census_path && !(caps & INDEX_SIDE_RECORDS))
		caps &= ~META_CAP(META_SIDE);
	/* A start mask and a lock bit per table byte: bins of at most 64 bytes
	 * (index.h, INDEX_SIDE_SMALL_BINS). */
	int bins_too_big = (caps & INDEX_SIDE_SMALL_BINS) && cfg->bin_shift > CONFIG_SIDE_BIN_SHIFT_MAX;
	if (bins_too_big)
		caps &= ~META_CAP(META_SIDE);
	if (cfg->meta < 0) {
		/* The default (config.h): side for every index that takes it,
		 * unless the lookup cache, whose mark lives in the header, is on. */
		if ((caps & META_CAP(META_SIDE)) && !cfg->lookup_cache)
			return META_SIDE;
		static const enum chunk_meta order[] = { META_HEADER, META_SIDE, META_TRAILER };
		for (unsigned i = 0; i < sizeof order / sizeof *order; i++)
			if (caps & META_CAP(order[i]))
				return (int)order[i];
		return META_HEADER;
	}
	if (caps & META_CAP(cfg->meta))
		return cfg->meta;
	if (bins_too_big && cfg->meta == META_SIDE) {
		snprintf(err, errlen, "heapindex: HEAPINDEX_META=side takes HEAPINDEX_BIN_SHIFT from %u to %u "
		         "with the %s index (a bin's start mask and lock bit fill one table byte), not %u: "
		         "expected a smaller shift or HEAPINDEX_META=header",
		         CONFIG_BIN_SHIFT_MIN, CONFIG_SIDE_BIN_SHIFT_MAX, index, cfg->bin_shift);
		return -1;
	}
	char can[64] = "";
	for (int m = 0; m < META_COUNT; m++)
		if (caps & META_CAP(m))
			snprintf(can + strlen(can), sizeof can - strlen(can), "%s%s", *can ? ", " : "",
			         chunk_meta_name((enum chunk_meta)m));
	snprintf(err, errlen, "heapindex: HEAPINDEX_META=%s is not supported by the %s index%s: expected %s",
	         chunk_meta_name((enum chunk_meta)cfg->meta), index,
	         cfg->census_path && cfg->meta == META_SIDE ? " with HEAPINDEX_CENSUS" : "", can);
	return -1;
}

unsigned config_default_addr_bits(void)
{
#if defined(__x86_64__)
	return 47;
#else
	return 48;
#endif
}

/* The settings that are strings are copied here: the environment's memory
 * belongs to the program, and some rewrite it (redis, nginx and others set
 * their process title over argv and environ), which left the hooks writing
 * statistics to a path that was no longer there.  No malloc: this runs
 * inside the first one.  Written once at start-up, before any thread. */
#define SETTING_MAX 4096
static char kept_skip[SETTING_MAX], kept_census[SETTING_MAX], kept_stats[SETTING_MAX];

/* value copied into buf, or NULL (value NULL); -1 with err if it is too long. */
static int keep(const char *name, const char *value, char *buf, const char **out,
                char *err, size_t errlen)
{
	*out = NULL;
	if (!value)
		return 0;
	size_t len = strlen(value);
	if (len >= SETTING_MAX) {
		snprintf(err, errlen, "heapindex: %s is %zu bytes long: at most %d are kept", name, len,
		         SETTING_MAX - 1);
		return -1;
	}
	memcpy(buf, value, len + 1);
	*out = buf;
	return 0;
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

/* HEAPINDEX_SITE=ret|unwind:N, and the two settings that take a path or a
 * list and must not be empty. */
static int parse_sites(struct heapindex_config *cfg, char *err, size_t errlen)
{
	const char *site = getenv("HEAPINDEX_SITE");
	if (site && strcmp(site, "ret") != 0) {
		char *end;
		errno = 0;
		unsigned long n = strncmp(site, "unwind:", 7) == 0 && site[7] >= '0' && site[7] <= '9'
		                          ? strtoul(site + 7, &end, 10) : 0;
		if (!n || errno || *end || n > CONFIG_SITE_DEPTH_MAX) {
			snprintf(err, errlen,
			         "heapindex: HEAPINDEX_SITE='%s' is invalid: expected ret or unwind:N with N from 1 to %u",
			         site, CONFIG_SITE_DEPTH_MAX);
			return -1;
		}
		cfg->site_depth = (unsigned)n;
	}
	static const char *const nonempty[] = { "HEAPINDEX_SITE_SKIP", "HEAPINDEX_CENSUS" };
	for (int i = 0; i < 2; i++) {
		const char *v = getenv(nonempty[i]);
		if (v && !*v) {
			snprintf(err, errlen, "heapindex: %s is set but empty: expected %s", nonempty[i],
			         i ? "a file path to append the census to"
			           : "a comma-separated list of function names");
			return -1;
		}
	}
	if (keep("HEAPINDEX_SITE_SKIP", getenv("HEAPINDEX_SITE_SKIP"), kept_skip, &cfg->site_skip,
	         err, errlen) ||
	    keep("HEAPINDEX_CENSUS", getenv("HEAPINDEX_CENSUS"), kept_census, &cfg->census_path, err,
	         errlen))
		return -1;
	return 0;
}

int config_from_env(struct heapindex_config *cfg, char *err, size_t errlen)
{
	cfg->addr_bits = config_default_addr_bits();
	cfg->bin_shift = CONFIG_BIN_SHIFT_DEFAULT;
	cfg->table_levels = 0;
	cfg->stats_path = NULL;
	cfg->fail_every = 0;
	cfg->verify_every = 0;
	cfg->lookup_cache = 0;
	cfg->site_depth = 0;
	cfg->site_skip = cfg->census_path = NULL;
	cfg->meta = -1;

	const char *meta = getenv("HEAPINDEX_META");
	if (meta) {
		cfg->meta = chunk_meta_by_name(meta);
		if (cfg->meta < 0) {
			snprintf(err, errlen, "heapindex: HEAPINDEX_META='%s' is invalid: expected %s",
			         meta, CONFIG_META_NAMES);
			return -1;
		}
	}

	if (parse_ranged("HEAPINDEX_ADDR_BITS", CONFIG_ADDR_BITS_MIN,
	                 CONFIG_ADDR_BITS_MAX, &cfg->addr_bits, err, errlen) ||
	    parse_ranged("HEAPINDEX_BIN_SHIFT", CONFIG_BIN_SHIFT_MIN,
	                 CONFIG_BIN_SHIFT_MAX, &cfg->bin_shift, err, errlen) ||
	    parse_ranged("HEAPINDEX_TABLE_LEVELS", 0, CONFIG_TABLE_LEVELS_MAX,
	                 &cfg->table_levels, err, errlen) ||
	    parse_ranged("HEAPINDEX_FAIL_EVERY", 0, CONFIG_FAIL_EVERY_MAX,
	                 &cfg->fail_every, err, errlen) ||
	    parse_ranged("HEAPINDEX_VERIFY", 0, CONFIG_VERIFY_MAX,
	                 &cfg->verify_every, err, errlen) ||
	    parse_ranged("HEAPINDEX_LOOKUP_CACHE", 0, CONFIG_LOOKUP_CACHE_MAX,
	                 &cfg->lookup_cache, err, errlen) ||
	    parse_sites(cfg, err, errlen))
		return -1;
	/* Direct-mapped: the entry is picked by masking the address. */
	if (cfg->lookup_cache & (cfg->lookup_cache - 1)) {
		snprintf(err, errlen,
		         "heapindex: HEAPINDEX_LOOKUP_CACHE=%u is not a power of two: expected 0 (off) or "
		         "1, 2, 4, ... %u entries per thread",
		         cfg->lookup_cache, CONFIG_LOOKUP_CACHE_MAX);
		return -1;
	}

	const char *stats = getenv("HEAPINDEX_STATS");
	if (stats && !*stats) {
		snprintf(err, errlen,
		         "heapindex: HEAPINDEX_STATS is set but empty: expected a file path to append JSON lines to");
		return -1;
	}
	return keep("HEAPINDEX_STATS", stats, kept_stats, &cfg->stats_path, err, errlen);
}
