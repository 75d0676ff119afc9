#!/usr/bin/env bash
# The cost of the media bank's second matcher on one core: features of a frame, and the search
# of banks of 6, 60 and 600 reference frames (bench/media_bank.rs). The footage: 3 s of
# ffmpeg's game of life in 4-pixel cells at 640x360 (the evasion corpus's clip).
# Usage: bench/media_bank.sh   (~1 minute)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ffmpeg -hide_banner -loglevel error -f lavfi \
  -i "life=size=160x90:rate=2:mold=10:ratio=0.1:seed=7:life_color=white:death_color=#802010:mold_color=#205080,scale=640:360:flags=neighbor" \
  -t 3 -r 30 -c:v libx264 -preset veryfast -pix_fmt yuv420p "$dir/clip.mp4"
cargo bench --quiet --bench media_bank -- "$dir/clip.mp4"
