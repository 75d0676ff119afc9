#!/usr/bin/env bash
# The cost of the media bank's second matcher on one core: features of a frame, and the search
# of banks of 1, 10 and 100 clips (6, 60, 600 reference frames; bench/media_bank.rs). The
# footage: 3 s clips of ffmpeg's game of life in 4-pixel cells at 640x360 (the evasion corpus's
# clip), one seed each; the frames checked are the first clip's.
# Usage: bench/media_bank.sh   (~3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
clips=()
for seed in $(seq 7 106); do
  ffmpeg -hide_banner -loglevel error -f lavfi \
    -i "life=size=160x90:rate=2:mold=10:ratio=0.1:seed=$seed:life_color=white:death_color=#802010:mold_color=#205080,scale=640:360:flags=neighbor" \
    -t 3 -r 30 -c:v libx264 -preset veryfast -pix_fmt yuv420p "$dir/clip-$seed.mp4"
  clips+=("$dir/clip-$seed.mp4")
done
cargo bench --quiet --bench media_bank -- "${clips[@]}"
