"""Every ``bezkit images`` stage end to end on generated CIFAR-format data.

``run_pipeline`` writes random images in the official CIFAR-10 layout
(``bezkit.data.cifar10.write_cifar10_fixture``), then runs, with the ``cifar10`` preset shrunk to a
few steps and pairs: the 1-RF, its forward pairs cut into two segments, the 2-RF, one-step
distillation, reverse pairs and Bezier distillation, B-DENSE on the segments, and the evaluation
of every model (W2, sliced W2 and, given Inception weights, FID). It checks that each stage wrote
loadable weights and that the numbers are finite, and records each stage's wall time. The network
can be the preset's (GPU) or a small one (CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bezkit.data.cifar10 import write_cifar10_fixture
from bezkit.experiments.images import (
    evaluate_images,
    generate_pairs,
    get_preset,
    train_from_pairs,
    train_rectified_flow,
)
from bezkit.training.model_io import load_model

__all__ = ["MICRO_UNET", "run_pipeline"]

MICRO_UNET = {"base_channels": 8, "channel_mults": (1,), "num_res_blocks": 1,
              "attention_resolutions": ()}  # fmt: skip


def run_pipeline(
    root: str | Path,
    *,
    device: str,
    micro: bool,
    steps: int = 2,
    batch: int = 8,
    fid_weights: str | Path | None = None,
) -> dict[str, Any]:
    """Run every stage in ``root`` (see the module doc); returns seconds per stage, the
    evaluations and ``ok`` (every stage wrote loadable weights, every metric finite)."""
    root = Path(root)
    data = root / "data"
    write_cifar10_fixture(data, per_file=16)  # 80 train, 16 test images
    stage = {"steps": steps, "batch_size": batch, "warmup_steps": 0}
    preset = get_preset(
        "cifar10", flow=stage, reflow=stage, distill=stage, n_pairs=16, shard_size=8,
        teacher_steps=4, segments=2, branches=2, pair_batch_size=16, eval_n=16,
        eval_steps=(1, 2), sample_batch_size=16, checkpoint_every=1, prefetch=0, device=device,
        amp=device.startswith("cuda"), verify_data=False,
        **({"unet": MICRO_UNET} if micro else {}),
    )  # fmt: skip
    seconds: dict[str, float] = {}
    quiet = {"progress": False}

    def timed(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds[name] = time.perf_counter() - t0
        return out

    r = root / "runs"
    timed("train 1-RF", train_rectified_flow, preset, r / "1rf", data_root=data, **quiet)
    timed("forward pairs (2 segments)", generate_pairs, r / "1rf", preset, r / "fwd",
          data_root=data, **quiet)  # fmt: skip
    timed("reflow 2-RF", train_from_pairs, "reflow", r / "1rf", r / "fwd", preset, r / "2rf",
          **quiet)  # fmt: skip
    timed("distill (1 step)", train_from_pairs, "distill", r / "1rf", r / "fwd", preset,
          r / "distill", **quiet)  # fmt: skip
    timed("reverse pairs", generate_pairs, r / "1rf", preset, r / "rev", direction="reverse",
          data_root=data, **quiet)  # fmt: skip
    timed("Bezier distillation", train_from_pairs, "bezier", r / "1rf", r / "rev", preset,
          r / "bezier", **quiet)  # fmt: skip
    timed("B-DENSE (K = 2)", train_from_pairs, "bdense", r / "1rf", r / "fwd", preset,
          r / "bdense", **quiet)  # fmt: skip
    evaluations: dict[str, Any] = {}
    models = ["1rf", "2rf", "distill", "bezier", "bdense"]
    for name in models:
        load_model(r / name)  # the final weights load (hash-checked)
        weights = fid_weights if name == "1rf" else None
        evaluations[name] = timed(
            f"evaluate {name}", evaluate_images, r / name, preset, data_root=data, device=device,
            fid_weights=weights, cache=root / "cache",
        )  # fmt: skip
    finite = all(
        math.isfinite(v)
        for e in evaluations.values()
        for key in ("w2", "sliced_w2", "fid")
        for v in e.get(key, {}).values()
    )
    return {"seconds": seconds, "evaluations": evaluations, "ok": finite, "models": models}
