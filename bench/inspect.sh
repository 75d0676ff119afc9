#!/usr/bin/env bash
# PDQ speed next to pdqhash, decode throughput next to the ffmpeg CLI, streams per core.
# Usage: bench/inspect.sh   (prints Markdown tables)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
python3 -c "import pdqhash, numpy" 2>/dev/null || pip install -q pdqhash numpy
cargo bench --quiet --bench inspect
