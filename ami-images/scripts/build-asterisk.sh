#!/bin/sh
# Builds Asterisk from release sources with exactly the modules that the
# given modules.conf files load, and installs it under DESTDIR.
#
#   build-asterisk.sh SRCDIR DESTDIR MODULES_CONF [MODULES_CONF...]
#
# SRCDIR holds asterisk-$ASTERISK_VERSION.tar.gz and the bundled
# pjproject-$PJPROJECT_VERSION.tar.bz2 (and may hold SHA256SUMS, which is
# then checked); nothing is downloaded. The node image (provision.sh) and the
# test suite (scripts/test) both call this script with the node's
# modules.conf, so the modules a node loads are the modules that are built.
# The tests add the carrier's modules.conf for the second Asterisk that plays
# the SIP carrier.
#
# DESTDIR is `make install DESTDIR=`: with DESTDIR=/ it is a system install;
# any other folder holds a relocatable tree (usr/sbin/asterisk,
# usr/lib/asterisk/modules, usr/lib/libasterisk*.so).
set -eu

ASTERISK_VERSION=${ASTERISK_VERSION:-22.10.1}
PJPROJECT_VERSION=${PJPROJECT_VERSION:-2.17}
[ $# -ge 3 ] || {
	echo "usage: $0 SRCDIR DESTDIR MODULES_CONF..." >&2
	exit 2
}
src=$(cd "$1" && pwd)
dest=$2
shift 2

if [ -f "$src/SHA256SUMS" ]; then
	(cd "$src" && sha256sum --quiet -c SHA256SUMS)
fi

# Every "load = x.so" line of the given files, once each.
modules=$(sed -n 's/^[[:space:]]*load[[:space:]]*=[[:space:]]*\([A-Za-z0-9_]*\)\.so.*/\1/p' "$@" | sort -u)
[ -n "$modules" ] || {
	echo "$0: no 'load = module.so' lines in $*" >&2
	exit 2
}

work=$(mktemp -d "${TMPDIR:-/tmp}/asterisk-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$src/asterisk-$ASTERISK_VERSION.tar.gz" -C "$work"
cd "$work/asterisk-$ASTERISK_VERSION"

# The bundled pjproject comes from SRCDIR (the externals cache); jansson is
# the system's.
./configure --with-pjproject-bundled --with-externals-cache="$src" >configure.log 2>&1 || {
	tail -n 40 configure.log >&2
	exit 1
}

select_modules() {
	set --
	for m in $modules; do set -- "$@" --enable "$m"; done
	# --disable-all also turns off every sound and music package (downloads)
	# and BUILD_NATIVE (binaries that run on any x86-64, not only this CPU).
	# It turns off OPTIONAL_API too, which must stay on: without it a
	# module's optional modules become hard link-time needs, and res_pjsip
	# then refuses to load for want of res_statsd and res_geolocation.
	menuselect/menuselect --disable-all --disable BUILD_NATIVE --enable OPTIONAL_API "$@" menuselect.makeopts >/dev/null
}
make menuselect.makeopts >/dev/null 2>&1
select_modules
for m in $modules; do
	grep -q "^MENUSELECT_[A-Z]*=.*\b$m\b" menuselect.makeopts && {
		echo "$0: module $m is still deselected: a dependency it needs is missing" >&2
		exit 1
	}
done

jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs" >build.log 2>&1 || {
	tail -n 60 build.log >&2
	exit 1
}
# The build can turn sound packages back on; install must not download them.
select_modules
make install DESTDIR="$dest" >install.log 2>&1 || {
	tail -n 40 install.log >&2
	exit 1
}
for m in $modules; do
	[ -f "$dest/usr/lib/asterisk/modules/$m.so" ] || {
		echo "$0: $m.so was not built" >&2
		exit 1
	}
done
