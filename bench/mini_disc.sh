#!/usr/bin/env bash
# A mini-DISC (after Meta's Image Similarity Challenge, DISC21): our own generated references,
# DISC-style edits of each, and 10 times as many edited queries with no reference (distractors),
# scored as DISC scores: micro average precision over every query's best prediction, and the
# recall at 99.9 % precision. Pictures: 640x360 stills of four synthetic families (the game of
# life, cellular automata, HighLife in 2-pixel cells, colour gradients), seeds disjoint between
# the 20 references and the 200 distractor pictures. (Not Sierpinski patterns: the seed does not
# change them, so their "distractors" were copies of the references.) Edits (8): 30 % cropped off one side, rotated 8°,
# a 48 px caption, a 15 % logo, blurred + 320x180 + JPEG, half size over another picture, mirrored
# and brighter, filmed at an angle. Matchers: PDQ of the whole picture (`hashgate hash`, score
# 256 - distance), PDQ compared with the references mirrored too (as a list's `mirror` does),
# and the media bank (`hashgate bank check`, score = inliers; the bank built with `hashgate bank
# add`, mirrored frames included), and PDQ with the live views (each query as a 1 s video through
# `hashgate scan --nearest`: windows, negatives, colour planes, sure bits; score = -margin).
# Usage: bench/mini_disc.sh [WORKDIR]   (~16 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo build --release --quiet
hashgate=$PWD/target/release/hashgate
work=${1:-$(mktemp -d /tmp/hashgate-minidisc.XXXXXX)}
mkdir -p "$work/base" "$work/query"
cd "$work"
q=(-hide_banner -loglevel error -y)
source_of() { # family seed -> lavfi source
  case $1 in
  life) echo "life=size=160x90:rate=1:mold=10:ratio=0.1:seed=$2:life_color=white:death_color=#802010:mold_color=#205080,scale=640:360:flags=neighbor" ;;
  cells) echo "cellauto=size=640x360:rate=1:rule=$((30 + 20 * ($2 % 5))):random_fill_ratio=0.4:seed=$2" ;;
  highlife) echo "life=size=320x180:rate=1:rule=B36/S23:ratio=0.35:seed=$2:life_color=#40e0a0:death_color=#101830,scale=640:360:flags=neighbor" ;;
  gradients) echo "gradients=size=640x360:rate=1:seed=$2:nb_colors=$((2 + $2 % 6)):type=$(($2 % 4))" ;;
  esac
}
render() { # family seed out.png: the 3rd second (sources settle)
  ffmpeg "${q[@]}" -f lavfi -i "$(source_of "$1" "$2"),format=rgb24" -ss 3 -frames:v 1 "$3"
}
families=(life cells highlife gradients)
refs=()
for f in "${families[@]}"; do
  for s in 1 2 3 4 5; do render "$f" "$s" "base/ref-$f-$s.png"; refs+=("base/ref-$f-$s.png"); done
  for s in $(seq 101 150); do render "$f" "$s" "base/dis-$f-$s.png"; done
done
ffmpeg "${q[@]}" -f lavfi -i "testsrc2=size=640x360:rate=1" -ss 2 -frames:v 1 base/backdrop.png
edit() { # name in out
  local g
  case $1 in
  crop) g="crop=iw*0.7:ih:0:0,scale=640:360" ;;
  rotate) g="rotate=8*PI/180" ;;
  caption) g="drawtext=text='LIVE NOW':font=DejaVu Sans:fontsize=48:fontcolor=white:box=1:boxcolor=black@0.6:x=(w-text_w)/2:y=h-text_h-20" ;;
  logo) ffmpeg "${q[@]}" -i "$2" -f lavfi -i "smptebars=size=248x140" -filter_complex "[0][1]overlay=W-w-10:10" -frames:v 1 "$3"; return ;;
  blur) ffmpeg "${q[@]}" -i "$2" -vf "gblur=sigma=2,scale=320:180" -q:v 12 -frames:v 1 "${3%.png}.jpg"; return ;;
  pip) ffmpeg "${q[@]}" -i base/backdrop.png -i "$2" -filter_complex "[1]scale=320:180[p];[0][p]overlay=200:120" -frames:v 1 "$3"; return ;;
  mirror) g="hflip,eq=brightness=0.08" ;;
  filmed) g="perspective=x0=40:y0=20:x1=610:y1=35:x2=25:y2=345:x3=620:y3=330:sense=destination,gblur=sigma=1,noise=alls=6" ;;
  esac
  ffmpeg "${q[@]}" -i "$2" -vf "$g" -frames:v 1 "$3"
}
edits=(crop rotate caption logo blur pip mirror filmed)
for b in base/ref-*.png base/dis-*.png; do
  n=$(basename "$b" .png)
  for e in "${edits[@]}"; do edit "$e" "$b" "query/$n--$e.png"; done
done
rm -f bank.hgb
for r in "${refs[@]}"; do "$hashgate" bank add --bank bank.hgb "$(basename "$r" .png)" "$r" 2>/dev/null; done
for r in "${refs[@]}"; do ffmpeg "${q[@]}" -i "$r" -vf hflip "${r%.png}.mirrored.png"; done
"$hashgate" hash "${refs[@]}" base/ref-*.mirrored.png >refs.pdq
"$hashgate" hash query/* >queries.pdq
for f in query/*; do
  printf '%s\t%s\n' "$f" "$("$hashgate" bank check --bank bank.hgb "$f" | cut -f2,4 | head -1)"
done >bank.tsv
# PDQ with the live views (windows, negatives, colour planes, sure bits, mirrored): each query
# as a 1 s video through `hashgate scan --nearest` against the references as a list.
grep -v mirrored refs.pdq | awk -F'\t' '{ n = $3; sub(".*/", "", n); sub("[.]png$", "", n); print $1 "\t" $2 "\t" n }' >refs.tsv
printf '[upstream]\nurl = "rtmp://127.0.0.1:1/live"\n[[lists]]\npath = "%s/refs.tsv"\nthreshold = 31\nmirror = true\n' "$PWD" >views.toml
for f in query/*; do
  ffmpeg "${q[@]}" -loop 1 -i "$f" -t 1 -r 2 -c:v libx264 -pix_fmt yuv420p still.mp4
  "$hashgate" scan --nearest --config views.toml still.mp4 |
    sed -n "s|^nearest: distance [0-9]* margin \(-*[0-9]*\) .*refs.tsv / \([^ ]*\) .*|$f\t\2\t\1|p"
done >views.tsv
cd - >/dev/null
python3 bench/mini_disc.py "$work"
echo
echo "Work files in $work."
