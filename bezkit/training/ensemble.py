"""Train S seeds of one configuration together, as one vectorised ensemble.

For seed ``s`` (``seeds[s]``, model ``models[s]``, batches ``sample_batches[s]``) every step does
what :func:`bezkit.training.train` does for that seed alone:

    pairs_s = sample_batches[s](batch_size, generator_for(seeds[s], step, "data"))
    loss_s  = the loss of models[s] on pairs_s with generator_for(seeds[s], step, "loss")
    AdamW step, warm-up + cosine lr, gradient clipping of model s's own gradient norm, EMA

but the S models run as one :class:`bezkit.models.EnsembleVelocity` on the seed-blocked batch
``cat(pairs_0, ..., pairs_{S-1})`` (see ``bezkit/models/ensemble.py`` for the layout), and the
optimiser steps the stacked weights once. The backward pass is of ``sum_s loss_s``, so model ``s``'s
gradient is exactly its solo gradient (the models share no weights); AdamW, the lr schedule and the
EMA are elementwise, and clipping is per model, so each seed follows its solo trajectory up to
floating-point rounding (tested against :func:`train`).

The loss must accept a seed-blocked batch: ``loss_fn.block_losses(model, pairs, generators)``
returning the ``(S,)`` per-seed losses (``FlowMatchingLoss`` and ``BDenseLoss`` do).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bezkit.couplings.pairs import Pairs
from bezkit.models.ensemble import EnsembleVelocity
from bezkit.training.config import TrainConfig
from bezkit.training.device import choose_device
from bezkit.training.distributed import get_world_size
from bezkit.training.trainer import BatchFn, TrainResult, generator_for, lr_factor, stream_seed

__all__ = ["BlockLossFn", "clip_grad_norm_per_model", "seed_blocked_pairs", "train_ensemble"]


@runtime_checkable
class BlockLossFn(Protocol):
    """A loss that also scores a seed-blocked batch, one generator per seed block."""

    def __call__(self, model: nn.Module, pairs: Pairs, generator: torch.Generator) -> Tensor: ...

    def block_losses(
        self, model: nn.Module, pairs: Pairs, generators: Sequence[torch.Generator]
    ) -> Tensor:
        """The loss of each seed block of a seed-blocked batch, shape ``(S,)``, block ``s`` drawn
        with ``generators[s]``."""


def seed_blocked_pairs(batches: Sequence[Pairs]) -> Pairs:
    """``cat(batches[0], ..., batches[S-1])``: one seed-blocked batch (all batches the same size)."""
    if len(batches) < 1:
        raise ValueError("need at least one batch")
    sizes = [len(b) for b in batches]
    if len(set(sizes)) != 1:
        raise ValueError(f"seed blocks must have equal sizes, got batch sizes {sizes}")
    guides = {len(b.guides) for b in batches}
    if len(guides) != 1:
        raise ValueError(f"seed blocks must have the same number of guides, got {sorted(guides)}")
    return Pairs(
        torch.cat([b.x0 for b in batches]),
        torch.cat([b.x1 for b in batches]),
        tuple(torch.cat(parts) for parts in zip(*(b.guides for b in batches))),
    )


@torch.no_grad()
def clip_grad_norm_per_model(params: Sequence[Tensor], max_norm: float) -> Tensor:
    """Clip each model's gradient of stacked ``(S, ...)`` parameters to norm ``max_norm``.

    Model ``s``'s norm is ``sqrt(sum_p ||grad_p[s]||^2)``; its gradients are scaled by
    ``min(1, max_norm / (norm + 1e-6))``, as ``torch.nn.utils.clip_grad_norm_`` does for one model.
    Returns the ``(S,)`` norms before clipping.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        raise ValueError("no gradients to clip")
    s = grads[0].shape[0]
    norms = torch.stack([g.reshape(s, -1).pow(2).sum(dim=1) for g in grads]).sum(dim=0).sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.reshape(s, *([1] * (g.ndim - 1))).to(g.dtype))
    return norms


def _check_inputs(
    models: Sequence[nn.Module],
    loss_fn: BlockLossFn,
    sample_batches: Sequence[BatchFn],
    config: TrainConfig,
    seeds: Sequence[int],
) -> None:
    if len(models) < 1:
        raise ValueError("train_ensemble needs at least one model")
    if not len(models) == len(sample_batches) == len(seeds):
        raise ValueError(
            f"need one batch source and one seed per model: got {len(models)} models, "
            f"{len(sample_batches)} batch sources, {len(seeds)} seeds"
        )
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool):
            raise TypeError(f"seeds must be ints, got {s!r}")
    if len({id(m) for m in models}) != len(models):
        raise ValueError("each seed needs its own model object (the same model was given twice)")
    if not isinstance(loss_fn, BlockLossFn):
        raise TypeError(
            f"{type(loss_fn).__name__} cannot score a seed-blocked batch: the loss needs a "
            "block_losses(model, pairs, generators) method (FlowMatchingLoss and BDenseLoss have one)"
        )
    if config.checkpoint_path:
        raise ValueError(
            "train_ensemble does not write checkpoints; train a seed alone with train() to "
            "checkpoint it"
        )
    if config.compile:
        raise ValueError("train_ensemble does not support compile=True")
    if get_world_size() > 1:
        raise RuntimeError("train_ensemble runs in one process; do not launch it under torchrun")


@torch.no_grad()
def _ema_update(ema: Sequence[Tensor], params: Sequence[Tensor], decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * params``, elementwise (so per seed)."""
    for e, p in zip(ema, params, strict=True):
        e.lerp_(p.detach(), 1.0 - decay)


def _ema_models(
    ensemble: EnsembleVelocity, models: Sequence[nn.Module], ema: Sequence[Tensor] | None
) -> list[nn.Module | None]:
    """Per seed, a frozen copy of its model holding the EMA weights (``None`` without EMA)."""
    if ema is None:
        return [None] * len(models)
    copies = [copy.deepcopy(m) for m in models]
    ensemble.load_into(copies, params=ema)
    for m in copies:
        m.eval().requires_grad_(False)
    return list(copies)


def train_ensemble(
    models: Sequence[nn.Module],
    loss_fn: BlockLossFn,
    sample_batches: Sequence[BatchFn],
    config: TrainConfig,
    seeds: Sequence[int],
) -> list[TrainResult]:
    """Train ``models[s]`` on ``sample_batches[s]`` with seed ``seeds[s]``, all S at once.

    Seed ``s``'s result equals (up to float rounding)
    ``train(models[s], loss_fn, sample_batches[s], dataclasses.replace(config, seed=seeds[s]))``;
    ``config.seed`` itself is not used. Each model is trained in place, like :func:`train`; its
    ``TrainResult`` has its own losses and EMA model, and ``wall_seconds`` is the whole ensemble's.
    ``config.prefetch`` is ignored (batches are drawn in step order either way, so results do not
    depend on it); checkpoints, ``compile`` and torchrun are not supported.
    """
    models = list(models)
    seeds = list(seeds)
    _check_inputs(models, loss_fn, sample_batches, config, seeds)
    device = choose_device(config.device)
    for m in models:
        m.to(device).train()
    ensemble = EnsembleVelocity(models).to(device).train()
    params = list(ensemble.params)
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(config))
    decay = float(config.ema_decay or 0.0)
    ema = [p.detach().clone() for p in params] if decay else None
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if config.amp and device.type == "cuda"
        else contextlib.nullcontext()
    )
    losses: list[list[float]] = [[] for _ in models]
    t0 = time.perf_counter()
    bar = tqdm(total=config.steps, desc=config.desc, disable=not config.progress, leave=False)
    for step in range(config.steps):
        # like train(): the global RNG is a per-(seed, step) stream (vmap's default
        # randomness="error" refuses dropout, so nothing draws from it here)
        # (the CPU generator only: torch.manual_seed would also queue a lazy CUDA seeding with a
        # captured stack trace on every step when CUDA is not initialised, ~10% of a 2D run)
        seed_step = stream_seed(seeds[0], step, "model")
        if device.type == "cpu":
            torch.default_generator.manual_seed(seed_step)
        else:
            torch.manual_seed(seed_step)
        pairs = seed_blocked_pairs(
            [
                sample(config.batch_size, generator_for(seed, step, "data"))
                for sample, seed in zip(sample_batches, seeds, strict=True)
            ]
        ).to(device)
        gens = [generator_for(seed, step, "loss") for seed in seeds]
        with autocast:
            per_seed = loss_fn.block_losses(ensemble, pairs, gens)
        if per_seed.shape != (len(models),):
            raise ValueError(
                f"block_losses must return one loss per seed ({len(models)},), got "
                f"{tuple(per_seed.shape)}"
            )
        if not torch.isfinite(per_seed).all():
            bad = [seeds[i] for i in torch.nonzero(~torch.isfinite(per_seed)).flatten().tolist()]
            raise FloatingPointError(
                f"loss became non-finite at step {step} for seed(s) {bad}; lower the lr"
            )
        opt.zero_grad(set_to_none=True)
        per_seed.sum().backward()  # model s's gradient is its own loss's gradient
        if config.grad_clip is not None:
            clip_grad_norm_per_model(params, config.grad_clip)
        opt.step()
        sched.step()
        if ema is not None:
            _ema_update(ema, params, decay)
        values = per_seed.detach().float().cpu().tolist()
        for s, v in enumerate(values):
            losses[s].append(v)
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(values) / len(values):.4f}")
    bar.close()
    wall = time.perf_counter() - t0
    ensemble.load_into(models)
    ema_models = _ema_models(ensemble, models, ema)
    for m in models:
        m.eval()
    return [
        TrainResult(raw_model=m, ema_model=e, losses=loss, wall_seconds=wall, steps=config.steps)
        for m, e, loss in zip(models, ema_models, losses, strict=True)
    ]
