"""Plumbing of the real-browser test: the ``browser`` marker, a JupyterLab server, headless Chromium.

Nothing here runs unless ``BEZKIT_BROWSER=1`` is set and Debian's Chromium and Playwright's Python
package are installed (``bash scripts/browser_test.sh`` installs both and runs the test); without
them the tests marked ``browser`` are skipped, so the main ``python -m pytest`` stays fast.

Chromium is the system one (``/usr/bin/chromium``, or ``$BEZKIT_CHROMIUM``): Playwright never
downloads a browser here. JupyterLab listens on 127.0.0.1 on a random free port with a generated
token, and its config, settings, workspaces and runtime files live in a temporary directory, so the
user's own JupyterLab setup neither leaks in nor gets touched. Teardown stops Chromium, the
JupyterLab server and its kernels, by process id, also when the test fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = os.environ.get("BEZKIT_CHROMIUM", "/usr/bin/chromium")
#: Chromium's command-line flags (Playwright adds ``--user-data-dir`` with a fresh directory and its
#: own ``--remote-debugging-pipe``; ``--headless`` and ``--no-sandbox`` are repeated harmlessly).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: JupyterLab user settings written to the temporary settings directory: no news feed or update
#: check (no request leaves the machine, no toast covers the screenshot).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
#: The page's CPU slowdown (Chromium's ``Emulation.setCPUThrottlingRate``; 1 = none), from
#: ``$BEZKIT_BROWSER_THROTTLE``. Above 1 the page's network is slowed too
#: (``Network.emulateNetworkConditions``: ``NETWORK_LATENCY_MS`` per request and
#: ``NETWORK_BYTES_PER_S`` down), so that the widgets' front-end modules load late.
THROTTLE = float(os.environ.get("BEZKIT_BROWSER_THROTTLE", "1") or 1)
NETWORK_LATENCY_MS = 300
NETWORK_BYTES_PER_S = 400_000
SERVER_START_TIMEOUT = 120.0  # seconds; JupyterLab starts in ~5 s on 2 idle cores


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "browser: drives JupyterLab in headless Chromium; skipped unless BEZKIT_BROWSER=1 and "
        "chromium + playwright are installed (bash scripts/browser_test.sh)",
    )


_SESSION_START = time.time()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The drag-to-redraw medians this run measured (``timings-*.json`` of the screenshots folder,
    written by the lesson-03 cases), at the end of the report."""
    rows = []
    for path in sorted(SCREENSHOTS.glob("timings-*.json")):
        if path.stat().st_mtime < _SESSION_START:
            continue
        data = json.loads(path.read_text())
        ms = data["drag_to_redraw_ms"]
        rows.append(
            f"{path.stem.removeprefix('timings-')}: median {data['median_ms']:.0f} ms over "
            f"{len(ms)} moves (min {min(ms):.0f}, max {max(ms):.0f}; page throttled "
            f"{data['throttle']:g}x)"
        )
    if rows:
        terminalreporter.write_sep("-", "drag-to-redraw in the browser")
        for row in rows:
            terminalreporter.write_line(row)


def browser_skip_reason() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    if os.environ.get("BEZKIT_BROWSER") != "1":
        return "real-browser test: set BEZKIT_BROWSER=1 (or run bash scripts/browser_test.sh)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    for module, package in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {package})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = browser_skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


# -- processes -------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (Linux)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command may contain spaces and ")"
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (kernels and browsers start their own sessions: found here)."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_pids(pids: list[int], grace: float = 10.0) -> list[int]:
    """SIGTERM ``pids``, wait up to ``grace`` s, SIGKILL what is left; returns the pids killed."""
    live = [p for p in pids if _alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while live and time.monotonic() < deadline:
            time.sleep(0.1)
            live = [p for p in live if _alive(p)]
        if not live:
            break
    return live


# -- JupyterLab ------------------------------------------------------------------------------------


@dataclass
class Lab:
    """A running JupyterLab server: ``url`` (no trailing slash), its ``token`` and ``root`` dir."""

    url: str
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def api(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1, serving the empty directory ``lab.root`` (copy notebooks there).

    One server for the module: every lesson's test opens its notebook in it (a kernel each, shut
    down by the test when it is done), which saves a server start per lesson."""
    tmp_path = tmp_path_factory.mktemp("lab")
    root = tmp_path / "root"
    home = tmp_path / "jupyter"
    settings = home / "settings"
    for d in (root, home / "config", home / "runtime", home / "workspaces", settings):
        d.mkdir(parents=True)
    for name, value in LAB_SETTINGS.items():
        target = settings / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))

    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        # the kernel imports this checkout's bezkit, whatever is installed
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])]),
    )
    env.pop("MPLBACKEND", None)  # CI sets Agg; the kernel must keep its inline backend
    port, token = _free_port(), secrets.token_hex(24)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # CI and this machine run as root
        cmd.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log, proc=proc)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab not ready in {SERVER_START_TIMEOUT:.0f} s")
                time.sleep(0.25)
        yield server
    finally:
        procs = descendants(proc.pid)  # the kernels (own sessions), before the server goes
        with contextlib.suppress(Exception):
            for kernel in server.api("/api/kernels"):
                server.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        left = kill_pids([proc.pid, *procs])
        proc.wait(timeout=10)
        print(f"--- JupyterLab log ({log}) ---\n{server.log_tail()}")
        assert not left, f"processes that survived SIGKILL: {left}"


# -- Chromium --------------------------------------------------------------------------------------


@dataclass
class Browser:
    """A Playwright page in headless Chromium, and what its console printed."""

    page: Any
    console: list[str] = field(default_factory=list)
    context: Any = None

    def watch(self, page: Any) -> Any:
        """Record ``page``'s console messages and uncaught errors in ``console``."""
        page.set_default_timeout(60_000)
        page.on("console", lambda m: self.console.append(console_line(m)))
        page.on("pageerror", lambda e: self.console.append(page_error_line(e)))
        return page

    def slow_down(self) -> None:
        """Slow the current page down as ``THROTTLE`` says (CPU and network; see ``throttle``)."""
        throttle(self.page, THROTTLE)

    def fresh_page(self) -> Any:
        """Close the current page (without its "leave the page?" prompt) and open a new one."""
        old = self.page
        self.page = self.watch(self.context.new_page())
        with contextlib.suppress(Exception):
            old.close(run_before_unload=False)
        return self.page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A page of a fresh headless Chromium (``CHROMIUM``, a new temporary profile), 1500x1100,
    shared by the module's tests (each one reads only the console lines printed during it)."""
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="bezkit-chromium-"))
    own_pid = os.getpid()
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(profile),
                executable_path=CHROMIUM,
                headless=True,
                args=list(CHROMIUM_FLAGS),
                viewport={"width": 1500, "height": 1100},
                device_scale_factor=1,
            )
            try:
                for pid in descendants(own_pid):  # the browser process itself, for the log
                    cmdline = _cmdline(pid)
                    if str(profile) in cmdline and "--type=" not in cmdline:
                        print(f"chromium (pid {pid}): {cmdline}")
                page = context.pages[0] if context.pages else context.new_page()
                out = Browser(page=page, context=context)
                out.watch(page)
                yield out
            finally:
                chromium = [p for p in descendants(own_pid) if _uses_profile(p, profile)]
                chromium += [c for p in chromium for c in descendants(p)]
                with contextlib.suppress(Exception):
                    context.close()
                kill_pids(chromium, grace=5.0)  # normally gone already
                if "out" in locals() and out.console:
                    print("--- browser console ---\n" + "\n".join(out.console[-80:]))
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def console_line(message: Any) -> str:
    """``[type] text``, and for an error `` @ <url of the script or resource>``."""
    line = f"[{message.type}] {message.text}"
    if message.type == "error":
        line += f" @ {(message.location or {}).get('url', '')}"
    return line


def page_error_line(error: Any) -> str:
    """``[pageerror] message @ <first frame of its stack>`` (where the uncaught error came from)."""
    frames = [f.strip() for f in (getattr(error, "stack", "") or "").splitlines() if "at " in f]
    return f"[pageerror] {getattr(error, 'message', error)} @ {frames[0] if frames else ''}"


def throttle(page: Any, rate: float) -> None:
    """Slow ``page`` down through the DevTools protocol: its CPU ``rate`` times and, when
    ``rate > 1``, its network (latency and bandwidth), so that the front-end modules arrive late."""
    if rate <= 1:
        return
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate})
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": NETWORK_LATENCY_MS,
            "downloadThroughput": NETWORK_BYTES_PER_S,
            "uploadThroughput": NETWORK_BYTES_PER_S,
        },
    )


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _uses_profile(pid: int, profile: Path) -> bool:
    return str(profile) in _cmdline(pid)
