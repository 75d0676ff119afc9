#!/usr/bin/env bash
# Soak: N publishers (`hashgate replay --count N --loop`) of a 720p clip at ~2.7 Mbit/s through
# one hashgate into nginx-rtmp for SECONDS, in sampling MODE (keyframes | all | hybrid).
# Every 5 s: hashgate's RSS, CPU, open files and, from /metrics, streams, inspection lag,
# decode errors and inspection drops. At the end: received vs forwarded bytes, RSS once every
# stream has ended and again after 20 s idle, and three sampled streams' recordings (routed to
# a recording application) checked packet for packet against the clip, looped.
#
# Usage: bench/soak.sh [N] [SECONDS] [MODE] [FPS]      (default 50 120 all 1)
# Prints the samples, then one summary row for the README's soak table.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}; seconds=${2:-120}; mode=${3:-all}; fps=${4:-1}
make -s deps
cargo build --release --quiet
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ingest=$(port); listen=$(port); admin=$(port)
clip=target/soak-720p.flv
if [ ! -f "$clip" ]; then
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i sine=frequency=440:sample_rate=44100 -t 20 -c:v libx264 -preset veryfast -g 60 \
    -b:v 2.6M -maxrate 2.7M -bufsize 5M -pix_fmt yuv420p -c:a aac -b:a 96k -f flv "$clip"
fi
sampled=(load-0 "load-$((n / 2))" "load-$((n - 1))")
[ "$n" -eq 1 ] && sampled=(load)
mkdir -p "$dir/rec"
cat > "$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log $dir/nginx.log; pid $dir/nginx.pid;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events { worker_connections 4096; }
rtmp { server { listen 127.0.0.1:$ingest; max_message 16M;
  application live { live on; }
  application rec { live on; record all; record_path $dir/rec; record_unique off; } } }
CONF
{
  printf '[server]\nlisten = "127.0.0.1:%s"\n[upstream]\nurl = "rtmp://127.0.0.1:%s/live"\n' "$listen" "$ingest"
  printf '[sampling]\nmode = "%s"\nfps = %s\n' "$mode" "$fps"
  # The default coverage bound, or the shortest the config accepts at this rate
  # (inspect::sampler::min_blind_bound).
  awk -v fps="$fps" 'BEGIN { if (fps > 0) { i = 2200 / fps; b = (i > int(i) ? int(i) + 1 : i) + 400; b = b > 1500 ? b : 1500; d = b > 4000 ? b : 4000
    printf "[verdict]\nmax_blind = \"%dms\"\nmax_blind_degraded = \"%dms\"\n", b, d } }'
  printf '[[lists]]\npath = "%s/samples/flagged.pdq"\n' "$PWD"
  printf '[events]\nlog = "%s/events.jsonl"\n[admin]\nlisten = "127.0.0.1:%s"\n' "$dir" "$admin"
  for key in "${sampled[@]}"; do
    printf '[[routes]]\nkey = "%s"\nurl = "rtmp://127.0.0.1:%s/rec"\n' "$key" "$ingest"
  done
} > "$dir/hashgate.toml"
nginx -p "$dir" -c "$dir/nginx.conf" & sleep 0.5
target/release/hashgate serve --config "$dir/hashgate.toml" 2>"$dir/hashgate.log" &
hg=$!
sleep 1
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$hg/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$hg/stat"; }
fds() { ls "/proc/$hg/fd" | wc -l; }
metric() { curl -s "127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
rss_start=$(rss)
key=load; [ "$n" -gt 1 ] || key=load
timeout "$seconds" target/release/hashgate replay "$clip" "rtmp://127.0.0.1:$listen/live/load" \
  --count "$n" --loop >"$dir/replay.log" 2>&1 &
replay=$!
hz=$(getconf CLK_TCK)
echo "| s | streams | RSS MB | CPU % | open files | inspection lag s | decode errors | inspection drops |"
echo "|---|---|---|---|---|---|---|---|"
peak=0; peak_fds=0; max_lag=0; cpu_sum=0; samples=0
last=$(cpu_ticks); t=0
while kill -0 "$replay" 2>/dev/null; do
  sleep 5; t=$((t + 5))
  now=$(cpu_ticks); cpu=$(( (now - last) * 100 / (hz * 5) )); last=$now
  m=$(curl -s "127.0.0.1:$admin/metrics")
  get() { echo "$m" | awk -v k="$1" '$1 == k {print $2}'; }
  r=$(rss); f=$(fds); lag=$(get hashgate_inspection_lag_seconds)
  drops=$(curl -s "127.0.0.1:$admin/streams" | python3 -c 'import json,sys; print(sum(s["inspection_dropped"] for s in json.load(sys.stdin)))')
  errors=$(echo "$m" | awk '$1 ~ /^hashgate_decode_errors_total/ {s += $2} END {print s + 0}')
  echo "| $t | $(get hashgate_streams_active) | $r | $cpu | $f | $lag | $errors | $drops |"
  [ "$r" -gt "$peak" ] && peak=$r; [ "$f" -gt "$peak_fds" ] && peak_fds=$f
  max_lag=$(python3 -c "print(max($max_lag, ${lag:-0}))"); cpu_sum=$((cpu_sum + cpu)); samples=$((samples + 1))
done
for _ in $(seq 60); do [ "$(metric hashgate_streams_active)" = 0 ] && break; sleep 0.5; done
received=$(metric hashgate_received_bytes_total); forwarded=$(metric hashgate_forwarded_bytes_total)
rss_end=$(rss); fds_end=$(fds)
sleep 20
rss_idle=$(rss)
gapless=0
for key in "${sampled[@]}"; do
  rec="$dir/rec/$key.flv"
  if python3 - "$clip" "$rec" <<'PY'
import subprocess, sys
def md5s(path):
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:v", "-c", "copy", "-f", "framemd5", "-"],
                         capture_output=True, text=True).stdout
    return [l.split(",")[-1].strip() for l in out.splitlines() if l and not l.startswith("#")]
source, recording = md5s(sys.argv[1]), md5s(sys.argv[2])
if not recording or recording[0] not in source:
    sys.exit(1)
start = source.index(recording[0])
ok = all(r == source[(start + i) % len(source)] for i, r in enumerate(recording))
print(f"{sys.argv[2].rsplit('/', 1)[-1]}: {len(recording)} video packets, {'gap-free' if ok else 'GAPS'}", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
  then gapless=$((gapless + 1)); fi
done
echo
echo "events: $(python3 -c '
import collections, json, sys
kinds = collections.Counter()
for line in open(sys.argv[1]):
    e = json.loads(line)
    kinds[e["event"] + (":" + e.get("reason", "") if e["event"] == "unpublish" else "")] += 1
print(", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))' "$dir/events.jsonl")"
grep -m3 -E "WARN|ERROR" "$dir/hashgate.log" | cut -c1-300 || true
echo
echo "| publishers | mode | s | RSS start / peak / streams ended / +20 s idle MB | CPU % avg (of 200) | open files peak / after | max inspection lag s | forwarded = received | sampled recordings gap-free |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| $n | $mode | $seconds | $rss_start / $peak / $rss_end / $rss_idle | $((cpu_sum / (samples > 0 ? samples : 1))) | $peak_fds / $fds_end | $max_lag | $([ "$received" = "$forwarded" ] && echo yes || echo "no ($forwarded of $received)") | $gapless of ${#sampled[@]} |"
