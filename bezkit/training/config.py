"""Training configuration, one dataclass for every method and data type."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SMALL_MODEL_PARAMETERS", "TrainConfig"]

#: Below this many parameters ``TrainConfig(cpu_threads="auto")`` trains on one CPU thread.
SMALL_MODEL_PARAMETERS = 2_000_000


@dataclass
class TrainConfig:
    """Options of :func:`bezkit.training.train`.

    ``lr`` follows a linear warm-up over ``warmup_steps`` then ``schedule`` ("cosine" to 0 at the last
    step, or "constant"). ``prefetch`` > 0 prepares that many batches in a background thread (useful
    when pairing is expensive, e.g. minibatch OT). ``amp`` enables bf16 autocast on CUDA only.
    ``grad_clip`` None: no clipping. ``val_every`` > 0: every that many steps and at the last one,
    the trainer's ``validation`` loss of the model to sample with is measured and the weights with
    the lowest one are kept (``TrainResult.best_model``, checkpoint selection by validation loss).

    ``cpu_threads``: torch's intra-op threads while training on the CPU, the caller's setting
    restored afterwards. ``"auto"`` (the default) uses 1 thread for a small model (fewer than
    ``SMALL_MODEL_PARAMETERS`` parameters, e.g. every 2D MLP of bezkit), where more threads only
    add synchronisation (``benchmarks/threads.py``: 24x faster on 2 busy cores, RESULTS.md), and
    leaves the setting alone for larger models; an integer sets that many; ``None`` never
    changes it.
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    compile: bool = False
    prefetch: int = 0
    progress: bool = True
    desc: str = "train"
    checkpoint_path: str | None = None
    checkpoint_every: int = 0
    val_every: int = 0
    cpu_threads: int | str | None = "auto"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown lr schedule {self.schedule!r}; use 'cosine' or 'constant'")
        if (
            self.warmup_steps < 0
            or self.prefetch < 0
            or self.checkpoint_every < 0
            or self.val_every < 0
        ):
            raise ValueError("warmup_steps, prefetch, checkpoint_every and val_every must be >= 0")
        auto = self.cpu_threads is None or self.cpu_threads == "auto"
        if not auto and not (
            isinstance(self.cpu_threads, int)
            and not isinstance(self.cpu_threads, bool)
            and self.cpu_threads >= 1
        ):
            raise ValueError(
                f"cpu_threads must be 'auto', None or an integer >= 1, got {self.cpu_threads!r}"
            )
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON-able), as stored in checkpoint metadata (``val_every`` only
        when used, so the metadata of a run without validation is as before; ``cpu_threads``
        only when it is not the default: how a run is scheduled on the CPU is not part of what
        it trains, and checkpoints (and their recipes) written before it existed stay equal)."""
        out = asdict(self)
        if not self.val_every:
            del out["val_every"]
        if out["cpu_threads"] == "auto":
            del out["cpu_threads"]
        return out
