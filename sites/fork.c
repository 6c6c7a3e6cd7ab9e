/* fork.c - the sites' part of the hooks' fork handlers (sites.h).
 *
 * Lock order, outermost first: symbolizer mutex -> capture gate -> the
 * hooks' lock.  Both sites locks are held around code that allocates
 * (libdwarf, libunwind), and an allocation may capture a stack, so a thread
 * can hold the symbolizer mutex and wait for the gate, or hold the gate and
 * wait for the hooks' lock, never the reverse: prepare takes them in that
 * order and a child starts with all of them free. */
#include "sites.h"

void sites_fork_prepare(void)
{
	symbolize_fork_lock();
	capture_fork_lock();
}

void sites_fork_parent(void)
{
	capture_fork_unlock();
	symbolize_fork_unlock();
}

void sites_fork_child(void)
{
	capture_fork_child();
	symbolize_fork_unlock();
	census_fork_child();
}
