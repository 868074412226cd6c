"""The GPU check: one command that proves the CUDA path of the images side and measures its speed.

    bash scripts/gpu_check.sh                   # on the GPU machine: results under $OUT
    python -m bezkit.bench.gpu --mode cpu --out /tmp/x    # the same sections, tiny sizes

Sections, cheap and informative first, ``torch.compile`` last (``bezkit.bench.gpu_sections``):

0. ``preflight``: every module the check needs imports, in a subprocess with the environment the
   later subprocesses get (repository prepended to ``PYTHONPATH``, POT's jax/cupy/tensorflow
   backends off), with import times (GPU mode: ``import ot`` also with the backends on). A
   missing module (a wheel not carried) stops the check at once: exit 3, a loud message, and the
   JSON says which.
1. ``environment``; 2. ``peak``: a large bf16 matrix product, the peak the step is compared with;
3. ``train_step``: the cifar10 preset's step at its batch through the real trainer, and the
   model's step alone (labelled), with achieved TFLOP/s and the fraction of the peak;
4. ``pairs``: teacher pair generation throughput (float32 as ``generate_pairs`` runs, bf16);
5. ``ensemble2d``: the 2D experiment's seed ensemble on the GPU against the CPU;
6. ``pipeline``: every CIFAR stage at a small size with the preset's U-Net (bf16); FID with
   random Inception weights, timing the code path only;
7. ``cuda_tests``: ``pytest -m "cuda or fid_library"``; 8. ``ddp``: NCCL, only with > 1 GPU;
9. ``digits``: the digits benchmark against one seed on a quiet CPU (358 s);
10. ``compile``: ``torch.compile`` of the step.

Budget: a section starts only if its estimate fits in what is left of ``--budget-s``, long
sections ask the time left between their measurements, and each runs under a hard limit (the
budget left; SIGALRM): a section cut short is recorded as ``timeout`` with what it measured.
``gpu_check.json`` is written (atomically) before and after every section, so a run killed from
outside still returns every finished section and names the one it was in. Output: ``--out``,
default ``$OUT`` (the folder the device tool brings back), else ``gpu-check``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from bezkit.bench.carry import POT_BACKENDS_OFF, REQUIRED_MODULES, child_env
from bezkit.bench.gpu_report import markdown, summary
from bezkit.files.atomic import atomic_write_bytes

__all__ = ["SECTIONS", "GPUCheck", "MissingDependency", "default_out", "main", "run_check"]

ROOT = Path(__file__).resolve().parents[2]
Section = Callable[[Any, dict[str, Any]], None]


class MissingDependency(SystemExit):
    """A module the check needs does not import: the carried wheels are incomplete."""


class SectionTimeout(BaseException):
    """A section ran past its limit (a ``BaseException``, so that no ``except Exception`` inside
    the code under measurement swallows it)."""


def default_out() -> Path:
    """``$OUT`` (what the device tool brings back) if set, else ``gpu-check``."""
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else Path("gpu-check")


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise ``SectionTimeout`` in this (main) thread after ``seconds``."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SectionTimeout(f"stopped after {seconds:.0f} s (the check's time budget)")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class GPUCheck:
    """The sections' shared state (mode, device, output folder, budget, peak) and the report,
    written to ``out/gpu_check.json`` before and after every section."""

    def __init__(self, mode: str, out: Path, budget_s: float, peak_tflops: float) -> None:
        self.mode, self.out, self.budget_s = mode, out, budget_s
        self.gpu = mode == "gpu"
        self.device = torch.device("cuda" if self.gpu else "cpu")
        self.peak_tflops = peak_tflops  # 0: the measured matrix-product rate (section "peak")
        self.started = time.perf_counter()
        self.report: dict[str, Any] = {
            "mode": mode,
            "command": " ".join(["python -m bezkit.bench.gpu", *sys.argv[1:]]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "budget_s": budget_s,
            "measured_on": "no GPU (CPU mode)" if not self.gpu else None,
            "sections": {},
        }

    def elapsed(self) -> float:
        """Seconds since the check started."""
        return time.perf_counter() - self.started

    def left(self) -> float:
        """Seconds of the budget left."""
        return self.budget_s - self.elapsed()

    def write(self) -> None:
        """The report so far, atomically: ``gpu_check.json`` and ``gpu_check.md``."""
        self.report["total_seconds"] = round(self.elapsed(), 1)
        text = json.dumps(self.report, indent=2, default=str) + "\n"
        atomic_write_bytes(self.out / "gpu_check.json", text.encode())
        try:  # the Markdown of a report cut short may lack a field; the JSON is the record
            atomic_write_bytes(self.out / "gpu_check.md", markdown(self.report).encode())
        except (KeyError, TypeError, ValueError) as err:
            self.report["markdown_error"] = repr(err)

    def run(self, name: str, estimate_s: float, fn: Section) -> None:
        """Run one section under the budget; record its result, ``timeout`` with what it measured,
        its error, or why it did not run; write the report."""
        sections = self.report["sections"]
        if self.left() < estimate_s:
            sections[name] = {"status": "skipped", "reason": f"time budget ({self.left():.0f} s "
                              f"left, about {estimate_s:.0f} s needed)"}  # fmt: skip
        else:
            part: dict[str, Any] = {}
            sections[name] = {"status": "running", "started_at_s": round(self.elapsed(), 1)}
            self.write()
            t0 = time.perf_counter()
            try:
                with _time_limit(max(self.left(), 1.0)):
                    fn(self, part)
                status = "failed" if part.pop("ok", True) is False else "ok"
                if "skipped" in part:  # the section found nothing to do here (one GPU, CPU mode)
                    status, part["reason"] = "skipped", part.pop("skipped")
                entry: dict[str, Any] = {"status": status, **part}
            except SectionTimeout as err:
                entry = {"status": "timeout", "error": str(err), **part}
            except subprocess.TimeoutExpired as err:
                entry = {"status": "timeout", "error": f"subprocess: {err}", **part}
            except MissingDependency:
                raise
            except Exception as err:  # record it and go on with the next section
                entry = {"status": "error", "error": f"{type(err).__name__}: {err}",
                         "trace": traceback.format_exc(limit=4), **part}  # fmt: skip
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            sections[name] = entry
        self.write()
        print(f"[{self.elapsed():6.1f} s] {name}: {sections[name]['status']}", flush=True)


# -- the first sections (no bezkit module beyond the standard library and torch) ----------------

_IMPORT_TIMES = r"""
import importlib, json, sys, time
out = {}
for name in sys.argv[1:]:
    t0 = time.perf_counter()
    try:
        importlib.import_module(name)
        out[name] = round(time.perf_counter() - t0, 3)
    except Exception as err:
        out[name] = f"{type(err).__name__}: {err}"
print(json.dumps(out))
"""


def _import_times(names: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _IMPORT_TIMES, *names], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    if proc.returncode != 0:
        return {n: f"interpreter failed: {proc.stderr.strip()[-300:]}" for n in names}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def preflight(check: GPUCheck, part: dict[str, Any]) -> None:
    """Import every needed module as the later subprocesses will; stop the check if one is
    missing. Also: ``import ot`` time with POT's unused backends off (as the check runs) and on."""
    names = [*REQUIRED_MODULES, "bezkit.experiments.images", "bezkit.bench.gpu_sections"]
    times = _import_times(names, child_env())
    part["import_seconds"] = times
    part["pot_backends_off"] = POT_BACKENDS_OFF
    missing = {n: v for n, v in times.items() if not isinstance(v, float)}
    if not missing:
        if check.gpu:  # what the backends cost (jax and cupy are on the GPU image)
            on = {k: v for k, v in child_env().items() if k not in POT_BACKENDS_OFF}
            part["import_ot_seconds_backends_on"] = _import_times(["torch", "ot"], on).get("ot")
    else:
        part["missing"] = missing
        part["ok"] = False
        wheels = ", ".join(REQUIRED_MODULES.get(n, n) for n in missing)
        part["hint"] = (
            f"not importable: {wheels}. Carry the wheels (.whl/, in the device call's carry "
            f"list; docs/IMAGES.md, 'The GPU check') or install them"
        )


def _later(name: str) -> Section:
    """Section ``name`` of ``bezkit.bench.gpu_sections``, imported only when it runs (after the
    preflight: that module imports POT and the rest of bezkit)."""

    def section(check: Any, part: dict[str, Any]) -> None:
        from bezkit.bench import gpu_sections  # lazy: it imports POT, checked by the preflight

        getattr(gpu_sections, name)(check, part)

    return section


def _sections() -> list[tuple[str, float, Section]]:
    """(name, GPU estimate in seconds, section), in the order they run; the preflight first."""
    return [
        ("preflight", 5, preflight),
        ("environment", 2, _later("environment")),
        ("peak", 3, _later("peak")),
        ("train_step", 20, _later("train_step")),
        ("pairs", 15, _later("pairs")),
        ("ensemble2d", 20, _later("ensemble2d")),
        ("pipeline", 30, _later("pipeline")),
        ("cuda_tests", 40, _later("cuda_tests")),
        ("ddp", 30, _later("ddp")),
        ("digits", 60, _later("digits")),
        ("compile", 60, _later("compile_step")),
    ]


SECTIONS = ("preflight", "environment", "peak", "train_step", "pairs", "ensemble2d",
            "pipeline", "cuda_tests", "ddp", "digits", "compile")  # fmt: skip


def run_check(mode: str, out: Path, *, budget_s: float = 300.0, peak_tflops: float = 0.0,
              only: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the sections (all, or ``only``; the preflight always, first), writing
    ``out/gpu_check.json`` and ``gpu_check.md`` before and after each; returns the report.
    Raises ``MissingDependency`` (exit 3) when a needed module does not import."""
    if mode == "auto":
        mode = "gpu" if torch.cuda.is_available() else "cpu"
    if mode == "gpu" and not torch.cuda.is_available():
        raise SystemExit("--mode gpu needs a CUDA device; use --mode cpu")
    for key, value in POT_BACKENDS_OFF.items():
        os.environ.setdefault(key, value)  # before anything below imports POT
    if mode == "cpu":
        torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    check = GPUCheck(mode, out, budget_s, peak_tflops)
    sections = _sections()  # the first is the preflight
    check.run(*sections[0])
    pre = check.report["sections"][sections[0][0]]
    if pre["status"] != "ok":
        check.report["ok"] = False
        check.write()
        raise MissingDependency(
            f"\n*** GPU check stopped before any measurement: {pre.get('hint') or pre.get('error')}"
            f"\n*** ({out / 'gpu_check.json'} says which)\n"
        )
    for name, estimate, fn in sections[1:]:
        if only is None or name in only:
            check.run(name, estimate if mode == "gpu" else 0.0, fn)
    report = check.report
    report["ok"] = all(v["status"] in ("ok", "skipped") for v in report["sections"].values())
    check.write()
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: run the check, print the summary; exit 1 when a section failed, 3 when a
    needed module is missing."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=("auto", "gpu", "cpu"), default="auto")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: $OUT if set, else gpu-check)")  # fmt: skip
    p.add_argument("--budget-s", type=float, default=300.0,
                   help="seconds for all sections; a section past it is skipped or cut short")  # fmt: skip
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="the bf16 peak to compare with (default 0: the measured matrix product)")  # fmt: skip
    p.add_argument("--only", nargs="+", choices=SECTIONS[1:], default=None,
                   help="these sections only (after the preflight)")  # fmt: skip
    args = p.parse_args(argv)
    out = args.out if args.out is not None else default_out()
    try:
        report = run_check(args.mode, out, budget_s=args.budget_s,
                           peak_tflops=args.peak_tflops, only=args.only)  # fmt: skip
    except MissingDependency as err:
        print(err, file=sys.stderr, flush=True)
        return 3
    print(summary(report))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
