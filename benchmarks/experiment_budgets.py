"""Time `bezkit experiment` (--quick, the default, --full) against its budgets, with the peak memory
of the whole process tree (the run and its worker processes), and check that each run's numbers
are those of the committed run.

    python benchmarks/experiment_budgets.py                     # --quick and the default
    python benchmarks/experiment_budgets.py --runs full         # the whole protocol (--jobs 2)
    python benchmarks/experiment_budgets.py --runs quick --no-write

Each run writes into a temporary folder. ``/usr/bin/time``'s peak RSS is one process's; with worker
processes the run's memory is their sum, so the process tree's resident memory (every process
whose parent chain leads to the run, from /proc) is sampled 5 times a second and its peak
reported. The load average before and after each run is recorded beside it. The numbers of a run
(results.json without timings, date, command, run id and the machine) are compared with the
committed run of the same command (``data/results``, ``data/results/full``).

Budgets (issue 16): ``--quick`` 1 minute, the default 10 minutes and 2 GB, ``--full --jobs 2``
60 minutes, on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import command_line, load_average, machine_lines, markdown_table, now, write_section

REPO = Path(__file__).resolve().parents[1]

RUNS: dict[str, tuple[list[str], Path, str]] = {
    "quick": (["--quick"], REPO / "data/results/quick-not-committed", "1 min"),
    "default": ([], REPO / "data/results", "10 min, 2 GB"),
    "full": (["--full", "--jobs", "2"], REPO / "data/results/full", "60 min"),
}
_RUN_FACTS = ("wall_seconds", "date", "command", "run_id", "machine")


def _tree_rss_bytes(root: int) -> int:
    """The resident memory of ``root`` and every process descending from it (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            statm = Path(f"/proc/{entry}/statm").read_text().split()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = int(statm[1]) * page
    total = 0
    for pid in rss:
        p = pid
        while p not in (0, 1) and p != root:
            p = parents.get(p, 0)
        if p == root:
            total += rss[pid]
    return total


class TreeMemory(threading.Thread):
    """Samples the process tree of ``pid`` every ``interval`` seconds; ``peak`` in bytes."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, _tree_rss_bytes(self.pid))
            self.done.wait(self.interval)


def _numbers(path: Path) -> Any:
    def drop(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: drop(v) for k, v in o.items() if k not in _RUN_FACTS}
        if isinstance(o, list):
            return [drop(v) for v in o]
        return o

    return drop(json.loads(path.read_text()))


def _differences(new: Any, old: Any, path: str = "") -> list[str]:
    """The paths (``experiments[0].runs[3].metrics``...) where two results differ."""
    if isinstance(new, dict) and isinstance(old, dict):
        out = [f"{path}.{k} only in one run" for k in sorted(set(new) ^ set(old))]
        for k in new.keys() & old.keys():
            out += _differences(new[k], old[k], f"{path}.{k}")
        return out
    if isinstance(new, list) and isinstance(old, list):
        if len(new) != len(old):
            return [f"{path}: {len(new)} against {len(old)} entries"]
        return [
            d for i, (a, b) in enumerate(zip(new, old)) for d in _differences(a, b, f"{path}[{i}]")
        ]
    return [] if new == old else [f"{path}: {new!r} against {old!r}"[:160]]


def time_run(name: str, extra: list[str], *, commit: bool = False) -> dict[str, Any]:
    """Run and time one configuration; with ``commit`` (default and full) into its committed
    folder (``--overwrite``), compared with the run it replaces."""
    args, committed, budget = RUNS[name]
    with tempfile.TemporaryDirectory(prefix=f"bezkit-budget-{name}-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "bezkit", "experiment", *args, *extra, "--quiet"]
        if commit and name != "quick":
            previous = Path(tmp) / "previous"
            previous.mkdir()
            if (committed / "results.json").is_file():
                (previous / "results.json").write_bytes((committed / "results.json").read_bytes())
            out, committed = committed, previous
            cmd += ["--out", str(out.relative_to(REPO)), "--overwrite"]
        else:
            cmd += ["--out", str(out)]
        before = load_average()
        cpu0 = os.times()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO)
        watch = TreeMemory(proc.pid)
        watch.start()
        code = proc.wait()
        wall = time.perf_counter() - t0
        watch.done.set()
        watch.join()
        cpu = os.times()
        after = load_average()
        if code != 0:
            raise SystemExit(f"{' '.join(cmd)} failed with exit status {code}")
        same = "no committed run"
        if (committed / "results.json").is_file():
            diffs = _differences(
                _numbers(out / "results.json"), _numbers(committed / "results.json")
            )
            added = [d for d in diffs if d.endswith("only in one run")]
            changed = [d for d in diffs if d not in added]
            same = "yes" if not changed else "**no**: " + ", ".join(changed[:4])
            if added:
                keys = sorted({d.split(".")[-1].split(" ")[0] for d in added})
                same += f" (keys in one run only: {', '.join(keys)})"
            keep = Path(tempfile.gettempdir()) / f"bezkit-budget-{name}-results.json"
            keep.write_bytes((out / "results.json").read_bytes())  # for a closer look
    return {
        "run": name,
        "command": "bezkit experiment "
        + " ".join(cmd[4:] if commit else [*args, *extra, "--quiet", "--out DIR"]),
        "wall": wall,
        "cpu": cpu.children_user + cpu.children_system - cpu0.children_user - cpu0.children_system,
        "peak": watch.peak,
        "before": before,
        "after": after,
        "budget": budget,
        "same": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=["quick", "default"])
    parser.add_argument(
        "--extra", nargs=argparse.REMAINDER, default=[], help="more options for every run"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--commit",
        action="store_true",
        help="the default and full runs write into data/results and data/results/full "
        "(--overwrite), compared with the runs they replace",
    )
    args = parser.parse_args()
    rows = []
    for name in args.runs:
        r = time_run(name, args.extra, commit=args.commit)
        print(f"{name}: {r['wall']:.0f} s wall, peak {r['peak'] / 1e9:.2f} GB", flush=True)
        rows.append(
            [
                f"`{r['command']}`",
                f"{r['wall']:.0f} s",
                f"{r['cpu']:.0f} s",
                f"{r['peak'] / 1e9:.2f} GB",
                f"{r['before']} -> {r['after']}",
                r["budget"],
                r["same"],
            ]
        )
    table = markdown_table(
        [
            "command",
            "wall",
            "CPU time (all processes)",
            "peak memory (process tree)",
            "load average before / after",
            "budget",
            "same numbers as the committed run",
        ],
        rows,
    )
    body = "\n".join(
        [
            f"Command: `{command_line()}` ({now()}).",
            "",
            *machine_lines([1]),
            "",
            table,
        ]
    )
    print(body)
    if not args.no_write:
        write_section(
            "experiment_budget_runs", "Experiment budgets (benchmarks/experiment_budgets.py)", body
        )


if __name__ == "__main__":
    main()
