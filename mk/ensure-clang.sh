#!/bin/sh
# SPDX-License-Identifier: MIT
# ensure-clang.sh CLANG — make sure CLANG can build libFuzzer targets (make fuzz).
#
# Checks by building and linking a one-line fuzz target with
# -fsanitize=fuzzer,address,undefined, which needs clang and its runtime
# (libclang_rt.fuzzer, in Debian's libclang-rt-dev: only a Recommends of
# clang, so an install without recommends lacks it). When that fails, installs
# the Debian packages with apt-get as root (sudo otherwise), saying what it
# runs, or says what to install.
set -e
cc=${1:-clang}
pkgs="clang libclang-rt-dev"

works() {
	command -v "$cc" >/dev/null 2>&1 || return 1
	d=$(mktemp -d "${TMPDIR:-/tmp}/bus-clang.XXXXXX") || return 1
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
		>"$d/t.c"
	ok=0
	"$cc" -fsanitize=fuzzer,address,undefined -o "$d/t" "$d/t.c" >"$d/log" 2>&1 && ok=1
	if [ $ok != 1 ]; then
		echo "bus: $cc cannot build a libFuzzer target:" >&2
		sed 's/^/  /' "$d/log" >&2
	fi
	rm -rf "$d"
	[ $ok = 1 ]
}

works && exit 0
if [ "$cc" != clang ]; then
	echo "bus: $cc cannot build fuzz targets; use FUZZ_CC=clang (Debian: apt-get install $pkgs)" >&2
	exit 1
fi
if [ "$(id -u)" = 0 ]; then sudo=""
elif command -v sudo >/dev/null 2>&1; then sudo="sudo"
else
	echo "bus: make fuzz needs clang with libFuzzer: install $pkgs as root," \
	     "then run make fuzz again" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "bus: make fuzz needs clang with libFuzzer (no apt-get here: install clang and its" \
	     "compiler-rt by hand)" >&2
	exit 1
fi
echo "bus: installing the fuzzing compiler: $pkgs"
echo "+ ${sudo:+$sudo }apt-get update -q"
DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q >/dev/null
echo "+ ${sudo:+$sudo }apt-get install -y -q --no-install-recommends $pkgs"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $pkgs >/dev/null
works
