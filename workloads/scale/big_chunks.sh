#!/bin/sh
# big_chunks.sh - the big-chunk workloads of issue 16 item 5 under every
# index: 3*10^5 malloc(16)+free with HEAPINDEX_ADDR_BITS=32 and 46 (every
# chunk above the memtable's range) and at the default width, and 50,000 live
# 32 KiB chunks replaced in rounds.  Prints "workload index seconds" lines,
# the best of RUNS (default 3) runs of tests/progs/big_churn.
#
#   sh workloads/scale/big_chunks.sh [RUNS]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
prog=$root/build/tests/progs/big_churn
runs=${1:-3}
[ -x "$prog" ] || { echo "big_chunks.sh: $prog is missing: run make first" >&2; exit 2; }
indexes=none
for lib in "$root"/build/lib/libheapindex-*.so; do
	name=${lib##*/libheapindex-}
	name=${name%.so}
	[ "$name" = record ] || indexes="$indexes $name"
done

best() { # best of $runs runs of: env ... big_churn ARGS
	b=
	i=0
	while [ "$i" -lt "$runs" ]; do
		t=$("$@" | awk '{print $2}')
		b=$(awk -v a="$b" -v t="$t" 'BEGIN { print (a == "" || t < a) ? t : a }')
		i=$((i + 1))
	done
	echo "$b"
}

for index in $indexes; do
	if [ "$index" = none ]; then pre=; else pre=$root/build/lib/libheapindex-$index.so; fi
	for bits in 32 46 47; do
		echo "small-3e5-bits$bits $index $(best env LD_PRELOAD="$pre" HEAPINDEX_ADDR_BITS=$bits "$prog" small 300000)"
	done
	echo "big-5e4x32KiB $index $(best env LD_PRELOAD="$pre" "$prog" big 50000 4 32768)"
done
