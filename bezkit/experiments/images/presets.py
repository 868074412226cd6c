"""Image presets: everything that fixes an image run (data, U-Net, each stage's optimisation, the
teacher pairs and the evaluation), and the data and model they describe.

The U-Net of a preset is ``bezkit.models.unet.unet_config``'s (``"tiny"`` reduced for digits,
``"cifar10"`` as is), so the network is defined in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from bezkit.data.cifar10 import CIFAR10Dataset, uint8_to_unit_range
from bezkit.data.digits import DigitsDataset
from bezkit.models.unet import UNetVelocity, unet_config

__all__ = [
    "PRESETS",
    "ImagePreset",
    "StageConfig",
    "StandardNormal",
    "data_shape",
    "get_preset",
    "image_data",
    "new_unet",
    "reference_images",
]

STAGES = ("flow", "reflow", "distill")


@dataclass(frozen=True)
class StageConfig:
    """The optimisation of one training stage (the rest of ``TrainConfig`` comes from the preset)."""

    steps: int
    batch_size: int
    lr: float
    warmup_steps: int = 0
    ema_decay: float | None = None
    grad_clip: float | None = 1.0
    weight_decay: float = 0.0
    schedule: str = "cosine"


@dataclass(frozen=True)
class ImagePreset:
    """Everything that fixes an image run: data, U-Net, each stage's optimisation, the pairs and
    the evaluation. ``get_preset(name, **overrides)`` returns a modified copy."""

    name: str
    dataset: Literal["digits", "cifar10"]
    unet: dict[str, Any]
    flow: StageConfig  # the 1-RF
    reflow: StageConfig  # the k-RF (k >= 2), from its teacher's weights
    distill: StageConfig  # distill, Bezier distillation and B-DENSE students
    n_pairs: int
    shard_size: int
    teacher_steps: int  # Euler steps of the teacher's ODE when generating pairs
    teacher_solver: str = "euler"
    segments: int = 1  # forward pairs cut into this many time windows (B-DENSE needs branches | it)
    branches: int = 4  # B-DENSE's K
    pair_batch_size: int = 1024
    eval_n: int = 1000
    eval_steps: tuple[int, ...] = (1, 2, 4, 100)
    sample_batch_size: int = 1000
    amp: bool = False  # bf16 autocast (CUDA only)
    compile: bool = False
    prefetch: int = 0
    checkpoint_every: int = 0  # 0: only at the end
    device: str = "auto"
    cpu_threads: int | None = None  # the CLI sets torch.set_num_threads to this
    flip: bool = False  # random horizontal flips of the training images
    seed: int = 0
    verify_data: bool = True  # CIFAR-10: check each file's official md5 (False: test fixtures)
    data_checksums: dict[str, str] | None = None  # CIFAR-10: md5 per file instead of the official

    def stage(self, name: str) -> StageConfig:
        """The optimisation of stage ``name`` (``flow``, ``reflow`` or ``distill``)."""
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """The preset as a JSON-able dict (as stored in checkpoints' metadata)."""
        return dataclasses.asdict(self)


PRESETS: dict[str, ImagePreset] = {
    # 8x8 digits on a CPU: a 190k-parameter U-Net, one to two minutes per stage on one thread.
    "digits": ImagePreset(
        name="digits",
        dataset="digits",
        unet=unet_config("tiny", base_channels=16, channel_mults=(1, 2), num_res_blocks=1),
        flow=StageConfig(steps=2000, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.995),
        reflow=StageConfig(steps=600, batch_size=128, lr=1e-3, ema_decay=0.99),
        distill=StageConfig(steps=600, batch_size=128, lr=1e-3, ema_decay=0.99),
        n_pairs=5000,
        shard_size=1000,
        teacher_steps=48,
        segments=4,
        branches=4,
        eval_n=1000,
        eval_steps=(1, 2, 4, 48),
        device="cpu",
        cpu_threads=1,
        checkpoint_every=500,
    ),
    # CIFAR-10 on GPUs (DDPM++-like U-Net, 50.7M parameters); batch_size is per process.
    "cifar10": ImagePreset(
        name="cifar10",
        dataset="cifar10",
        unet=unet_config("cifar10"),
        flow=StageConfig(
            steps=400_000, batch_size=128, lr=2e-4, warmup_steps=5000, ema_decay=0.9999
        ),
        reflow=StageConfig(
            steps=200_000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9999
        ),
        distill=StageConfig(
            steps=100_000, batch_size=128, lr=1e-4, warmup_steps=1000, ema_decay=0.9999
        ),
        n_pairs=1_000_000,
        shard_size=10_000,
        teacher_steps=100,
        segments=1,
        branches=4,
        pair_batch_size=1000,
        eval_n=50_000,
        eval_steps=(1, 2, 4),
        sample_batch_size=1000,
        amp=True,
        compile=False,
        prefetch=2,
        checkpoint_every=5000,
        device="auto",
        flip=True,
    ),
}
# CIFAR-10 shrunk to run every stage in seconds on a CPU (tests, the CPU dry run, a first look at a
# GPU): the cifar10 data and settings with a 4-level-to-2-level, 8-channel U-Net (about 49k
# parameters), a handful of steps and pairs. Its numbers mean nothing; its code path is cifar10's.
PRESETS["cifar10-tiny"] = dataclasses.replace(
    PRESETS["cifar10"],
    name="cifar10-tiny",
    unet=unet_config("cifar10", base_channels=8, channel_mults=(1, 2), num_res_blocks=1),
    flow=StageConfig(steps=4, batch_size=8, lr=1e-3, warmup_steps=1, ema_decay=0.9),
    reflow=StageConfig(steps=4, batch_size=8, lr=1e-3, ema_decay=0.9),
    distill=StageConfig(steps=4, batch_size=8, lr=1e-3, ema_decay=0.9),
    n_pairs=16,
    shard_size=8,
    teacher_steps=4,
    segments=2,
    branches=2,
    pair_batch_size=16,
    eval_n=16,
    eval_steps=(1, 2),
    sample_batch_size=16,
    prefetch=0,
    checkpoint_every=2,
    cpu_threads=1,
)


def get_preset(name: str | ImagePreset, **overrides: Any) -> ImagePreset:
    """A preset by name (``digits``, ``cifar10``) with ``overrides`` applied. A stage may be
    overridden field by field: ``get_preset("digits", flow={"steps": 10})``."""
    preset = name if isinstance(name, ImagePreset) else PRESETS.get(name)
    if preset is None:
        raise ValueError(f"unknown image preset {name!r}; known: {', '.join(PRESETS)}")
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in ImagePreset.__dataclass_fields__:
            raise TypeError(f"unknown preset field {key!r}")
        if key in STAGES and isinstance(value, dict):
            value = dataclasses.replace(getattr(preset, key), **value)
        elif key == "unet":
            value = {**preset.unet, **value}
        changes[key] = value
    return dataclasses.replace(preset, **changes)


class StandardNormal:
    """The source ``pi0 = N(0, I)`` on images of shape ``data_shape``."""

    def __init__(self, data_shape: Sequence[int]) -> None:
        self.data_shape = tuple(int(s) for s in data_shape)
        self.name = "normal"

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws ``(n, *data_shape)`` from ``N(0, I)``."""
        return torch.randn(n, *self.data_shape, generator=generator)

    def __repr__(self) -> str:
        return f"StandardNormal{self.data_shape}"


def image_data(
    preset: ImagePreset,
    split: Literal["train", "test"] = "train",
    *,
    data_root: str | Path | None = None,
    flip: bool | None = None,
) -> DigitsDataset | CIFAR10Dataset:
    """The preset's images as a sampler (``sample(n, generator)``, ``data_shape``, ``images``
    or ``data``): ``DigitsDataset`` or ``CIFAR10Dataset`` (its ``data_root`` is required)."""
    flip = preset.flip if flip is None else flip
    if preset.dataset == "digits":
        return DigitsDataset(split, flip=flip)
    if data_root is None:
        raise ValueError("CIFAR-10 needs data_root: the folder holding cifar-10-batches-py/")
    return CIFAR10Dataset(
        data_root, split, flip=flip, verify=preset.verify_data, checksums=preset.data_checksums
    )


def reference_images(ds: DigitsDataset | CIFAR10Dataset, idx: Tensor | None = None) -> Tensor:
    """A dataset's images in [-1, 1] (rows ``idx``, or all), without flips."""
    if isinstance(ds, DigitsDataset):
        return ds.images if idx is None else ds.images[idx]
    return uint8_to_unit_range(ds.data if idx is None else ds.data[idx])


def data_shape(preset: ImagePreset) -> tuple[int, int, int]:
    """``(channels, height, width)`` of the preset's images."""
    size = preset.unet["image_size"]
    return (preset.unet["in_channels"], size, size)


def new_unet(preset: ImagePreset, *, seed: int = 0) -> UNetVelocity:
    """The preset's U-Net with seeded initial weights (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNetVelocity(**preset.unet)
