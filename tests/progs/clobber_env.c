/* clobber_env.c - overwrite the environment's strings in place, as programs
 * that set their process title do (redis, nginx), then allocate and exit.
 * The hooks read their settings before main: HEAPINDEX_STATS must still
 * name the file they append statistics to at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int main(void)
{
	for (char **e = environ; *e; e++)
		memset(*e, 'x', strlen(*e));
	void *p = malloc(100);
	printf("clobbered\n");
	free(p);
	return 0;
}
