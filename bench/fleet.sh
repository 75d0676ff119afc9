#!/usr/bin/env bash
# The fleet's costs. (1) Block propagation: `cargo bench --bench fleet` (three members on one
# redis-server, 1,000 cuts, p50/p99 until the other two refuse the key; Redis commands per cut).
# (2) Streaming cost: one hashgate with N looped 720p streams (default sampling) for SECONDS, once on its own and
# once in a cluster (same config plus [cluster] redis), side by side in one run: hashgate's CPU
# and Redis commands per stream per second while streaming (heartbeats only: nothing per frame).
#
# Usage: bench/fleet.sh [N] [SECONDS]      (default 10 30)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}; seconds=${2:-30}
make -s deps
cargo build --release --quiet
echo "## block propagation"
cargo bench --quiet --bench fleet 2>/dev/null | grep -v '^$'
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
clip=target/soak-720p.flv
if [ ! -f "$clip" ]; then
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i sine=frequency=440:sample_rate=44100 -t 20 -c:v libx264 -preset veryfast -g 60 \
    -b:v 2.6M -maxrate 2.7M -bufsize 5M -pix_fmt yuv420p -c:a aac -b:a 96k -f flv "$clip"
fi
ingest=$(port); redis=$(port)
cat > "$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log $dir/nginx.log; pid $dir/nginx.pid;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events { worker_connections 4096; }
rtmp { server { listen 127.0.0.1:$ingest; max_message 16M; application live { live on; } } }
CONF
nginx -p "$dir" -c "$dir/nginx.conf" & sleep 0.5
redis-server --bind 127.0.0.1 --port "$redis" --save '' --appendonly no --dir "$dir" >/dev/null &
sleep 0.5
commands() { redis-cli -p "$redis" INFO stats | awk -F: '/^total_commands_processed/ {print $2+0}'; }
hz=$(getconf CLK_TCK)
run() { # $1 = label, $2 = extra config
  local listen admin hg c0 c1 r0 r1
  listen=$(port); admin=$(port)
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\n[upstream]\nurl = "rtmp://127.0.0.1:%s/live"\n' "$listen" "$ingest"
    printf '[[lists]]\npath = "%s/samples/flagged.pdq"\n' "$PWD"
    printf '[events]\nlog = "%s/events-%s.jsonl"\n[admin]\nlisten = "127.0.0.1:%s"\n%b' "$dir" "$1" "$admin" "$2"
  } > "$dir/$1.toml"
  target/release/hashgate serve --config "$dir/$1.toml" 2>"$dir/$1.log" &
  hg=$!
  sleep 1
  timeout "$((seconds + 10))" target/release/hashgate replay "$clip" "rtmp://127.0.0.1:$listen/live/$1" \
    --count "$n" --loop >/dev/null 2>&1 &
  sleep 5
  c0=$(awk '{print $14 + $15}' "/proc/$hg/stat"); r0=$(commands)
  sleep "$seconds"
  c1=$(awk '{print $14 + $15}' "/proc/$hg/stat"); r1=$(commands)
  local streams cut
  streams=$(curl -s "127.0.0.1:$admin/metrics" | awk '$1 == "hashgate_streams_active" {print $2}')
  cut=$(grep -c '"event":"uninspectable"' "$dir/events-$1.jsonl" || true)
  kill "$hg"; wait "$hg" 2>/dev/null || true
  sleep 6
  awk -v l="$1" -v n="$n" -v s="$streams" -v c=$((c1 - c0)) -v hz="$hz" -v t="$seconds" -v r=$((r1 - r0)) \
    -v u="$cut" 'BEGIN { printf "| %s | %d | %s | %s | %.0f %% | %.1f %% | %.3f |\n", l, n, s, u, 100*c/hz/t, 100*c/hz/t/n, r/t/n }'
}
echo "## streaming cost, $n streams of 720p for $seconds s"
echo "| run | streams | live at the end | cut as uninspectable | hashgate CPU (of 200 %) | per stream | Redis commands per stream per second |"
echo "|---|---|---|---|---|---|---|"
run alone ""
run cluster "[cluster]\nredis = \"redis://127.0.0.1:$redis\"\ninstance = \"bench\"\n"
