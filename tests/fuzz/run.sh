#!/bin/sh
# SPDX-License-Identifier: MIT
# run.sh MODE FZDIR SECONDS TARGET... — run the libFuzzer targets (mk/fuzz.mk).
#
#   smoke  replay tests/fuzz/regress/TARGET/*, then fuzz each target for
#          SECONDS on its corpus, quietly; a summary line per target; exit 1
#          if anything crashed, leaked or timed out
#   run    the same, with libFuzzer's status lines shown (long runs by hand;
#          failing regressions are reported, and fuzzing goes on anyway);
#          FUZZ_FORK=1 runs libFuzzer in fork mode with -ignore_crashes=1:
#          it keeps fuzzing after a crash, saves every crashing input and
#          counts them
#   regress  only the replay of tests/fuzz/regress/TARGET/*
#   merge  fold the inputs the runs found (FZDIR/run/TARGET/corpus) that add
#          coverage into tests/fuzz/corpus/TARGET
#
# The runs read tests/fuzz/corpus/TARGET but write only to FZDIR/run/TARGET/
# (new inputs in corpus/, crash inputs as crash-*, leak-*, timeout-*, oom-*,
# the output in log). Targets that need files get a private directory under
# /dev/shm (BUS_FUZZ_TMP), removed at the end whatever happened.
set -u
mode=$1 fz=$2 secs=$3
shift 3
src=tests/fuzz
fork=${FUZZ_FORK:-0}

tmp=$(mktemp -d /dev/shm/bus-fuzz-run.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
export BUS_FUZZ_TMP="$tmp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Largest input per target: a packet is at most 1 KiB (REQ_MAX), a segment
# seed ~12 KiB, a log seed ~11 KiB, an argument short.
max_len() {
	case $1 in
	proto) echo 1100 ;;
	log) echo 65536 ;;
	seg) echo 24576 ;;
	*) echo 256 ;;
	esac
}

summary=""
bad=0
for t in "$@"; do
	bin=$fz/fuzz_$t
	work=$fz/run/$t
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin is missing (make fuzz)" >&2
		exit 1
	fi
	mkdir -p "$work/corpus" "$work/old"
	if [ "$mode" = merge ]; then
		echo "=== $t: merging $work/corpus into $src/corpus/$t"
		"$bin" -merge=1 -max_len="$(max_len "$t")" "$src/corpus/$t" "$work/corpus" \
			>"$work/merge.log" 2>&1 || { tail -20 "$work/merge.log"; exit 1; }
		grep -h "MERGE-OUTER: [0-9]* new files" "$work/merge.log"
		continue
	fi
	# Crash inputs of earlier runs: kept, out of the way of this run's count.
	for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
		[ -e "$f" ] && mv "$f" "$work/old/"
	done

	# Regressions first: every input that once failed runs once, each in
	# a process of its own so that one failure does not hide the next.
	if [ -d "$src/regress/$t" ] && [ -n "$(ls "$src/regress/$t")" ]; then
		n=0 nbad=0
		: >"$work/regress.log"
		for f in "$src/regress/$t"/*; do
			n=$((n + 1))
			if ! "$bin" -rss_limit_mb=2048 -timeout=10 "$f" >"$work/one.log" 2>&1; then
				nbad=$((nbad + 1))
				echo "--- $f" >>"$work/regress.log"
				cat "$work/one.log" >>"$work/regress.log"
				why=$(grep -m1 -E 'check failed|runtime error|ERROR: ' "$work/one.log")
				echo "fuzz: $t: regression $f fails: ${why:-see $work/regress.log}"
			fi
		done
		rm -f "$work/one.log"
		echo "=== $t: $n regression inputs replayed, $nbad failed"
		# A smoke stops there; a long run by hand goes on fuzzing (to
		# look for something else), and still fails in the end.
		if [ $nbad != 0 ]; then
			bad=1
			summary="$summary
$(printf '%-6s %12s %10s %8s %8s %8s %8s  %s' "$t" - - - - - "$nbad" \
			"REGRESSIONS FAIL ($work/regress.log)")"
			[ "$mode" = run ] || continue
		fi
	fi
	if [ "$mode" = regress ]; then
		msg="no regression inputs"
		[ -d "$src/regress/$t" ] && [ -n "$(ls "$src/regress/$t")" ] && msg="regressions ok"
		summary="$summary
$(printf '%-6s %12s %10s %8s %8s %8s %8s  %s' "$t" - - - - - 0 "$msg")"
		continue
	fi

	echo "=== $t: fuzzing for ${secs}s ($bin)"
	set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
		-artifact_prefix="$work/" -print_final_stats=1
	[ "$fork" = 1 ] && set -- "$@" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1
	if [ "$mode" = run ]; then
		{ "$bin" "$@" "$work/corpus" "$src/corpus/$t"; echo $? >"$work/rc"; } 2>&1 |
			tee "$work/log"
	else
		"$bin" "$@" "$work/corpus" "$src/corpus/$t" >"$work/log" 2>&1
		echo $? >"$work/rc"
	fi
	rc=$(cat "$work/rc")
	crashes=$(ls "$work" | grep -c -E '^(crash|leak|timeout|oom)-')
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$work/log" | grep ' cov: ' | tail -1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
	if [ -z "$runs" ]; then   # fork mode: no final stats; "#N:" counts executions
		runs=$(echo "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
		[ -n "$runs" ] && eps=$((runs / (secs > 0 ? secs : 1)))
	fi
	res=ok
	if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
		res="FAILED (exit $rc; inputs in $work/)"
		bad=1
		[ "$mode" = smoke ] && { echo "--- $t: last lines of $work/log"; tail -60 "$work/log"; }
	fi
	summary="$summary
$(printf '%-6s %12s %10s %8s %8s %8s %8s  %s' "$t" "${runs:-?}" "${eps:-?}" "${cov:-?}" \
		"${ft:-?}" "${corp:-?}" "$crashes" "$res")"
done

if [ "$mode" != merge ]; then
	echo
	printf '%-6s %12s %10s %8s %8s %8s %8s  %s' target runs exec/s cov ft corpus crashes result
	echo "$summary"
fi
exit $bad
