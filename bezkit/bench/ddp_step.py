"""One process under torchrun: the trainer's steps through ``DistributedDataParallel``.

    torchrun --standalone --nproc_per_node=1 -m bezkit.bench.ddp_step --out ddp.json

joins a process group (NCCL on CUDA, gloo on the CPU) even with one process, wraps a U-Net and a
B-DENSE student in DDP and trains each with ``bezkit.training.train`` (the B-DENSE loss reaches
the branches through DDP's ``forward``): ``--warmup`` untimed steps, then ``--steps`` timed ones;
then writes what happened as JSON. With one
process nothing is averaged, but the process group, the DDP wrapper, its gradient hooks and the
backend's collectives all run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.pairs import Pairs
from bezkit.experiments.images.presets import StandardNormal
from bezkit.files.atomic import atomic_write_bytes
from bezkit.methods.bdense import BDenseLoss, branched_from_teacher
from bezkit.models.unet import UNetVelocity, unet_config
from bezkit.training.config import TrainConfig
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import train

__all__ = ["SIZES", "main"]

SIZES = {
    "micro": unet_config("tiny", base_channels=8, channel_mults=(1,), num_res_blocks=1,
                         attention_resolutions=()),
    "tiny": unet_config("tiny"),
    "cifar10": unet_config("cifar10"),
}  # fmt: skip


def _timed_train(
    model: nn.Module, loss: object, sample: object, config: TrainConfig, warmup: int
) -> dict:
    """``warmup`` untimed steps (process-group start, autotuning, DDP's first buckets), then
    ``config.steps`` timed ones with the same trainer."""
    warm = train(model, loss, sample, replace(config, steps=warmup))  # type: ignore[arg-type]
    if config.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = train(model, loss, sample, config)  # type: ignore[arg-type]
    if config.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    losses = [*warm.losses, *result.losses]
    return {
        "warmup_steps": warmup,
        "steps": config.steps,
        "seconds": seconds,
        "ms_per_step": seconds / config.steps * 1e3,
        "finite": all(torch.isfinite(torch.tensor(losses)).tolist()),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the DDP steps and write the JSON report."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    p.add_argument("--size", choices=tuple(SIZES), default="micro", help="the U-Net")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="timed steps, after the warm-up")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(1)  # small models on shared cores: one thread is fastest
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    backend = "nccl" if cuda else "gloo"
    t0 = time.perf_counter()
    dist.init_process_group(backend=backend)
    report: dict = {
        "backend": dist.get_backend(),
        "world_size": dist.get_world_size(),
        "device": str(device),
        "init_seconds": time.perf_counter() - t0,
    }
    try:
        cfg = SIZES[args.size]
        shape = (cfg["in_channels"], cfg["image_size"], cfg["image_size"])
        torch.manual_seed(0)
        unet = UNetVelocity(**cfg).to(device)
        coupling = IndependentCoupling(StandardNormal(shape), StandardNormal(shape))
        config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=1e-4, ema_decay=0.999,
                             device=str(device), amp=cuda, progress=False)  # fmt: skip
        ddp_unet = nn.parallel.DistributedDataParallel(
            unet, device_ids=[local_rank] if cuda else None
        )
        report["flow"] = _timed_train(
            ddp_unet, FlowMatchingLoss(), coupling.sample, config, args.warmup
        )

        student = branched_from_teacher(unet.cpu(), 2).to(device)
        ddp_student = nn.parallel.DistributedDataParallel(
            student, device_ids=[local_rank] if cuda else None
        )

        def trajectory(n: int, generator: torch.Generator) -> Pairs:  # (Z_0, Z_1/2, Z_1) stand-ins
            pairs = coupling.sample(n, generator)
            return Pairs(pairs.x0, pairs.x1, ((pairs.x0 + pairs.x1) / 2,))

        report["bdense"] = _timed_train(ddp_student, BDenseLoss(2), trajectory, config, args.warmup)
        dist.barrier()
        report["ok"] = report["flow"]["finite"] and report["bdense"]["finite"]
    finally:
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_bytes(args.out, (json.dumps(report, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
