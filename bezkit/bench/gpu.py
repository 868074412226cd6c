"""The GPU check: one command that proves the CUDA path of the images side and measures its speed.

    python -m bezkit.bench.gpu --out gpu-check            # mode "auto": gpu if CUDA is there
    python -m bezkit.bench.gpu --mode cpu --out /tmp/x    # the same sections, tiny sizes

Sections (each timed, each failure recorded without stopping the others; a section that would
run past ``--budget-s`` is skipped and says so):

1. ``environment``: Python, torch, CUDA device, which optional libraries import.
2. ``cuda_tests``: ``pytest -m "cuda or fid_library"`` on ``tests/test_cuda.py`` and
   ``tests/images/test_fid_backends.py`` (in a subprocess; skipped tests without CUDA).
3. ``train_step``: the ``cifar10`` preset's training step (``bench.train_speed``): eager at the
   preset batch, eager at doubling batches up to the largest that fits, then channels-last, fused
   AdamW and ``torch.compile`` at the preset batch; images/s, ms/step, peak memory, achieved
   TFLOP/s and the fraction of ``--peak-tflops``.
4. ``pairs``: teacher pair generation (Euler, the preset's steps) in float32 and bf16.
5. ``ddp``: one process under torchrun on NCCL (gloo on the CPU), ``bench.ddp_step``.
6. ``pipeline``: every ``bezkit images`` stage on generated CIFAR-format data (``bench.pipeline``),
   with FID from random Inception weights in the pytorch-fid format (GPU mode).
7. ``digits``: ``benchmarks/images_digits.py`` on this device against its committed CPU time.

Writes ``gpu_check.json`` and ``gpu_check.md`` (a Markdown section for ``benchmarks/RESULTS.md``)
to ``--out`` and prints a one-screen summary. CPU mode (tiny sizes, no compile, no batch search,
digits with ``--tiny``) is run by the test suite so that this script cannot rot.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import io
import json
import os
import platform
import re
import runpy
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bezkit.bench.ddp_step import main as ddp_main
from bezkit.bench.pipeline import MICRO_UNET, run_pipeline
from bezkit.bench.train_speed import flops_per_image, pair_speed, step_speed
from bezkit.experiments.images import data_shape, get_preset, new_unet
from bezkit.files.atomic import atomic_write_bytes
from bezkit.metrics.inception import FIDInceptionV3, fid_backend

__all__ = ["main", "run_check"]

ROOT = Path(__file__).resolve().parents[2]
H200_BF16_PEAK_TFLOPS = 790.0  # a large bf16 matrix product on one H200 (dense)


class Check:
    """The sections' shared state: mode, device, output folder, budget, and the report."""

    def __init__(self, mode: str, out: Path, budget_s: float, peak: float) -> None:
        self.mode, self.out, self.budget_s, self.peak = mode, out, budget_s, peak
        self.gpu = mode == "gpu"
        self.device = torch.device("cuda" if self.gpu else "cpu")
        self.started = time.perf_counter()
        self.report: dict[str, Any] = {
            "mode": mode,
            "command": " ".join(["python -m bezkit.bench.gpu", *sys.argv[1:]]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "budget_s": budget_s,
            "sections": {},
        }

    def elapsed(self) -> float:
        """Seconds since the check started (measured against ``budget_s``)."""
        return time.perf_counter() - self.started

    def run(self, name: str, estimate_s: float, fn: Callable[[Check], dict[str, Any]]) -> None:
        """Run one section, recording its result, its time, or why it did not run."""
        if self.elapsed() + estimate_s > self.budget_s:
            entry: dict[str, Any] = {"status": "skipped", "reason": "time budget"}
        else:
            t0 = time.perf_counter()
            try:
                entry = {"status": "ok", **fn(self)}
                if entry.pop("ok", True) is False:
                    entry["status"] = "failed"
            except Exception as err:  # record it and go on with the next section
                tb = traceback.format_exc(limit=4)
                entry = {"status": "error", "error": f"{type(err).__name__}: {err}", "trace": tb}
            entry["seconds"] = round(time.perf_counter() - t0, 2)
        self.report["sections"][name] = entry
        print(f"[{self.elapsed():6.1f} s] {name}: {entry['status']}", flush=True)


# -- the sections ------------------------------------------------------------------------------


def environment(check: Check) -> dict[str, Any]:
    """The software and hardware the check ran on: Python, torch, CUDA, CPUs and the first GPU."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}")  # fmt: skip
    for name in ("torchvision", "torchmetrics", "torch_fidelity", "ot", "sklearn"):
        info[name] = importlib.util.find_spec(name) is not None
    info["fid_backend"] = fid_backend()
    return info


def cuda_tests(check: Check) -> dict[str, Any]:
    """Run the CUDA-marked tests and the FID backend comparison under pytest; their counts and tail."""
    files = ["tests/test_cuda.py", "tests/images/test_fid_backends.py"]
    cmd = [sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "-q",
           "-rs", "-m", "cuda or fid_library", *files]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", tail[-1])}
    ok = proc.returncode == 0 or (proc.returncode == 5 and not check.gpu)  # 5: none collected
    return {"ok": ok and counts.get("failed", 0) == 0, "returncode": proc.returncode,
            "counts": counts, "tail": tail}  # fmt: skip


def _preset_model(check: Check) -> tuple[Callable[[], torch.nn.Module], tuple[int, ...], Any]:
    preset = get_preset("cifar10") if check.gpu else get_preset("cifar10", unet=MICRO_UNET)
    return (lambda: new_unet(preset)), data_shape(preset), preset


def train_step(check: Check) -> dict[str, Any]:
    """Time U-Net training steps of the preset: a batch-size search, then the variants at the
    preset batch (FLOPs per image from the model)."""
    make, shape, preset = _preset_model(check)
    model = make().to(check.device)
    flops = flops_per_image(model, shape, backward=True)
    fwd_flops = flops_per_image(model, shape, backward=False)
    del model
    batch = preset.flow.batch_size if check.gpu else 4
    iters, warm = (20, 5) if check.gpu else (2, 1)
    common: dict[str, Any] = {"device": check.device, "amp": check.gpu, "flops_image": flops,
              "peak_tflops": check.peak if check.gpu else None, "iters": iters, "warmup": warm}  # fmt: skip
    runs: list[Any] = [step_speed(make, shape, batch=batch, variant="eager", **common)]
    largest = batch  # first the batch search (eager), then the variants at the preset batch
    sizes = [batch * 2**i for i in range(1, 6)] if check.gpu else [8]
    for size in sizes:
        if check.elapsed() > check.budget_s * 0.3:
            break
        try:
            runs.append(step_speed(make, shape, batch=size, variant="eager", **{**common,
                                   "iters": 3 if check.gpu else 1, "warmup": 1}))  # fmt: skip
            largest = size
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
    variants: list[tuple[str, dict[str, Any]]] = [
        ("channels-last", {"channels_last": True}),
        ("fused AdamW", {"fused_adamw": True}),
    ]
    if check.gpu:  # last: its compilation may take a minute or two
        variants.append(("torch.compile", {"compile": True}))
    for name, options in variants:
        if check.elapsed() > check.budget_s * 0.45:
            runs.append({"variant": name, "batch": batch, "error": "skipped: time budget"})
            continue
        try:
            runs.append(step_speed(make, shape, batch=batch, variant=name, **common, **options))
        except Exception as err:  # a variant that does not run here is a finding, not a crash
            runs.append({"variant": name, "batch": batch, "error": f"{type(err).__name__}: {err}"})
    rows = [r if isinstance(r, dict) else r.to_dict() for r in runs]
    return {"flop_per_image_train": flops, "flop_per_image_forward": fwd_flops,
            "preset_batch": batch, "largest_batch_tried_that_fits": largest, "runs": rows,
            "ok": all(r.get("losses_finite", True) and "error" not in r for r in rows[:1])}  # fmt: skip


def pairs(check: Check) -> dict[str, Any]:
    """Time the teacher's pair generation (``teacher_steps`` Euler steps per pair) of the preset."""
    make, shape, preset = _preset_model(check)
    teacher = make()
    flops = flops_per_image(teacher.to(check.device), shape, backward=False)
    steps = preset.teacher_steps if check.gpu else 4
    b = preset.pair_batch_size
    # float32 as generate_pairs runs today, bf16 at the preset batch and at 4x (the larger one in
    # float32 would cost about 50 s of the budget)
    settings = [(b, False), (b, True), (4 * b, True)] if check.gpu else [(8, False)]
    runs: list[dict[str, Any]] = []
    for batch, bf16 in settings:
        if check.elapsed() > check.budget_s * 0.7:
            break
        try:
            s = pair_speed(teacher, shape, batch=batch, steps=steps, device=check.device,
                           bf16=bf16, flops_image=flops)  # fmt: skip
            runs.append(s.to_dict())
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            runs.append({"batch": batch, "bf16": bf16, "error": "out of memory"})
    return {"flop_per_image_forward": flops, "teacher_steps": steps, "runs": runs,
            "ok": bool(runs) and "error" not in runs[0]}  # fmt: skip


def ddp(check: Check) -> dict[str, Any]:
    """GPU mode: ``torchrun --standalone --nproc_per_node=1 -m bezkit.bench.ddp_step`` (NCCL);
    CPU mode: the same ``ddp_step.main`` in this process with torchrun's variables set (gloo),
    which spares two interpreter start-ups."""
    out = check.out / "ddp.json"
    size = "cifar10" if check.gpu else "micro"
    args = ["--out", str(out), "--size", size, "--batch", "32" if check.gpu else "4"]
    if not check.gpu:
        names = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
        saved = {k: os.environ.get(k) for k in names}
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(_free_port()))  # fmt: skip
        try:
            ddp_main(args)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=1", "-m", "bezkit.bench.ddp_step", *args]  # fmt: skip
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        if proc.returncode != 0 or not out.is_file():
            return {"ok": False, "returncode": proc.returncode,
                    "tail": (proc.stdout + proc.stderr).strip().splitlines()[-10:]}  # fmt: skip
    report = json.loads(out.read_text())
    return {**report, "ok": bool(report.get("ok"))}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _random_fid_weights(path: Path) -> Path:
    """Random weights in the pytorch-fid file format (the real ones cannot be downloaded here)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FIDInceptionV3()
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    state = dict(model.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    torch.save(state, path)
    return path


def pipeline(check: Check) -> dict[str, Any]:
    """Every images stage on generated CIFAR-shaped data (FID with random Inception weights on a
    GPU)."""
    with tempfile.TemporaryDirectory(prefix="bezkit-gpu-check-") as tmp:
        weights = _random_fid_weights(Path(tmp) / "inception-random.pth") if check.gpu else None
        result = run_pipeline(tmp, device=str(check.device), micro=not check.gpu,
                              fid_weights=weights)  # fmt: skip
    first = result["evaluations"]["1rf"]
    return {"ok": result["ok"], "stage_seconds": result["seconds"],
            "fid_backend": first.get("fid_backend"), "fid_random_weights": first.get("fid"),
            "fid_note": first.get("fid_note")}  # fmt: skip


def committed_digits_seconds() -> float | None:
    """One seed's wall time in the committed CPU run of ``benchmarks/RESULTS.md`` (``N s per
    seed``, or ``N s in all`` for a one-seed run)."""
    path = ROOT / "benchmarks" / "RESULTS.md"
    if not path.is_file():
        return None
    section = re.search(r"<!-- BEGIN images_digits -->(.*?)<!-- END images_digits -->",
                        path.read_text(), re.S)  # fmt: skip
    if section is None:
        return None
    found = re.search(r"(\d+(?:\.\d+)?) s per seed", section.group(1)) or re.search(
        r"(\d+(?:\.\d+)?) s in all", section.group(1)
    )  # one seed's wall time: what the GPU check runs
    return float(found.group(1)) if found else None


def _run_digits_benchmark(args: list[str], in_process: bool) -> str:
    """Run ``benchmarks/images_digits.py`` with ``args``: a subprocess, or (CPU mode) in this
    process, which spares an interpreter start-up; returns its output's tail on failure."""
    script = ROOT / "benchmarks" / "images_digits.py"
    if not in_process:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, str(script), *args]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=420, env=env)
        return "" if proc.returncode == 0 else (proc.stdout + proc.stderr)[-2000:]
    argv, path = sys.argv, list(sys.path)
    sys.argv, sys.path[:0] = [str(script), *args], [str(script.parent)]
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = argv, path
        torch.set_num_threads(threads)
    return ""


def digits(check: Check) -> dict[str, Any]:
    """The digits benchmark on the check's device: its time against the committed CPU run and its
    one-step Frechet distances."""
    with tempfile.TemporaryDirectory(prefix="bezkit-digits-") as tmp:
        summary = Path(tmp) / "summary.json"
        args = [
            "--device",
            str(check.device),
            "--bdense",
            "--no-results",
            "--out",
            str(Path(tmp) / "run"),
            "--summary",
            str(summary),
        ]  # like the committed run
        if not check.gpu:
            args.append("--tiny")
        failure = _run_digits_benchmark(args, in_process=not check.gpu)
        if failure or not summary.is_file():
            return {"ok": False, "tail": failure.splitlines()[-10:]}
        result = json.loads(summary.read_text())
    cpu = committed_digits_seconds()
    seconds = result["seconds_total"]
    return {"digits_seconds": seconds, "committed_cpu_seconds": cpu, "tiny": not check.gpu,
            "speedup_vs_committed_cpu": None if (cpu is None or not check.gpu) else cpu / seconds,
            "one_step_frechet": result.get("one_step_frechet")}  # fmt: skip


SECTIONS: list[tuple[str, float, Callable[[Check], dict[str, Any]]]] = [
    ("environment", 5, environment),
    ("cuda_tests", 60, cuda_tests),
    ("train_step", 90, train_step),
    ("pairs", 40, pairs),
    ("ddp", 40, ddp),
    ("pipeline", 60, pipeline),
    ("digits", 150, digits),
]


# -- the report --------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown section (for ``benchmarks/RESULTS.md``)."""
    s = report["sections"]
    env = s.get("environment", {})
    lines = [
        f"Command: `{report['command']}` ({report['date']}), mode {report['mode']}, "
        f"{report['total_seconds']:.0f} s in all (budget {report['budget_s']:.0f} s).",
        "",
        f"- machine: {env.get('gpu', 'no GPU')} ({_fmt(env.get('gpu_memory_gib'))} GiB), "
        f"{env.get('cpu_count')} CPU cores; Python {env.get('python')}, torch {env.get('torch')} "
        f"(CUDA {env.get('cuda')}); FID backend: {env.get('fid_backend')}",
        "",
        "| section | status | seconds |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {k} | {v['status']} | {v.get('seconds', '-')} |" for k, v in s.items()]
    step = s.get("train_step", {})
    if step.get("runs"):
        lines += ["", f"Training step (FLOP per image, forward + backward: "
                      f"{step['flop_per_image_train'] / 1e9:.1f} G):", "",
                  "| variant | batch | ms/step | images/s | TFLOP/s | of peak | peak GiB | first step s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for r in step["runs"]:
            if "error" in r:
                lines.append(f"| {r['variant']} | {r['batch']} | error: {r['error'][:60]} |||||")
                continue
            frac = "-" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.1f}%"
            lines.append(
                f"| {r['variant']} | {r['batch']} | {r['ms_per_step']:.2f} | "
                f"{r['images_per_s']:.0f} | {r['tflops']:.1f} | {frac} | "
                f"{_fmt(r['peak_memory_gib'], '.2f')} | {r['first_step_s']:.2f} |"
            )
    pair = s.get("pairs", {})
    if pair.get("runs"):
        lines += ["", f"Pair generation (Euler, {pair['teacher_steps']} steps):", "",
                  "| batch | bf16 | seconds | pairs/s | TFLOP/s |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for r in pair["runs"]:
            if "error" in r:
                lines.append(f"| {r['batch']} | {r['bf16']} | {r['error']} | | |")
            else:
                lines.append(f"| {r['batch']} | {r['bf16']} | {r['seconds']:.2f} | "
                             f"{r['pairs_per_s']:.1f} | {r['tflops']:.1f} |")  # fmt: skip
    for name in ("cuda_tests", "ddp", "pipeline", "digits"):
        entry = s.get(name, {})
        extra = {k: v for k, v in entry.items() if k not in ("status", "seconds", "tail", "trace")}
        if extra:
            lines += ["", f"`{name}`: `{json.dumps(extra, default=str)[:600]}`"]
    return "\n".join(lines) + "\n"


def summary(report: dict[str, Any]) -> str:
    """A one-screen summary."""
    s = report["sections"]
    out = [f"GPU check ({report['mode']} mode): {report['total_seconds']:.0f} s"]
    for name, entry in s.items():
        line = f"  {name:<12} {entry['status']:<8} {entry.get('seconds', '-')!s:>7} s"
        if "error" in entry:
            line += f"  {entry['error'][:70]}"
        out.append(line)
    for r in s.get("train_step", {}).get("runs", [])[:6]:
        if "error" not in r:
            out.append(f"  step {r['variant']:<14} batch {r['batch']:>5}: {r['ms_per_step']:8.2f} ms, "
                       f"{r['images_per_s']:8.0f} img/s, {r['tflops']:6.1f} TFLOP/s")  # fmt: skip
    for r in s.get("pairs", {}).get("runs", []):
        if "error" not in r:
            out.append(f"  pairs batch {r['batch']:>5} bf16={r['bf16']!s:<5}: "
                       f"{r['pairs_per_s']:8.1f} pairs/s")  # fmt: skip
    dg = s.get("digits", {})
    if dg.get("digits_seconds") is not None:
        size = " --tiny" if dg.get("tiny") else ""
        out.append(f"  digits pipeline{size}: {dg['digits_seconds']:.0f} s (committed CPU run of the "
                   f"full size: {_fmt(dg.get('committed_cpu_seconds'), '.0f')} s)")  # fmt: skip
    return "\n".join(out)


def run_check(mode: str, out: Path, *, budget_s: float = 420.0,
              peak_tflops: float = H200_BF16_PEAK_TFLOPS,
              only: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the sections (all, or ``only``), write ``gpu_check.json`` and ``gpu_check.md`` to
    ``out``; returns the report."""
    if mode == "auto":
        mode = "gpu" if torch.cuda.is_available() else "cpu"
    if mode == "gpu" and not torch.cuda.is_available():
        raise SystemExit("--mode gpu needs a CUDA device; use --mode cpu")
    if mode == "cpu":
        torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    check = Check(mode, out, budget_s, peak_tflops)
    for name, estimate, fn in SECTIONS:
        if only is None or name in only:
            check.run(name, estimate if mode == "gpu" else 0.0, fn)
    report = check.report
    report["total_seconds"] = check.elapsed()
    report["ok"] = all(v["status"] in ("ok", "skipped") for v in report["sections"].values())
    atomic_write_bytes(
        out / "gpu_check.json", (json.dumps(report, indent=2, default=str) + "\n").encode()
    )
    atomic_write_bytes(out / "gpu_check.md", markdown(report).encode())
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: run the check, print the summary; exit 1 when a section failed."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=("auto", "gpu", "cpu"), default="auto")
    p.add_argument("--out", type=Path, default=Path("gpu-check"), help="output folder")
    p.add_argument("--budget-s", type=float, default=420.0, help="skip sections past this")
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_PEAK_TFLOPS,
                   help="the bf16 peak the achieved TFLOP/s are compared with")  # fmt: skip
    p.add_argument("--only", nargs="+", choices=[n for n, _, _ in SECTIONS], default=None)
    args = p.parse_args(argv)
    report = run_check(args.mode, args.out, budget_s=args.budget_s, peak_tflops=args.peak_tflops,
                       only=args.only)  # fmt: skip
    print(summary(report))
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
