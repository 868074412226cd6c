"""Bezier distillation's pairs from a pairs folder, with the guides computed batch by batch.

For CIFAR-10 a million pairs with one guide image each would double the disk and memory of the
pairs; instead each training batch computes its guides from the teachers when it is drawn, with
``make_bezier_pairs`` itself, so the guides are exactly the method's.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from bezkit.couplings.pairs import Pairs
from bezkit.methods.bezier_distillation import BezierDistillConfig, make_bezier_pairs

__all__ = ["BatchRows", "BezierShardPairs"]


class BatchRows:
    """A sampler that hands back given rows (``make_bezier_pairs`` on one batch of pairs)."""

    name = "rows"

    def __init__(self, x: Tensor) -> None:
        self.x = x
        self.data_shape = tuple(x.shape[1:])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The held rows (``n`` must be their number; ``generator`` is not used)."""
        if n != self.x.shape[0]:
            raise ValueError(f"{n} rows requested, {self.x.shape[0]} held")
        return self.x


class BezierShardPairs:
    """Bezier distillation's pairs, batch by batch: pairs from ``pairs`` (a coupling, e.g.
    ``ShardPairs`` of reverse pairs for ``endpoint="data"``), guides computed from the teachers by
    ``make_bezier_pairs`` itself (on the teachers' device). ``make_bezier_pairs`` is called with
    ``endpoint="independent"`` on samplers that return the batch's own ``x0`` and ``x1``, so the
    pairing is the folder's and everything else (guide times, guide state, placement,
    multi-teacher) is the method's own code. The Euler guide state is a deterministic function
    of the pair, so this equals computing every guide once up front."""

    def __init__(
        self,
        pairs: Any,
        teachers: Sequence[nn.Module],
        cfg: BezierDistillConfig,
        *,
        device: torch.device | str = "cpu",
        amp: bool = False,
    ) -> None:
        self.pairs, self.teachers = pairs, list(teachers)
        self.cfg = dataclasses.replace(cfg, endpoint="independent")
        self.cfg.validate(len(self.teachers))
        self.device, self.amp = torch.device(device), amp

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        """``n`` pairs of ``pairs`` with their Bezier guides (float32)."""
        p = self.pairs.sample(n, generator).to(self.device)
        cfg = dataclasses.replace(self.cfg, n_pairs=n)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.amp and self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        with autocast:
            pool = make_bezier_pairs(self.teachers, BatchRows(p.x0), BatchRows(p.x1), cfg)
        return Pairs(p.x0, p.x1, tuple(g.float() for g in pool.pairs.guides))
