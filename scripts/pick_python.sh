# Sourced by setup.sh, test.sh, run_experiment.sh and browser_test.sh: sets PY, the Python that
# bezkit is (or will be) installed into, the same one for every script.
#
#   1. an active virtual environment ($VIRTUAL_ENV) or conda environment ($CONDA_PREFIX):
#      its python;
#   2. else $PYTHON, if it is itself a virtual-environment or conda interpreter;
#   3. else the project's own .venv (created from ${PYTHON:-python3} by setup.sh when missing),
#      so that a stock distribution Python (PEP 668 "externally managed", e.g. Debian's
#      /usr/bin/python3), pyenv and a user's base Python are never installed into.
#   BEZKIT_VENV=0 skips the .venv and uses ${PYTHON:-python3} itself (you manage it).
#
# Call `pick_python create` (setup.sh) to create .venv if needed; plain `pick_python` (test.sh)
# falls back to ${PYTHON:-python3} with a note when there is no .venv yet.
pick_python() {
  local base=${PYTHON:-python3} mode=${1:-find}
  if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PY="$VIRTUAL_ENV/bin/python"; return 0
  fi
  if [ -n "${CONDA_PREFIX:-}" ] && [ -x "$CONDA_PREFIX/bin/python" ]; then
    PY="$CONDA_PREFIX/bin/python"; return 0
  fi
  if ! command -v "$base" >/dev/null 2>&1; then
    echo "bezkit: Python interpreter '$base' not found; install Python >= 3.10 or set PYTHON" >&2
    return 1
  fi
  # a virtual environment's or conda's interpreter given as $PYTHON: use it as it is
  if "$base" -c 'import os, sys
sys.exit(0 if sys.prefix != sys.base_prefix or os.path.isdir(os.path.join(sys.prefix, "conda-meta")) else 1)'; then
    PY="$base"; return 0
  fi
  if [ "${BEZKIT_VENV:-1}" = "0" ]; then
    PY="$base"; return 0
  fi
  if [ -x .venv/bin/python ]; then
    PY="$PWD/.venv/bin/python"; return 0
  fi
  if [ "$mode" = "create" ]; then
    echo "setup: creating the project environment .venv with $("$base" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    if ! "$base" -m venv .venv; then
      echo "bezkit: '$base -m venv' failed; on Debian/Ubuntu install it with: apt-get install python3-venv" >&2
      return 1
    fi
    PY="$PWD/.venv/bin/python"
    return 0
  fi
  echo "bezkit: no .venv yet (run 'bash scripts/setup.sh' first); using $base" >&2
  PY="$base"
}

# torch_is_recent PY: whether PY has torch >= 2.2 (versions compared with packaging.version:
# "2.10" is newer than "2.2", which a string comparison gets wrong).
torch_is_recent() {
  "$1" -c "
import sys
from packaging.version import Version
import torch
sys.exit(0 if Version(torch.__version__.split('+')[0]) >= Version('2.2') else 1)
" 2>/dev/null
}

# torch_index_args PY SPEC: the pip arguments that choose where torch SPEC comes from, one a line.
#   BEZKIT_TORCH_INDEX=URL    --index-url URL (e.g. https://download.pytorch.org/whl/cu124)
#   BEZKIT_TORCH_INDEX=none   nothing: pip's own configuration decides
#   else, a local wheel (pip's find-links) that satisfies SPEC: nothing, so pip takes that file
#   (offline machines and wheel caches keep working)
#   else, an NVIDIA GPU (nvidia-smi -L works): nothing, PyPI's default (CUDA) build
#   else: --index-url https://download.pytorch.org/whl/cpu, PyTorch's CPU-only wheels (a plain
#   PyPI install would pull a multi-GB CUDA build onto a machine without a GPU)
torch_index_args() {
  local py=$1 spec=$2
  if [ -n "${BEZKIT_TORCH_INDEX:-}" ]; then
    [ "$BEZKIT_TORCH_INDEX" = "none" ] || printf '%s\n' --index-url "$BEZKIT_TORCH_INDEX"
    return 0
  fi
  if "$py" -m pip install --dry-run --no-deps --no-index --ignore-installed --quiet "$spec" \
      >/dev/null 2>&1; then
    return 0
  fi
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    return 0
  fi
  printf '%s\n' --index-url https://download.pytorch.org/whl/cpu
}
