"""The GPU check's sections (``bezkit.bench.gpu`` runs them in the order of ``SECTIONS``).

Each section is ``fn(check, part)``: it writes what it measures into the dict ``part`` as it
goes (so a section stopped by its time limit still reports its finished measurements), sets
``part["ok"] = False`` on a failed check, and asks ``check.left()`` (seconds of the budget left)
before each long step. GPU mode runs the preset sizes, CPU mode tiny ones (the test suite runs it).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import torch

from bezkit.bench.carry import child_env
from bezkit.bench.ddp_step import main as ddp_main
from bezkit.bench.pipeline import MICRO_UNET, run_pipeline
from bezkit.bench.train_speed import (
    flops_per_image,
    matmul_tflops,
    pair_speed,
    step_speed,
    trainer_step_speed,
)
from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.data.cifar10 import CIFAR10Dataset, write_cifar10_fixture
from bezkit.data.toy2d import get_sampler
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.images import StandardNormal, data_shape, get_preset, new_unet
from bezkit.experiments.images.outputs import stage_config
from bezkit.files.atomic import atomic_write_bytes
from bezkit.methods.flow import new_mlp
from bezkit.metrics.inception import fid_backend, write_random_fid_weights
from bezkit.training import FlowMatchingLoss, TrainConfig, train_ensemble

__all__ = [
    "QUIET_CPU_DIGITS_SECONDS",
    "Check",
    "committed_digits_seconds",
    "compile_step",
    "cuda_tests",
    "ddp",
    "digits",
    "ensemble2d",
    "environment",
    "pairs",
    "peak",
    "pipeline",
    "train_step",
]

ROOT = Path(__file__).resolve().parents[2]
# one seed of benchmarks/images_digits.py --bdense on a quiet 2-core machine (docs/IMAGES.md);
# the committed RESULTS.md run (887 s per seed) was under load from other jobs
QUIET_CPU_DIGITS_SECONDS = 358.0


class Check(Protocol):
    """What a section may ask of the running check."""

    gpu: bool
    device: torch.device
    out: Path
    peak_tflops: float
    report: dict[str, Any]

    def left(self) -> float: ...


def _preset(check: Check) -> Any:
    return get_preset("cifar10") if check.gpu else get_preset("cifar10", unet=MICRO_UNET)


def environment(check: Check, part: dict[str, Any]) -> None:
    """The software and hardware the check ran on."""
    part.update(python=platform.python_version(), torch=torch.__version__,
                cuda=torch.version.cuda, cpu_count=os.cpu_count(),
                gpu_count=torch.cuda.device_count() if torch.cuda.is_available() else 0)  # fmt: skip
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        part.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}")  # fmt: skip
        check.report["measured_on"] = props.name
    for name in ("torchvision", "torchmetrics", "torch_fidelity", "ot", "sklearn"):
        part[name] = importlib.util.find_spec(name) is not None
    part["fid_backend"] = fid_backend()


def _peak(check: Check) -> float | None:
    """The peak to compare with: given or measured, GPU mode only (None: no fraction)."""
    return check.peak_tflops if check.gpu and check.peak_tflops > 0 else None


def peak(check: Check, part: dict[str, Any]) -> None:
    """The bf16 rate of a large matrix product on this card: the peak the step is compared with
    (``--peak-tflops`` overrides it)."""
    measured = matmul_tflops(
        check.device, n=8192 if check.gpu else 256, iters=10 if check.gpu else 2
    )
    part["matmul_tflops"] = measured
    if check.gpu and check.peak_tflops <= 0:
        check.peak_tflops = measured
    part["peak_tflops_used"] = check.peak_tflops if check.gpu else None


def train_step(check: Check, part: dict[str, Any]) -> None:
    """The cifar10 preset's step at its batch: the real trainer (``trainer``), then the model alone
    on device-resident data (``model``), then the model at larger batches while time allows."""
    preset = _preset(check)
    shape = data_shape(preset)
    model = new_unet(preset).to(check.device)
    flops = flops_per_image(model, shape, backward=True)
    part.update(flop_per_image_train=flops,
                flop_per_image_forward=flops_per_image(model, shape, backward=False))  # fmt: skip
    del model
    batch = preset.flow.batch_size if check.gpu else 4
    peak_ = _peak(check)
    with tempfile.TemporaryDirectory(prefix="bezkit-step-") as tmp:
        data = CIFAR10Dataset(write_cifar10_fixture(tmp, per_file=64), flip=True, verify=False)
        coupling = IndependentCoupling(StandardNormal(shape), data)
        config = stage_config(
            preset, preset.flow, seed=0, device=str(check.device), state=Path(tmp) / "state",
            progress=False, desc="1-RF",
        )  # fmt: skip
        config = dataclasses.replace(config, batch_size=batch, warmup_steps=0)
        short, long = (10, 40) if check.gpu else (1, 3)
        part["trainer"] = trainer_step_speed(
            lambda: new_unet(preset), coupling, config, short=short, long=long,
            flops_image=flops, peak_tflops=peak_,
        ).to_dict()  # fmt: skip
    part["trainer"]["what"] = "bezkit.training.train via train_flow: host batches, syncs, EMA"
    common: dict[str, Any] = {"device": check.device, "amp": check.gpu, "flops_image": flops,
                              "peak_tflops": peak_, "iters": 20 if check.gpu else 2,
                              "warmup": 5 if check.gpu else 1}  # fmt: skip
    make = lambda: new_unet(preset)  # noqa: E731
    runs = part.setdefault("model", [])
    runs.append(step_speed(make, shape, batch=batch, variant="eager", **common).to_dict())
    variants: list[tuple[str, dict[str, Any]]] = [
        ("channels-last", {"channels_last": True}),
        ("fused AdamW", {"fused_adamw": True}),
    ]
    for variant, options in variants:
        if check.left() < 20:
            break
        runs.append(step_speed(make, shape, batch=batch, variant=variant, **common, **options)
                    .to_dict())  # fmt: skip
    for size in [batch * 2**i for i in range(1, 4)] if check.gpu else [8]:
        if check.left() < 30:
            break
        try:
            runs.append(step_speed(make, shape, batch=size, variant="eager", **{
                **common, "iters": 5 if check.gpu else 1, "warmup": 2 if check.gpu else 1,
            }).to_dict())  # fmt: skip
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            runs.append({"variant": "eager", "batch": size, "error": "out of memory"})
            break
    part["model_what"] = "the model's step alone: data already on the device, no host syncs"
    part["ok"] = part["trainer"]["losses_finite"] and all(
        r.get("losses_finite", False) for r in runs if "error" not in r
    )


def pairs(check: Check, part: dict[str, Any]) -> None:
    """Teacher pair generation (Euler) of the preset: ``steps`` timed Euler steps of the preset's
    pair batch, extrapolated to the preset's ``teacher_steps`` per pair (the step cost is
    constant), in float32 (as ``generate_pairs`` runs) and bf16."""
    preset = _preset(check)
    shape = data_shape(preset)
    teacher = new_unet(preset).to(check.device)
    flops = flops_per_image(teacher, shape, backward=False)
    steps = 10 if check.gpu else 2
    b = preset.pair_batch_size if check.gpu else 8
    part.update(flop_per_image_forward=flops, timed_steps=steps,
                teacher_steps=preset.teacher_steps, runs=[])  # fmt: skip
    for batch, bf16 in [(b, False), (b, True), (4 * b, True)] if check.gpu else [(b, False)]:
        if check.left() < 15:
            break
        try:
            s = pair_speed(teacher, shape, batch=batch, steps=steps, device=check.device,
                           bf16=bf16, flops_image=flops).to_dict()  # fmt: skip
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            part["runs"].append({"batch": batch, "bf16": bf16, "error": "out of memory"})
            break
        s["pairs_per_s_at_teacher_steps"] = s["pairs_per_s"] * steps / preset.teacher_steps
        part["runs"].append(s)
    part["ok"] = bool(part["runs"]) and "error" not in part["runs"][0]


def ensemble2d(check: Check, part: dict[str, Any]) -> None:
    """The 2D experiment's seed ensemble (``train_ensemble``: the full protocol's 5 seeds, its MLP
    and batch, flow matching on 8gaussians -> moons) on this device against the CPU."""
    cfg = ExperimentConfig.full()
    seeds = list(range(cfg.seeds))
    steps = 300 if check.gpu else 5
    src, tgt = get_sampler("8gaussians"), get_sampler("moons")
    pools = []
    for s in seeds:
        g = torch.Generator().manual_seed(1000 + s)
        pools.append(PairPool(Pairs(src.sample(cfg.n_pairs, g), tgt.sample(cfg.n_pairs, g))))
    models = [new_mlp(hidden=cfg.hidden, depth=cfg.depth, seed=s) for s in seeds]
    part.update(seeds=len(seeds), steps=steps, hidden=cfg.hidden, depth=cfg.depth,
                batch_size=cfg.batch_size, cpu_threads=torch.get_num_threads())  # fmt: skip
    devices = [check.device, torch.device("cpu")] if check.gpu else [torch.device("cpu")]
    final: dict[str, list[float]] = {}
    for device in devices:
        config = TrainConfig(steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, progress=False,
                             device=str(device))  # fmt: skip
        warm = dataclasses.replace(config, steps=3)
        train_ensemble([copy.deepcopy(m) for m in models], FlowMatchingLoss(),
                       [p.sample for p in pools], warm, seeds)  # fmt: skip
        t0 = time.perf_counter()
        results = train_ensemble([copy.deepcopy(m) for m in models], FlowMatchingLoss(),
                                 [p.sample for p in pools], config, seeds)  # fmt: skip
        seconds = time.perf_counter() - t0
        part[f"{device.type}_seconds"] = seconds
        part[f"{device.type}_ms_per_step"] = seconds / steps * 1e3
        final[device.type] = [float(sum(r.losses[-20:]) / len(r.losses[-20:])) for r in results]
    if check.gpu:
        part["gpu_speedup_vs_cpu"] = part["cpu_seconds"] / part["cuda_seconds"]
        part["final_loss_cpu"], part["final_loss_gpu"] = final["cpu"], final["cuda"]
    part["ok"] = all(math.isfinite(v) for vs in final.values() for v in vs)


def pipeline(check: Check, part: dict[str, Any]) -> None:
    """Every images stage on generated CIFAR-format data at a small size with the preset's U-Net
    (bf16 on CUDA); FID from random Inception weights times the code path only."""
    with tempfile.TemporaryDirectory(prefix="bezkit-gpu-check-") as tmp:
        weights = (
            write_random_fid_weights(Path(tmp) / "inception-random.pth") if check.gpu else None
        )
        result = run_pipeline(tmp, device=str(check.device), micro=not check.gpu,
                              fid_weights=weights)  # fmt: skip
    first = result["evaluations"]["1rf"]
    part.update(ok=result["ok"], stage_seconds=result["seconds"],
                fid_backend=first.get("fid_backend"),
                fid_code_path_only=first.get("fid"),
                fid_note="code-path timing only: random Inception weights on random fixture "
                         "images, so the value is not a FID of anything")  # fmt: skip


def _pytest_counts(text: str) -> dict[str, int]:
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", last)}


def cuda_tests(check: Check, part: dict[str, Any]) -> None:
    """``pytest -m "cuda or fid_library"`` on the CUDA tests and the FID backend comparison."""
    files = ["tests/test_cuda.py", "tests/images/test_fid_backends.py"]
    cmd = [sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "-q",
           "-rs", "-m", "cuda or fid_library", *files]  # fmt: skip
    # at most 2 minutes, and leave 2 for the digits benchmark and the compile after it
    limit = max(min(check.left() - 120, 120), 10) if check.gpu else max(check.left(), 1)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=child_env(),
                          timeout=limit)  # fmt: skip
    counts = _pytest_counts(proc.stdout)
    ok = proc.returncode == 0 or (proc.returncode == 5 and not check.gpu)  # 5: none collected
    part.update(ok=ok and counts.get("failed", 0) == 0, returncode=proc.returncode,
                counts=counts, tail=(proc.stdout + proc.stderr).strip().splitlines()[-15:])  # fmt: skip


def ddp(check: Check, part: dict[str, Any]) -> None:
    """DDP on NCCL over every GPU (``torchrun --nproc_per_node=N``), only with more than one;
    CPU mode: one gloo process in this process (the code path)."""
    out = check.out / "ddp.json"
    n = torch.cuda.device_count() if check.gpu else 1
    part["gpus"] = n
    if check.gpu and n < 2:
        part["skipped"] = "one GPU: nothing for NCCL to average (the trainer step is timed above)"
        return
    args = ["--out", str(out), "--size", "cifar10" if check.gpu else "micro",
            "--batch", "128" if check.gpu else "4", "--steps", "20" if check.gpu else "2",
            "--warmup", "3" if check.gpu else "1"]  # fmt: skip
    if check.gpu:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={n}", "-m", "bezkit.bench.ddp_step", *args]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=child_env(),
                              timeout=max(check.left(), 1))  # fmt: skip
        if proc.returncode != 0 or not out.is_file():
            part.update(ok=False, returncode=proc.returncode,
                        tail=(proc.stdout + proc.stderr).strip().splitlines()[-10:])  # fmt: skip
            return
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        names = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
        saved = {k: os.environ.get(k) for k in names}
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))  # fmt: skip
        try:
            ddp_main(args)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    report = json.loads(out.read_text())
    part.update(report)
    part["ok"] = bool(report.get("ok"))


def committed_digits_seconds() -> float | None:
    """One seed's wall time in the committed run of ``benchmarks/RESULTS.md`` (made under load)."""
    path = ROOT / "benchmarks" / "RESULTS.md"
    if not path.is_file():
        return None
    section = re.search(r"<!-- BEGIN images_digits -->(.*?)<!-- END images_digits -->",
                        path.read_text(), re.S)  # fmt: skip
    if section is None:
        return None
    found = re.search(r"(\d+(?:\.\d+)?) s per seed", section.group(1)) or re.search(
        r"(\d+(?:\.\d+)?) s in all", section.group(1)
    )
    return float(found.group(1)) if found else None


def digits(check: Check, part: dict[str, Any]) -> None:
    """``benchmarks/images_digits.py --bdense`` (one seed; ``--tiny`` in CPU mode) on this device,
    in a subprocess, against one seed on a quiet CPU (358 s)."""
    with tempfile.TemporaryDirectory(prefix="bezkit-digits-") as tmp:
        summary = Path(tmp) / "summary.json"
        args = ["--device", str(check.device), "--bdense", "--no-results",
                "--out", str(Path(tmp) / "run"), "--summary", str(summary)]  # fmt: skip
        if not check.gpu:
            args.append("--tiny")
        cmd = [sys.executable, str(ROOT / "benchmarks" / "images_digits.py"), *args]
        limit = max(check.left() - (90 if check.gpu else 0), 1)  # 90 s kept for the compile
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=child_env(),
                              timeout=limit)  # fmt: skip
        if proc.returncode != 0 or not summary.is_file():
            part.update(ok=False, tail=(proc.stdout + proc.stderr).strip().splitlines()[-10:])
            return
        result = json.loads(summary.read_text())
    seconds = result["seconds_total"]
    part.update(digits_seconds=seconds, tiny=not check.gpu,
                quiet_cpu_seconds=QUIET_CPU_DIGITS_SECONDS,
                committed_cpu_seconds_under_load=committed_digits_seconds(),
                speedup_vs_quiet_cpu=QUIET_CPU_DIGITS_SECONDS / seconds if check.gpu else None,
                one_step_frechet=result.get("one_step_frechet"))  # fmt: skip


def compile_step(check: Check, part: dict[str, Any]) -> None:
    """``torch.compile`` of the preset's step at its batch (last: compiling takes a minute or
    two); ``first_step_s`` includes the compilation."""
    if not check.gpu:
        part["skipped"] = "CPU mode: no compile"
        return
    preset = _preset(check)
    shape = data_shape(preset)
    flops = flops_per_image(new_unet(preset).to(check.device), shape, backward=True)
    part["runs"] = [step_speed(
        lambda: new_unet(preset), shape, batch=preset.flow.batch_size, device=check.device,
        amp=True, compile=True, flops_image=flops, peak_tflops=_peak(check), iters=20,
        warmup=5, variant="torch.compile",
    ).to_dict()]  # fmt: skip
    part["ok"] = part["runs"][0]["losses_finite"]


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, so a kill mid-write leaves the previous file whole."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=str) + "\n").encode())
