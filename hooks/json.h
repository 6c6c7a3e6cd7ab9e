/* json.h - a tiny JSON object writer into a fixed buffer.
 *
 * The hooks write their statistics while the program exits, possibly from a
 * destructor after stdio is gone, so this writer never allocates: it formats
 * into a caller-owned buffer and marks overflow instead of growing.
 */
#ifndef HEAPINDEX_JSON_H
#define HEAPINDEX_JSON_H

#include <stddef.h>
#include <stdint.h>

struct json_out {
	char *buf;
	size_t cap, len;
	int need_comma; /* a value was written at this nesting level */
	int overflow;
};

void json_init(struct json_out *j, char *buf, size_t cap);
void json_open(struct json_out *j, const char *key);  /* key NULL: top level */
void json_close(struct json_out *j);
void json_u64(struct json_out *j, const char *key, uint64_t v);
void json_f64(struct json_out *j, const char *key, double v);
void json_str(struct json_out *j, const char *key, const char *s);

#endif /* HEAPINDEX_JSON_H */
