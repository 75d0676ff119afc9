#!/usr/bin/env bash
# The white-box attacker on PDQ against hashgate's matcher (see bench/whitebox.rs).
# Usage: bench/whitebox.sh   (prints a Markdown table; a few minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps
cargo bench --quiet --bench whitebox
