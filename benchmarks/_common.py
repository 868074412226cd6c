"""Helpers shared by the benchmark scripts: machine description, step timing, RESULTS.md sections.

Not part of the bezkit package; the scripts in this folder import it as a sibling module
(``python benchmarks/<script>.py`` puts ``benchmarks/`` on ``sys.path``).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import platform
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from bezkit.files.atomic import atomic_write_bytes

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

_HEADER = """# bezkit benchmarks: results

Each section below is written by the script named in its title (see `README.md` in this folder)
and is rewritten when that script is run again. Every section records the exact command line, the
date and the machine. Timings come from a shared 2-core machine: the load average before and after
each run is recorded beside the numbers, and the numbers are written as measured.
"""


def cpu_model() -> str:
    """The ``model name`` line of ``/proc/cpuinfo`` (or ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, ``"a / b / c"`` (``"n/a"`` where unknown)."""
    try:
        return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def versions() -> str:
    """Python, torch, numpy, scipy and POT versions, for the results header."""
    import ot
    import scipy

    return (
        f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, POT {ot.__version__}"
    )


def machine_lines(threads: Sequence[int]) -> list[str]:
    """Markdown bullet lines describing the machine and the thread settings of the run."""
    return [
        f"- machine: {cpu_model()}, {usable_cores()} usable cores (os.cpu_count() = "
        f"{os.cpu_count()}), {platform.system()} {platform.release()}",
        f"- software: {versions()}",
        f"- torch threads: torch.set_num_threads({', '.join(map(str, threads))}) per "
        f"configuration (default here: {torch.get_num_threads()}), interop threads "
        f"{torch.get_num_interop_threads()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}",
    ]


def command_line() -> str:
    """The command that started this process, with PYTHONPATH when it is set."""
    prefix = (
        f"PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])} "
        if os.environ.get("PYTHONPATH")
        else ""
    )
    script = os.path.relpath(sys.argv[0], Path(__file__).resolve().parent.parent)
    return f"{prefix}python {shlex.join([script, *sys.argv[1:]])}"


def now() -> str:
    """The local date and time with its zone, to the minute."""
    return _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table: the header row, the separator, one line per row (cells by ``str``)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_section(key: str, title: str, body: str, path: Path = RESULTS) -> None:
    """Rewrite the section ``key`` of ``path`` (or append it), leaving other sections alone."""
    begin, end = f"<!-- BEGIN {key} -->", f"<!-- END {key} -->"
    block = f"{begin}\n## {title}\n\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    # several benchmarks may finish at once: read-modify-write under an exclusive lock
    with open(Path(tempfile.gettempdir()) / "bezkit-benchmarks-results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text() if path.exists() else _HEADER
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text)
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        atomic_write_bytes(path, (text if text.endswith("\n") else text + "\n").encode())


class StepClock:
    """Wraps a loss function and records the time at which each training step starts.

    ``train`` calls the loss once per step in the main thread, so consecutive stamps are one full
    step apart (waiting for the batch, forward, backward, optimizer). ``stop()`` after ``train``
    returns closes the last step.
    """

    def __init__(self, loss_fn: Callable) -> None:
        self.loss_fn = loss_fn
        self.stamps: list[float] = []

    def __call__(self, model, pairs, generator):
        self.stamps.append(time.perf_counter())
        return self.loss_fn(model, pairs, generator)

    def stop(self) -> None:
        """Stamp the end of the last step (call once ``train`` has returned)."""
        self.stamps.append(time.perf_counter())

    def per_step(self, warmup: int) -> tuple[float, float]:
        """Mean and median seconds per step, excluding the first ``warmup`` steps."""
        t = np.asarray(self.stamps[warmup:])
        if t.size < 2:
            raise ValueError("no timed steps: increase --steps or lower --warmup")
        return float((t[-1] - t[0]) / (t.size - 1)), float(np.median(np.diff(t)))
