#!/usr/bin/env bash
# The GPU check (python -m bezkit.bench.gpu): proves the CUDA path of `bezkit images` and measures
# its speed in at most --budget-s seconds (300 by default; about 6 minutes with the start-up).
#
#   bash scripts/gpu_check.sh                      # results in $OUT (the device tool's folder),
#                                                  # else gpu-check/: gpu_check.{json,md,log}
#   bash scripts/gpu_check.sh --mode cpu           # the CPU mode, tiny sizes
#
# Python packages missing on the GPU machine (POT, torch-fidelity) are installed offline from the
# wheel files in .whl/ (git-ignored: name it in the device call's carry list); a module still
# missing stops the check at once with exit code 3. See docs/IMAGES.md, "The GPU check".
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT_DIR:-${OUT:-gpu-check}}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
: > "$LOG"
if compgen -G ".whl/*.whl" > /dev/null; then
    t0=$SECONDS
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/bezkit-wheels .whl/*.whl 2>&1 | tee -a "$LOG"
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        echo "*** installing the carried wheels (.whl/) failed" | tee -a "$LOG" >&2
        exit 2
    fi
    echo "installed $(ls .whl/*.whl | wc -l) carried wheel(s) in $((SECONDS - t0)) s" | tee -a "$LOG"
    export PYTHONPATH="/tmp/bezkit-wheels${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# POT imports every backend it finds (jax, cupy are on the GPU image); bezkit uses numpy and torch
export POT_BACKEND_DISABLE_JAX=1 POT_BACKEND_DISABLE_CUPY=1 POT_BACKEND_DISABLE_TENSORFLOW=1
"$PY" -m bezkit.bench.gpu --out "$OUT_DIR" "$@" 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
