#!/usr/bin/env bash
# Install bezkit and everything its tests, notebooks and benchmarks need.
#
# Where: an active virtual or conda environment if there is one, else the project's own .venv
# (created here from ${PYTHON:-python3}); never a stock distribution Python (PEP 668) or a base
# interpreter. scripts/pick_python.sh has the exact rule; scripts/test.sh uses the same Python.
#
# PyTorch first, pinned to the CPU build this project is tested with (torch==2.13.0): a plain
# `torch` requirement would pull a multi-GB CUDA build. Set BEZKIT_TORCH to choose another spec
# (e.g. BEZKIT_TORCH="torch==2.6.0" or BEZKIT_TORCH=skip to keep the torch you have). An installed
# torch >= 2.2 is kept unless BEZKIT_TORCH is set.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pick_python.sh
pick_python create
TORCH_SPEC=${BEZKIT_TORCH:-torch==2.13.0}
if [ "$TORCH_SPEC" != "skip" ]; then
  "$PY" -c "import packaging" 2>/dev/null || "$PY" -m pip install --quiet packaging
  if torch_is_recent "$PY" && [ -z "${BEZKIT_TORCH:-}" ]; then
    echo "setup: keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
  else
    "$PY" -m pip install --quiet "$TORCH_SPEC"
  fi
fi
"$PY" -m pip install --quiet -e ".[all]"
# the Jupyter kernel of this environment, registered inside it (not in ~/.local), so JupyterLab
# run from it uses it; the tests use it regardless (pytest's --nbval-current-env)
"$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bezkit)" >/dev/null
echo "setup: bezkit $("$PY" -c 'import bezkit; print(bezkit.__version__)') with torch $("$PY" -c 'import torch; print(torch.__version__)') in $("$PY" -c 'import sys; print(sys.prefix)')"
