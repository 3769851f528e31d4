#!/bin/sh
# run-tests.sh BUILD TIMEOUT JOBS BIN... — run Criterion test binaries.
#
# Each binary gets a private segment directory on /dev/shm (BUS_TEST_SHM)
# that is removed afterwards whatever happened (a crashed or timed-out test
# included), and a timeout. Ends with "N passed, N failed".
build=$1 limit=$2 jobs=$3
shift 3
pass=0 fail=0 failed=""
for bin in "$@"; do
	name=$(basename "$bin")
	dir=$(mktemp -d /dev/shm/bus-test.XXXXXX) || exit 1
	echo "=== $name"
	if BUS_TEST_SHM=$dir timeout -k 10 "$limit" "$bin" --jobs="$jobs" --short-filename; then
		pass=$((pass + 1))
	else
		rc=$?
		[ $rc = 124 ] && echo "$name: timed out after ${limit}s"
		fail=$((fail + 1)); failed="$failed $name"
	fi
	left=$(find "$dir" -mindepth 1 2>/dev/null | head -5)
	if [ -n "$left" ]; then
		echo "$name: left files behind in its test directory:"; echo "$left"
		fail=$((fail + 1)); failed="$failed $name(leftovers)"
	fi
	rm -rf "$dir"
done
echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
