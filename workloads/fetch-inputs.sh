#!/usr/bin/env bash
# fetch-inputs.sh [all|full|small]...
#
# Downloads the pinned inputs of the gcc workload into a cache directory
# outside the source tree (${HEAPINDEX_CACHE:-$HOME/.cache/heapindex}):
#
#   full  -> $CACHE/sqlite3.c                  SQLite 3.49.2 amalgamation,
#            from the npm package better-sqlite3@11.10.0 (package/deps/sqlite3/)
#   small -> $CACHE/shell/shell.c + sqlite3.h  SQLite 3.44.2 command-line shell,
#            from the npm package sqlite3@5.1.7, where it sits inside a nested
#            archive (package/deps/sqlite-autoconf-3440200.tar.gz)
#
# Both come from the npm registry because it is the one source of upstream
# C code this project's machines can reach. Every downloaded tarball and every
# extracted file is checked against workloads/inputs.sha256 (sha256sum -c
# format; names are relative to the directory the file sits in).
#
# Idempotent: an input whose cached files already match their checksums is
# left alone. Files are extracted into a temporary directory inside the cache
# and renamed into place only once verified, so an interrupted or corrupted
# download never leaves a half-written or unverified file behind.
set -eu

prog=fetch-inputs
here=$(cd "$(dirname "$0")" && pwd)
sums="$here/inputs.sha256"

# Pins: change them together with inputs.sha256.
FULL_PKG=better-sqlite3@11.10.0
FULL_TGZ=better-sqlite3-11.10.0.tgz
SMALL_PKG=sqlite3@5.1.7
SMALL_TGZ=sqlite3-5.1.7.tgz
SMALL_AUTOCONF=sqlite-autoconf-3440200

die() {
    echo "$prog: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 [all|full|small]..."
    echo "  fetches the pinned gcc workload inputs into \${HEAPINDEX_CACHE:-\$HOME/.cache/heapindex}"
}

# expected_sum NAME: the sha256 recorded for NAME, or die.
expected_sum() {
    sum=$(awk -v n="$1" '$2 == n { print $1 }' "$sums")
    [ -n "$sum" ] || die "no sha256 recorded for $1 in $sums"
    echo "$sum"
}

# matches DIR NAME: true if DIR/NAME exists and has the recorded sha256.
matches() {
    [ -f "$1/$2" ] || return 1
    line=$(awk -v n="$2" '$2 == n' "$sums")
    [ -n "$line" ] || die "no sha256 recorded for $2 in $sums"
    (cd "$1" && printf '%s\n' "$line" | sha256sum -c --status - 2>/dev/null)
}

# check DIR NAME ORIGIN: verify a freshly downloaded or extracted file; on a
# mismatch delete it and stop with one error line.
check() {
    if ! matches "$1" "$2"; then
        got=$(sha256sum "$1/$2" | awk '{ print $1 }')
        rm -f "$1/$2"
        die "sha256 mismatch for $2 from $3: got $got, expected $(expected_sum "$2"); removed it"
    fi
}

# cached NAME...: true if every NAME is in the cache with the right sha256.
# A cached file with the wrong sha256 (for example after the pins changed) is
# deleted so that it gets fetched again.
cached() {
    ok=0
    for name in "$@"; do
        if ! matches "$cache" "$name"; then
            ok=1
            if [ -e "$cache/$name" ]; then
                echo "$prog: cached $cache/$name has the wrong sha256; fetching it again" >&2
                rm -f "$cache/$name"
            fi
        fi
    done
    return $ok
}

tmp=
cleanup() {
    if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# workdir: a fresh temporary directory inside the cache, so that the final
# mv is a rename on the same file system.
workdir() {
    cleanup
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
}

# npm_pack SPEC TGZ: download the registry tarball of SPEC into $tmp/TGZ and
# verify it. npm pack only downloads: it installs nothing and runs no scripts.
npm_pack() {
    if ! command -v npm >/dev/null 2>&1; then
        die "npm is needed to download $1; install it with: apt-get install -y npm"
    fi
    if ! (cd "$tmp" && npm pack --silent --ignore-scripts "$1") >"$tmp/npm.log" 2>&1; then
        tail -n 20 "$tmp/npm.log" >&2
        die "npm pack $1 failed (npm's last output above)"
    fi
    [ -f "$tmp/$2" ] || die "npm pack $1 did not produce $2"
    check "$tmp" "$2" "npm pack $1"
}

fetch_full() {
    if cached sqlite3.c; then
        echo "$prog: full: cached: $cache/sqlite3.c"
        return
    fi
    workdir
    npm_pack "$FULL_PKG" "$FULL_TGZ"
    # The amalgamation is a plain member of the npm tarball.
    tar --no-same-owner --no-same-permissions -m -xzf "$tmp/$FULL_TGZ" -C "$tmp" package/deps/sqlite3/sqlite3.c
    mv "$tmp/package/deps/sqlite3/sqlite3.c" "$tmp/sqlite3.c"
    check "$tmp" sqlite3.c "$FULL_PKG"
    mv -f "$tmp/sqlite3.c" "$cache/sqlite3.c"
    cleanup
    echo "$prog: full: fetched: $cache/sqlite3.c"
}

fetch_small() {
    if cached shell/shell.c shell/sqlite3.h; then
        echo "$prog: small: cached: $cache/shell/shell.c"
        return
    fi
    workdir
    npm_pack "$SMALL_PKG" "$SMALL_TGZ"
    # node-sqlite3 ships SQLite as the upstream autoconf tarball nested
    # inside its own; shell.c is in there, with the sqlite3.h it was
    # released with (shell.c includes "sqlite3.h" from its own directory).
    tar --no-same-owner --no-same-permissions -m -xzf "$tmp/$SMALL_TGZ" -C "$tmp" "package/deps/$SMALL_AUTOCONF.tar.gz"
    mv "$tmp/package/deps/$SMALL_AUTOCONF.tar.gz" "$tmp/$SMALL_AUTOCONF.tar.gz"
    check "$tmp" "$SMALL_AUTOCONF.tar.gz" "$SMALL_PKG"
    tar --no-same-owner --no-same-permissions -m -xzf "$tmp/$SMALL_AUTOCONF.tar.gz" -C "$tmp" \
        "$SMALL_AUTOCONF/shell.c" "$SMALL_AUTOCONF/sqlite3.h"
    mv "$tmp/$SMALL_AUTOCONF" "$tmp/shell"
    check "$tmp" shell/shell.c "$SMALL_PKG"
    check "$tmp" shell/sqlite3.h "$SMALL_PKG"
    mkdir -p "$cache/shell"
    # Header first: shell.c is the file whose presence callers test.
    mv -f "$tmp/shell/sqlite3.h" "$cache/shell/sqlite3.h"
    mv -f "$tmp/shell/shell.c" "$cache/shell/shell.c"
    cleanup
    echo "$prog: small: fetched: $cache/shell/shell.c"
}

# Parse arguments before touching the file system.
want_full=0
want_small=0
[ $# -gt 0 ] || set -- all
for arg in "$@"; do
    case $arg in
        all) want_full=1; want_small=1 ;;
        full) want_full=1 ;;
        small) want_small=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$prog: unknown input '$arg' (valid: all full small)" >&2; exit 2 ;;
    esac
done

[ -f "$sums" ] || die "missing checksum list $sums"
cache=${HEAPINDEX_CACHE:-$HOME/.cache/heapindex}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

if [ $want_full = 1 ]; then fetch_full; fi
if [ $want_small = 1 ]; then fetch_small; fi
