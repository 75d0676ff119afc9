#!/usr/bin/env bash
# The media bank on the evasion corpus: every row of bench/evasion.sh (its edited re-streams of
# the zoom and life clips) checked against one bank built from the two known clips and ten
# distractors (3 s of the game of life from other seeds) with `hashgate bank add` (mirrored
# frames included), with `hashgate bank check` at 2 samples a second. A row is caught when two
# samples reach min_inliers (20) on the right clip, as the live verdict needs two matches. Benign controls per
# row, under the same edit: 6 s of unrelated footage (a moving gradient, rule-30 automata, the
# SMPTE bars; never tuned to) and the 4 s of test footage around each clip; the row's benign
# twin of life (the game with another seed) too. The zoom's twin, the same Mandelbrot picture
# shifted by (76, 129) px, is a partial copy to any content matcher: reported, not a control.
# The margin is min_inliers less the most inliers any control sample reached.
# Usage: bench/media_bank_evasion.sh [EVASION_WORKDIR]  (without one, runs bench/evasion.sh
# first, ~5 minutes; then ~6 minutes). BANK_ONLY=REGEX runs the rows whose names match.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo build --release --quiet
hashgate=$PWD/target/release/hashgate
work=${1:-}
if [ -z "$work" ]; then
  work=$(bench/evasion.sh | sed -n 's/.*Work files in \([^ ]*\)\.$/\1/p')
fi
# The rows and their filtergraphs, as bench/evasion.sh defines them.
eval "$(sed -n '/^enc=(/,/^quiet=/p;/^inset() {/,/^)$/p' bench/evasion.sh)"
cd "$work"
min_inliers=20
rm -f bank.hgb
for c in zoom life; do
  "$hashgate" bank add --bank bank.hgb "$c" "known-$c.mp4" 2>/dev/null
done
for seed in $(seq 21 30); do
  ffmpeg "${quiet[@]}" -f lavfi -i "life=size=160x90:rate=2:mold=10:ratio=0.1:seed=$seed:life_color=white:death_color=#802010:mold_color=#205080,scale=640:360:flags=neighbor" \
    -t 3 -r 30 -crf 18 "${enc[@]}" "distractor-$seed.mp4"
  "$hashgate" bank add --bank bank.hgb "distractor-$seed" "distractor-$seed.mp4" 2>/dev/null
done
ffmpeg "${quiet[@]}" -filter_complex \
  "gradients=size=640x360:rate=30:speed=0.05,trim=0:2,setpts=PTS-STARTPTS[a];cellauto=size=640x360:rate=30:rule=30:random_fill_ratio=0.3:seed=3,format=yuv420p,trim=0:2,setpts=PTS-STARTPTS[b];smptehdbars=size=640x360:rate=30,trim=0:2,setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1,format=yuv420p[v]" \
  -map "[v]" -r 30 -crf 18 "${enc[@]}" unrelated.mp4

# Inliers of every sample, one per line (of matches on clip $3 only, when given).
inliers() { "$hashgate" bank check --bank "$1" "$2" | awk -F'\t' -v c="${3:-}" 'c == "" || $2 == c { print $4 }'; }
second_best() { sort -n | tail -2 | head -1; }
best() { sort -n | tail -1; }
# Samples of stream-*.mp4 in the footage around the clip (the clip starts at $3 s and lasts
# 1.5 times that: 3 s at 2 s, stretched or squeezed with the speed rows).
filler_inliers() {
  "$hashgate" bank check --bank "$1" "$2" |
    awk -F'\t' -v s="$3" '$1 < s - 0.1 || $1 > s * 2.5 + 0.1 { print $4 }'
}

echo "| transform | zoom: caught (2nd best inliers) | life: caught (2nd best) | controls: most inliers | margin | life's twin | zoom's shifted twin |"
echo "|---|---|---|---|---|---|---|"
i=0
for row in "${rows[@]}"; do
  IFS='|' read -r name graph _list start extra <<<"$row"
  i=$((i + 1))
  [[ -n ${BANK_ONLY:-} && ! $name =~ $BANK_ONLY ]] && continue
  [ -f "stream-zoom-$i.mp4" ] || continue
  read -r -a extra_args <<<"$extra"
  ffmpeg "${quiet[@]}" -i unrelated.mp4 -filter_complex "$graph" -map "[v]" -r 30 \
    "${enc[@]}" "${extra_args[@]}" "unrelated-$i.mp4"
  cells=()
  control=0
  for c in zoom life; do
    got=$(inliers bank.hgb "stream-$c-$i.mp4" "$c" | second_best)
    got=${got:-0}
    if ((got >= min_inliers)); then cells+=("caught ($got)"); else cells+=("**passed** ($got)"); fi
    for v in $(filler_inliers bank.hgb "stream-$c-$i.mp4" "$start" | best); do
      ((v > control)) && control=$v
    done
  done
  unrelated=$(inliers bank.hgb "unrelated-$i.mp4" | best)
  ((unrelated > control)) && control=$unrelated
  twin_life=$(inliers bank.hgb "benign-life-$i.mp4" | best)
  ((twin_life > control)) && control=$twin_life
  twin_zoom=$(inliers bank.hgb "benign-zoom-$i.mp4" zoom | best)
  echo "| $name | ${cells[0]} | ${cells[1]} | $control | $((min_inliers - control)) | $twin_life | $twin_zoom |"
done
echo
echo "min_inliers $min_inliers; one bank: \`hashgate bank add\` of both known clips and ten distractors (2 samples a second, mirrored too, 500 features a frame). Work files in $work."
