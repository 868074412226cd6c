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

Run by hand (about 7 minutes on one core, 8 with ``--bdense``; the table is printed and written
to ``benchmarks/RESULTS.md``)::

    python benchmarks/images_digits.py
    python benchmarks/images_digits.py --bdense --export data/checkpoints/images  # + notebook's models

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

import torch
from _common import command_line, load_average, machine_lines, markdown_table, now, write_section

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
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 48], help="Euler steps")
    p.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    return p.parse_args()


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


def main() -> None:
    """Train and evaluate every digits stage, then record the results."""
    args = parse_args()
    torch.set_num_threads(1)
    preset = get_preset("digits")
    out = args.out.resolve()
    fresh_folder(out)
    load_before = load_average()
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def timed(name: str, fn, *a, **kw):
        t0 = time.perf_counter()
        result = fn(*a, **kw)
        seconds[name] = time.perf_counter() - t0
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
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
    models = ["1rf", "2rf", "2rf-distill", "bezier"]
    if args.bdense:
        timed("train B-DENSE", train_from_pairs, "bdense", out / "2rf", out / "pairs-2rf",
              preset, out / "bdense", **quiet)  # fmt: skip
        models.append("bdense")

    results = {}
    for name in models:
        results[name] = timed(f"evaluate {name}", evaluate_images, out / f"{name}.safetensors",
                              preset, steps=args.steps, n=args.n)  # fmt: skip
    total = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    floor = results["1rf"]["noise_floor"]
    rows = []
    for name in models:
        r = results[name]
        for s in args.steps:
            k = str(s)
            rows.append([LABELS[name], s, r["nfe"][k], f"{r['w2'][k]:.3f}",
                         f"{r['sliced_w2'][k]:.4f}", f"{r['frechet'][k]:.2f}"])  # fmt: skip
    rows.append(["noise floor (n real train images)", "-", "-", f"{floor['w2']:.3f}",
                 f"{floor['sliced_w2']:.4f}", f"{floor['frechet']:.2f}"])  # fmt: skip
    table = markdown_table(["model", "Euler steps", "NFE", "W2", "sliced W2", "Frechet"], rows)
    one = {name: results[name]["frechet"]["1"] for name in models}
    many = str(max(args.steps))
    timing = markdown_table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in seconds.items()])
    p = preset
    unet = p.unet
    setup = (
        f"Preset `digits`: a U-Net with {unet['base_channels']} base channels, channel "
        f"multipliers {tuple(unet['channel_mults'])}, {unet['num_res_blocks']} residual block per "
        f"level, attention at 4x4 ({_params(out / '1rf.safetensors')} parameters); batch "
        f"{p.flow.batch_size}, AdamW with cosine decay, EMA weights. 1-RF: {p.flow.steps} steps. "
        f"Each teacher's pairs: {p.n_pairs} from {p.teacher_steps} Euler steps. 2-RF: "
        f"{p.reflow.steps} steps from the 1-RF on the 1-RF's pairs. Students ({p.distill.steps} "
        f"steps each, from their teacher): 2-RF + distill on the 2-RF's pairs; Bezier distillation "
        f"on the 1-RF's reverse pairs (real endpoint X1, X0 from the reverse ODE), quadratic, "
        f"control guide = one Euler step of the 1-RF to s = 1/2, endpoint target; B-DENSE on the "
        f"2-RF's pairs with its states at t = 1/4, 1/2, 3/4."
    )
    evaluation = (
        f"Evaluation: {args.n} samples per model from the same seeded noise, against the 359 test "
        f"images: exact W2 (unequal sizes), sliced W2 (256 directions, the first 359 samples) and "
        f"the Frechet distance in the 64 features of bezkit's digits classifier. Noise floor: the "
        f"same metrics for {args.n} real train images in place of the samples."
    )
    reading = (
        f"One Euler step, Frechet: 1-RF {one['1rf']:.1f}, 2-RF {one['2rf']:.1f}, 2-RF + distill "
        f"{one['2rf-distill']:.1f}, Bezier distillation {one['bezier']:.1f}"
        + (f", B-DENSE {one['bdense']:.1f}" if "bdense" in one else "")
        + f"; the 1-RF at {many} steps: {results['1rf']['frechet'][many]:.1f}; noise floor "
        f"{floor['frechet']:.1f}. Exact W2 in 64 dimensions against 359 reference images barely "
        f"moves above its noise floor; sliced W2 and the Frechet distance separate the models."
    )
    body = "\n\n".join(
        [
            f"Command: `{command_line()}` ({now()}), {total:.0f} s in all. Load average "
            f"(1 / 5 / 15 min) before: {load_before}; after: {load_average()}.",
            "\n".join(machine_lines([1])),
            setup,
            evaluation,
            table,
            reading,
            "Wall time per stage (one thread):",
            timing,
        ]
    )
    print(table)
    print(timing)
    if not args.no_results:
        write_section(SECTION, "Images: digits on CPU (benchmarks/images_digits.py)", body)
    if args.export is not None:
        dst = args.export.resolve()
        dst.mkdir(parents=True, exist_ok=True)
        size = sum(
            export(out / f"{name}.safetensors", dst / stem, results[name])
            for name, stem in EXPORTS.items()
        )
        print(f"exported {len(EXPORTS)} checkpoints to {dst} ({size / 1e6:.2f} MB)")


def _params(path: Path) -> str:
    meta = json.loads(path.with_suffix(".json").read_text())
    return f"{meta.get('parameters', 0):,}"


if __name__ == "__main__":
    main()
