"""The 2D error-accumulation experiment: every method, every reflow round, the same metrics.

For each (source, target) pair:

1. 1-RF on independent pairs; for k = 1..K the k-RF's forward pairs ``P_k`` are generated once; the
   (k+1)-RF is fine-tuned on ``P_k``. OT-CFM and the full-OT-map flow are trained once.
2. For each round k, the students: one-step distillation on ``P_k``, one-step distillation on the
   k-RF's data-anchored pairs, quadratic and cubic Bezier distillation, B-DENSE.
3. Every model is evaluated on the same held-out seeded sources and targets (``evaluate_flow``);
   every coupling by its endpoint W2 to real data, transport cost and segment crossings.

Every training is timed; every seed derives from ``config.seed``.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from bezkit.couplings.full_ot import FullOTCoupling
from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.minibatch_ot import MinibatchOTCoupling
from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.couplings.reflow import ReflowCoupling
from bezkit.data.toy2d import Sampler, get_sampler
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.evaluate import evaluate_flow, evaluate_pairs
from bezkit.methods.bdense import bdense_distill
from bezkit.methods.bezier_distill import BezierDistillConfig, bezier_distill
from bezkit.methods.distill import distill
from bezkit.methods.flow import new_mlp, train_flow
from bezkit.methods.reflow import reflow_round
from bezkit.metrics.wasserstein import reference_noise_floor
from bezkit.training.config import TrainConfig

__all__ = ["run_experiment_pairs", "run_pair"]

# Bezier variants: method name -> (order, BezierDistillConfig overrides)
_BEZIER = {
    "anchored-distill": (1, {}),
    "bezier-quadratic": (2, {}),
    "bezier-cubic": (3, {}),
    "bezier-quadratic-interp": (2, {"placement": "interpolate"}),
    "bezier-quadratic-tangent": (2, {"target": "tangent"}),
    "bezier-quadratic-teacher": (2, {"endpoint": "teacher"}),
}


class _Runner:
    def __init__(self, source: Sampler, target: Sampler, cfg: ExperimentConfig, bar: tqdm) -> None:
        self.source, self.target, self.cfg, self.bar = source, target, cfg, bar
        g = torch.Generator().manual_seed(cfg.seed + 10_007)
        self.x0_eval = source.sample(cfg.n_eval, g)
        self.reference = target.sample(cfg.n_eval, g)
        self.runs: list[dict[str, Any]] = []
        self.couplings: list[dict[str, Any]] = []
        self.paths: dict[tuple[str, int], torch.Tensor] = {}
        self._seed = cfg.seed

    def train_config(self, steps: int, desc: str, *, prefetch: int = 0) -> TrainConfig:
        self._seed += 1
        return TrainConfig(
            steps=steps,
            batch_size=self.cfg.batch_size,
            lr=self.cfg.lr,
            seed=self._seed,
            progress=self.cfg.progress,
            desc=desc,
            device="cpu",
            prefetch=prefetch,
        )

    def record(
        self, method: str, k: int, model: nn.Module, seconds: float, losses: list[float]
    ) -> None:
        self.bar.set_description(f"evaluate {method} k={k}")
        metrics = evaluate_flow(
            model,
            self.x0_eval,
            self.reference,
            steps=self.cfg.eval_steps,
            m_crossings=self.cfg.m_crossings,
            keep_paths=100,
        )
        self.paths[(method, k)] = metrics.pop("paths")
        self.runs.append(
            {
                "method": method,
                "k": k,
                "train_seconds": seconds,
                "final_loss": float(sum(losses[-50:]) / max(1, len(losses[-50:]))),
                "metrics": metrics,
            }
        )
        self.bar.update(1)

    def record_coupling(self, name: str, k: int, pairs: Pairs) -> None:
        stats = evaluate_pairs(pairs.x0, pairs.x1, self.reference, n=self.cfg.n_eval)
        self.couplings.append({"coupling": name, "k": k, **stats})


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _count_units(cfg: ExperimentConfig) -> int:
    per_round = [m for m in cfg.methods if m not in ("otcfm", "full-ot")]
    return len(per_round) * cfg.rounds + sum(m in cfg.methods for m in ("otcfm", "full-ot"))


def run_pair(source_name: str, target_name: str, cfg: ExperimentConfig) -> dict[str, Any]:
    """Run every selected method on one (source, target) pair; returns a JSON-able dict."""
    source, target = get_sampler(source_name), get_sampler(target_name)
    t_start = time.perf_counter()
    bar = tqdm(
        total=_count_units(cfg), desc=f"{source_name} -> {target_name}", disable=not cfg.progress
    )
    run = _Runner(source, target, cfg, bar)
    methods = set(cfg.methods)
    k_max = cfg.rounds

    def mlp() -> nn.Module:
        return new_mlp(2, hidden=cfg.hidden, depth=cfg.depth, seed=run._seed)

    # 1-RF, then reflow rounds; pairs P_k of each round are generated once and shared.
    rf: dict[int, nn.Module] = {}
    rf_seconds: dict[int, float] = {}
    rf_losses: dict[int, list[float]] = {}
    pairs: dict[int, ReflowCoupling] = {}
    bar.set_description("train 1-RF")
    res = train_flow(
        IndependentCoupling(source, target), mlp(), run.train_config(cfg.flow_steps, "1-RF")
    )
    rf[1], rf_seconds[1], rf_losses[1] = res.final_model, res.wall_seconds, res.losses
    indep = IndependentCoupling(source, target).sample(
        cfg.n_pairs, torch.Generator().manual_seed(cfg.seed)
    )
    run.record_coupling("independent", 1, indep)
    for k in range(1, k_max + 1):
        needs_pairs = k < k_max or "rf-distill" in methods
        if needs_pairs:
            pairs[k] = ReflowCoupling(
                rf[k], source, n_pairs=cfg.n_pairs, steps=cfg.teacher_steps, seed=cfg.seed + 100 + k
            )
            _, gen_seconds = _timed(pairs[k].generate)
            run.record_coupling("reflow", k + 1, pairs[k].pairs)
        if k < k_max:
            bar.set_description(f"train {k + 1}-RF")
            rnd = reflow_round(
                rf[k],
                source,
                run.train_config(cfg.round_steps, f"{k + 1}-RF"),
                k=k + 1,
                coupling=pairs[k],
            )
            rf[k + 1] = rnd.model
            rf_seconds[k + 1] = rnd.result.wall_seconds + gen_seconds
            rf_losses[k + 1] = rnd.result.losses

    otcfm = None
    if "otcfm" in methods or "bezier-cubic" in methods:
        # prefetch: the exact OT pairing of the next batches runs on the second core
        bar.set_description("train OT-CFM")
        res = train_flow(
            MinibatchOTCoupling(source, target),
            mlp(),
            run.train_config(cfg.flow_steps, "OT-CFM", prefetch=2),
        )
        otcfm = res.final_model
        if "otcfm" in methods:
            run.record("otcfm", 1, otcfm, res.wall_seconds, res.losses)
    if "full-ot" in methods:
        bar.set_description("train full-OT flow")
        (coupling, solve_s) = _timed(
            FullOTCoupling, source, target, n_points=cfg.full_ot_points, seed=cfg.seed + 30_011
        )
        run.record_coupling("full-ot", 1, coupling.pairs)
        res = train_flow(coupling, mlp(), run.train_config(cfg.flow_steps, "full OT"))
        run.record("full-ot", 1, res.final_model, res.wall_seconds + solve_s, res.losses)

    for k in range(1, k_max + 1):
        if "rf" in methods:
            run.record("rf", k, rf[k], rf_seconds[k], rf_losses[k])
        if "rf-distill" in methods:
            bar.set_description(f"distill {k}-RF")
            res = distill(
                rf[k],
                PairPool(pairs[k].pairs),
                run.train_config(cfg.round_steps, f"{k}-RF distill"),
            )
            run.record("rf-distill", k, res.final_model, res.wall_seconds, res.losses)
        for name, (order, overrides) in _BEZIER.items():
            if name not in methods:
                continue
            bar.set_description(f"{name} k={k}")
            teachers = [rf[k], otcfm] if order == 3 else [rf[k]]
            bcfg = BezierDistillConfig(
                order=order,
                n_pairs=cfg.n_pairs,
                teacher_steps=cfg.teacher_steps,
                pair_seed=cfg.seed + 200 + k,
                **overrides,
            )
            out, secs = _timed(
                bezier_distill,
                teachers,
                source,
                target,
                run.train_config(cfg.round_steps, name),
                bcfg,
            )
            run.record(name, k, out.model, secs, out.result.losses)
            if name == "anchored-distill":
                run.record_coupling("data-anchored", k, out.pool.pairs)
        if "bdense" in methods:
            bar.set_description(f"bdense k={k}")
            out, secs = _timed(
                bdense_distill,
                rf[k],
                source,
                run.train_config(cfg.round_steps, "B-DENSE"),
                num_branches=cfg.bdense_branches,
                n_pairs=cfg.n_pairs,
                teacher_steps=cfg.teacher_steps,
                pair_seed=cfg.seed + 300 + k,
            )
            run.record("bdense", k, out.model, secs, out.result.losses)
    bar.close()
    floors = reference_noise_floor(target, run.reference, repeats=5, seed=cfg.seed + 40_009)
    floor = sum(floors) / len(floors)
    spread = (sum((f - floor) ** 2 for f in floors) / (len(floors) - 1)) ** 0.5
    return {
        "source": source_name,
        "target": target_name,
        "noise_floor": floor,
        "noise_floor_std": spread,
        "noise_floor_samples": floors,
        "runs": run.runs,
        "couplings": run.couplings,
        "wall_seconds": time.perf_counter() - t_start,
        "paths": run.paths,  # tensors for figures; not written to JSON
    }


def run_experiment_pairs(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """``run_pair`` for every configured (source, target)."""
    cfg.validate()
    return [run_pair(src, tgt, cfg) for src, tgt in cfg.pairs]
