#!/usr/bin/env bash
# Exact PDQ range search at radius 31, single thread: hashgate's index next to FAISS, on the same
# random hashes with near-duplicates planted for every query.
# Usage: bench/matcher.sh [SIZES...]   (default: 100000 1000000 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import faiss, numpy" 2>/dev/null || pip install -q faiss-cpu numpy
cargo build --release --quiet --bench matcher 2>/dev/null || true
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "| index | hashes | ms per query | queries/s | build s | memory MiB | matches |"
echo "|---|---|---|---|---|---|---|"
for n in "${@:-100000 1000000 10000000}"; do
  for size in $n; do
    python3 - "$size" "$dir" <<'PY'
import sys, numpy as np
n, d = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(42)
base = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
q = 200 if n >= 10_000_000 else 1000
queries = rng.integers(0, 256, size=(q, 32), dtype=np.uint8)
# Plant two near-duplicates of every query (8 and 24 bits away) at random places.
for i in range(q):
    for flips in (8, 24):
        v = np.unpackbits(queries[i]).copy()
        v[rng.choice(256, flips, replace=False)] ^= 1
        base[rng.integers(0, n)] = np.packbits(v)
base.tofile(f"{d}/hashes.bin")
queries.tofile(f"{d}/queries.bin")
PY
    cargo bench --quiet --bench matcher -- "$dir/hashes.bin" "$dir/queries.bin" 31
    python3 bench/matcher_faiss.py "$dir/hashes.bin" "$dir/queries.bin" 31
  done
done
