"""Evaluation of image models: seeded Euler samples, W2 in pixel space, the digits Frechet
distance or FID, each with its noise floor; and a grid of samples for plotting."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bezkit.experiments.images.presets import (
    ImagePreset,
    data_shape,
    image_data,
    reference_images,
)
from bezkit.metrics.digits_classifier import digits_frechet_distance
from bezkit.metrics.fid import FID_WEIGHTS_ENV, cifar10_fid
from bezkit.metrics.inception import fid_backend
from bezkit.metrics.wasserstein import sliced_wasserstein2, wasserstein2
from bezkit.solvers.ode import solve_ode
from bezkit.training.device import choose_device
from bezkit.training.model_io import load_model

__all__ = ["evaluate_images", "image_grid", "sample_images"]


@torch.no_grad()
def sample_images(
    model: nn.Module,
    n: int,
    *,
    shape: Sequence[int],
    steps: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 1000,
    solver: str = "euler",
    x0: Tensor | None = None,
) -> tuple[Tensor, int]:
    """``n`` samples (on the CPU, clamped to [-1, 1]) from seeded noise with ``steps`` solver
    steps, and the NFE per sample."""
    dev = torch.device(device)
    model = model.to(dev).eval()
    if x0 is None:
        x0 = torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))
    outs, nfe = [], 0
    for xb in x0.split(batch_size):
        sol = solve_ode(model, xb.to(dev), method=solver, steps=steps)
        outs.append(sol.x.float().cpu())
        nfe = sol.nfe
    return torch.cat(outs).clamp(-1.0, 1.0), nfe


def evaluate_images(
    model: str | Path | nn.Module,
    preset: ImagePreset,
    *,
    steps: Sequence[int] | None = None,
    n: int | None = None,
    seed: int = 0,
    data_root: str | Path | None = None,
    device: str | torch.device | None = None,
    cache: str | Path | None = None,
    fid_weights: str | Path | None = None,
    fid_stats: str | Path | None = None,
    frechet: bool = True,
    w2_max: int = 2048,
) -> dict[str, Any]:
    """Metrics of a model's Euler samples (seeded noise) against held-out images, with noise floors.

    Digits: ``w2`` exact W2 between the ``n`` samples and the test split (359 images), ``sliced_w2``
    on equal sizes (the first ``m = min(n, 359)`` samples), ``frechet`` in the digits classifier's
    features (``bezkit.metrics.frechet``); ``noise_floor`` holds the same numbers for ``n`` real
    train images in place of the samples (what a perfect generator of the training set scores).
    CIFAR-10: ``w2`` and ``sliced_w2`` on the first ``min(n, w2_max)`` / ``min(n, 10000)``
    samples against the test split, and ``fid`` against the train-split statistics (needs the FID
    Inception weights: ``fid_weights`` or ``$BEZKIT_FID_WEIGHTS``; skipped with a note if absent).
    Every model is sampled by Euler on its velocity ``model(x, t)``; a B-DENSE student's velocity
    is its last branch's, so its one-step sample is branch K (``BranchedVelocity.sample``).
    """
    if not isinstance(model, nn.Module):
        model, _ = load_model(model)
    steps = sorted(set(preset.eval_steps if steps is None else steps))
    n = preset.eval_n if n is None else n
    dev = choose_device(device if device is not None else preset.device)
    shape = data_shape(preset)
    test = reference_images(image_data(preset, "test", data_root=data_root, flip=False))
    train_ds = image_data(preset, "train", data_root=data_root, flip=False)
    perm = torch.randperm(len(train_ds), generator=torch.Generator().manual_seed(seed + 1))
    if preset.dataset == "digits" and n > len(perm):
        raise ValueError(f"n = {n} exceeds the {len(perm)} train images of the noise floor")
    real = reference_images(train_ds, perm[: n if preset.dataset == "digits" else len(test)])
    m_w2 = min(n, len(test), w2_max)
    m_sliced = min(n, len(test))
    ref_w2, ref_sliced = test[:m_w2], test[:m_sliced]

    fid_fn: Callable[[Tensor], float] | None = None
    out: dict[str, Any] = {"n": n, "steps": steps, "seed": seed, "nfe": {}, "w2": {},
                           "sliced_w2": {}, "n_reference": len(test)}  # fmt: skip
    if preset.dataset == "digits" and frechet:
        out["frechet"] = {}

        def digits_fd(x: Tensor) -> float:
            return digits_frechet_distance(x, test, cache=cache)

        fid_fn = digits_fd

    elif preset.dataset == "cifar10":
        fid_fn = _cifar_fid(fid_weights, fid_stats, data_root, cache, dev, out,
                            verify=preset.verify_data)  # fmt: skip

    t0 = time.perf_counter()
    for s in steps:
        x, nfe = sample_images(
            model, n, shape=shape, steps=s, seed=seed, device=dev,
            batch_size=preset.sample_batch_size,
        )  # fmt: skip
        key = str(s)
        out["nfe"][key] = nfe
        out["w2"][key] = wasserstein2(x[:m_w2], ref_w2)
        out["sliced_w2"][key] = sliced_wasserstein2(x[:m_sliced], ref_sliced, seed=seed)
        if fid_fn is not None:
            out["frechet" if preset.dataset == "digits" else "fid"][key] = fid_fn(x)
    out["sample_seconds"] = time.perf_counter() - t0
    floor = {
        "w2": wasserstein2(real[:m_w2], ref_w2),
        "sliced_w2": sliced_wasserstein2(real[:m_sliced], ref_sliced, seed=seed),
    }
    if fid_fn is not None and preset.dataset == "digits":
        floor["frechet"] = fid_fn(real)  # n real train images against the test split
    elif fid_fn is not None:
        floor["fid"] = fid_fn(test)  # the test split against the train statistics
    out["noise_floor"] = floor
    return out


def _cifar_fid(
    weights: str | Path | None,
    stats: str | Path | None,
    data_root: str | Path | None,
    cache: str | Path | None,
    device: torch.device,
    out: dict[str, Any],
    *,
    verify: bool,
) -> Callable[[Tensor], float] | None:
    if weights is None and not os.environ.get(FID_WEIGHTS_ENV):
        out["fid_note"] = (f"FID skipped: no Inception weights (pass --fid-weights or set "
                           f"${FID_WEIGHTS_ENV})")  # fmt: skip
        return None
    out["fid"] = {}
    out["fid_backend"] = fid_backend()

    def fid(x: Tensor) -> float:
        return cifar10_fid(
            x, weights, reference_stats=stats, cifar_root=data_root, cache=cache, device=device,
            verify=verify,
        )  # fmt: skip

    return fid


def image_grid(images: Tensor, nrow: int = 8, *, pad: int = 1) -> np.ndarray:
    """Images ``(n, C, H, W)`` in [-1, 1] tiled into one ``(rows, cols)`` (grey) or
    ``(rows, cols, 3)`` array in [0, 1] for ``imshow``; ``pad`` pixels of white between tiles."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    grid = np.ones((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)
