// replaced_malloc_cxx.cc - a C++ program that brings its own malloc, free,
// calloc and realloc (glibc's minimum set) and uses new, delete and the
// standard containers.  libstdc++'s operators call malloc, so without the
// hooks every object comes from the program's allocator; under the hooks
// (which define the operators too, hooks/cxx.c) it must be the same
// (issue 16, item 4).  Prints what the program's allocator saw.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

alignas(16) static char arena[1 << 22];
static size_t used;
static unsigned long mallocs, frees;

extern "C" void *malloc(size_t n)
{
	size_t need = 16 + ((n + 15) & ~size_t(15));
	if (n > sizeof arena || used + need > sizeof arena)
		return nullptr;
	char *p = arena + used;
	used += need;
	memcpy(p, &n, sizeof n);
	mallocs++;
	return p + 16;
}

extern "C" void free(void *p)
{
	if (p)
		frees++;
}

extern "C" void *calloc(size_t a, size_t b)
{
	if (b && a > SIZE_MAX / b)
		return nullptr;
	void *p = malloc(a * b);
	if (p)
		memset(p, 0, a * b);
	return p;
}

extern "C" void *realloc(void *p, size_t n)
{
	void *q = malloc(n);
	if (p && q) {
		size_t old;
		memcpy(&old, static_cast<char *>(p) - 16, sizeof old);
		memcpy(q, p, old < n ? old : n);
	}
	return q;
}

int main()
{
	unsigned long before = mallocs;
	std::vector<std::string> v;
	for (int i = 0; i < 100; i++)
		v.push_back(std::string(40, static_cast<char>('a' + i % 26)));
	int *a = new int[50];
	a[49] = 7;
	delete[] a;
	bool in_arena = reinterpret_cast<char *>(v.data()) >= arena &&
	                reinterpret_cast<char *>(v.data()) < arena + sizeof arena;
	std::printf("strings %zu, vector in the program's arena %d, mallocs %lu, frees %lu\n", v.size(),
	            in_arena, mallocs - before, frees);
	return 0;
}
