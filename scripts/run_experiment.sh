#!/usr/bin/env bash
# The README's first command: set up, then run the main job (the 2D error-accumulation experiment,
# no download needed). Extra arguments go to `bezkit experiment` (e.g. --quick, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/pick_python.sh
pick_python
exec "$PY" -m bezkit experiment --out "${BEZKIT_OUT:-results/experiment}" "$@"
