// cxx_replaced.cc - a program that replaces operator new(size_t) and
// operator delete(void *) only, as C++ allows.  The library's other forms
// must use them: new[], nothrow new, delete[], sized and nothrow delete
// (the standard defines them, and libstdc++ implements them, by calling the
// replaceable primaries).  The hooks define every form (hooks/cxx.c) and
// must keep that.  Prints one line and exits 0, or names the broken form.
#include <cstdio>
#include <cstdlib>
#include <new>

// Replacing the unsized delete alone is exactly the case under test.
#pragma GCC diagnostic ignored "-Wsized-deallocation"

static int news, deletes;

void *operator new(std::size_t size)
{
	news++;
	void *p = std::malloc(size ? size : 1);
	if (!p)
		throw std::bad_alloc();
	return p;
}

void operator delete(void *p) noexcept
{
	deletes++;
	std::free(p);
}

struct Obj {
	long a[4];
	~Obj() { a[0] = 0; }
};

#define EXPECT(what, n, d)                                                                 \
	do {                                                                               \
		if (news != (n) || deletes != (d)) {                                       \
			std::fprintf(stderr, "cxx_replaced: after %s: %d news, %d deletes; want %d, %d\n", \
			             what, news, deletes, n, d);                           \
			return 1;                                                          \
		}                                                                          \
	} while (0)

int main()
{
	Obj *o = new Obj;
	EXPECT("new", 1, 0);
	delete o; // sized delete: operator delete(void *, size_t)
	EXPECT("sized delete", 1, 1);
	int *a = new int[10];
	EXPECT("new[]", 2, 1);
	delete[] a;
	EXPECT("delete[]", 2, 2);
	Obj *many = new Obj[3];
	EXPECT("new[] with a cookie", 3, 2);
	delete[] many; // sized delete[]
	EXPECT("sized delete[]", 3, 3);
	int *n = new (std::nothrow) int(5);
	EXPECT("nothrow new", 4, 3);
	operator delete(n, std::nothrow);
	EXPECT("nothrow delete", 4, 4);
	int *na = new (std::nothrow) int[7];
	EXPECT("nothrow new[]", 5, 4);
	operator delete[](na, std::nothrow);
	EXPECT("nothrow delete[]", 5, 5);
	std::printf("cxx_replaced: the replaced operators served every form\n");
	return 0;
}
