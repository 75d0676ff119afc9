#!/usr/bin/env bash
# Overload: N publishers of a 720p30 clip (keyframe every 2 s, `all` mode, 2 fps) through one
# hashgate into nginx-rtmp for SECONDS; every 5 s, from /metrics: the pool's sampling level, the
# worst stream's blind seconds, the lowest and median hashed-rate / target ratio, and streams
# cut as uninspectable. Usage: bench/overload.sh [N] [SECONDS]   (default 50 publishers, 40 s)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}; seconds=${2:-40}
make -s deps
cargo build --release --quiet
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ingest=$(port); listen=$(port); admin=$(port)
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -t 20 \
  -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p -f flv "$dir/720p.flv"
cat > "$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log $dir/nginx.log; pid $dir/nginx.pid;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events { worker_connections 1024; }
rtmp { server { listen 127.0.0.1:$ingest; application live { live on; } } }
CONF
cat > "$dir/hashgate.toml" <<CONF
[server]
listen = "127.0.0.1:$listen"
[upstream]
url = "rtmp://127.0.0.1:$ingest/live"
[[lists]]
path = "$PWD/samples/flagged.pdq"
[events]
log = "$dir/events.jsonl"
[admin]
listen = "127.0.0.1:$admin"
CONF
nginx -p "$dir" -c "$dir/nginx.conf" & sleep 0.5
target/release/hashgate serve --config "$dir/hashgate.toml" 2>"$dir/hashgate.log" & sleep 1
timeout "$((seconds + 5))" target/release/hashgate replay "$dir/720p.flv" \
  "rtmp://127.0.0.1:$listen/live/load" --count "$n" --loop >/dev/null 2>&1 &
echo "| s | streams | level | worst blind s | hashed/target min | median | uninspectable |"
echo "|---|---|---|---|---|---|---|"
for ((t = 5; t <= seconds; t += 5)); do
  sleep 5
  m=$(curl -s "127.0.0.1:$admin/metrics")
  get() { echo "$m" | grep "^$1" | awk '{print $2}'; }
  ratios=$(get hashgate_stream_sampling_ratio | sort -n)
  echo "| $t | $(get hashgate_streams_active) | $(get hashgate_inspection_level) |" \
    "$(get hashgate_stream_blind_seconds | sort -n | tail -1) | $(echo "$ratios" | head -1) |" \
    "$(echo "$ratios" | sed -n "$(( (n + 1) / 2 ))p") | $(grep -c '"uninspectable"' "$dir/events.jsonl" || true) |"
done
echo
echo "CPU of hashgate over the run: $(ps -o times= -p "$(pgrep -f "hashgate serve --config $dir")") s"
