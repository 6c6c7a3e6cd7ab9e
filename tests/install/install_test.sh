#!/bin/sh
# install_test.sh - `make install` and `make uninstall`, as a tool writer
# uses them (run by `make install-test`, inside `make test`).
#
# 1. PREFIX=<temp>: the files land where mk/install.mk says; pkg-config finds
#    heapindex; a program built with its flags alone finds heapindex_lookup
#    when the installed library is preloaded, and runs without it; every
#    command `heapindex --help` lists explains itself (--help) in the source
#    tree, and installed either does too or says it needs the source tree;
#    the installed command runs a program under the installed library (not
#    build/'s).
# 2. DESTDIR=<temp> PREFIX=/opt/...: everything lands under DESTDIR and
#    nothing outside it; the staged tree runs where it lies.
# 3. make uninstall removes every file of both and heapindex's own
#    directories (shared ones such as bin/ stay), and leaves a file of
#    someone else's in the same prefix alone.
# Prints one line per step; the first failure stops it with exit 1.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
make=${MAKE:-make}
tmp=$(mktemp -d /tmp/heapindex-install-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "install test: FAILED: $*" >&2
	exit 1
}
say() {
	echo "install test: $*"
}
expect_files() { # DIR FILE... : each FILE exists under DIR
	dir=$1
	shift
	for f in "$@"; do
		[ -e "$dir/$f" ] || fail "$dir/$f was not installed"
	done
}
make_quietly() { # a make run, its output shown only if it fails
	if ! "$make" -C "$root" --no-print-directory "$@" >"$tmp/make.log" 2>&1; then
		cat "$tmp/make.log" >&2
		fail "make $*"
	fi
}

# The library of every index `heapindex run --help` offers, and record's.
indexes="record $("$root/heapindex" run --help | sed -n 's/.*--index NAME .*: \(.*\);$/\1/p' | tr -d ,)"
indexes=$(for i in $indexes; do [ "$i" = none ] || echo "libheapindex-$i.so"; done)
[ -n "$indexes" ] || fail "no index names in heapindex run --help"
pages="heapindex.1 heapindex-run.1 heapindex-record.1 heapindex-replay.1 heapindex-scale.1 heapindex-census.1 heapindex-report.1"

# --- 1. a plain prefix ---------------------------------------------------------
prefix=$tmp/prefix
mkdir -p "$prefix/bin"
echo 'not heapindex' >"$prefix/bin/other-tool" # someone else's: must survive
make_quietly install PREFIX="$prefix"
expect_files "$prefix" bin/heapindex libexec/heapindex/heapindex libexec/heapindex/lib-dir include/heapindex.h \
	lib/pkgconfig/heapindex.pc share/heapindex/analysis/heapindex_report.py
for lib in $indexes; do expect_files "$prefix/lib/heapindex" "$lib"; done
for page in $pages; do expect_files "$prefix/share/man/man1" "$page"; done
grep -q '^\.TH HEAPINDEX-RUN "1"' "$prefix/share/man/man1/heapindex-run.1" ||
	fail "heapindex-run.1 is not a man page of heapindex run"
say "installed into a prefix: command, binary, $(echo "$indexes" | wc -w) libraries, header, .pc, report, $(echo "$pages" | wc -w) man pages"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists --print-errors heapindex || fail "pkg-config does not find heapindex"
# pkg-config ends its flags with a space.
cflags=$(pkg-config --cflags heapindex | sed 's/ *$//')
libs=$(pkg-config --libs heapindex | sed 's/ *$//')
libdir=$(pkg-config --variable=libdir heapindex)
preload=$(pkg-config --variable=preload heapindex)
[ "$cflags" = "-I$prefix/include" ] || fail "pkg-config --cflags heapindex gave '$cflags'"
[ -z "$libs" ] || fail "pkg-config --libs heapindex gave '$libs', expected nothing (preloaded, not linked)"
[ "$libdir" = "$prefix/lib/heapindex" ] || fail "pkg-config --variable=libdir heapindex gave '$libdir'"
[ "$preload" = "$libdir/libheapindex-memtable.so" ] || fail "pkg-config --variable=preload gave '$preload'"
say "pkg-config: --cflags $cflags, --libs empty, libdir and preload in the prefix"

# shellcheck disable=SC2086 # the flags are words
cc $cflags -std=gnu11 -Wall -Wextra -Werror -O2 -o "$tmp/uses_lookup" \
	"$root/tests/install/uses_lookup.c" $libs || fail "building a program with pkg-config's flags"
LD_PRELOAD=$preload "$tmp/uses_lookup" >"$tmp/out" || fail "uses_lookup under the installed memtable library"
grep -q 'chunk+42 is in a [0-9]*-byte chunk at its base' "$tmp/out" || fail "uses_lookup printed: $(cat "$tmp/out")"
status=0
"$tmp/uses_lookup" 2>/dev/null || status=$?
[ "$status" = 3 ] || fail "uses_lookup without a preloaded library exited $status, expected 3"
say "a program built with pkg-config: heapindex_lookup answers under LD_PRELOAD=\$libdir/libheapindex-memtable.so, is NULL without it"

hi=$prefix/bin/heapindex
"$hi" --help >"$tmp/help" || fail "installed heapindex --help"
grep -q '^  run ' "$tmp/help" || fail "installed heapindex --help lists no run"
# Every command --help lists explains itself in the source tree, and
# installed either does too or says it stays in the source tree: the map
# and the program agree in both layouts.
commands=$(sed -n 's/^  \([a-z]*\)  .*/\1/p' "$tmp/help")
for cmd in run record replay scale census bench compare report tune; do
	echo "$commands" | grep -qx "$cmd" || fail "installed heapindex --help does not list $cmd"
done
for cmd in $commands; do
	"$root/heapindex" "$cmd" --help >/dev/null 2>"$tmp/err" || fail "./heapindex $cmd --help: $(cat "$tmp/err")"
	status=0
	"$hi" "$cmd" --help >"$tmp/out" 2>"$tmp/err" || status=$?
	if [ "$status" = 0 ]; then
		[ -s "$tmp/out" ] || fail "installed heapindex $cmd --help printed nothing"
	elif ! grep -q "^heapindex: $cmd is not installed: it runs from a built source tree" "$tmp/err"; then
		fail "installed heapindex $cmd --help exited $status: $(cat "$tmp/err")"
	fi
done
"$hi" run --index memtable -- true 2>"$tmp/err" || fail "installed heapindex run --index memtable -- true: $(cat "$tmp/err")"
grep -q '^heapindex: true under index memtable' "$tmp/err" || fail "installed heapindex run printed: $(cat "$tmp/err")"
# shellcheck disable=SC2016 # $LD_PRELOAD is the child's
"$hi" run --index memtable -- sh -c 'echo "$LD_PRELOAD"' >"$tmp/out" 2>/dev/null
[ "$(cat "$tmp/out")" = "$libdir/libheapindex-memtable.so" ] ||
	fail "installed heapindex run preloaded '$(cat "$tmp/out")', not the installed library"
"$hi" run --index memtable -- "$tmp/uses_lookup" >/dev/null 2>&1 || fail "uses_lookup under installed heapindex run"
say "installed heapindex: --help, each command's --help, run --index memtable -- true, with the installed library"

# --- 2. DESTDIR ----------------------------------------------------------------
stage=$tmp/stage
staged_prefix=/opt/heapindex-install-test
[ ! -e "$staged_prefix" ] || fail "$staged_prefix exists already"
make_quietly install DESTDIR="$stage" PREFIX="$staged_prefix"
[ ! -e "$staged_prefix" ] || fail "make install DESTDIR wrote outside DESTDIR ($staged_prefix)"
expect_files "$stage$staged_prefix" bin/heapindex libexec/heapindex/heapindex include/heapindex.h \
	lib/pkgconfig/heapindex.pc lib/heapindex/libheapindex-memtable.so share/man/man1/heapindex.1
grep -qx "prefix=$staged_prefix" "$stage$staged_prefix/lib/pkgconfig/heapindex.pc" ||
	fail "the staged heapindex.pc does not name prefix=$staged_prefix"
# --define-prefix: the staged .pc relocated to where it lies.
staged_flags=$(PKG_CONFIG_PATH="$stage$staged_prefix/lib/pkgconfig" pkg-config --define-prefix --cflags heapindex |
	sed 's/ *$//')
[ "$staged_flags" = "-I$stage$staged_prefix/include" ] || fail "staged pkg-config --define-prefix gave '$staged_flags'"
# shellcheck disable=SC2016
"$stage$staged_prefix/bin/heapindex" run --index memtable -- sh -c 'echo "$LD_PRELOAD"' >"$tmp/out" 2>/dev/null
[ "$(cat "$tmp/out")" = "$stage$staged_prefix/lib/heapindex/libheapindex-memtable.so" ] ||
	fail "the staged heapindex run preloaded '$(cat "$tmp/out")'"
say "installed under DESTDIR: nothing outside it, the .pc names the real prefix, the staged tree runs in place"

# --- 3. uninstall ----------------------------------------------------------------
make_quietly uninstall PREFIX="$prefix"
make_quietly uninstall DESTDIR="$stage" PREFIX="$staged_prefix"
left=$(find "$prefix" "$stage" ! -type d ! -path "$prefix/bin/other-tool")
[ -z "$left" ] || fail "make uninstall left: $left"
[ -f "$prefix/bin/other-tool" ] || fail "make uninstall removed a file it did not install"
for d in lib/heapindex libexec/heapindex share/heapindex; do
	if [ -e "$prefix/$d" ] || [ -e "$stage$staged_prefix/$d" ]; then
		fail "make uninstall left the directory $d"
	fi
done
say "uninstalled: no file left in either tree, heapindex's own directories gone, other-tool kept"
