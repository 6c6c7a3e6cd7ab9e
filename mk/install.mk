# install.mk - `make install` and `make uninstall` (included by the Makefile).
#
#   make install [PREFIX=/usr/local] [DESTDIR=/staging/root]
#   make uninstall                  with the same PREFIX and DESTDIR
#
# What goes where (each directory can be set on the command line):
#   BINDIR/heapindex                the command: the root ./heapindex script
#                                   with its layout lines rewritten
#   LIBEXECDIR/heapindex/heapindex  the C binary that script runs, the
#                                   build's own, with a file lib-dir beside
#                                   it naming the libraries' directory
#                                   relative to it (cli/common.c)
#   PKGLIBDIR/libheapindex-*.so     the hook libraries, in a directory of their
#                                   own (LIBDIR/heapindex) like valgrind's and
#                                   libfaketime's: LD_PRELOAD interposers are
#                                   chosen at run time, never linked with -l
#   INCLUDEDIR/heapindex.h          the query API
#   PKGCONFIGDIR/heapindex.pc       Cflags only; libdir names PKGLIBDIR (see
#                                   mk/heapindex.pc.in for why Libs is empty)
#   PKGDATADIR/analysis/...         the Python commands that work outside a
#                                   source tree: report.  bench, compare and
#                                   tune find the workloads, build/ and hooks/
#                                   beside their own files, so they stay in
#                                   the source tree, and the installed command
#                                   says so.
#   MAN1DIR/heapindex.1, heapindex-COMMAND.1   from --help, by help2man
#
# The command, the binary and the scripts find one another by relative
# paths, so a tree staged under DESTDIR runs where it lies as well as where
# it is installed (tests/install/install_test.sh runs both).

VERSION      := 0.1
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
LIBEXECDIR   ?= $(PREFIX)/libexec
INCLUDEDIR   ?= $(PREFIX)/include
DATADIR      ?= $(PREFIX)/share
MAN1DIR      ?= $(DATADIR)/man/man1
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
PKGLIBDIR    ?= $(LIBDIR)/heapindex
PKGDATADIR   ?= $(DATADIR)/heapindex

INSTALL_LIBS := $(LIBS) $(RECORD_LIB)
INSTALL_PY   := analysis/heapindex_report.py
# The modules report imports (its intervals, callgrind/thread sections, merging).
INSTALL_PY_LIB := analysis/__init__.py analysis/heapindex_common.py analysis/heapindex_stats.py analysis/heapindex_paired.py analysis/heapindex_merge.py
# A page per command the installed tree runs; heapindex.1 lists them all.
MAN_COMMANDS := run record replay scale census report
MAN_PAGES    := heapindex.1 $(MAN_COMMANDS:%=heapindex-%.1)

IB := $(B)/install
# $(call relative,DIR,PATH): PATH relative to the directory DIR, lexically
# (neither need exist yet, and DESTDIR would be the same on both sides).
relative = $(shell realpath -sm --relative-to='$(1)' '$(2)')
CLI_TO_LIBS    = $(call relative,$(LIBEXECDIR)/heapindex,$(PKGLIBDIR))
BIN_TO_CLI     = $(call relative,$(BINDIR),$(LIBEXECDIR)/heapindex/heapindex)
BIN_TO_SCRIPTS = $(call relative,$(BINDIR),$(PKGDATADIR))
# ${prefix}/... in the .pc where a directory lies under PREFIX, so that
# pkg-config --define-prefix can move it.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

.PHONY: install uninstall install-test lint-install install-layout

# The layout the files below are generated for, rewritten only when it
# changes, so a second `make install` with the same directories rebuilds
# nothing.
$(IB)/layout: install-layout
	@mkdir -p $(dir $@)
	@printf '%s\n' 'VERSION=$(VERSION)' 'PREFIX=$(PREFIX)' 'INCLUDEDIR=$(INCLUDEDIR)' \
	  'PKGLIBDIR=$(PKGLIBDIR)' 'CLI_TO_LIBS=$(CLI_TO_LIBS)' 'BIN_TO_CLI=$(BIN_TO_CLI)' \
	  'BIN_TO_SCRIPTS=$(BIN_TO_SCRIPTS)' > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

$(IB)/lib-dir: $(IB)/layout
	echo '$(CLI_TO_LIBS)' > $@

$(IB)/heapindex.sh: heapindex $(IB)/layout
	sed -e 's|^layout=source$$|layout=installed|' -e 's|^cli_rel=.*|cli_rel=$(BIN_TO_CLI)|' \
	  -e 's|^scripts_rel=.*|scripts_rel=$(BIN_TO_SCRIPTS)|' heapindex > $@.tmp
	@test "$$(grep -c -e '^layout=installed$$' -e '^cli_rel=$(BIN_TO_CLI)$$' \
	  -e '^scripts_rel=$(BIN_TO_SCRIPTS)$$' $@.tmp)" = 3 || \
	  { echo "install.mk: the layout lines of ./heapindex were not found" >&2; exit 1; }
	mv $@.tmp $@

$(IB)/heapindex.pc: mk/heapindex.pc.in $(IB)/layout
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|' \
	  -e 's|@PKGLIBDIR@|$(call pc_path,$(PKGLIBDIR))|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(IB)/man/heapindex.1: $(CLI) heapindex mk/help2man.sh mk/heapindex.h2m
	@mkdir -p $(dir $@)
	sh mk/help2man.sh $@ $(VERSION) - $(MAN_COMMANDS)

$(IB)/man/heapindex-%.1: $(CLI) heapindex $(INSTALL_PY) $(INSTALL_PY_LIB) mk/help2man.sh
	@mkdir -p $(dir $@)
	sh mk/help2man.sh $@ $(VERSION) $*

install: $(INSTALL_LIBS) $(CLI) $(IB)/lib-dir $(IB)/heapindex.sh $(IB)/heapindex.pc $(MAN_PAGES:%=$(IB)/man/%)
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(LIBEXECDIR)/heapindex' '$(DESTDIR)$(PKGLIBDIR)' \
	  '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(PKGCONFIGDIR)' '$(DESTDIR)$(PKGDATADIR)/analysis' \
	  '$(DESTDIR)$(MAN1DIR)'
	install -m 755 $(IB)/heapindex.sh '$(DESTDIR)$(BINDIR)/heapindex'
	install -m 755 $(CLI) '$(DESTDIR)$(LIBEXECDIR)/heapindex/heapindex'
	install -m 644 $(IB)/lib-dir '$(DESTDIR)$(LIBEXECDIR)/heapindex/lib-dir'
	install -m 755 $(INSTALL_LIBS) '$(DESTDIR)$(PKGLIBDIR)'
	install -m 644 include/heapindex.h '$(DESTDIR)$(INCLUDEDIR)'
	install -m 644 $(IB)/heapindex.pc '$(DESTDIR)$(PKGCONFIGDIR)'
	install -m 644 $(INSTALL_PY) '$(DESTDIR)$(PKGDATADIR)/analysis'
	install -m 644 $(INSTALL_PY_LIB) '$(DESTDIR)$(PKGDATADIR)/analysis'
	install -m 644 $(MAN_PAGES:%=$(IB)/man/%) '$(DESTDIR)$(MAN1DIR)'

# Exactly the files install writes (every libheapindex-*.so of the
# directory that is heapindex's own), then heapindex's own directories if
# nothing else is in them; shared ones (bin, include, man1) stay.
uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/heapindex' '$(DESTDIR)$(LIBEXECDIR)/heapindex/heapindex' \
	  '$(DESTDIR)$(LIBEXECDIR)/heapindex/lib-dir' \
	  '$(DESTDIR)$(PKGLIBDIR)'/libheapindex-*.so '$(DESTDIR)$(INCLUDEDIR)/heapindex.h' \
	  '$(DESTDIR)$(PKGCONFIGDIR)/heapindex.pc' \
	  $(foreach f,$(INSTALL_PY) $(INSTALL_PY_LIB),'$(DESTDIR)$(PKGDATADIR)/$(f)') \
	  $(foreach p,$(MAN_PAGES),'$(DESTDIR)$(MAN1DIR)/$(p)')
	rm -rf '$(DESTDIR)$(PKGDATADIR)/analysis/__pycache__'
	@for d in '$(DESTDIR)$(LIBEXECDIR)/heapindex' '$(DESTDIR)$(PKGLIBDIR)' \
	  $(sort $(foreach f,$(INSTALL_PY),'$(DESTDIR)$(PKGDATADIR)/$(dir $(f))')) '$(DESTDIR)$(PKGDATADIR)'; do \
	  if [ -d "$$d" ]; then rmdir --ignore-fail-on-non-empty "$$d"; fi; done

# Installs into temporary prefixes, plainly and under DESTDIR, builds a
# program against the result with pkg-config, runs it and the installed
# command, and uninstalls (run by `make test`).  MAKEFLAGS and SANITIZE
# emptied: under `make SANITIZE=1 test` it installs the normal build, whose
# hook libraries are the ones that can be preloaded.
install-test:
	@MAKEFLAGS= SANITIZE= MAKE='$(MAKE)' sh tests/install/install_test.sh

lint: lint-install
lint-install:
	shellcheck heapindex mk/deps.sh mk/help2man.sh tests/install/install_test.sh
