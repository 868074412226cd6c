#!/usr/bin/env bash
# Install bezkit and everything its tests, notebooks and benchmarks need into the current Python.
#
# PyTorch first, pinned to the CPU build this project is tested with (torch==2.13.0): a plain
# `torch` requirement would pull a multi-GB CUDA build. Set BEZKIT_TORCH to choose another spec
# (e.g. BEZKIT_TORCH="torch==2.6.0" or BEZKIT_TORCH=skip to keep the torch you have).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${BEZKIT_TORCH:-torch==2.13.0}
if [ "$TORCH_SPEC" != "skip" ]; then
  if "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] >= '2.2' else 1)" 2>/dev/null \
     && [ -z "${BEZKIT_TORCH:-}" ]; then
    echo "setup: keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
  else
    "$PY" -m pip install --quiet "$TORCH_SPEC"
  fi
fi
"$PY" -m pip install --quiet -e ".[all]"
"$PY" -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
echo "setup: bezkit $("$PY" -c 'import bezkit; print(bezkit.__version__)') with torch $("$PY" -c 'import torch; print(torch.__version__)')"
