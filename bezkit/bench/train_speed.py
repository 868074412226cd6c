"""Speed of the image training step and of teacher pair generation, with their FLOP counts.

Two timings of a training step, reported side by side and named apart:

- ``trainer_step_speed`` (**the trainer**): ``bezkit.methods.train_flow`` -> ``bezkit.training.train``
  itself, as ``bezkit images train`` runs it: batches drawn on the host (prefetched), copied to the
  device, the loss under bf16 autocast, the per-step finiteness check and loss read-back (host
  synchronisations), clipping, AdamW, the lr schedule, the EMA. Its time per step is
  ``(T(long) - T(short)) / (long - short)`` of two whole runs, so the start-up (model to the
  device, first-step autotuning) cancels.
- ``step_speed`` (**the model**): the same loss, backward, clipping, AdamW and EMA on a batch
  already on the device, without the host synchronisations: the model's compute alone (its
  variants: channels-last, fused AdamW, ``torch.compile``).

The FLOPs of one
step are counted by ``torch.utils.flop_counter`` (forward + backward of one image, times the batch;
the optimizer and EMA are not counted), so

    achieved TFLOP/s = FLOP per image x batch / seconds per step,

compared with a peak (``--peak-tflops``: about 790 for dense bf16 on an H200, as measured by a
large matrix product). Times are medians of CUDA-synchronised host timings after a warm-up.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import cast

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bezkit.couplings.pairs import Coupling, Pairs
from bezkit.methods.flow import train_flow
from bezkit.solvers.ode import solve_ode
from bezkit.training.config import TrainConfig
from bezkit.training.ema import EMA
from bezkit.training.objectives import FlowMatchingLoss

__all__ = [
    "PairSpeed",
    "StepSpeed",
    "TrainerSpeed",
    "flops_per_image",
    "matmul_tflops",
    "pair_speed",
    "step_speed",
    "trainer_step_speed",
]


@dataclass
class StepSpeed:
    """One training-step configuration and what it measured."""

    variant: str
    batch: int
    ms_per_step: float
    images_per_s: float
    tflops: float  # achieved, from the FLOP count
    peak_fraction: float | None  # tflops / the peak given
    peak_memory_gib: float | None  # CUDA only
    first_step_s: float  # includes torch.compile's compilation when compiled
    losses_finite: bool

    def to_dict(self) -> dict:
        """As a JSON-able dict."""
        return asdict(self)


@dataclass
class TrainerSpeed:
    """The real trainer's time per step (``trainer_step_speed``)."""

    batch: int
    steps_short: int
    steps_long: int
    seconds_short: float
    seconds_long: float
    ms_per_step: float
    images_per_s: float
    tflops: float
    peak_fraction: float | None
    losses_finite: bool

    def to_dict(self) -> dict:
        """As a JSON-able dict."""
        return asdict(self)


@dataclass
class PairSpeed:
    """Teacher ODE pair generation (Euler) at one batch size and precision."""

    batch: int
    steps: int
    bf16: bool
    seconds: float
    pairs_per_s: float
    tflops: float

    def to_dict(self) -> dict:
        """As a JSON-able dict."""
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_image(model: nn.Module, shape: tuple[int, ...], *, backward: bool) -> float:
    """FLOPs of one forward (+ backward) pass of one image, counted at batch 2 on the model's
    device (the count is the same in every precision)."""
    device = next(model.parameters()).device
    x = torch.randn(2, *shape, device=device)
    t = torch.rand(2, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x, t)
        if backward:
            out.float().square().mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def _timed(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> tuple:
    """(first call seconds, median seconds of ``iters`` calls after ``warmup`` more)."""
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def step_speed(
    make_model: Callable[[], nn.Module],
    shape: tuple[int, ...],
    *,
    batch: int,
    device: torch.device,
    amp: bool,
    compile: bool = False,
    channels_last: bool = False,
    fused_adamw: bool = False,
    warmup: int = 3,
    iters: int = 10,
    flops_image: float,
    peak_tflops: float | None = None,
    variant: str = "eager",
) -> StepSpeed:
    """Time the trainer's step on a fresh model (``make_model()``) at ``batch``."""
    model = make_model().to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused_adamw or None)
    ema = EMA(model, 0.9999)
    forward = cast(nn.Module, torch.compile(model)) if compile else model
    loss_fn = FlowMatchingLoss()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(batch, *shape, generator=g).to(device)
    x1 = (torch.rand(batch, *shape, generator=g) * 2 - 1).to(device)
    if channels_last:
        x0, x1 = (x.contiguous(memory_format=torch.channels_last) for x in (x0, x1))
    pairs = Pairs(x0, x1)
    losses: list[torch.Tensor] = []
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if amp and device.type == "cuda"
        else contextlib.nullcontext()
    )

    def step() -> None:
        with autocast:
            loss = loss_fn(forward, pairs, torch.Generator().manual_seed(len(losses)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        losses.append(loss.detach())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first, seconds = _timed(step, device, warmup, iters)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    tflops = flops_image * batch / seconds / 1e12
    return StepSpeed(
        variant=variant,
        batch=batch,
        ms_per_step=seconds * 1e3,
        images_per_s=batch / seconds,
        tflops=tflops,
        peak_fraction=None if peak_tflops is None else tflops / peak_tflops,
        peak_memory_gib=peak,
        first_step_s=first,
        losses_finite=bool(torch.isfinite(torch.stack(losses)).all()),
    )


def trainer_step_speed(
    make_model: Callable[[], nn.Module],
    coupling: Coupling,
    config: TrainConfig,
    *,
    short: int,
    long: int,
    flops_image: float,
    peak_tflops: float | None = None,
) -> TrainerSpeed:
    """Time ``train_flow`` (the 1-RF's recipe, so ``bezkit.training.train``) for ``short`` and
    ``long`` steps on fresh models; per step ``(T(long) - T(short)) / (long - short)``. No
    checkpoint is written (``config.checkpoint_path`` is cleared)."""
    if not 0 < short < long:
        raise ValueError(f"need 0 < short < long, got {short}, {long}")
    device = torch.device(config.device)
    times, finite = [], True
    for steps in (short, long):
        cfg = replace(config, steps=steps, progress=False, checkpoint_path=None)
        model = make_model()
        _sync(device)
        t0 = time.perf_counter()
        result = train_flow(model, coupling, cfg)
        _sync(device)
        times.append(time.perf_counter() - t0)
        finite = finite and all(math.isfinite(v) for v in result.losses)
        del model, result
    per_step = max(times[1] - times[0], 1e-9) / (long - short)
    tflops = flops_image * config.batch_size / per_step / 1e12
    return TrainerSpeed(
        batch=config.batch_size,
        steps_short=short,
        steps_long=long,
        seconds_short=times[0],
        seconds_long=times[1],
        ms_per_step=per_step * 1e3,
        images_per_s=config.batch_size / per_step,
        tflops=tflops,
        peak_fraction=None if peak_tflops is None else tflops / peak_tflops,
        losses_finite=finite,
    )


def matmul_tflops(device: torch.device, *, n: int = 8192, iters: int = 10) -> float:
    """The bf16 (CUDA; float32 on the CPU) rate of an ``n x n x n`` matrix product on this device,
    ``2 n^3 / seconds``: the peak the training step is compared with, measured on the card."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t0) / 1e12


@torch.no_grad()
def pair_speed(
    teacher: nn.Module,
    shape: tuple[int, ...],
    *,
    batch: int,
    steps: int,
    device: torch.device,
    bf16: bool,
    flops_image: float,
) -> PairSpeed:
    """Time ``solve_ode`` (Euler, ``steps`` steps) from ``batch`` noise images: one warm-up
    solve of 2 steps, then one solve of ``steps`` steps (a pair of the preset costs
    ``teacher_steps`` of them: scale ``pairs_per_s`` by ``steps / teacher_steps``)."""
    teacher = teacher.to(device).eval()
    x0 = torch.randn(batch, *shape, device=device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if bf16 and device.type == "cuda"
        else contextlib.nullcontext()
    )
    with autocast:
        solve_ode(teacher, x0, steps=2)
        _sync(device)
        t0 = time.perf_counter()
        solve_ode(teacher, x0, steps=steps)
        _sync(device)
    seconds = time.perf_counter() - t0
    return PairSpeed(
        batch=batch,
        steps=steps,
        bf16=bf16,
        seconds=seconds,
        pairs_per_s=batch / seconds,
        tflops=flops_image * batch * steps / seconds / 1e12,
    )
