#!/usr/bin/env bash
# Audio matching: the evasion table (what re-uploaders do to a soundtrack, with benign controls
# through the same edits), then robustness of Chromaprint windows on the older single-clip
# corpus, the benign margin, the inverted index against brute-force alignment, and the cost
# per stream.
# Usage: bench/audio.sh   (prints Markdown; ~10 minutes)
#        BENCH_ONLY=evasion bench/audio.sh   (the evasion table alone)
#        BENCH_ONLY=audio bench/audio.sh     (the rest alone)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo build --release --quiet
case "${BENCH_ONLY:-all}" in
evasion) cargo bench --quiet --bench audio_evasion ;;
audio) cargo bench --quiet --bench audio ;;
*)
	cargo bench --quiet --bench audio_evasion
	cargo bench --quiet --bench audio
	;;
esac
