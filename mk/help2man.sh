#!/bin/sh
# help2man.sh OUT VERSION COMMAND|- [PAGE...] - the man page OUT of
# `heapindex COMMAND` (of `heapindex` itself for -), made by Debian's
# help2man from the --help text, so pages and --help cannot disagree.
# heapindex.1 also names the pages of the commands listed after it.
# Used by mk/install.mk.
set -eu
out=$1 version=$2 cmd=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v help2man >/dev/null 2>&1; then
	echo "heapindex: help2man is missing: apt-get install -y help2man" >&2
	exit 1
fi
[ "$cmd" = - ] && cmd=
name=heapindex${cmd:+-$cmd}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# help2man runs "$name --help" and takes a first line "Usage:" as the
# synopsis; ours say "usage:".
cat >"$tmp/$name" <<WRAPPER
#!/bin/sh
help=\$('$root/heapindex' $cmd "\$@") || exit
printf '%s\n' "\$help" | sed '1s/^usage:/Usage:/'
WRAPPER
chmod +x "$tmp/$name"

if [ -n "$cmd" ]; then
	# The one-line summary `heapindex --help` gives the command.
	summary=$("$root/heapindex" --help | sed -n "s/^  $cmd  *//p")
	printf '[SEE ALSO]\n.BR heapindex (1)\n' >"$tmp/include.h2m"
else
	summary="find the live heap chunk containing any address"
	{
		cat "$root/mk/heapindex.h2m"
		echo '[SEE ALSO]'
		for page in "$@"; do
			echo ".BR heapindex-$page (1)${page:+,}"
		done | sed '$s/,$//'
	} >"$tmp/include.h2m"
fi
if [ -z "$summary" ]; then
	echo "heapindex: help2man.sh: '$cmd' is not in heapindex --help" >&2
	exit 1
fi

# The date in the page: the last commit's, so the pages are reproducible.
if [ -z "${SOURCE_DATE_EPOCH:-}" ] && date=$(git -C "$root" log -1 --format=%ct 2>/dev/null); then
	SOURCE_DATE_EPOCH=$date
	export SOURCE_DATE_EPOCH
fi
help2man --no-info --section=1 --version-string="$name $version" --name="$summary" \
	--include="$tmp/include.h2m" --output="$out" "$tmp/$name"
