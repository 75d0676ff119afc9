#!/usr/bin/env bash
# Cut latency of a flagged stream alone and behind N benign 720p streams plus two streams built
# to be costly to decode. Usage: bench/fairness.sh [RUNS] [N]   (default 5 runs, N = 8)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo build --release --quiet
cargo bench --quiet --bench fairness -- "${1:-5}" "${2:-8}"
