#!/usr/bin/env bash
# gcc.sh [--print] SIZE OUT.o
#
# The gcc workload: compile a pinned, real C program to an object file.
#   small  gcc -O0 -c shell.c     SQLite 3.44.2 shell, 0.9 MB of C  (~1 s)
#   full   gcc -O0 -c sqlite3.c   SQLite 3.49.2 amalgamation, 9.2 MB (~5 s)
#   O2     gcc -O2 -c sqlite3.c   same input, optimising (~25 s): more passes, more heap
#
# Inputs live in ${HEAPINDEX_CACHE:-$HOME/.cache/heapindex}; missing ones are
# fetched first with fetch-inputs.sh (its output goes to stderr). Checksums
# are verified by fetch-inputs.sh, not here, so that a run does no extra work
# beyond the compile.
#
# The compile replaces this shell (exec), so that under LD_PRELOAD the process
# tree is just gcc and the cc1/as processes it starts. --print prints the
# command line instead of running it, for harnesses that want to run gcc
# themselves.
set -eu

prog=gcc.sh
here=$(cd "$(dirname "$0")" && pwd)

usage() {
    echo "usage: $0 [--print] small|full|O2 OUT.o"
}

print=0
if [ "${1:-}" = --print ]; then
    print=1
    shift
fi
case ${1:-} in
    -h|--help) usage; exit 0 ;;
esac
if [ $# -ne 2 ]; then
    usage >&2
    exit 2
fi
size=$1
out=$2

cache=${HEAPINDEX_CACHE:-$HOME/.cache/heapindex}
# No -w: with gcc 12 both inputs compile without a single diagnostic.
case $size in
    small) input=small; src="$cache/shell/shell.c"; flags="-O0" ;;
    full) input=full; src="$cache/sqlite3.c"; flags="-O0" ;;
    O2) input=full; src="$cache/sqlite3.c"; flags="-O2" ;;
    *) echo "$prog: unknown size '$size' (valid: small full O2)" >&2; exit 2 ;;
esac

if [ ! -f "$src" ]; then
    "$here/fetch-inputs.sh" "$input" >&2
fi

if [ $print = 1 ]; then
    # shellcheck disable=SC2086 # flags is a fixed word list
    cmd=$(printf '%q ' gcc $flags -c "$src" -o "$out")
    echo "${cmd% }"
    exit 0
fi
# shellcheck disable=SC2086
exec gcc $flags -c "$src" -o "$out"
