#!/usr/bin/env bash
# The GPU check (python -m bezkit.bench.gpu): proves the CUDA path of `bezkit images` and measures
# its speed; on one H200 it is sized to finish in about 7 minutes (--budget-s 420).
#
#   bash scripts/gpu_check.sh                    # writes gpu-check/gpu_check.{json,md}
#   OUT_DIR=/some/folder bash scripts/gpu_check.sh --mode cpu   # the CPU mode, tiny sizes
#
# Python packages missing on the machine (POT, torch-fidelity) are installed from wheel files in
# .whl/ when that folder exists (no network needed); see docs/IMAGES.md, "The GPU check".
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT_DIR:-${OUT:-gpu-check}}"
PY="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/bezkit-wheels .whl/*.whl || { echo "installing .whl/ failed" >&2; exit 2; }
    export PYTHONPATH="/tmp/bezkit-wheels${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR"
"$PY" -m bezkit.bench.gpu --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
exit "${PIPESTATUS[0]}"
