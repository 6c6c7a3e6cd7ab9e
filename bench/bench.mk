# bench/bench.mk - benchmark targets (included by the Makefile).
#
#   make bench        deps, build, fetch inputs, then the seed's table on its
#                     kind of input: gcc -O0 -c sqlite3.c (full, ~5 s runs)
#                     uninstrumented and under the no-op hooks, vgHash and
#                     memtable; each once under callgrind (all 4 at once), then
#                     shuffled rounds until every paired 95% interval is within
#                     +-1% or the 7-minute budget would be passed (at least 3
#                     rounds); then the report and its main table. Under
#                     10 minutes on this 2-core machine.
#   make bench-quick  the small matrix: every index, gcc (shell.c), the python
#                     workloads, lua, gs, z3, redis and threads (1, 2, 4),
#                     3 rounds, threads-1 once under callgrind per index
#                     (instructions per malloc+free pair; the bench always
#                     does that), gcc's trace replayed, heapindex scale
#                     (make bench-quick BENCH_ALLOCATORS=glibc,jemalloc adds jemalloc)
#   make bench-full   every workload at full size, glibc and jemalloc
#   make bench-test   the tests of the bench/report/tune scripts (no real
#                     workloads but a few short runs of the thread program)
#
# Override BENCH_ARGS / BENCH_QUICK_ARGS / BENCH_FULL_ARGS / BENCH_OUT on the
# command line, e.g.
#   make bench BENCH_ARGS='--workloads gcc --size full --runs 5'

BENCH_PY        := /usr/bin/python3
BENCH_STAMP     := $(shell date +%Y%m%d-%H%M%S)
BENCH_OUT       ?= results/bench-$(BENCH_STAMP)
BENCH_QUICK_OUT ?= results/bench-quick-$(BENCH_STAMP)
BENCH_FULL_OUT  ?= results/bench-full-$(BENCH_STAMP)
# glibc only by default: with jemalloc too the matrix doubles, and on this
# shared 2-core machine (load averages of 10+ seen) that took 9 minutes.
BENCH_ALLOCATORS ?= glibc
# The budget counts warm-up, callgrind and measured runs (not the report):
# 7 minutes leaves room for the build check, the report, and callgrind runs
# slowed by other work on the machine (they cannot be cut short).
BENCH_ARGS      ?= --workloads gcc --size full --indexes none,noop,vghash,memtable --allocators glibc \
                   --runs 3 --warmup 1 --until-ci 1 --budget 7m --callgrind --callgrind-jobs 4
BENCH_QUICK_ARGS ?= --workloads gcc,python,programs,threads --indexes all \
                   --allocators $(BENCH_ALLOCATORS) --size small --runs 3 --warmup 1 \
                   --replay gcc \
                   --scale --scale-args '--max-chunks 1e6 --lookups 200000 --budget 0.5'
BENCH_FULL_ARGS ?= --workloads all --indexes all --allocators glibc,jemalloc \
                   --size full --runs 3 --warmup 1 --callgrind gcc --replay gcc --scale

.PHONY: bench bench-quick bench-full bench-test bench-build

bench-build: deps
	@$(MAKE) --no-print-directory all

# The report runs even when some run failed (it lists the failures); the
# target then fails with the bench's status.
define bench_and_report
	@st=0; ./heapindex bench $(1) --out $(2) || st=$$?; \
	if [ $$st -ne 2 ] && [ $$st -ne 130 ]; then ./heapindex report $(2) || st=1; fi; \
	exit $$st
endef

bench: bench-build inputs
	$(call bench_and_report,$(BENCH_ARGS),$(BENCH_OUT))

bench-quick: bench-build inputs
	$(call bench_and_report,$(BENCH_QUICK_ARGS),$(BENCH_QUICK_OUT))

bench-full: bench-build inputs
	$(call bench_and_report,$(BENCH_FULL_ARGS),$(BENCH_FULL_OUT))

bench-test:
	$(BENCH_PY) -m bench.test_pipeline
