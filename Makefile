# heapindex: `make` builds everything, `make test` runs the tests, `make bench`
# runs the benchmark, `make install PREFIX=...` installs (mk/install.mk).
# Indexes are found by file: memtable/heap_index.c plus one baselines/<name>.c
# each, so adding an index needs no edit here.

CC       ?= cc
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
WARN     := -Wall -Wextra -Werror
CPPFLAGS := -Iinclude -Ihooks -Isites -Imemtable -Ibaselines -D_GNU_SOURCE
BASE     := -std=gnu11 -fPIC -fvisibility=hidden $(WARN) $(CFLAGS)
# The hooks define malloc: stop gcc from turning their own code back into
# calls to malloc/calloc, and keep thread-locals off __tls_get_addr.  No
# SLP vectorising: gcc 12 packs the fast path's two counter updates into
# SSE moves that cost more instructions than they save.
HOOKFLAGS := -fno-builtin -ftls-model=initial-exec -fno-tree-slp-vectorize

B := build

# SANITIZE=1: ASan and UBSan over what runs in the test process -- the index
# archive (every index, memtable, inproc), the command and the test binary --
# built apart in build-san/.  The hook libraries cannot be instrumented: a
# preloaded ASan library must come first and would replace malloc itself, so
# `make SANITIZE=1 test` builds them (and the test programs) normally in
# build/ and the sanitized tests preload those.
ifeq ($(SANITIZE),1)
BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
B := build-san
SAN_ENV := ASAN_OPTIONS=detect_leaks=0
# test_differential maps its arena at a fixed low address, which lies in
# ASan's shadow gap on x86-64, and runs 10x slower instrumented: it is left
# out here (`make fuzz` checks every index against a reference under ASan).
SAN_FILTER := --filter '!(differential)/*'
endif
# SANITIZE=thread: ThreadSanitizer over the same in-process code (the index
# archive, the command, the tests; tests/test_threads.c drives every index
# from several threads), in build-tsan/; the hook libraries stay as they
# are, for the same reason as above.  Any report fails the test that made it
# (halt_on_error).  tests/tsan.supp names the one deliberate race.
ifeq ($(SANITIZE),thread)
BASE += -fsanitize=thread -fno-omit-frame-pointer
B := build-tsan
SAN_ENV := TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp"
# Left out besides test_differential (as above): the 57-bit two-level table,
# whose 2^53-byte reach ThreadSanitizer's reserved address space cannot map.
SAN_FILTER := --filter '!(differential/*|memtable/falls_back_to_two_levels_when_flat_is_refused)'
# Criterion's sandbox and ThreadSanitizer want the same addresses: see the file.
TEST_EXTRA_OBJ := $(B)/obj/tests/tsan_criterion.o
endif
INDEXES   := memtable $(sort $(basename $(notdir $(wildcard baselines/*.c))))
index_src  = $(if $(filter memtable,$1),memtable/heap_index.c,baselines/$1.c)

COMMON_SRC := hooks/config.c hooks/meta.c hooks/json.c hooks/pages.c hooks/ptr_set.c hooks/threads.c hooks/big_chunks.c hooks/lookup_cache.c memtable/memtable.c
INPROC_SRC := hooks/inproc.c
HOOK_SRC   := hooks/hooks.c hooks/counters.c hooks/meta_cost.c hooks/process_stats.c hooks/verify.c
# The C++ operators (hooks/cxx.c): the same in every hook library, compiled
# once, with -fexceptions so std::bad_alloc unwinds through them.
CXX_OPS_OBJ := $(B)/obj/hooks/cxx.o
# Allocation sites (sites/sites.h): only in the hook libraries, which alone
# link libunwind and libdwarf.
SITES_SRC  := $(wildcard sites/*.c)
SITES_OBJ  := $(SITES_SRC:%.c=$(B)/obj/%.o)
SITES_LIBS := -lunwind -ldwarf
# The trace reader (workloads/trace/trace_reader.h): replay's, and the fuzzer's.
TRACE_READER_SRC := workloads/trace/trace_reader.c
CLI_SRC    := $(wildcard cli/*.c) $(TRACE_READER_SRC)
# sites/stacks.c: test_sites checks the stack keys in-process.
TEST_SRC   := $(wildcard tests/test_*.c) tests/support.c tests/index_params.c sites/stacks.c $(TRACE_READER_SRC)
PROG_SRC   := $(wildcard tests/progs/*.c)
PROG_CXX_SRC := $(wildcard tests/progs/*.cc)
SHIM_SRC   := $(wildcard tests/shims/*.c)

COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/obj/%.o)
INDEX_OBJ  := $(foreach i,$(INDEXES),$(B)/obj/index/$(i).o)
LIBS       := $(foreach i,$(INDEXES),$(B)/lib/libheapindex-$(i).so)
INDEX_AR   := $(B)/lib/libheapindex-indexes.a
CLI        := $(B)/bin/heapindex
TESTS      := $(B)/tests/heapindex-tests
PROGS      := $(PROG_SRC:tests/progs/%.c=$(B)/tests/progs/%) $(PROG_CXX_SRC:tests/progs/%.cc=$(B)/tests/progs/%)
SHIMS      := $(SHIM_SRC:tests/shims/%.c=$(B)/tests/shims/lib%.so)
GEN_LIST   := $(B)/gen/index_list.h

.PHONY: all deps test test-only clean lint bench bench-full inputs
ifneq ($(SANITIZE),)
all: $(INDEX_AR) $(CLI) $(TESTS)
	@$(MAKE) --no-print-directory SANITIZE= all
else
all: $(LIBS) $(INDEX_AR) $(CLI) $(TESTS) $(PROGS) $(SHIMS)
endif

deps:
	@sh mk/deps.sh

$(B)/obj/%.o: %.c $(wildcard hooks/*.h memtable/*.h include/*.h sites/*.h) $(GEN_LIST)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -I$(B)/gen $(BASE) -c $< -o $@

.SECONDEXPANSION:
$(B)/obj/index/%.o: $$(call index_src,$$*) $(wildcard hooks/*.h memtable/*.h baselines/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(BASE) -c $< -o $@

# The hook sources, compiled once per index (HEAPINDEX_INDEX=<name>); the
# memtable's build includes memtable/start_masks.h, the bitmap's
# baselines/bitmap_fast.h (hooks/index.h).
hook_obj = $(patsubst hooks/%.c,$(B)/obj/hooks-$1/%.o,$(HOOK_SRC))
define hook_obj_rule
$(call hook_obj,$1): $(B)/obj/hooks-$1/%.o: hooks/%.c $(wildcard hooks/*.h memtable/*.h baselines/*.h include/*.h sites/*.h)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $$(BASE) $$(HOOKFLAGS) -DHEAPINDEX_INDEX=$1 -c $$< -o $$@
endef
$(foreach i,$(INDEXES) record,$(eval $(call hook_obj_rule,$(i))))

$(CXX_OPS_OBJ): hooks/cxx.c $(wildcard hooks/*.h sites/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(BASE) $(HOOKFLAGS) -fexceptions -c $< -o $@

$(B)/lib/libheapindex-%.so: $$(call hook_obj,$$*) $(B)/obj/index/%.o $(COMMON_OBJ) $(SITES_OBJ) $(CXX_OPS_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) -shared -Wl,-z,defs -o $@ $^ $(SITES_LIBS) -ldl -lpthread

$(INDEX_AR): $(INDEX_OBJ) $(COMMON_OBJ) $(B)/obj/hooks/inproc.o
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# Every index, for tests and replay that reach them through index_ops.
$(GEN_LIST): Makefile $(wildcard baselines/*.c)
	@mkdir -p $(dir $@)
	@{ echo '/* generated by the Makefile: every index, as X(name) */'; \
	   echo '#define HEAPINDEX_FOR_EACH_INDEX(X) $(foreach i,$(INDEXES),X($(i)))'; } > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

# The command links every index too: replay and tune drive them in-process.
# libgc: Boehm GC's GC_base, the gcbase anchor of `heapindex scale`.
$(CLI): $(CLI_SRC) $(INDEX_AR) $(GEN_LIST) $(wildcard cli/*.h hooks/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -I$(B)/gen $(BASE) -o $@ $(CLI_SRC) $(INDEX_AR) -lgc -lm

$(TESTS): $(TEST_SRC) $(wildcard tests/*.h) $(INDEX_AR) $(GEN_LIST) $(TEST_EXTRA_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -I$(B)/gen -Itests $(BASE) -o $@ $(TEST_SRC) $(TEST_EXTRA_OBJ) $(INDEX_AR) -lcriterion -lm

# Not instrumented: it stands between Criterion and ThreadSanitizer.
$(B)/obj/tests/tsan_criterion.o: tests/tsan_criterion.c
	@mkdir -p $(dir $@)
	$(CC) -D_GNU_SOURCE -std=gnu11 $(WARN) -O2 -g -c $< -o $@

# Programs the hook tests preload the libraries into. They look up freed
# chunks and ask for impossible sizes on purpose.
$(B)/tests/progs/%: tests/progs/%.c include/heapindex.h tests/progs/reported_size.h
	@mkdir -p $(dir $@)
	$(CC) -Iinclude -std=gnu11 $(WARN) -Wno-use-after-free -Wno-alloc-size-larger-than -O1 -g -o $@ $< -ldl -lpthread

# C++ programs for the hooks' operator new and delete (hooks/cxx.c).
CXX ?= g++
$(B)/tests/progs/%: tests/progs/%.cc include/heapindex.h tests/progs/reported_size.h
	@mkdir -p $(dir $@)
	$(CXX) -Iinclude -std=gnu++17 $(WARN) -Wno-use-after-free -O1 -g -o $@ $< -ldl -pthread

# sites_demo exports xmalloc (-rdynamic) for HEAPINDEX_SITE_SKIP.
$(B)/tests/progs/sites_demo: tests/progs/sites_demo.c include/heapindex.h
	@mkdir -p $(dir $@)
	$(CC) -Iinclude -std=gnu11 $(WARN) -O1 -g -rdynamic -o $@ $< -ldl -lpthread

# Test-only libraries preloaded in front of the hooks to make the calls the
# hooks make fail (tests/shims/faulty_libc.c).
$(B)/tests/shims/lib%.so: tests/shims/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -fPIC -shared -o $@ $<

inputs:
	@sh workloads/fetch-inputs.sh

# What the hooks and each index cost: callgrind instructions per malloc+free
# pair, and the thread_churn table at 1 and 2 threads (mk/hook_cost.sh says
# how; ROUNDS, OPS, INDEXES tune it).
.PHONY: hook-cost
hook-cost: all
	@sh mk/hook_cost.sh

# The fuzz run, the bench scripts' tests, helgrind/drd and the install test
# come first, so the Criterion synthesis line closes the output.
test: deps
	@$(MAKE) --no-print-directory all
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then $(MAKE) --no-print-directory fuzz; \
	 else echo "fuzz: $(FUZZ_CC) not found, skipped"; fi
	@$(MAKE) --no-print-directory bench-test
	@if command -v valgrind >/dev/null 2>&1; then $(MAKE) --no-print-directory helgrind; \
	 else echo "helgrind: valgrind not found, skipped"; fi
	@$(MAKE) --no-print-directory install-test
	@$(MAKE) --no-print-directory test-only

# libFuzzer: every index against a reference (tests/fuzz/fuzz_indexes.c),
# built with clang and ASan/UBSan from the index sources, run for a bounded
# FUZZ_SECONDS (20 s in `make test`), and a quarter of that again with every
# index that takes it under HEAPINDEX_META=trailer (hooks/chunk.h), and an
# eighth under side (critnib: its records, handed back at remove, index.h).
# New inputs go to build/fuzz/corpus;
# tests/fuzz/corpus is the small seed corpus kept in git.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_BIN     := $(B)/fuzz/fuzz_indexes
FUZZ_INPUTS  := tests/fuzz/fuzz_indexes.c $(INPROC_SRC) $(COMMON_SRC) $(foreach i,$(INDEXES),$(call index_src,$(i)))
$(FUZZ_BIN): $(FUZZ_INPUTS) tests/fuzz/coverage-ignore.txt $(GEN_LIST) $(wildcard hooks/*.h memtable/*.h baselines/*.h)
	@mkdir -p $(dir $@) $(B)/fuzz/corpus
	$(FUZZ_CC) $(CPPFLAGS) -I$(B)/gen -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
	  -fsanitize-coverage-ignorelist=tests/fuzz/coverage-ignore.txt \
	  -fno-sanitize-recover=undefined -o $@ $(FUZZ_INPUTS) -lm

# The trace reader of `heapindex replay` (tests/fuzz/fuzz_trace.c, linked
# with workloads/trace/trace_reader.c): FUZZ_SECONDS split between the two
# targets, so `make test` spends no longer.  Seeds: tests/fuzz/trace_corpus.
FUZZ_TRACE_BIN    := $(B)/fuzz/fuzz_trace
FUZZ_TRACE_INPUTS := tests/fuzz/fuzz_trace.c $(TRACE_READER_SRC) hooks/ptr_set.c hooks/pages.c
$(FUZZ_TRACE_BIN): $(FUZZ_TRACE_INPUTS) $(wildcard hooks/*.h workloads/trace/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -I$(B)/gen -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -o $@ $(FUZZ_TRACE_INPUTS) -lm

.PHONY: fuzz
fuzz: $(FUZZ_BIN) $(FUZZ_TRACE_BIN)
	$(FUZZ_BIN) -max_total_time=$$(( ($(FUZZ_SECONDS) + 1) / 2 )) -max_len=4096 -print_final_stats=1 \
	  $(B)/fuzz/corpus tests/fuzz/corpus
	HEAPINDEX_META=trailer $(FUZZ_BIN) -max_total_time=$$(( ($(FUZZ_SECONDS) + 3) / 4 )) -max_len=4096 \
	  -print_final_stats=1 $(B)/fuzz/corpus tests/fuzz/corpus
	HEAPINDEX_META=side $(FUZZ_BIN) -max_total_time=$$(( ($(FUZZ_SECONDS) + 7) / 8 )) -max_len=4096 \
	  -print_final_stats=1 $(B)/fuzz/corpus tests/fuzz/corpus
	@mkdir -p $(B)/fuzz/trace_corpus
	$(FUZZ_TRACE_BIN) -max_total_time=$$(( $(FUZZ_SECONDS) / 2 )) -max_len=4096 \
	  -print_final_stats=1 $(B)/fuzz/trace_corpus tests/fuzz/trace_corpus

# helgrind and drd on a short thread_stress, per index under each placement
# it takes (HEAPINDEX_META=header, trailer, side), with hook libraries
# built apart in build/valgrind/ with the lock as a pthread mutex, which the
# tools understand (hooks/lock.h, HEAPINDEX_VALGRIND_ANNOTATE).  somalloc=nouserintercepts: valgrind must not
# replace the hooks' own malloc, only libc's beneath it.  valgrind maps at
# most ~2^35 bytes at once, so the memtable runs on its two-level table here.
# --fair-sched=yes: valgrind runs one thread at a time, and its default
# scheduler let the lookup threads starve the workers (runs took minutes).
# Each run is stopped after 300 s all the same.  Whether lookups must find
# chunks is the library's own word: its statistics line, from an empty run.
VG_B       := build/valgrind
VG_OPS     ?= 50
VG_INDEXES ?= $(INDEXES)
VG_FLAGS   := -q --error-exitcode=1 --fair-sched=yes --soname-synonyms=somalloc=nouserintercepts
.PHONY: helgrind
ifneq ($(SANITIZE),)
# valgrind runs the plain build: a sanitized thread_stress or hook library
# would not run under it (`make SANITIZE=thread test` rebuilt the libraries
# in build/valgrind/ with -fsanitize=thread when a source had changed).
helgrind:
	@$(MAKE) --no-print-directory SANITIZE= helgrind
else
helgrind: $(PROGS)
	@$(MAKE) --no-print-directory B=$(VG_B) CFLAGS="$(CFLAGS) -DHEAPINDEX_VALGRIND_ANNOTATE" \
	  $(foreach i,$(VG_INDEXES),$(VG_B)/lib/libheapindex-$(i).so)
	@fail=; for i in $(VG_INDEXES); do \
	  lib=$(CURDIR)/$(VG_B)/lib/libheapindex-$$i.so; rm -f $(VG_B)/$$i.stats; \
	  env HEAPINDEX_STATS=$(VG_B)/$$i.stats LD_PRELOAD=$$lib true; \
	  look=$$(sed -n 's/.*"index_answers_lookups":\([01]\).*/EXPECT_LOOKUP=\1/p' $(VG_B)/$$i.stats); \
	  if [ -z "$$look" ]; then echo "helgrind $$i: FAILED (no statistics line in $(VG_B)/$$i.stats)"; \
	    fail=1; continue; fi; \
	  for meta in header trailer side; do \
	  set=HEAPINDEX_META=$$meta; log=$(VG_B)/$$i.$$meta; \
	  for tool in helgrind drd; do \
	    if env $$look HEAPINDEX_VERIFY=1 $$set LD_PRELOAD=$$lib \
	       timeout 300 valgrind --tool=$$tool $(VG_FLAGS) $(B)/tests/progs/thread_stress $(VG_OPS) >$$log.$$tool.log 2>&1; \
	    then echo "$$tool $$i ($$meta placement): clean"; \
	    elif grep -q 'is not supported by' $$log.$$tool.log; then break; \
	    else echo "$$tool $$i ($$meta placement): FAILED (see $$log.$$tool.log)"; fail=1; fi; \
	  done; done; done; test -z "$$fail"
endif

test-only:
	HEAPINDEX_ROOT=$(CURDIR) $(SAN_ENV) $(TESTS) --jobs 2 $(SAN_FILTER)

lint: lint-workloads
	shellcheck mk/hook_cost.sh
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr -Iinclude -Ihooks -Imemtable -I$(B)/gen -Isites -D_GNU_SOURCE hooks sites memtable baselines cli
	clang-tidy --quiet $(COMMON_SRC) $(INPROC_SRC) $(HOOK_SRC) hooks/cxx.c $(SITES_SRC) $(CLI_SRC) memtable/heap_index.c $(wildcard baselines/*.c) -- $(CPPFLAGS) -I$(B)/gen -DHEAPINDEX_INDEX=memtable
# hooks.c is compiled once per index, and its inline fast paths differ
# (INDEX_SIDE_INLINE_*, INDEX_HEADER_INLINE_*): lint every other build too.
	set -e; for i in $(filter-out memtable,$(INDEXES)); do \
	  clang-tidy --quiet hooks/hooks.c -- $(CPPFLAGS) -I$(B)/gen -DHEAPINDEX_INDEX=$$i; done

clean:
	rm -rf $(B)

-include workloads/workloads.mk
-include bench/bench.mk
# After workloads.mk: it installs the recording library that file defines.
include mk/install.mk
.SECONDARY:
