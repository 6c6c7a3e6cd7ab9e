/* tsan_criterion.c - lets Criterion run under ThreadSanitizer (`make
 * SANITIZE=thread test` links it into the test binary, compiled without
 * -fsanitize=thread).
 *
 * Criterion's sandbox (BoxFort) maps a shared arena with MAP_FIXED at a
 * random address in [0x200000000000, 0x7f0000000000), after asking mincore
 * whether the pages there are free; workers map it again at the same
 * address.  ThreadSanitizer reserves nearly all of that window for its
 * shadow memory, so mincore says "mapped" everywhere and Criterion gives up
 * ("Could not initialize inheritable arena", Criterion issue #274).  Here,
 * addresses in that window outside ThreadSanitizer's application range for
 * position-independent executables are reported free, and a fixed file
 * mapping asked there is moved to fresh addresses inside that range, which
 * the arena then keeps (workers map it at the address it got).  Everything
 * else goes to ThreadSanitizer's own interceptors unchanged.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

void *__interceptor_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __interceptor_mincore(void *addr, size_t len, unsigned char *vec);

#define BOXFORT_LOW ((uintptr_t)0x200000000000)
#define BOXFORT_HIGH ((uintptr_t)0x7f0000000000)
/* ThreadSanitizer's x86-64 application range for PIE programs and their
 * mmaps (gcc 12's libtsan): the moved arenas go to its upper part. */
#define TSAN_APP_LOW ((uintptr_t)0x550000000000)
#define TSAN_APP_HIGH ((uintptr_t)0x568000000000)
#define MOVED_BASE ((uintptr_t)0x561000000000)
#define MOVED_ALIGN ((uintptr_t)1 << 24)

static int reserved_by_tsan(uintptr_t a)
{
	return a >= BOXFORT_LOW && a < BOXFORT_HIGH && !(a >= TSAN_APP_LOW && a < TSAN_APP_HIGH);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if ((flags & MAP_FIXED) && fd >= 0 && reserved_by_tsan((uintptr_t)addr)) {
		static uintptr_t next = MOVED_BASE;
		uintptr_t at = __atomic_fetch_add(&next, (len + MOVED_ALIGN - 1) & ~(MOVED_ALIGN - 1),
		                                  __ATOMIC_RELAXED);
		if (at + len > TSAN_APP_HIGH) {
			errno = ENOMEM;
			return MAP_FAILED;
		}
		addr = (void *)at;
	}
	return __interceptor_mmap64(addr, len, prot, flags, fd, off);
}

int mincore(void *addr, size_t len, unsigned char *vec)
{
	if (reserved_by_tsan((uintptr_t)addr)) {
		errno = ENOMEM; /* "not mapped": free for the arena, which lands elsewhere */
		return -1;
	}
	return __interceptor_mincore(addr, len, vec);
}
