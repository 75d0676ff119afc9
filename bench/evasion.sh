#!/usr/bin/env bash
# The evasion table: a known clip (3 s of ffmpeg's mandelbrot zoom) inserted at 2 s into a 7 s
# stream of ordinary test footage, re-streamed under one transform per row, through the live
# pipeline (`hashgate scan`: sampling at 2 fps with random sample points off, hashing with the
# dihedral, letterbox and frame-in-frame lookups, matching, the cut policy). Each row also runs
# a benign stream under the same transform: the same footage around a *similar but different*
# scene (the mandelbrot zoom at another point of the set), and reports how close any of its
# hashes came to the list (`scan --nearest`): the margin is the distance less the threshold
# that view had to reach (the list's threshold, or its negative threshold for a negative), the
# smallest over both clips, with the view (frame, content, inset, window, seams, colour).
# EVASION_ONLY=REGEX runs the rows whose names match.
#
# Usage: bench/evasion.sh [WORKDIR]   (prints Markdown; ~4 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo build --release --quiet
hashgate=$PWD/target/release/hashgate
work=${1:-$(mktemp -d /tmp/hashgate-evasion.XXXXXX)}
mkdir -p "$work"
cd "$work"

enc=(-c:v libx264 -preset veryfast -pix_fmt yuv420p -g 30 -an)
quiet=(-hide_banner -loglevel error -y)
threshold=31

# The corpus: made here, small, synthetic. Two known clips, each with a similar but different
# benign scene: a mandelbrot zoom (smooth, self-similar: a crop of it looks like a later frame)
# and the game of life in 4-pixel cells (no such luck: a crop is a new picture).
declare -A known=(
  [zoom]="mandelbrot=size=640x360:rate=30"
  [life]="life=size=160x90:rate=2:mold=10:ratio=0.1:seed=7:life_color=white:death_color=#802010:mold_color=#205080,scale=640:360:flags=neighbor"
)
declare -A similar=(
  [zoom]="mandelbrot=size=640x360:rate=30:start_x=-0.1011:start_y=0.9563"
  [life]="life=size=160x90:rate=2:mold=10:ratio=0.1:seed=11:life_color=white:death_color=#802010:mold_color=#205080,scale=640:360:flags=neighbor"
)
clips=(zoom life)
ffmpeg "${quiet[@]}" -f lavfi -i testsrc2=size=640x360:rate=30 -t 4 -r 30 -crf 18 "${enc[@]}" filler.mp4
compose() { # filler 0-2 s, $1, filler 2-4 s
  ffmpeg "${quiet[@]}" -i filler.mp4 -i "$1" -filter_complex \
    "[0:v]trim=0:2,setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];[0:v]trim=2:4,setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1[v]" \
    -map "[v]" -r 30 -crf 18 "${enc[@]}" "$2"
}
for c in "${clips[@]}"; do
  ffmpeg "${quiet[@]}" -f lavfi -i "${known[$c]}" -t 3 -r 30 -crf 18 "${enc[@]}" "known-$c.mp4"
  ffmpeg "${quiet[@]}" -f lavfi -i "${similar[$c]}" -t 3 -r 30 -crf 18 "${enc[@]}" "similar-$c.mp4"
  compose "known-$c.mp4" "stream-$c.mp4"
  compose "similar-$c.mp4" "benign-$c.mp4"
  "$hashgate" hash --fps 2 "known-$c.mp4" >"plain-$c.tsv"
  "$hashgate" hash --fps 2 --augment crops "known-$c.mp4" >"augmented-$c.tsv"
  for list in plain augmented; do
    printf '[upstream]\nurl = "rtmp://127.0.0.1:1/live"\n[[lists]]\npath = "%s-%s.tsv"\nthreshold = %d\n' \
      "$list" "$c" "$threshold" >"$list-$c.toml"
  done
done

# A picture inside a static layout (a framed player over a test card) at a fraction of the area.
inset() { # area percent -> filtergraph
  local side w h x y
  side=$(awk -v a="$1" 'BEGIN { print sqrt(a / 100) }')
  w=$(awk -v s="$side" 'BEGIN { printf "%d", 640 * s / 2 * 2 }')
  h=$(awk -v s="$side" 'BEGIN { printf "%d", 360 * s / 2 * 2 }')
  x=$(((640 - w) * 3 / 10))
  y=$(((360 - h) * 6 / 10))
  echo "[0:v]scale=$w:$h[in];smptebars=size=640x360:rate=30,drawbox=x=$((x - 4)):y=$((y - 4)):w=$((w + 8)):h=$((h + 8)):color=white:t=4[bg];[bg][in]overlay=$x:$y:shortest=1[v]"
}
crop() { # percent taken off each side, centred, scaled back (as `hashgate hash --crops` counts)
  echo "[0:v]crop=iw*$((100 - 2 * $1))/100:ih*$((100 - 2 * $1))/100,scale=640:360[v]"
}
logo() { # a static logo (a test card) over the top-right corner, percent of the area
  local side w h
  side=$(awk -v a="$1" 'BEGIN { print sqrt(a / 100) }')
  w=$(awk -v s="$side" 'BEGIN { printf "%d", 640 * s / 2 * 2 }')
  h=$(awk -v s="$side" 'BEGIN { printf "%d", 360 * s / 2 * 2 }')
  echo "smptebars=size=${w}x$h:rate=30[l];[0:v][l]overlay=W-w-10:10:shortest=1[v]"
}
text() { # a caption of a font size
  echo "[0:v]drawtext=text='LIVE REACTION':font=DejaVu Sans:fontsize=$1:fontcolor=white:box=1:boxcolor=black@0.6:x=(w-text_w)/2:y=h-text_h-20[v]"
}
# Other moving footage for split screens: cellular automata, nothing like either clip.
moving="cellauto=size=640x360:rate=30:rule=110:random_fill_ratio=0.5:seed=5,format=yuv420p"
refilmed="[0:v]perspective=x0=40:y0=20:x1=610:y1=35:x2=25:y2=345:x3=620:y3=330:sense=destination,gblur=sigma=1.2,drawgrid=w=3:h=3:t=1:color=black@0.25,noise=alls=8:allf=t,eq=brightness=0.04:contrast=0.9[v]"

# name | filtergraph ([0:v] in, [v] out) | list | clip start s | extra encoder options
rows=(
  "none (control)|[0:v]null[v]|plain|2|"
  "re-encode 150 kb/s|[0:v]null[v]|plain|2|-b:v 150k"
  "rescale to 320x180|[0:v]scale=320:180[v]|plain|2|"
  "brightness +0.15|[0:v]eq=brightness=0.15[v]|plain|2|"
  "contrast x1.5|[0:v]eq=contrast=1.5[v]|plain|2|"
  "gamma 1.6|[0:v]eq=gamma=1.6[v]|plain|2|"
  "greyscale|[0:v]hue=s=0[v]|plain|2|"
  "colour shift (hue 90)|[0:v]hue=h=90[v]|plain|2|"
  "noise 20|[0:v]noise=alls=20:allf=t[v]|plain|2|"
  "blur sigma 3|[0:v]gblur=sigma=3[v]|plain|2|"
  "caption 24 px|$(text 24)|plain|2|"
  "caption 64 px|$(text 64)|plain|2|"
  "logo 5 % of area|$(logo 5)|plain|2|"
  "logo 10 %|$(logo 10)|plain|2|"
  "logo 20 %|$(logo 20)|plain|2|"
  "crop 5 % each side|$(crop 5)|plain|2|"
  "crop 10 % each side|$(crop 10)|plain|2|"
  "crop 15 % each side|$(crop 15)|plain|2|"
  "crop 5 % each side, augmented list|$(crop 5)|augmented|2|"
  "crop 10 % each side, augmented list|$(crop 10)|augmented|2|"
  "crop 12 % each side, augmented list|$(crop 12)|augmented|2|"
  "crop 15 % each side, augmented list|$(crop 15)|augmented|2|"
  "crop 20 % each side, augmented list|$(crop 20)|augmented|2|"
  "crop 30 % off two sides (a corner), augmented|[0:v]crop=iw*70/100:ih*70/100:0:0,scale=640:360[v]|augmented|2|"
  "crop 20 % off the right only, augmented|[0:v]crop=iw*80/100:ih:0:0,scale=640:360[v]|augmented|2|"
  "mirror|[0:v]hflip[v]|plain|2|"
  "rotate 90°|[0:v]transpose=1[v]|plain|2|"
  "rotate 3°|[0:v]rotate=3*PI/180[v]|plain|2|"
  "rotate 5°|[0:v]rotate=5*PI/180[v]|plain|2|"
  "rotate 10°|[0:v]rotate=10*PI/180[v]|plain|2|"
  "letterbox|[0:v]scale=640:270,pad=640:360:0:45[v]|plain|2|"
  "pillarbox|[0:v]scale=480:360,pad=640:360:80:0[v]|plain|2|"
  "frame-in-frame 75 %|$(inset 75)|plain|2|"
  "frame-in-frame 50 %|$(inset 50)|plain|2|"
  "frame-in-frame 30 %|$(inset 30)|plain|2|"
  "speed x0.5|[0:v]setpts=2*PTS[v]|plain|4|"
  "speed x2|[0:v]setpts=0.5*PTS[v]|plain|1|"
  "15 fps|[0:v]fps=15[v]|plain|2|"
  "60 fps|[0:v]fps=60[v]|plain|2|"
  "screen re-filmed|$refilmed|plain|2|"
  "crop 10 % each side + brightness + noise, augmented|[0:v]crop=iw*80/100:ih*80/100,scale=640:360,eq=brightness=0.1,noise=alls=12:allf=t[v]|augmented|2|"
  "frame-in-frame 50 % + hue 60 + 300 kb/s|$(inset 50 | sed 's/\[0:v\]scale/[0:v]hue=h=60,scale/')|plain|2|-b:v 300k"
  "mirror + blur + 320x180|[0:v]hflip,gblur=sigma=2,scale=320:180[v]|plain|2|"
  "negative|[0:v]negate[v]|plain|2|"
  "negative + mirror + 300 kb/s|[0:v]negate,hflip[v]|plain|2|-b:v 300k"
  "contrast cut to 25 %|[0:v]eq=contrast=0.25[v]|plain|2|"
  "contrast cut to 25 % and dark|[0:v]eq=contrast=0.25:brightness=-0.3[v]|plain|2|"
  "luma moved into a colour plane, luma flat|[0:v]format=yuv444p,shuffleplanes=1:0:2,lutyuv=y=128[v]|plain|2|"
  "luma and a colour plane swapped|[0:v]shuffleplanes=1:0:2[v]|plain|2|"
  "luma flat, colour kept|[0:v]lutyuv=y=128[v]|plain|2|"
  "solarize (luma over mid-grey inverted)|[0:v]lutyuv=y='if(gt(val,128),255-val,val)'[v]|plain|2|"
  "posterize to 3 luma levels|[0:v]lutyuv=y='floor(val/86)*100+28'[v]|plain|2|"
  "edge sketch|[0:v]edgedetect[v]|plain|2|"
  "split screen: top half over moving footage|[0:v]scale=640:180[t];$moving,scale=640:180[b];[t][b]vstack=shortest=1[v]|plain|2|"
  "split screen: left half beside moving footage|[0:v]scale=320:360[l];$moving,scale=320:360[r];[l][r]hstack=shortest=1[v]|plain|2|"
  "tiled 2 x 2|[0:v]scale=320:180,split=4[a][b][c][d];[a][b]hstack[t];[c][d]hstack[u];[t][u]vstack[v]|plain|2|"
  "squeezed beside its mirror image|[0:v]scale=320:360,split[a][b];[b]hflip[m];[a][m]hstack[v]|plain|2|"
  "over its blurred enlarged copy, 70 %, off centre|[0:v]split[a][b];[b]gblur=sigma=20[bg];[a]scale=448:252[fg];[bg][fg]overlay=150:70[v]|plain|2|"
  "vertical video: centre band over its blurred copy|[0:v]split[a][b];[b]scale=-2:640,crop=360:640,gblur=sigma=20[bg];[a]scale=360:202[fg];[bg][fg]overlay=0:(H-h)/2[v]|plain|2|"
  "picture-in-picture, half size over a moving pattern|[0:v]scale=320:180[p];$moving[bg];[bg][p]overlay=210:130:shortest=1[v]|plain|2|"
  "mirrored, in the left half beside moving footage|[0:v]hflip,scale=320:360[l];$moving,scale=320:360[r];[l][r]hstack=shortest=1[v]|plain|2|"
  "mirrored, tiled 2 x 2|[0:v]hflip,scale=320:180,split=4[a][b][c][d];[a][b]hstack[t];[c][d]hstack[u];[t][u]vstack[v]|plain|2|"
  "screen-door grid: white 2 px lines every 24 px|[0:v]drawgrid=w=24:h=24:t=2:color=white[v]|plain|2|"
  "screen-door grid over a 7° rotation|[0:v]rotate=7*PI/180,drawgrid=w=24:h=24:t=2:color=white[v]|plain|2|"
  "screen-door grid turned 7° with the picture|[0:v]drawgrid=w=24:h=24:t=2:color=white,rotate=7*PI/180[v]|plain|2|"
)

nearest() { sed -n 's/^nearest: distance [0-9]* margin \(-*[0-9]*\).*/\1/p' <<<"$1"; }
echo "| transform | zoom clip: cut, s after its start | life clip: cut, s after its start | benign margin (bits) | nearest benign view |"
echo "|---|---|---|---|---|"
i=0
for row in "${rows[@]}"; do
  IFS='|' read -r name graph list start extra <<<"$row"
  i=$((i + 1))
  [[ -n ${EVASION_ONLY:-} && ! $name =~ $EVASION_ONLY ]] && continue
  read -r -a extra_args <<<"$extra"
  cells=()
  worst=256
  worst_view=-
  benign_cut=""
  for c in "${clips[@]}"; do
    for which in stream benign; do
      ffmpeg "${quiet[@]}" -i "$which-$c.mp4" -filter_complex "$graph" -map "[v]" -r 30 \
        "${enc[@]}" "${extra_args[@]}" "$which-$c-$i.mp4"
    done
    restream=$("$hashgate" scan --config "$list-$c.toml" "stream-$c-$i.mp4")
    benign=$("$hashgate" scan --nearest --config "$list-$c.toml" "benign-$c-$i.mp4")
    cut_at=$(sed -n 's/^verdict: CUT at \([0-9.]*\)s.*/\1/p' <<<"$restream")
    if [[ -n $cut_at ]]; then
      cells+=("cut, $(awk -v c="$cut_at" -v s="$start" 'BEGIN { printf "%.1f", c - s }')")
    else
      cells+=("**passed**")
    fi
    d=$(nearest "$benign")
    d=${d:-256}
    ((d < worst)) && worst=$d && worst_view=$(sed -n 's/^nearest: .*, \([a-z]*\(, negative\)*\))$/\1/p' <<<"$benign")
    grep -q "^verdict: CUT" <<<"$benign" && benign_cut=" **(benign cut)**"
  done
  echo "| $name | ${cells[0]} | ${cells[1]} | $worst$benign_cut | $worst_view |"
done
echo
echo "Threshold $threshold; lists: \`hashgate hash --fps 2\` of each clip (plain) and with \`--augment crops\` (5/10/15/20 % off each side, centred and towards two corners). Work files in $work."
