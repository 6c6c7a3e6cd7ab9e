#!/bin/sh
# callgrind.sh TRACE [INDEX...] - instructions per insert, remove and lookup
# of each index (default: all) replaying TRACE, counted by callgrind.
#
# Only the replay's timed loops are counted (--toggle-collect on
# timed_insert_batch, timed_remove_batch, timed_lookup_batch), so the
# figures are the index's instructions plus the loop's own: noop's row shows
# those (6 per insert or remove, 10 per lookup).  A replay is deterministic and
# valgrind's allocator makes the same addresses every run: the counts repeat
# exactly.  One valgrind process per index; ~5-10x the native replay time.
#
# Environment: LOOKUPS (lookups per record, default 1), SEED (default 1),
# HEAPINDEX_ADDR_BITS (default 40 here: valgrind refuses the memtable's
# 2^38-byte reservation for 47 bits, and its heap lies far below 2^40, so no
# chunk is outside the table; replay --stats shows uncovered_inserts).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/build/bin/heapindex
if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
	sed -n '2,15s/^# \{0,1\}//p' "$0"
	[ $# -ge 1 ] && exit 0
	exit 2
fi
trace=$1
shift
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
[ -x "$bin" ] || { echo "callgrind.sh: $bin is not built: run make" >&2; exit 2; }
[ -r "$trace" ] || { echo "callgrind.sh: cannot read $trace" >&2; exit 2; }
if [ $# -eq 0 ]; then
	# shellcheck disable=SC2046 # the index names are single words
	set -- $("$bin" replay --help | sed -n 's/.*or all: //p' | tr ',' ' ')
fi
export HEAPINDEX_ADDR_BITS="${HEAPINDEX_ADDR_BITS:-40}"
work=$(mktemp -d /tmp/heapindex-callgrind-XXXXXX)
trap 'rm -rf "$work"' EXIT

printf '%-10s %12s %12s %12s   (instructions per operation; %s)\n' index insert remove lookup "$(basename "$trace")"
for index in "$@"; do
	if ! valgrind --tool=callgrind --callgrind-out-file="$work/cg.$index" \
		--toggle-collect=timed_insert_batch --toggle-collect=timed_remove_batch \
		--toggle-collect=timed_lookup_batch \
		"$bin" replay "$trace" --index "$index" --lookups "${LOOKUPS:-1}" --seed "${SEED:-1}" \
		>"$work/out.$index" 2>"$work/err.$index"; then
		echo "callgrind.sh: replay of $trace against $index failed:" >&2
		grep -v '^==' "$work/err.$index" >&2 || true
		exit 1
	fi
	callgrind_annotate --inclusive=yes "$work/cg.$index" 2>/dev/null |
	awk -v index_name="$index" -v out="$work/out.$index" '
		BEGIN {
			getline header < out
			n = split(header, w, " ")
			for (i = 2; i <= n; i++) {
				if (w[i] ~ /^inserts/) inserts = w[i - 1]
				if (w[i] ~ /^removes/) removes = w[i - 1]
			}
			while ((getline line < out) > 0) {
				split(line, f, " ")
				if (f[1] == index_name) lookups = f[5]
			}
		}
		/kernels\.c:timed_insert_batch/ { gsub(",", "", $1); ins = $1 }
		/kernels\.c:timed_remove_batch/ { gsub(",", "", $1); rem = $1 }
		/kernels\.c:timed_lookup_batch/ { gsub(",", "", $1); look = $1 }
		END {
			printf "%-10s %12.1f %12.1f %12.1f\n", index_name,
			       inserts ? ins / inserts : 0, removes ? rem / removes : 0,
			       lookups ? look / lookups : 0
		}'
done
