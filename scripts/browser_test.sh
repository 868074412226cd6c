#!/usr/bin/env bash
# The real-browser test: JupyterLab (and Jupyter Notebook 7) in headless Chromium run the widget
# lessons, check that every figure widget shows its data on its first render, drag sliders and
# control points, time drag-to-redraw and save screenshots to tests/browser/screenshots/
# (see docs/BROWSER_TEST.md).
#
#   bash scripts/browser_test.sh            # extra arguments go to pytest (e.g. -x, -k ...)
#   BEZKIT_BROWSER_THROTTLE=1 bash scripts/browser_test.sh   # a quiet page (default: 6x slower)
#
# Installs what it needs, only when it is missing (so a second run installs nothing):
#   - Debian's chromium (apt-get, without recommends; root, or sudo),
#   - Playwright's Python package (pip). Playwright drives /usr/bin/chromium: it never downloads a
#     browser of its own (`playwright install` is not used and cannot work without the internet),
#   - bezkit with its notebook and test extras (scripts/setup.sh), when bezkit, jupyterlab,
#     notebook, ipywidgets, plotly, anywidget or nbval cannot be imported.
# Then runs tests/browser/ with BEZKIT_BROWSER=1 and the page slowed down through Chromium's
# DevTools protocol (CPU BEZKIT_BROWSER_THROTTLE times, 6 unless set, and a slow network), and
# fails unless the test really ran and passed (a skip is a failure here). The Python is the one
# scripts/setup.sh installs into (scripts/pick_python.sh); set BEZKIT_CHROMIUM to use another
# Chromium binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pick_python.sh  # the Python scripts/setup.sh installs into (PY)
pick_python 2>/dev/null
CHROMIUM=${BEZKIT_CHROMIUM:-/usr/bin/chromium}
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS

if [ ! -x "$CHROMIUM" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "browser_test: installing chromium (apt-get)"
  $SUDO apt-get update -qq
  # no recommends (printing, avahi, samba, perl: ~110 packages headless Chromium does not use)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation >/dev/null
fi
if ! "$PY" -c "import bezkit, jupyterlab, notebook, ipywidgets, plotly, anywidget, nbval, pytest" 2>/dev/null; then
  echo "browser_test: installing bezkit and its notebook/test extras (scripts/setup.sh)"
  bash scripts/setup.sh
  pick_python
fi
if ! "$PY" -c "import playwright.sync_api" 2>/dev/null; then
  echo "browser_test: installing playwright (pip; the browser is Debian's chromium)"
  "$PY" -m pip install --quiet "playwright>=1.40"
fi
echo "browser_test: $("$CHROMIUM" --version 2>/dev/null), playwright" \
  "$("$PY" -c 'import importlib.metadata as m; print(m.version("playwright"))')" \
  "(ready after $((SECONDS - start)) s)"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
BEZKIT_BROWSER=1 BEZKIT_CHROMIUM="$CHROMIUM" BEZKIT_BROWSER_THROTTLE="${BEZKIT_BROWSER_THROTTLE:-6}" \
  "$PY" -m pytest tests/browser -rs -v "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -eq 0 ] && { grep -Eq '[0-9]+ skipped' "$log" || ! grep -Eq '[0-9]+ passed' "$log"; }; then
  echo "browser_test: FAILED: the browser test did not run (skipped or not collected)" >&2
  status=1
fi
echo "browser_test: exit $status after $((SECONDS - start)) s (page throttled" \
  "${BEZKIT_BROWSER_THROTTLE:-6}x); screenshots in tests/browser/screenshots/:" \
  "$(ls tests/browser/screenshots 2>/dev/null | tr '\n' ' ')"
exit "$status"
