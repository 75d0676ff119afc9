#!/usr/bin/env bash
# Relay latency, CPU and RSS: hashgate next to an nginx-rtmp push relay, in one run on loopback.
# Usage: bench/relay.sh [SECONDS_PER_RUN]   (default 20; prints a Markdown table)
# HASHGATE_BIN=path measures another hashgate build (e.g. the previous commit's) the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo build --release --quiet
cargo bench --quiet --bench relay -- "${1:-20}"
