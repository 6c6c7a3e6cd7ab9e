# workloads.mk - build rules of the trace and scale workloads (included by
# the Makefile).
#
# The recording library is the shared hooks built with the `record` "index"
# (workloads/trace/record_index.c).  The Makefile's pattern rules build
# libheapindex-%.so from hooks-%/ and index/%.o; index/%.o is found by name in
# memtable/ or baselines/, so record.o gets an explicit rule here (explicit
# rules beat pattern rules).  `record` is not in INDEXES: it is not a
# benchmark index and is not linked into libheapindex-indexes.a.

TRACE_HDR  := workloads/trace/trace_format.h workloads/trace/trace_reader.h
RECORD_LIB := $(B)/lib/libheapindex-record.so
# The thread workload (workloads/threads/threads.c): a plain program, run
# under any index by `heapindex run`; it finds heapindex_lookup with dlsym.
THREADS_BIN := $(B)/workloads/threads

all: $(RECORD_LIB) $(THREADS_BIN)

$(B)/obj/index/record.o: workloads/trace/record_index.c $(TRACE_HDR) $(wildcard hooks/*.h include/*.h sites/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(BASE) $(HOOKFLAGS) -c $< -o $@

$(THREADS_BIN): workloads/threads/threads.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -o $@ $< -ldl -lpthread

# The command (record, replay, scale) and the tests read the trace format.
$(CLI) $(TESTS): $(TRACE_HDR)

# Lint of the files above (the Makefile's lint covers cli/ but not workloads/).
.PHONY: lint-workloads
lint-workloads:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr -Iinclude -Ihooks -Imemtable -I$(B)/gen -D_GNU_SOURCE \
	  workloads/trace/record_index.c workloads/trace/trace_reader.c cli/record.c cli/replay.c \
	  cli/scale.c cli/spawn.c workloads/threads/threads.c
	clang-tidy --quiet workloads/trace/record_index.c cli/record.c cli/replay.c cli/scale.c cli/spawn.c \
	  workloads/threads/threads.c -- $(CPPFLAGS) -I$(B)/gen
	shellcheck workloads/trace/callgrind.sh workloads/scale/big_chunks.sh
