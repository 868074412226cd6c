"""Speed of the image training step and of teacher pair generation, with their FLOP counts.

A training step is the trainer's (``bezkit.training.train``): the flow-matching loss under bf16
autocast (CUDA), backward, gradient clipping at 1.0, AdamW, the EMA update; the batch is already
on the device, so the numbers are the model's compute, not the data pipeline's. The FLOPs of one
step are counted by ``torch.utils.flop_counter`` (forward + backward of one image, times the batch;
the optimizer and EMA are not counted), so

    achieved TFLOP/s = FLOP per image x batch / seconds per step,

compared with a peak (``--peak-tflops``: about 790 for dense bf16 on an H200, as measured by a
large matrix product). Times are medians of CUDA-synchronised host timings after a warm-up.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import cast

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bezkit.couplings.pairs import Pairs
from bezkit.solvers.ode import solve_ode
from bezkit.training.ema import EMA
from bezkit.training.objectives import FlowMatchingLoss

__all__ = ["PairSpeed", "StepSpeed", "flops_per_image", "pair_speed", "step_speed"]


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
    solve of 2 steps, then one full solve."""
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
