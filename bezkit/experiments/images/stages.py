"""The image training stages: the 1-RF, and every student from a folder of teacher pairs.

Each stage builds its pieces (data, teacher, pairs, student settings) and hands them to the
method's own recipe in ``bezkit.methods`` (``train_flow``, ``distill``, ``bdense_train``), with
``resume_from`` pointing at an interrupted run's state and ``checkpoint_metadata`` the stage's
metadata (written into every training state, so an interrupted run can be checked on resume); ``outputs.run_stage`` decides whether to
resume and writes the final weights. The tests check that each stage gives exactly the recipe's
result.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.shard_pairs import PAIRS_INFO, ShardPairs
from bezkit.experiments.images.bezier_pairs import BezierShardPairs
from bezkit.experiments.images.outputs import (
    Fit,
    StageResult,
    as_teacher,
    check_stage_output,
    run_stage,
    stage_config,
    stage_meta,
    state_stem,
)
from bezkit.experiments.images.presets import (
    ImagePreset,
    StandardNormal,
    data_shape,
    image_data,
    new_unet,
)
from bezkit.methods.bdense import BDenseConfig, bdense_train, branched_from_teacher
from bezkit.methods.bezier_distillation import BezierDistillConfig
from bezkit.methods.distillation import DistillConfig, distill
from bezkit.methods.flow import student_from, train_flow
from bezkit.methods.result import RecipeResult
from bezkit.models.factory import model_spec
from bezkit.training.config import TrainConfig
from bezkit.training.device import choose_device

__all__ = ["METHODS", "Method", "train_from_pairs", "train_rectified_flow"]

Method = Literal["reflow", "distill", "bezier", "bdense"]
METHODS: tuple[str, ...] = ("reflow", "distill", "bezier", "bdense")


def train_rectified_flow(
    preset: ImagePreset,
    out: str | Path,
    *,
    data_root: str | Path | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> StageResult:
    """The 1-RF: ``train_flow`` (linear path, tangent target, uniform t) on independent pairs
    (noise, image), from a fresh seeded U-Net; resumes an interrupted run of ``out``."""
    out = check_stage_output(out)  # before any work
    seed = preset.seed if seed is None else seed
    data = image_data(preset, "train", data_root=data_root)
    coupling = IndependentCoupling(StandardNormal(data_shape(preset)), data)
    config = stage_config(
        preset, preset.flow, seed=seed, device=device, state=state_stem(out), progress=progress,
        desc="1-RF",
    )  # fmt: skip
    model = new_unet(preset, seed=seed)
    return run_stage(
        out,
        lambda resume, meta: train_flow(
            model, coupling, config, resume_from=resume, checkpoint_metadata=meta
        ),
        lambda: model_spec(model),
        config,
        stage_meta(preset, "1-RF", 1, seed=seed),
        overwrite=overwrite,
    )


def _check_folder(folder: dict, path: Path, direction: str, fingerprint: str | None) -> None:
    if folder["direction"] != direction:
        raise ValueError(f"{path} holds {folder['direction']} pairs; this method needs "
                         f"{direction} pairs")  # fmt: skip
    if fingerprint is not None and folder["teacher"] != fingerprint:
        raise ValueError(f"{path} holds the pairs of another teacher (weights fingerprint "
                         f"{folder['teacher'][:12]}..., not {fingerprint[:12]}...)")  # fmt: skip


def _student_spec(teacher: nn.Module, branches: int | None) -> dict[str, Any]:
    """The ``model_spec`` of a student made from ``teacher`` (``student_from`` keeps the spec;
    B-DENSE's is ``branched_from_teacher``'s)."""
    if branches is None:
        return model_spec(teacher)
    return model_spec(branched_from_teacher(teacher, branches))


def _bezier_config(
    bezier: BezierDistillConfig | None,
    folder: dict,
    pairs_dir: Path,
    infos: list[dict[str, Any]],
    init: str,
) -> BezierDistillConfig:
    """The Bezier settings with the folder's pairing (checked against the endpoint teacher)."""
    cfg = bezier or BezierDistillConfig()
    cfg.validate(len(infos))
    want = {"data": "reverse", "teacher": "forward"}.get(cfg.endpoint)
    if want is None:
        raise ValueError("Bezier distillation from a pairs folder needs endpoint 'data' or "
                         "'teacher' ('independent' needs no teacher pairs)")  # fmt: skip
    _check_folder(folder, pairs_dir, want, infos[cfg.endpoint_teacher]["fingerprint"])
    return dataclasses.replace(
        cfg, n_pairs=folder["n_pairs"], teacher_steps=folder["steps"],
        teacher_solver=folder["method"], pair_seed=folder["seed"], init=init,  # type: ignore[arg-type]
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _MethodSettings:
    init: Literal["teacher", "scratch"]
    seed: int
    distill_steps: int
    bezier: BezierDistillConfig | None
    branches: int
    branch_weights: Sequence[float] | None
    restarts: bool


def _fit_for(
    method: str,
    models: list[nn.Module],
    infos: list[dict[str, Any]],
    folder: dict,
    pairs_dir: Path,
    preset: ImagePreset,
    config: TrainConfig,
    o: _MethodSettings,
    extra: dict[str, Any],
) -> tuple[Fit, nn.Module, int | None]:
    """The method's recipe as ``fit(resume_from, checkpoint_metadata)``, the teacher the student starts from, and
    B-DENSE's branch count (None otherwise); records the method's settings in ``extra``."""
    main = models[0]
    if method == "bezier":
        cfg = _bezier_config(o.bezier, folder, pairs_dir, infos, o.init)
        extra["bezier"] = dataclasses.asdict(cfg)
        main = models[cfg.endpoint_teacher]
        dev = choose_device(config.device)
        sampler = BezierShardPairs(ShardPairs(pairs_dir), [m.to(dev) for m in models], cfg,
                                   device=dev, amp=preset.amp)  # fmt: skip
        flow = cfg.flow()

        def fit(resume: Path | None, meta: dict[str, Any]) -> RecipeResult:
            student = student_from(main, o.init, seed=o.seed)
            return train_flow(student, sampler, config, flow, resume_from=resume,
                              checkpoint_metadata=meta)  # fmt: skip

        return fit, main, None
    if method == "bdense":
        states = ShardPairs(pairs_dir, states=o.branches)
        extra.update(branches=o.branches, branch_weights=o.branch_weights, restarts=o.restarts)
        bdense = BDenseConfig(num_branches=o.branches, weights=o.branch_weights,
                              restarts=o.restarts)  # fmt: skip
        return (
            lambda resume, meta: bdense_train(main, states, config, bdense, resume_from=resume,
                                              checkpoint_metadata=meta),
            main,
            o.branches,
        )  # fmt: skip
    pairs = ShardPairs(pairs_dir)
    if method == "distill":
        extra["distill_steps"] = o.distill_steps
        distillation = DistillConfig(steps=o.distill_steps, init=o.init)
        return (
            lambda resume, meta: distill(main, pairs, config, distillation, resume_from=resume,
                                         checkpoint_metadata=meta),
            main,
            None,
        )  # fmt: skip
    return (
        lambda resume, meta: train_flow(student_from(main, o.init, seed=o.seed), pairs, config,
                                        resume_from=resume, checkpoint_metadata=meta),
        main,
        None,
    )  # fmt: skip


def train_from_pairs(
    method: Method,
    teachers: str | Path | nn.Module | Sequence[str | Path | nn.Module],
    pairs_dir: str | Path,
    preset: ImagePreset,
    out: str | Path,
    *,
    init: Literal["teacher", "scratch"] = "teacher",
    distill_steps: int = 1,
    bezier: BezierDistillConfig | None = None,
    branches: int | None = None,
    branch_weights: Sequence[float] | None = None,
    restarts: bool = False,
    seed: int | None = None,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> StageResult:
    """Train a model from the pairs in ``pairs_dir`` (made by ``generate_pairs``):

    - ``"reflow"``: the (k+1)-RF, linear path, tangent target, uniform t (``train_flow`` on the
      teacher's pairs from the teacher's weights, as ``reflow_round``).
    - ``"distill"``: ``distill_steps``-step distillation, t on ``{0, 1/N, ...}`` (``distill``).
    - ``"bezier"``: Bezier distillation with ``bezier`` (a ``BezierDistillConfig``; its pairing
      is the folder's: reverse pairs for ``endpoint="data"``, forward for ``"teacher"``; its
      ``n_pairs``, ``teacher_steps``, ``pair_seed`` are the folder's); several teachers allowed.
    - ``"bdense"``: B-DENSE with ``branches`` branches on the teacher states of the segments
      (``bdense_train``).

    The student starts from the (first / endpoint) teacher, or from scratch (``init``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    out = check_stage_output(out)  # before any work
    if isinstance(teachers, str | Path | nn.Module):
        teachers = [teachers]
    loaded = [as_teacher(t) for t in teachers]
    models = [m for m, _ in loaded]
    infos = [i for _, i in loaded]
    if method != "bezier" and len(models) != 1:
        raise ValueError(f"{method} takes one teacher, got {len(models)}")
    seed = preset.seed if seed is None else seed
    config = stage_config(
        preset, preset.reflow if method == "reflow" else preset.distill, seed=seed, device=device,
        state=state_stem(out), progress=progress, desc=method,
    )  # fmt: skip
    pairs_dir = Path(pairs_dir)
    if not (pairs_dir / PAIRS_INFO).is_file():
        raise FileNotFoundError(f"no {PAIRS_INFO} in {pairs_dir}: run generate_pairs first")
    folder = json.loads((pairs_dir / PAIRS_INFO).read_text())
    k = infos[0]["k"]
    extra: dict[str, Any] = {
        "method": method,
        "teachers": infos,
        "pairs": {"path": str(pairs_dir.resolve()), **folder},
        "init": init,
        "seed": seed,
    }
    if method != "bezier":
        _check_folder(folder, pairs_dir, "forward", infos[0]["fingerprint"])
    if method == "bdense" and init != "teacher":
        raise ValueError("B-DENSE students start from the teacher (init='teacher')")
    settings = _MethodSettings(init=init, seed=seed, distill_steps=distill_steps, bezier=bezier,
                               branches=preset.branches if branches is None else branches,
                               branch_weights=branch_weights, restarts=restarts)  # fmt: skip
    fit, main, nb = _fit_for(method, models, infos, folder, pairs_dir, preset, config, settings,
                             extra)  # fmt: skip
    k_out = k + 1 if method == "reflow" else k
    meta = stage_meta(preset, f"{k_out}-RF" if method == "reflow" else method, k_out, **extra)
    return run_stage(out, fit, partial(_student_spec, main, nb), config, meta, overwrite=overwrite)
