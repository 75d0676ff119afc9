#!/usr/bin/env bash
# Builds the fuzz targets on stable Rust and runs them with libFuzzer.
#
#   fuzz/run.sh build                 build every target
#   fuzz/run.sh smoke [SECONDS]       each target for SECONDS (default 10) from its seed corpus,
#                                     plus every regression input; fails on any crash
#   fuzz/run.sh run TARGET [SECONDS] [libFuzzer flags...]
#                                     one target, growing fuzz/corpus/TARGET
#   fuzz/run.sh list                  the targets
#
# cargo-fuzz needs a nightly compiler for its sanitizers; these flags are the SanitizerCoverage
# instrumentation libFuzzer needs, and rustc accepts them on stable. No AddressSanitizer: the
# code under test is safe Rust (and FFmpeg, fuzzed upstream by OSS-Fuzz), so what is sought is
# panics, overflows (overflow-checks on), hangs and runaway memory.
set -euo pipefail
cd "$(dirname "$0")"

TARGETS=(handshake chunk amf0 session media_tags codec_config decoder config lists image bank)
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN=target/$TRIPLE/release

build() {
	# --target keeps the instrumentation off build scripts and proc macros.
	RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
		cargo build --release --quiet --target "$TRIPLE" --bins
}

# run TARGET SECONDS [flags]: fuzzes TARGET from its corpus and seeds; new inputs go to corpus/.
run() {
	local target=$1 seconds=$2
	shift 2
	mkdir -p "corpus/$target" "artifacts/$target"
	local dirs=("corpus/$target")
	[ -d "seeds/$target" ] && dirs+=("seeds/$target")
	local dict=()
	[ -f "dict/$target.dict" ] && dict=("-dict=dict/$target.dict")
	"$BIN/$target" "${dirs[@]}" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="artifacts/$target/" "$@"
}

# Every input that once crashed a target runs through it again.
regressions() {
	local failed=0
	for target in "${TARGETS[@]}"; do
		[ -d "regressions/$target" ] || continue
		if ! "$BIN/$target" -runs=0 "regressions/$target"/* >"artifacts/regress-$target.log" 2>&1; then
			echo "regression input crashes $target again: artifacts/regress-$target.log" >&2
			failed=1
		fi
	done
	return $failed
}

case "${1:-smoke}" in
build) build ;;
list) printf '%s\n' "${TARGETS[@]}" ;;
run)
	build
	target=${2:?target}
	seconds=${3:-60}
	shift 3 || shift $#
	run "$target" "$seconds" "$@"
	;;
smoke)
	seconds=${2:-10}
	build
	mkdir -p artifacts
	regressions
	for target in "${TARGETS[@]}"; do
		log="artifacts/smoke-$target.log"
		if ! run "$target" "$seconds" >"$log" 2>&1; then
			echo "fuzz-smoke: $target crashed; see fuzz/$log and fuzz/artifacts/$target/" >&2
			tail -40 "$log" >&2
			exit 1
		fi
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
		echo "fuzz-smoke: $target ok: ${execs:-?} executions in ${seconds}s, ${cov:-cov: ?}"
	done
	;;
*) sed -n '2,10p' "$0"; exit 2 ;;
esac
