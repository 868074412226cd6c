#!/usr/bin/env bash
# Install bezkit and everything its tests, notebooks and benchmarks need.
#
# Where: an active virtual or conda environment if there is one, else the project's own .venv
# (created here from ${PYTHON:-python3}); never a stock distribution Python (PEP 668) or a base
# interpreter. scripts/pick_python.sh has the exact rule; scripts/test.sh uses the same Python.
#
# PyTorch first, pinned to the version this project is tested with (torch==2.13.0), and the CPU
# build where no NVIDIA GPU is present: from a local wheel when pip's configuration has one (an
# offline machine, a wheel cache), else from PyTorch's CPU-only index
# (https://download.pytorch.org/whl/cpu); a plain PyPI install would pull a multi-GB CUDA build.
# With a GPU (nvidia-smi -L works) PyPI's default build is installed. BEZKIT_TORCH_INDEX=URL picks
# another index (e.g. https://download.pytorch.org/whl/cu124), BEZKIT_TORCH_INDEX=none leaves the
# choice to pip's configuration (scripts/pick_python.sh, torch_index_args). Set BEZKIT_TORCH to
# choose another spec (e.g. BEZKIT_TORCH="torch==2.6.0" or BEZKIT_TORCH=skip to keep the torch you
# have). An installed torch >= 2.2 is kept unless BEZKIT_TORCH is set.
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
    TORCH_INDEX=()  # a read loop, not mapfile, and the guarded expansion: bash 3.2 (macOS) too
    while IFS= read -r arg; do TORCH_INDEX+=("$arg"); done < <(torch_index_args "$PY" "$TORCH_SPEC")
    [ ${#TORCH_INDEX[@]} -eq 0 ] || echo "setup: torch from ${TORCH_INDEX[*]}"
    "$PY" -m pip install --quiet ${TORCH_INDEX[@]+"${TORCH_INDEX[@]}"} "$TORCH_SPEC"
  fi
fi
"$PY" -m pip install --quiet -e ".[all]"
# the Jupyter kernel of this environment, registered inside it (not in ~/.local), so JupyterLab
# run from it uses it; the tests use it regardless (pytest's --nbval-current-env)
"$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bezkit)" >/dev/null
echo "setup: bezkit $("$PY" -c 'import bezkit; print(bezkit.__version__)') with torch $("$PY" -c 'import torch; print(torch.__version__)') in $("$PY" -c 'import sys; print(sys.prefix)')"
