#!/bin/sh
# Install what building and testing bus needs, if it is missing (Debian/Ubuntu).
# Says what it runs; uses apt-get directly as root, else sudo.
set -e
need=""
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
have_pc criterion || [ -f /usr/include/criterion/criterion.h ] || need="$need libcriterion-dev"
have_pc liburing || [ -f /usr/include/liburing.h ] || need="$need liburing-dev"
have_pc libzmq || [ -f /usr/include/zmq.h ] || need="$need libzmq3-dev"
[ -n "$need" ] || exit 0

if [ "$(id -u)" = 0 ]; then sudo=""
elif command -v sudo >/dev/null 2>&1; then sudo="sudo"
else
	echo "bus: missing build dependencies:$need" >&2
	echo "bus: install them (apt-get install$need) as root, then run make again" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "bus: missing build dependencies:$need (no apt-get here: install them by hand)" >&2
	exit 1
fi
echo "bus: installing build dependencies:$need"
echo "+ ${sudo:+$sudo }apt-get update -q"
DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q >/dev/null
echo "+ ${sudo:+$sudo }apt-get install -y -q --no-install-recommends$need"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $need >/dev/null
