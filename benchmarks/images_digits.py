"""Digits on a CPU: one-step quality of 2-RF + distill and of Bezier distillation against the 1-RF.

The whole image pipeline of ``bezkit images`` (the same stage functions of
``bezkit.experiments.images``), preset ``digits`` (8x8 scikit-learn digits, a small U-Net, one
torch thread), seeded end to end:

1. the 1-RF on independent (noise, image) pairs;
2. the 1-RF's forward ODE pairs as shards, then the 2-RF (reflow, from the 1-RF's weights);
3. the 2-RF's forward pairs, then its one-step distilled student (2-RF + distill);
4. the 1-RF's reverse (data-anchored) pairs, then quadratic Bezier distillation with the 1-RF as
   the guide teacher (defaults of ``BezierDistillConfig``: real endpoint, control guide from one
   Euler step to s = 1/2, endpoint target);
5. with ``--bdense``, also B-DENSE (4 branches) on the 2-RF's trajectory segments.

Every model is sampled with Euler at 1, 2, 4 and 48 steps (48: the teacher's own step count)
from the same seeded noise and compared to the held-out test split (359 images): exact W2 and
sliced W2 in pixel space, and the Frechet distance in the features of bezkit's digits classifier.
The noise floor is the same metric for real train images. Numbers are written as measured.

Run by hand (about 7 minutes per seed on one core, 8 with ``--bdense``; the table is printed and
written to ``benchmarks/RESULTS.md``)::

    python benchmarks/images_digits.py --seeds 0 1 2 --bdense   # mean ± 95% interval over seeds
    python benchmarks/images_digits.py --bdense --export data/checkpoints/images  # + notebook's models

Each seed is a whole run (weights, batches, pairs, evaluation noise); with several seeds every cell
is the mean ± the half-width of the 95% t-interval, and a second table gives each model's paired
difference from 2-RF + distill (the same seed's). ``--device cuda`` runs it on a GPU (the GPU
check compares its time with the committed CPU time); ``--tiny`` shrinks it to a smoke test.

``--export`` also writes the final weights of the 1-RF, 2-RF, 2-RF + distill and Bezier students
(float16, to keep the repository small) for ``notebooks/07_images_digits.ipynb``; on the same
machine the command regenerates them exactly (training is seeded and single-threaded).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import command_line, load_average, machine_lines, markdown_table, now, write_section
from scipy import stats

from bezkit.experiments.images import (
    evaluate_images,
    generate_pairs,
    get_preset,
    train_from_pairs,
    train_rectified_flow,
)
from bezkit.training.model_io import load_model, save_model

SECTION = "images_digits"
ROOT = Path(__file__).resolve().parent.parent
MARKER = ".images_digits_benchmark"
EXPORTS = {"1rf": "digits-1rf", "2rf": "digits-2rf", "2rf-distill": "digits-2rf-distill",
           "bezier": "digits-bezier"}  # fmt: skip
MODELS = ("1rf", "2rf", "2rf-distill", "bezier")
LABELS = {
    "1rf": "1-RF",
    "2rf": "2-RF",
    "2rf-distill": "2-RF + distill (1 step)",
    "bezier": "Bezier distillation (quadratic, from the 1-RF)",
    "bdense": "B-DENSE (K = 4, from the 2-RF)",
}


def parse_args() -> argparse.Namespace:
    """The command line of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "images-digits", help="run folder")
    p.add_argument("--export", type=Path, default=None, help="write the notebook's checkpoints")
    p.add_argument("--bdense", action="store_true", help="also train and evaluate B-DENSE")
    p.add_argument("--n", type=int, default=1000, help="samples per evaluation")
    p.add_argument("--steps", type=int, nargs="+", default=None, help="Euler steps")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one whole run per seed")
    p.add_argument("--device", default="cpu", help="cpu (the committed numbers), cuda, ...")
    p.add_argument("--tiny", action="store_true", help="a few steps and pairs (a smoke test)")
    p.add_argument("--summary", type=Path, default=None, help="also write a JSON summary here")
    p.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    p.add_argument("--summarize-only", action="store_true",
                   help="train nothing: tabulate the seeds already run in --out")  # fmt: skip
    p.add_argument("--note", default="", help="a sentence added after the command line")
    args = p.parse_args()
    if args.steps is None:
        args.steps = [1, 2] if args.tiny else [1, 2, 4, 48]
    if args.tiny:
        args.n = min(args.n, 100)
    if args.export is not None and len(args.seeds) != 1:
        p.error("--export takes one seed")
    return args


def fresh_folder(out: Path) -> None:
    """Start from an empty run folder (one this script made before may be replaced)."""
    if out.exists():
        if not (out / MARKER).exists():
            sys.exit(f"{out} exists and was not made by this script; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by benchmarks/images_digits.py\n")


def export(src: Path, dst: Path, evaluation: dict) -> int:
    """Final weights as float16, with repository-relative paths in the metadata and this run's
    evaluation of the model; returns the bytes written."""
    model, meta = load_model(src)
    for key in ("format", "sha256", "versions", "loaded_weights"):
        meta.pop(key, None)
    meta = json.loads(json.dumps(meta).replace(str(ROOT) + "/", ""))
    meta["exported"] = {"by": "benchmarks/images_digits.py --export", "dtype": "float16"}
    meta["evaluation"] = {k: v for k, v in evaluation.items() if k != "sample_seconds"}
    path = save_model(dst, model.half(), meta, overwrite=True)
    return path.stat().st_size + path.with_suffix(".json").stat().st_size


TINY = {
    "flow": {"steps": 6, "batch_size": 32},
    "reflow": {"steps": 4, "batch_size": 32},
    "distill": {"steps": 4, "batch_size": 32},
    "n_pairs": 64, "shard_size": 32, "teacher_steps": 4, "checkpoint_every": 0,
}  # fmt: skip


def run_seed(args: argparse.Namespace, seed: int, out: Path) -> tuple[dict, dict[str, float]]:
    """The whole pipeline for one seed (training, pairs and evaluation noise); returns the
    evaluations per model and the wall time per stage."""
    preset = get_preset("digits", seed=seed, device=args.device, **(TINY if args.tiny else {}))
    out.mkdir(parents=True)
    seconds: dict[str, float] = {}

    def timed(name: str, fn, *a, **kw):
        t0 = time.perf_counter()
        result = fn(*a, **kw)
        seconds[name] = time.perf_counter() - t0
        print(f"seed {seed}, {name}: {seconds[name]:.1f} s", flush=True)
        return result

    quiet = {"progress": False}
    timed("train 1-RF", train_rectified_flow, preset, out / "1rf", **quiet)
    timed("pairs of the 1-RF (forward)", generate_pairs, out / "1rf", preset, out / "pairs-1rf",
          **quiet)  # fmt: skip
    timed("train 2-RF", train_from_pairs, "reflow", out / "1rf", out / "pairs-1rf", preset,
          out / "2rf", **quiet)  # fmt: skip
    timed("pairs of the 2-RF (forward)", generate_pairs, out / "2rf", preset, out / "pairs-2rf",
          **quiet)  # fmt: skip
    timed("train 2-RF + distill", train_from_pairs, "distill", out / "2rf", out / "pairs-2rf",
          preset, out / "2rf-distill", **quiet)  # fmt: skip
    timed("pairs of the 1-RF (reverse)", generate_pairs, out / "1rf", preset,
          out / "reverse-1rf", direction="reverse", **quiet)  # fmt: skip
    timed("train Bezier distillation", train_from_pairs, "bezier", out / "1rf",
          out / "reverse-1rf", preset, out / "bezier", **quiet)  # fmt: skip
    models = list(MODELS)
    if args.bdense:
        timed("train B-DENSE", train_from_pairs, "bdense", out / "2rf", out / "pairs-2rf",
              preset, out / "bdense", **quiet)  # fmt: skip
        models.append("bdense")
    results = {}
    for name in models:
        results[name] = timed(f"evaluate {name}", evaluate_images, out / f"{name}.safetensors",
                              preset, steps=args.steps, n=args.n, seed=seed,
                              device=args.device)  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "seconds.json").write_text(json.dumps(seconds, indent=2) + "\n")
    return results, seconds


def _finished_seed(folder: Path) -> tuple[dict, dict[str, float]]:
    """The evaluations and stage times a finished seed left in its folder."""
    if not (folder / "seconds.json").is_file():
        sys.exit(f"{folder} holds no finished seed (no seconds.json)")
    return (json.loads((folder / "results.json").read_text()),
            json.loads((folder / "seconds.json").read_text()))  # fmt: skip


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for one value)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), 0.0
    return float(x.mean()), float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))


def ci(values: list[float], spec: str = ".2f") -> str:
    mean, half = interval(values)
    return f"{mean:{spec}}" if half == 0 else f"{mean:{spec}} ± {half:{spec}}"


def main() -> None:
    """Train and evaluate every digits stage for each seed, then record the results."""
    args = parse_args()
    torch.set_num_threads(1)
    out = args.out.resolve()
    load_before = load_average()
    started = time.perf_counter()
    if args.summarize_only:  # e.g. the seeds that finished before a run was stopped
        runs = {seed: _finished_seed(out / f"seed-{seed}") for seed in args.seeds}
        total = sum(sum(sec.values()) for _, sec in runs.values())
    else:
        fresh_folder(out)
        runs = {seed: run_seed(args, seed, out / f"seed-{seed}") for seed in args.seeds}
        total = time.perf_counter() - started
    models = list(runs[args.seeds[0]][0])
    res = {seed: r for seed, (r, _) in runs.items()}

    def metric(model: str, key: str, step: int | None) -> list[float]:
        return [res[s][model]["noise_floor"][key] if step is None else res[s][model][key][str(step)]
                for s in args.seeds]  # fmt: skip

    rows = []
    for name in models:
        nfe = res[args.seeds[0]][name]["nfe"]
        for step in args.steps:
            rows.append([LABELS[name], step, nfe[str(step)], ci(metric(name, "w2", step), ".3f"),
                         ci(metric(name, "sliced_w2", step), ".4f"),
                         ci(metric(name, "frechet", step))])  # fmt: skip
    rows.append(["noise floor (n real train images)", "-", "-",
                 ci(metric("1rf", "w2", None), ".3f"), ci(metric("1rf", "sliced_w2", None), ".4f"),
                 ci(metric("1rf", "frechet", None))])  # fmt: skip
    table = markdown_table(["model", "Euler steps", "NFE", "W2", "sliced W2", "Frechet"], rows)
    base = "2rf-distill"
    diffs = []
    for name in models:
        if name == base:
            continue
        for step in args.steps:
            d = [a - b for a, b in zip(metric(name, "frechet", step), metric(base, "frechet", step),
                                       strict=True)]  # fmt: skip
            mean, half = interval(d)
            sign = "" if len(d) < 2 else (" (interval excludes 0)" if abs(mean) > half else "")
            diffs.append([LABELS[name], step, ci(d) + sign])
    diff_table = markdown_table(
        ["model", "Euler steps", f"Frechet: model minus {LABELS[base]} (same seed and steps)"],
        [[r[0], r[1], r[2]] for r in diffs],
    )
    one = {name: interval(metric(name, "frechet", 1))[0] for name in models}
    per_seed_seconds = {seed: sum(sec.values()) for seed, (_, sec) in runs.items()}
    summary = {"seconds_total": total, "seeds": args.seeds, "device": args.device,
               "tiny": args.tiny, "one_step_frechet": one,
               "seconds_per_seed": per_seed_seconds}  # fmt: skip
    if args.summary is not None:
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    stage_seconds = {k: [sec[k] for _, sec in runs.values()] for k in runs[args.seeds[0]][1]}
    timing = markdown_table(["stage", "seconds (mean over seeds)"],
                            [[k, f"{np.mean(v):.1f}"] for k, v in stage_seconds.items()])  # fmt: skip
    print(table)
    print(diff_table)
    print(timing)
    if args.no_results:
        return
    p = get_preset("digits")
    unet = p.unet
    first = out / f"seed-{args.seeds[0]}"
    setup = (
        f"Preset `digits`: a U-Net with {unet['base_channels']} base channels, channel "
        f"multipliers {tuple(unet['channel_mults'])}, {unet['num_res_blocks']} residual block per "
        f"level, attention at 4x4 ({_params(first / '1rf.safetensors')} parameters); batch "
        f"{p.flow.batch_size}, AdamW with cosine decay, EMA weights. 1-RF: {p.flow.steps} steps. "
        f"Each teacher's pairs: {p.n_pairs} from {p.teacher_steps} Euler steps. 2-RF: "
        f"{p.reflow.steps} steps from the 1-RF on the 1-RF's pairs. Students ({p.distill.steps} "
        f"steps each, from their teacher): 2-RF + distill on the 2-RF's pairs; Bezier distillation "
        f"on the 1-RF's reverse pairs (real endpoint X1, X0 from the reverse ODE), quadratic, "
        f"control guide = one Euler step of the 1-RF to s = 1/2, endpoint target; B-DENSE on the "
        f"2-RF's pairs with its states at t = 1/4, 1/2, 3/4."
    )
    seeds = ", ".join(str(s) for s in args.seeds)
    evaluation = (
        f"Seeds {seeds}: each seed is a whole run (initial weights, batches, pairs and the "
        f"evaluation noise all from the seed). Evaluation: {args.n} samples per model against the "
        f"359 test images: exact W2 (unequal sizes), sliced W2 (256 directions, the first 359 "
        f"samples) and the Frechet distance in the 64 features of bezkit's digits classifier. "
        f"Noise floor: the same metrics for {args.n} real train images in place of the samples. "
        f"Cells: mean ± half-width of the 95% t-interval over the {len(args.seeds)} seeds "
        f"(t with {len(args.seeds) - 1} degrees of freedom)."
    )
    reading = (
        "One Euler step, Frechet (mean over seeds): "
        + ", ".join(f"{LABELS[m]} {one[m]:.1f}" for m in models)
        + f"; noise floor {interval(metric('1rf', 'frechet', None))[0]:.1f}. Paired differences "
        f"take each seed's own 2-RF + distill as the baseline, so the seed-to-seed variation "
        f"shared by both models cancels."
    )
    body = "\n\n".join(
        [
            f"Command: `{command_line()}` ({now()}), {total:.0f} s in all "
            f"({len(args.seeds)} seed(s), {total / len(args.seeds):.0f} s per seed). Load average (1 / 5 / 15 min) before: {load_before}; "
            f"after: {load_average()}." + (f" {args.note}" if args.note else ""),
            "\n".join(machine_lines([1])),
            setup,
            evaluation,
            table,
            "Paired differences against 2-RF + distill (Frechet, per seed, then mean ± 95% "
            "interval):",
            diff_table,
            reading,
            "Wall time per stage (one thread, mean over seeds):",
            timing,
        ]
    )
    write_section(SECTION, "Images: digits on CPU (benchmarks/images_digits.py)", body)
    if args.export is not None:
        dst = args.export.resolve()
        dst.mkdir(parents=True, exist_ok=True)
        size = sum(
            export(first / f"{name}.safetensors", dst / stem, res[args.seeds[0]][name])
            for name, stem in EXPORTS.items()
        )
        print(f"exported {len(EXPORTS)} checkpoints to {dst} ({size / 1e6:.2f} MB)")


def _params(path: Path) -> str:
    meta = json.loads(path.with_suffix(".json").read_text())
    return f"{meta.get('parameters', 0):,}"


if __name__ == "__main__":
    main()
