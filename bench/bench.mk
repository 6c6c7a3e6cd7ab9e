# bench/bench.mk - benchmark targets (included by the Makefile).
#
#   make bench        deps, build, fetch inputs, the small matrix (every index
#                     incl. none, glibc, gcc + python workloads, 3 shuffled
#                     rounds), gcc's trace replayed, heapindex scale, then
#                     the report and its main table
#                     (make bench BENCH_ALLOCATORS=glibc,jemalloc adds jemalloc)
#   make bench-full   the same at full size (all workloads incl. gcc -O2)
#   make bench-test   the tests of the bench/report/tune scripts (fast, no
#                     real workloads)
#
# Override BENCH_ARGS / BENCH_FULL_ARGS / BENCH_OUT on the command line, e.g.
#   make bench BENCH_ARGS='--workloads gcc --runs 5'

BENCH_PY        := /usr/bin/python3
BENCH_STAMP     := $(shell date +%Y%m%d-%H%M%S)
BENCH_OUT       ?= results/bench-$(BENCH_STAMP)
BENCH_FULL_OUT  ?= results/bench-full-$(BENCH_STAMP)
# glibc only by default: with jemalloc too the matrix doubles, and on this
# shared 2-core machine (load averages of 10+ seen) that took 9 minutes.
BENCH_ALLOCATORS ?= glibc
BENCH_ARGS      ?= --workloads gcc,python --indexes all --allocators $(BENCH_ALLOCATORS) \
                   --size small --runs 3 --warmup 1 --replay gcc \
                   --scale --scale-args '--max-chunks 1e6 --lookups 200000 --budget 0.5'
BENCH_FULL_ARGS ?= --workloads all --indexes all --allocators glibc,jemalloc \
                   --size full --runs 3 --warmup 1 --replay gcc --scale

.PHONY: bench bench-full bench-test bench-build

bench-build: deps
	@$(MAKE) --no-print-directory all

# The report runs even when some run failed (it lists the failures); the
# target then fails with the bench's status.
bench: bench-build inputs
	@st=0; ./heapindex bench $(BENCH_ARGS) --out $(BENCH_OUT) || st=$$?; \
	if [ $$st -ne 2 ] && [ $$st -ne 130 ]; then ./heapindex report $(BENCH_OUT) || st=1; fi; \
	exit $$st

bench-full: bench-build inputs
	@st=0; ./heapindex bench $(BENCH_FULL_ARGS) --out $(BENCH_FULL_OUT) || st=$$?; \
	if [ $$st -ne 2 ] && [ $$st -ne 130 ]; then ./heapindex report $(BENCH_FULL_OUT) || st=1; fi; \
	exit $$st

bench-test:
	$(BENCH_PY) bench/test_pipeline.py
