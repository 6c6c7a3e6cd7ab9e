/* measure.c - what the commands that drive indexes in-process share (replay,
 * scale, record): option errors, counts, index lists, clocks, randomness. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inproc.h"

/* getopt_long's complaint as one line of ours (opterr is 0). */
void cli_bad_option(const char *cmd, char **argv, int opt)
{
	const char *text = argv[optind - 1];
	if (opt == ':')
		cli_usage_error("%s: option '%s' needs a value (see heapindex %s --help)", cmd, text, cmd);
	if (optopt && !(text[0] == '-' && text[1] == '-'))
		cli_usage_error("%s: unknown option '-%c' (see heapindex %s --help)", cmd, optopt, cmd);
	cli_usage_error("%s: unknown option '%s' (see heapindex %s --help)", cmd, text, cmd);
}

uint64_t cli_parse_count(const char *cmd, const char *option, const char *text, uint64_t min,
                         uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	/* 1e6 and 10^6 are the natural ways to write these sizes. */
	if (!errno && end != text && (*end == 'e' || *end == 'E' || *end == '^')) {
		const char *exp_text = end + 1;
		unsigned long long base = *end == '^' ? v : 10, mant = *end == '^' ? 1 : v;
		unsigned long long e = strtoull(exp_text, &end, 10);
		v = end != exp_text && e <= 19 ? mant : 0;
		for (unsigned long long i = 0; i < e && v; i++)
			v = v > UINT64_MAX / base ? 0 : v * base;
		if (!v)
			end = (char *)text;
	}
	if (errno || end == text || *end || *text == '-' || *text == '+' || v < min || v > max)
		cli_usage_error("%s: %s '%s' is invalid: expected a whole number from %" PRIu64
		                " to %" PRIu64, cmd, option, text, min, max);
	return v;
}

const char *cli_linked_index_names(void)
{
	static char text[512];
	if (!text[0])
		for (int i = 0; all_indexes[i]; i++)
			snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s", i ? ", " : "",
			         all_indexes[i]->name);
	return text;
}

size_t cli_select_indexes(const char *cmd, const char *list, const struct index_ops **out,
                          size_t max)
{
	size_t n = 0;
	if (strcmp(list, "all") == 0) {
		while (n < max && all_indexes[n]) {
			out[n] = all_indexes[n];
			n++;
		}
		return n;
	}
	char copy[1024];
	if (strlen(list) >= sizeof copy)
		cli_usage_error("%s: --index list is too long", cmd);
	snprintf(copy, sizeof copy, "%s", list);
	char *save = NULL;
	for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		const struct index_ops *ops = index_by_name(name);
		if (!ops)
			cli_usage_error("%s: unknown index '%s': expected all or some of %s", cmd, name,
			                cli_linked_index_names());
		if (n == max)
			cli_usage_error("%s: too many indexes in --index", cmd);
		out[n++] = ops;
	}
	if (!n)
		cli_usage_error("%s: --index needs a name", cmd);
	return n;
}

uint64_t cli_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The timed loops are read on this thread's CPU clock: time while the
 * thread is descheduled (a shared 2-core machine preempts often) does not
 * count.  It is a system call here (~0.5-1 us, not vDSO), read twice per
 * timed loop: well under 1 ns per operation at the default batch sizes. */
uint64_t cli_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cli_next_random(uint64_t *state) /* splitmix64 */
{
	uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

void cli_wrong(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "heapindex: %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

void *cli_xmalloc(const char *cmd, size_t n, const char *what)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		cli_usage_error("%s: out of memory for %s (%zu bytes)", cmd, what, n);
	return p;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* On a shared machine a preempted block is an outlier a mean would keep. */
double cli_median(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, compare_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
