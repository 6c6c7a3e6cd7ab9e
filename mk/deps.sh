#!/bin/sh
# Install the Debian packages heapindex needs, or say exactly how to.
# Runs before `make test` and `make bench`; quiet when all is there.
set -eu
# help2man writes the man pages `make install` installs; pkgconf is the
# pkg-config the install test builds a program with. The last line of
# PACKAGES: the programs of the bench's real workloads (lua, gs and gs-mt
# with the PDF they render, z3, redis); the PDF gs renders at full size
# comes with valgrind.
INSTALL_PACKAGES="help2man pkgconf"
PACKAGES="libcriterion-dev libjemalloc-dev uthash-dev libunwind-dev libdwarf-dev libelf-dev \
libgc-dev hyperfine python3-matplotlib valgrind g++ \
lua5.4 ghostscript ghostscript-doc z3 redis-server redis-tools"
missing=""
for p in $PACKAGES $INSTALL_PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm fetches the pinned gcc input; any npm will do (Node.js may bring its own).
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "heapindex: installing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq $missing >/dev/null
else
	echo "heapindex: missing Debian packages:$missing" >&2
	echo "heapindex: install them with: sudo apt-get install -y$missing" >&2
	exit 1
fi
