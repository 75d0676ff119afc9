#!/usr/bin/env bash
# Cut latency and flagged seconds reaching the platform, per sampling rate and mode.
# Usage: bench/cut_latency.sh [RUNS]   (default 5 runs per setting; prints a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo build --release --quiet
cargo bench --quiet --bench cut_latency -- "${1:-5}"
