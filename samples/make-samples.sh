#!/usr/bin/env bash
# Regenerates every sample from synthetic sources with the ffmpeg CLI (no third-party media,
# nothing violent): a distinctive clip (FFmpeg's mandelbrot source) stands in for known content.
#   benign.flv   8 s of test pattern with a tone (H.264 + AAC, keyframe every second)
#   flagged.flv  the same pattern, with the stand-in clip playing from 2 s to 5 s
#   flagged.pdq  the stand-in clip's hash list (TSV: hex, quality, label, seconds), made with
#                `hashgate hash --fps 2`
# Usage: samples/make-samples.sh [path/to/hashgate]
set -euo pipefail
cd "$(dirname "$0")"
hashgate=${1:-../target/release/hashgate}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
enc=(-c:v libx264 -preset veryfast -pix_fmt yuv420p -r 30 -g 30 -b:v 400k -c:a aac -b:a 64k -ar 44100)
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

ff -f lavfi -i "mandelbrot=size=640x360:rate=30" -t 3 -c:v libx264 -preset veryfast -pix_fmt yuv420p -r 30 "$tmp/known.mp4"
ff -f lavfi -i "testsrc2=size=640x360:rate=30" -f lavfi -i "sine=frequency=440" -t 8 "${enc[@]}" -f flv benign.flv
ff -i benign.flv -i "$tmp/known.mp4" -filter_complex \
  "[0:v]trim=0:2,setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];[0:v]trim=5:8,setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1[v]" \
  -map "[v]" -map 0:a "${enc[@]}" -t 8 -f flv flagged.flv
"$hashgate" hash --fps 2 "$tmp/known.mp4" | sed "s#$tmp/##" > flagged.pdq
echo "samples: $(du -ch benign.flv flagged.flv flagged.pdq | tail -1 | cut -f1) in benign.flv, flagged.flv, flagged.pdq"
