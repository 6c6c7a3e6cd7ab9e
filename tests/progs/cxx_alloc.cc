// cxx_alloc.cc - what C++ promises of operator new and delete, checked in a
// program the hook tests run over glibc and over jemalloc: vector, string,
// map, exceptions, threads, new[]/delete[] (with the array cookie), aligned
// new, nothrow new, the new-handler loop and std::bad_alloc.  Deleted
// objects are looked up on purpose (-Wno-use-after-free).  With
// EXPECT_LOOKUP=1 every new'd object must be found by heapindex_lookup.
// Prints one line and exits 0, or names the first broken promise, exit 1.
#include <dlfcn.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "reported_size.h"

typedef int lookup_fn(const void *, void **, size_t *, const void **);
static lookup_fn *lookup;
static std::atomic<int> checks;

#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		checks++;                                                                 \
		if (!(cond)) {                                                            \
			std::fprintf(stderr, "cxx_alloc: %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			std::fprintf(stderr, __VA_ARGS__);                                \
			std::fputc('\n', stderr);                                         \
			std::exit(1);                                                     \
		}                                                                         \
	} while (0)

// The index must know a chunk holding [p, p + bytes), from its first and
// last byte; exact says p is the chunk's own start.
static void check_indexed(const void *p, size_t bytes, bool exact = true)
{
	if (!lookup || !bytes)
		return;
	const char *c = static_cast<const char *>(p);
	for (const char *at : { c, c + bytes - 1 }) {
		void *base = nullptr;
		size_t size = 0;
		CHECK(lookup(at, &base, &size, nullptr) == 1, "%p (in %p, %zu bytes) not found", (const void *)at, p, bytes);
		const char *b = static_cast<const char *>(base);
		CHECK(exact ? b == c && reported_size_ok(base, bytes, size) : b <= c && c + bytes <= b + size,
		      "%p: chunk %p of %zu bytes, want %p of %zu", (const void *)at, base, size, p, bytes);
	}
}

static void check_not_indexed(const void *p)
{
	if (lookup)
		CHECK(lookup(p, nullptr, nullptr, nullptr) == 0, "deleted %p still found", p);
}

struct Tracked {
	static std::atomic<int> live;
	long payload[3] = { 1, 2, 3 };
	Tracked() { live++; }
	~Tracked() { live--; }
};
std::atomic<int> Tracked::live;

struct alignas(64) Line {
	char bytes[64];
};

struct alignas(4096) Page {
	char bytes[100];
};

static void main_marker() {}

static void check_plain_and_arrays()
{
	int *i = new int(42);
	check_indexed(i, sizeof *i);
	// The site is where the program called new, not inside the runtime.
	const void *site = nullptr;
	Dl_info at, self;
	if (lookup && reports_sites() && lookup(i, nullptr, nullptr, &site) && dladdr(reinterpret_cast<void *>(&main_marker), &self))
		CHECK(dladdr(static_cast<const char *>(site) - 1, &at) && at.dli_fbase == self.dli_fbase,
		      "the site of new int is %p in %s, not in the program", site, at.dli_fname);
	delete i;
	check_not_indexed(i);

	Tracked *one = new Tracked;
	check_indexed(one, sizeof *one);
	delete one; // a sized delete (C++14)
	check_not_indexed(one);

	// Destructors: new[] keeps a count before the elements (the cookie).
	Tracked *many = new Tracked[10];
	CHECK(Tracked::live == 10, "%d live", Tracked::live.load());
	check_indexed(many, 10 * sizeof *many, false);
	delete[] many;
	CHECK(Tracked::live == 0, "%d live after delete[]", Tracked::live.load());
	check_not_indexed(many);

	char *bytes = new char[1000];
	std::memset(bytes, 7, 1000);
	check_indexed(bytes, 1000);
	delete[] bytes;

	void *a = ::operator new(0), *b = ::operator new(0);
	CHECK(a && b && a != b, "operator new(0) gave %p and %p", a, b);
	check_indexed(a, 1);
	::operator delete(a);
	::operator delete(b);
}

static void check_aligned()
{
	Line *l = new Line;
	CHECK(reinterpret_cast<uintptr_t>(l) % 64 == 0, "new Line at %p", (void *)l);
	check_indexed(l, sizeof *l);
	delete l;
	Page *p = new Page[3];
	CHECK(reinterpret_cast<uintptr_t>(p) % 4096 == 0, "new Page[3] at %p", (void *)p);
	check_indexed(p, 3 * sizeof *p);
	delete[] p;
	check_not_indexed(p);
	Page *q = new (std::nothrow) Page;
	CHECK(q && reinterpret_cast<uintptr_t>(q) % 4096 == 0, "nothrow new Page at %p", (void *)q);
	check_indexed(q, sizeof *q);
	delete q;
	void *r = ::operator new(100, std::align_val_t(256));
	CHECK(reinterpret_cast<uintptr_t>(r) % 256 == 0, "operator new(100, 256) at %p", r);
	check_indexed(r, 100);
	::operator delete(r, 100, std::align_val_t(256));
	check_not_indexed(r);
}

static void check_library_types()
{
	std::vector<std::string> v;
	for (int i = 0; i < 2000; i++)
		v.push_back(std::string(30 + i % 50, static_cast<char>('a' + i % 26)));
	check_indexed(v.data(), v.size() * sizeof v[0], false);
	check_indexed(v[1999].data(), v[1999].size(), false);
	std::map<int, std::string> m;
	for (int i = 0; i < 1000; i++)
		m[i * 7] = std::to_string(i) + std::string(40, 'x');
	size_t total = 0;
	for (const auto &kv : m)
		total += kv.second.size();
	CHECK(total == 1000 * 40 + 2890, "map holds %zu bytes of strings", total);
	auto u = std::make_unique<long[]>(500);
	check_indexed(u.get(), 500 * sizeof(long));
	auto s = std::make_shared<std::string>(100, 'z');
	check_indexed(s->data(), 100, false);
}

static void check_exceptions()
{
	int caught = 0;
	for (int i = 0; i < 100; i++) {
		try {
			throw std::runtime_error(std::string(200, 'e'));
		} catch (const std::runtime_error &e) {
			caught += std::strlen(e.what()) == 200;
		}
	}
	CHECK(caught == 100, "caught %d", caught);
}

static int handler_calls;
static void give_up()
{
	handler_calls++;
	std::set_new_handler(nullptr); // nothing to free: the next failure throws
}

static void check_failures()
{
	const size_t huge = SIZE_MAX / 4;
	bool threw = false;
	try {
		char *p = new char[huge];
		std::printf("impossible: %p\n", (void *)p);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	CHECK(threw, "new char[SIZE_MAX / 4] did not throw std::bad_alloc");

	handler_calls = 0;
	std::set_new_handler(give_up);
	threw = false;
	try {
		void *p = ::operator new(huge);
		std::printf("impossible: %p\n", p);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	CHECK(threw && handler_calls == 1, "threw %d after %d handler calls", threw, handler_calls);

	CHECK(new (std::nothrow) char[huge] == nullptr, "nothrow new[] of a huge size");
	CHECK(::operator new(huge, std::nothrow) == nullptr, "nothrow new of a huge size");
	CHECK(::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr, "aligned nothrow");
	// A handler that throws: the nothrow form must still return NULL.
	handler_calls = 0;
	std::set_new_handler([] { handler_calls++; throw std::bad_alloc(); });
	CHECK(::operator new(huge, std::nothrow) == nullptr && handler_calls == 1,
	      "nothrow new with a throwing handler: %d calls", handler_calls);
	CHECK(new (std::nothrow) char[huge] == nullptr && handler_calls == 2,
	      "nothrow new[] with a throwing handler: %d calls", handler_calls);
	std::set_new_handler(nullptr);
	threw = false;
	try {
		void *p = ::operator new(8, std::align_val_t(24)); // not a power of two
		std::printf("impossible: %p\n", p);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	CHECK(threw, "alignment 24 did not throw std::bad_alloc");
}

static void worker(int id)
{
	std::vector<std::unique_ptr<std::string>> keep;
	for (int i = 0; i < 20000; i++) {
		if (keep.size() < 64)
			keep.push_back(std::make_unique<std::string>(16 + (i * 7 + id) % 300, 'w'));
		else
			keep[static_cast<size_t>(i) % 64].reset(new std::string(50, 't'));
		if (i % 997 == 0) {
			check_indexed(keep.back()->data(), keep.back()->size(), false);
			try {
				throw std::out_of_range(std::to_string(i));
			} catch (const std::exception &) {
			}
		}
	}
}

static void check_threads()
{
	std::vector<std::thread> threads;
	for (int id = 0; id < 4; id++)
		threads.emplace_back(worker, id);
	for (auto &t : threads)
		t.join();
}

int main()
{
	const char *want = std::getenv("EXPECT_LOOKUP");
	if (want && *want == '1') {
		lookup = reinterpret_cast<lookup_fn *>(dlsym(RTLD_DEFAULT, "heapindex_lookup"));
		if (!lookup) {
			std::fprintf(stderr, "cxx_alloc: heapindex_lookup not found\n");
			return 1;
		}
	}
	check_plain_and_arrays();
	check_aligned();
	check_library_types();
	check_exceptions();
	check_failures();
	check_threads();
	std::printf("cxx_alloc: %d checks passed%s\n", checks.load(), lookup ? " (with lookups)" : "");
	return 0;
}
