#!/usr/bin/env bash
# The README's test command: `python -m pytest` in the Python that scripts/setup.sh installed into
# (scripts/pick_python.sh). Arguments go to pytest, e.g. `bash scripts/test.sh tests/test_cli.py -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pick_python.sh
pick_python
exec "$PY" -m pytest "$@"
