/* symbolize.c - code address -> function, source file and line, with
 * libdwarf reading the DWARF of the executable or library in place.
 *
 * Off the allocation path only (the census writer, heapindex_describe): it
 * allocates freely, serialised by one mutex (taken around fork: fork.c),
 * and caches per address.
 *  - The object holding pc and its load bias come from dl_iterate_phdr, so
 *    PIE executables and shared libraries work; DWARF addresses are
 *    pc - 1 - bias: pc is a return address, the byte after the call.
 *  - Each object is opened once; its compilation units' address ranges are
 *    listed once (libdwarf's CU iteration is stateful and must run to its
 *    end, so it is never left half-way).
 *  - Without DWARF (stripped, debug info elsewhere) the ELF symbol from
 *    dladdr names the function and the result says "no debug info".
 * Functions are the outermost DW_TAG_subprogram containing pc; when gcc
 * inlined the allocating function, the line is the inlined code's.
 */
#include "sites.h"

#include <dlfcn.h>
#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct unit {
	Dwarf_Off die;          /* offset of the CU's DIE in .debug_info */
	Dwarf_Addr low, high;   /* [low, high), or 0, ~0 when it has DW_AT_ranges */
};

struct object {
	char path[4096];
	uintptr_t bias;
	Dwarf_Debug dbg; /* NULL: no DWARF */
	struct unit *units;
	size_t nunits;
};

#define MAX_OBJECTS 64
static struct object objects[MAX_OBJECTS];
static size_t nobjects;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* --- which object ------------------------------------------------------------- */
struct find {
	uintptr_t pc;
	char path[4096];
	uintptr_t bias;
	int found;
};

static int find_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct find *f = arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type != PT_LOAD || f->pc - start >= ph->p_memsz)
			continue;
		f->bias = info->dlpi_addr;
		if (info->dlpi_name && *info->dlpi_name) {
			snprintf(f->path, sizeof f->path, "%s", info->dlpi_name);
		} else { /* the main program */
			ssize_t n = readlink("/proc/self/exe", f->path, sizeof f->path - 1);
			f->path[n > 0 ? n : 0] = '\0';
		}
		f->found = 1;
		return 1;
	}
	return 0;
}

static void list_units(struct object *o)
{
	Dwarf_Error err = NULL;
	Dwarf_Unsigned next;
	size_t cap = 0;
	while (dwarf_next_cu_header_d(o->dbg, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	                              NULL, &next, NULL, &err) == DW_DLV_OK) {
		Dwarf_Die cu = NULL;
		if (dwarf_siblingof_b(o->dbg, NULL, 1, &cu, &err) != DW_DLV_OK)
			continue;
		struct unit u = { 0, 0, ~(Dwarf_Addr)0 };
		Dwarf_Addr low, high;
		Dwarf_Half form;
		enum Dwarf_Form_Class cls;
		dwarf_dieoffset(cu, &u.die, &err);
		if (dwarf_lowpc(cu, &low, &err) == DW_DLV_OK &&
		    dwarf_highpc_b(cu, &high, &form, &cls, &err) == DW_DLV_OK) {
			u.low = low;
			u.high = cls == DW_FORM_CLASS_CONSTANT ? low + high : high;
		}
		dwarf_dealloc(o->dbg, cu, DW_DLA_DIE);
		if (o->nunits == cap) {
			cap = cap ? cap * 2 : 16;
			struct unit *grown = realloc(o->units, cap * sizeof *grown);
			if (!grown)
				break;
			o->units = grown;
		}
		o->units[o->nunits++] = u;
	}
}

static struct object *object_of(uintptr_t pc)
{
	struct find f = { .pc = pc };
	dl_iterate_phdr(find_object, &f);
	if (!f.found)
		return NULL;
	for (size_t i = 0; i < nobjects; i++)
		if (objects[i].bias == f.bias && !strcmp(objects[i].path, f.path))
			return &objects[i];
	if (nobjects == MAX_OBJECTS)
		return NULL;
	struct object *o = &objects[nobjects++];
	memcpy(o->path, f.path, sizeof o->path);
	o->bias = f.bias;
	Dwarf_Error err = NULL;
	if (dwarf_init_path(o->path, NULL, 0, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL,
	                    &o->dbg, NULL, 0, NULL, &err) != DW_DLV_OK)
		o->dbg = NULL;
	else
		list_units(o);
	return o;
}

/* --- lines and functions ---------------------------------------------------------- */

/* The line table row covering addr in this CU: file and line. */
static int line_of(Dwarf_Die cu, Dwarf_Addr addr, struct site_symbol *out)
{
	Dwarf_Error err = NULL;
	Dwarf_Unsigned version;
	Dwarf_Small tables;
	Dwarf_Line_Context ctx;
	if (dwarf_srclines_b(cu, &version, &tables, &ctx, &err) != DW_DLV_OK)
		return 0;
	Dwarf_Line *lines;
	Dwarf_Signed n;
	int found = 0;
	if (dwarf_srclines_from_linecontext(ctx, &lines, &n, &err) == DW_DLV_OK) {
		for (Dwarf_Signed i = 0; i + 1 < n && !found; i++) {
			Dwarf_Addr a, b;
			Dwarf_Bool end;
			if (dwarf_lineaddr(lines[i], &a, &err) != DW_DLV_OK ||
			    dwarf_lineaddr(lines[i + 1], &b, &err) != DW_DLV_OK ||
			    dwarf_lineendsequence(lines[i], &end, &err) != DW_DLV_OK)
				continue;
			if (end || addr < a || addr >= b)
				continue;
			Dwarf_Unsigned line;
			char *file;
			if (dwarf_lineno(lines[i], &line, &err) == DW_DLV_OK &&
			    dwarf_linesrc(lines[i], &file, &err) == DW_DLV_OK) {
				snprintf(out->file, sizeof out->file, "%s", base_name(file));
				out->line = (unsigned)line;
				found = 1;
			}
		}
	}
	dwarf_srclines_dealloc_b(ctx);
	return found;
}

/* A DIE's name, following DW_AT_abstract_origin and DW_AT_specification
 * (out-of-line copies of inline functions carry their name there). */
static int die_name(Dwarf_Debug dbg, Dwarf_Die die, char *buf, size_t len)
{
	Dwarf_Error err = NULL;
	char *name;
	if (dwarf_diename(die, &name, &err) == DW_DLV_OK) {
		snprintf(buf, len, "%s", name);
		return 1;
	}
	static const Dwarf_Half refs[] = { DW_AT_abstract_origin, DW_AT_specification };
	for (int i = 0; i < 2; i++) {
		Dwarf_Attribute attr;
		Dwarf_Off off;
		Dwarf_Die target;
		if (dwarf_attr(die, refs[i], &attr, &err) != DW_DLV_OK)
			continue;
		int ok = dwarf_global_formref(attr, &off, &err) == DW_DLV_OK &&
		         dwarf_offdie_b(dbg, off, 1, &target, &err) == DW_DLV_OK;
		dwarf_dealloc(dbg, attr, DW_DLA_ATTR);
		if (ok) {
			ok = dwarf_diename(target, &name, &err) == DW_DLV_OK;
			if (ok)
				snprintf(buf, len, "%s", name);
			dwarf_dealloc(dbg, target, DW_DLA_DIE);
			if (ok)
				return 1;
		}
	}
	return 0;
}

/* The subprogram among cu's children whose [low_pc, high_pc) holds addr. */
static int function_of(Dwarf_Debug dbg, Dwarf_Die cu, Dwarf_Addr addr, struct site_symbol *out)
{
	Dwarf_Error err = NULL;
	Dwarf_Die die, next;
	int found = 0;
	if (dwarf_child(cu, &die, &err) != DW_DLV_OK)
		return 0;
	for (;;) {
		Dwarf_Half tag;
		Dwarf_Addr low, high;
		Dwarf_Half form;
		enum Dwarf_Form_Class cls;
		if (dwarf_tag(die, &tag, &err) == DW_DLV_OK && tag == DW_TAG_subprogram &&
		    dwarf_lowpc(die, &low, &err) == DW_DLV_OK &&
		    dwarf_highpc_b(die, &high, &form, &cls, &err) == DW_DLV_OK) {
			if (cls == DW_FORM_CLASS_CONSTANT)
				high += low;
			if (addr >= low && addr < high)
				found = die_name(dbg, die, out->function, sizeof out->function);
		}
		int more = !found && dwarf_siblingof_b(dbg, die, 1, &next, &err) == DW_DLV_OK;
		dwarf_dealloc(dbg, die, DW_DLA_DIE);
		if (!more)
			return found;
		die = next;
	}
}

static int from_dwarf(struct object *o, Dwarf_Addr addr, struct site_symbol *out)
{
	for (size_t i = 0; i < o->nunits; i++) {
		const struct unit *u = &o->units[i];
		if (addr < u->low || addr >= u->high)
			continue;
		Dwarf_Error err = NULL;
		Dwarf_Die cu;
		if (dwarf_offdie_b(o->dbg, u->die, 1, &cu, &err) != DW_DLV_OK)
			continue;
		int lined = line_of(cu, addr, out);
		if (lined)
			function_of(o->dbg, cu, addr, out);
		dwarf_dealloc(o->dbg, cu, DW_DLA_DIE);
		if (lined)
			return 1;
	}
	return 0;
}

/* --- the cache ------------------------------------------------------------------ */
#define CACHE_SLOTS 1024
static struct cached {
	uintptr_t pc;
	int known;
	struct site_symbol sym;
} *cache;

static int symbolize_uncached(uintptr_t pc, struct site_symbol *out)
{
	memset(out, 0, sizeof *out);
	snprintf(out->function, sizeof out->function, "??");
	struct object *o = object_of(pc - 1);
	if (o) {
		snprintf(out->object, sizeof out->object, "%.127s", base_name(o->path));
		if (o->dbg && from_dwarf(o, pc - 1 - o->bias, out)) {
			out->has_debug = 1;
			return 1;
		}
	}
	Dwarf_Error err = NULL;
	(void)err;
	Dl_info info;
	if (!dladdr((void *)(pc - 1), &info))
		return o != NULL;
	if (info.dli_sname)
		snprintf(out->function, sizeof out->function, "%s", info.dli_sname);
	if (info.dli_fname && !out->object[0])
		snprintf(out->object, sizeof out->object, "%s", base_name(info.dli_fname));
	return 1;
}

int sites_symbolize(uintptr_t pc, struct site_symbol *out)
{
	pthread_mutex_lock(&lock);
	sites_internal++;
	if (!cache)
		cache = calloc(CACHE_SLOTS, sizeof *cache);
	struct cached *c = cache ? &cache[(pc >> 1) % CACHE_SLOTS] : NULL;
	int known;
	if (c && c->pc == pc) {
		*out = c->sym;
		known = c->known;
	} else {
		known = symbolize_uncached(pc, out);
		if (c) {
			c->pc = pc;
			c->known = known;
			c->sym = *out;
		}
	}
	sites_internal--;
	pthread_mutex_unlock(&lock);
	return known;
}

/* fork (fork.c): a child must not inherit the mutex held, nor the cache or
 * libdwarf's state half-updated. */
void symbolize_fork_lock(void)
{
	pthread_mutex_lock(&lock);
}

void symbolize_fork_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

void sites_format(uintptr_t pc, char *buf, size_t len)
{
	struct site_symbol s;
	if (!sites_symbolize(pc, &s))
		snprintf(buf, len, "%#lx", (unsigned long)pc);
	else if (s.has_debug)
		snprintf(buf, len, "%s (%s:%u)", s.function, s.file, s.line);
	else
		snprintf(buf, len, "%s (%s, no debug info)", s.function, s.object);
}
