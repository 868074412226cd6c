"""Checks for lesson 07 (digits): the pixel scale and one Euler step on image batches.

- ``to_pixels(levels)``: scikit-learn's grey levels ``0..16`` to ``x = v / 8 - 1`` in ``[-1, 1]``;
- ``one_step(model, noise)``: ``noise + model(noise, t=0)`` for a batch ``(n, 1, 8, 8)``, the model
  called as ``model(x, t)`` with ``t`` of shape ``(n,)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from bezkit.exercises.result import CheckResult, as_array, attempt, fmt

__all__ = ["ImageVelocity", "check_one_step", "check_to_pixels"]


def check_to_pixels(fn: Callable[[Tensor], Tensor]) -> CheckResult:
    """Check ``fn(levels)`` on the 17 grey levels 0..16."""
    name = "7.1 pixel scale"
    levels = torch.arange(17, dtype=torch.float64)
    got = attempt(name, fn, levels.clone())
    if isinstance(got, CheckResult):
        return got
    value = as_array(got, (17,))
    if isinstance(value, str):
        return CheckResult.fail(name, f"for the 17 levels 0..16 {value}.")
    want = (levels / 8 - 1).numpy()
    if np.allclose(value, want):
        return CheckResult.ok(name, "0 -> -1 (background), 8 -> 0, 16 -> 1.")
    hint = ""
    if np.allclose(value, levels.numpy() / 16):
        hint = " That is [0, 1]; the lessons use [-1, 1] like the source noise's scale."
    elif np.allclose(value, levels.numpy() / 16 - 1):
        hint = " Divide by 8, not 16: the range must end at +1."
    return CheckResult.fail(
        name, f"levels 0, 8, 16 gave {fmt(value[[0, 8, 16]])}, expected [-1.0, 0.0, 1.0].{hint}"
    )


class ImageVelocity(nn.Module):
    """``v(x, t) = 0.5 - x + t`` on images; records the shape of every ``t`` it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.t_shapes: list[tuple[int, ...]] = []

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``v(x, t) = 0.5 - x + t`` per pixel, recording each ``t``'s shape; ``t`` must have shape
        ``(n,)``."""
        t = torch.as_tensor(t, dtype=x.dtype)
        self.t_shapes.append(tuple(t.shape))
        if t.shape != (x.shape[0],):
            raise ValueError(
                f"model(x, t) takes t of shape (n,) = ({x.shape[0]},), got {tuple(t.shape)}"
            )
        return 0.5 - x + t.view(-1, *([1] * (x.ndim - 1)))


def check_one_step(fn: Callable[[nn.Module, Tensor], Tensor]) -> CheckResult:
    """Check ``fn(model, noise)`` is one Euler step from t = 0 on a batch of 3 digit-sized images."""
    name = "7.2 one Euler step on images"
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = ImageVelocity()
    got = attempt(name, fn, model, noise.clone())
    if isinstance(got, CheckResult):
        return got
    value = as_array(got, (3, 1, 8, 8))
    if isinstance(value, str):
        return CheckResult.fail(name, f"{value}: a sample has the shape of the noise.")
    if len(model.t_shapes) != 1:
        return CheckResult.fail(
            name, f"one step calls the model once, you called it {len(model.t_shapes)} times."
        )
    want = (noise + 0.5 - noise).numpy()
    if np.allclose(value, want):
        return CheckResult.ok(name, "noise + v(noise, 0) with t of shape (n,).")
    hint = ""
    if np.allclose(value, (0.5 - noise).numpy()):
        hint = " That is the velocity; the sample is the noise plus it."
    elif np.allclose(value, (noise + 1.5 - noise).numpy()):
        hint = " You called the model at t = 1; one step from the noise starts at t = 0."
    return CheckResult.fail(
        name,
        f"pixel (0, 0) of image 0 is {fmt(value[0, 0, 0, 0])}, expected {fmt(want[0, 0, 0, 0])}.{hint}",
    )
