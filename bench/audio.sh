#!/usr/bin/env bash
# Audio matching: robustness of Chromaprint windows on a synthetic corpus, the benign margin,
# the inverted index against brute-force alignment, and the cost per stream.
# Usage: bench/audio.sh   (prints Markdown; ~3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo build --release --quiet
cargo bench --quiet --bench audio
