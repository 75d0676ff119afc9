#!/usr/bin/env bash
# Every evasion tried through hashgate (shipped defaults) into nginx-rtmp: outcome, frames of the
# clip that reached the platform, and when the broadcaster saw the decision.
# Usage: bench/redteam.sh   (prints a Markdown table; progress on stderr; ~5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo build --release --quiet
cargo bench --quiet --bench redteam
