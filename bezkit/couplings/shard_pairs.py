"""A folder of image teacher pairs (``bezkit.experiments.images.generate_pairs``) as a coupling.

The folder holds ``pairs.json`` (format ``bezkit-image-pairs/1``: direction, segment count, pair
count, teacher fingerprint, ...) and one ``PairShardDataset`` folder per time segment,
``segment-1`` .. ``segment-S`` (``bezkit.couplings.pair_shards``). Forward pairs are
``(X0, ODE_teacher(X0))`` with ``X0 ~ N(0, I)``; cut into ``S`` segments, segment ``j`` holds the
teacher's states ``(Z_{(j-1)/S}, Z_{j/S})``, so the folder also gives the intermediate states
``Z_{j/K}`` for any ``K`` dividing ``S`` (B-DENSE's targets). Reverse pairs are
``(ODE_teacher^-1(X1), X1)`` with real images ``X1``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bezkit.couplings.pair_shards import PairShardDataset
from bezkit.couplings.pairs import Pairs

__all__ = ["PAIRS_FORMAT", "PAIRS_INFO", "ShardPairs"]

PAIRS_FORMAT = "bezkit-image-pairs/1"
PAIRS_INFO = "pairs.json"


class ShardPairs:
    """A pairs folder of ``generate_pairs`` as a coupling: ``sample(n, generator) -> Pairs``.

    ``(x0, x1)`` is (noise, teacher endpoint) for forward pairs and (``ODE^-1(image)``, image) for
    reverse pairs. ``states=K`` (forward pairs, K dividing the segment count) adds the teacher's
    states at ``t_j = j / K``, j = 1..K-1, as ``guides``: the layout of
    ``bezkit.methods.bdense.make_trajectory_pool``. Pairs are drawn uniformly with replacement by
    the same ``randint`` as ``PairShardDataset.sample`` and ``PairPool.sample``; a folder smaller
    than ``in_memory_bytes`` is read into memory once, a larger one row by row (memory-mapped).
    """

    def __init__(
        self, root: str | Path, *, states: int | None = None, in_memory_bytes: int = 1 << 30
    ) -> None:
        self.root = Path(root)
        path = self.root / PAIRS_INFO
        if not path.is_file():
            raise FileNotFoundError(f"no {PAIRS_INFO} in {self.root}: not a pairs folder")
        self.info = json.loads(path.read_text())
        if self.info.get("format") != PAIRS_FORMAT:
            raise ValueError(f"{path}: unknown format {self.info.get('format')!r}")
        k = int(self.info["segments"])
        self.reverse = self.info["direction"] == "reverse"
        self.segments = [PairShardDataset(self.root / f"segment-{j}") for j in range(1, k + 1)]
        self.n = len(self.segments[0])
        self.states = states
        # which segment's endpoint is which state: x1 at t = 1 is the last segment's
        ends = [k - 1]
        if states is not None:
            if self.reverse or states < 1 or k % states:
                raise ValueError(
                    f"teacher states at t = j/{states} need forward pairs cut into a multiple of "
                    f"{states} segments; {self.root} has {k} {self.info['direction']} segment(s) "
                    f"(generate them with segments={states})"
                )
            ends = [j * (k // states) - 1 for j in range(1, states + 1)]
        self._ends = ends
        shape = tuple(self.info["data_shape"])
        tensors = 1 + len(ends)
        size = self.n * tensors * int(np.prod(shape)) * 4
        self._memory: list[Tensor] | None = None
        if size <= in_memory_bytes:
            self._memory = self._read_all()

    def _read_all(self) -> list[Tensor]:
        def column(seg: PairShardDataset, name: str) -> Tensor:
            parts = seg.iter_shards()
            return torch.cat([getattr(p, name) for p in parts])

        if self.reverse:
            return [column(self.segments[0], "x1"), column(self.segments[0], "x0")]
        return [column(self.segments[0], "x0")] + [
            column(self.segments[j], "x1") for j in self._ends
        ]

    def __len__(self) -> int:
        return self.n

    def _rows(self, idx: Tensor) -> list[Tensor]:
        if self._memory is not None:
            return [t[idx] for t in self._memory]
        shape = tuple(self.info["data_shape"])
        cols = [torch.empty(len(idx), *shape) for _ in range(1 + len(self._ends))]
        for pos in torch.argsort(idx).tolist():
            i = int(idx[pos])
            a, b = self.segments[0][i]
            if self.reverse:
                cols[0][pos], cols[1][pos] = b, a
                continue
            cols[0][pos] = a
            for c, j in enumerate(self._ends, start=1):
                cols[c][pos] = b if j == 0 else self.segments[j][i][1]
        return cols

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        """``n`` pairs drawn uniformly with replacement (``randint`` on ``generator``)."""
        idx = torch.randint(0, self.n, (n,), generator=generator)
        cols = self._rows(idx)
        return Pairs(cols[0], cols[-1], tuple(cols[1:-1]))

    def all_pairs(self) -> Pairs:
        """Every pair in order (in memory: for small folders and tests)."""
        cols = self._memory if self._memory is not None else self._read_all()
        return Pairs(cols[0], cols[-1], tuple(cols[1:-1]))

    def __repr__(self) -> str:
        return (
            f"ShardPairs({str(self.root)!r}, n={self.n}, {self.info['direction']}, "
            f"segments={len(self.segments)}, states={self.states})"
        )
