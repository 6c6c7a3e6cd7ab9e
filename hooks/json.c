/* json.c - see json.h. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>

void json_init(struct json_out *j, char *buf, size_t cap)
{
	j->buf = buf;
	j->cap = cap;
	j->len = 0;
	j->need_comma = 0;
	j->overflow = 0;
	if (cap)
		buf[0] = '\0';
}

static void emit(struct json_out *j, const char *fmt, ...)
{
	if (j->overflow)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(j->buf + j->len, j->cap - j->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= j->cap - j->len) {
		j->overflow = 1;
		return;
	}
	j->len += (size_t)n;
}

static void emit_key(struct json_out *j, const char *key)
{
	if (j->need_comma)
		emit(j, ",");
	if (key)
		emit(j, "\"%s\":", key);
	j->need_comma = 1;
}

void json_open(struct json_out *j, const char *key)
{
	emit_key(j, key);
	emit(j, "{");
	j->need_comma = 0;
}

void json_close(struct json_out *j)
{
	emit(j, "}");
	j->need_comma = 1;
}

void json_u64(struct json_out *j, const char *key, uint64_t v)
{
	emit_key(j, key);
	emit(j, "%llu", (unsigned long long)v);
}

void json_f64(struct json_out *j, const char *key, double v)
{
	emit_key(j, key);
	emit(j, "%.6f", v);
}

/* Strings here are program names and fixed words; escape what JSON requires. */
void json_str(struct json_out *j, const char *key, const char *s)
{
	emit_key(j, key);
	emit(j, "\"");
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			emit(j, "\\%c", ch);
		else if (ch < 0x20)
			emit(j, "\\u%04x", ch);
		else
			emit(j, "%c", ch);
	}
	emit(j, "\"");
}
