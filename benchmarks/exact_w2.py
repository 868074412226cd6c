"""What exact W2 (POT's network simplex, ``ot.emd2``) costs against the sliced estimator, and what
it would add to ``bezkit experiment --full`` if every method its claims compare were measured
exactly.

For each n, the script draws n generated-like points (8 Gaussians) and n reference points (moons),
times ``wasserstein2`` (exact, float64) and ``sliced_wasserstein2`` (256 seeded directions, the
experiment's default) ``--repeats`` times each, interleaved, on one torch thread, and reports the
median seconds per call. It then counts the exact evaluations ``--full`` would need to give every
claim an exact interval: the claims compare each Bezier student with its linear twin and with
plain k-RF distillation at equal NFE, so every one of those methods at its own NFE, per student
round, seed, evaluation draw and pair; and multiplies by the measured time at the experiment's
``n_eval``.

Run by hand from the repository root (about a minute on 2 cores); the table is printed and written
to ``benchmarks/RESULTS.md``::

    python benchmarks/exact_w2.py
    python benchmarks/exact_w2.py --sizes 1024 2048 4096 8192 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import command_line, load_average, machine_lines, markdown_table, now, write_section

from bezkit.data.toy2d import get_sampler
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.protocol import STUDENTS, paired_baseline
from bezkit.metrics.wasserstein import sliced_wasserstein2, wasserstein2

SECTION = "exact_w2"


def claim_methods(methods: tuple[str, ...]) -> list[str]:
    """The methods the claims table compares: every student with a linear twin, the twin, and
    plain k-RF distillation at the same NFE (each once, in the table's order)."""
    out: list[str] = []
    for name in methods:
        twin = STUDENTS[name].linear_twin
        if twin is None:
            continue
        for m in (name, twin, paired_baseline(name)):
            if m in methods and m not in out:
                out.append(m)
    return out


def time_calls(n: int, repeats: int, n_projections: int) -> tuple[float, float, float, float]:
    """Median seconds per call of exact and sliced W2 at ``n`` points a side, and the values."""
    g = torch.Generator().manual_seed(n)
    a = get_sampler("8gaussians").sample(n, g)
    b = get_sampler("moons").sample(n, g)
    exact_t, sliced_t = [], []
    exact = sliced = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        exact = wasserstein2(a, b)
        exact_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sliced = sliced_wasserstein2(a, b, n_projections=n_projections, seed=0)
        sliced_t.append(time.perf_counter() - t0)
    return statistics.median(exact_t), statistics.median(sliced_t), exact, sliced


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-write", action="store_true", help="print only; RESULTS.md unchanged")
    args = p.parse_args()
    torch.set_num_threads(1)
    full = ExperimentConfig.full()
    load_before, t_start = load_average(), time.perf_counter()
    rows, per_call = [], {}
    for n in args.sizes:
        ex, sl, v_ex, v_sl = time_calls(n, args.repeats, full.n_projections)
        per_call[n] = ex
        rows.append([n, f"{ex:.3f}", f"{sl:.4f}", f"{ex / sl:.0f}", f"{v_ex:.4f}", f"{v_sl:.4f}"])
    compared = claim_methods(full.methods)
    count = len(compared) * full.student_rounds * full.seeds * full.eval_draws * len(full.pairs)
    lines = [
        f"Command: `{command_line()}` ({now()}), {time.perf_counter() - t_start:.0f} s in all. "
        f"Load average (1 / 5 / 15 min) before: {load_before}; after: {load_average()}.",
        "",
        *machine_lines([1]),
        "",
        "Seconds per W2 of n points a side (8gaussians against moons), median over "
        f"{args.repeats} interleaved repeats; sliced: {full.n_projections} seeded directions.",
        "",
        markdown_table(
            ["n", "exact s", "sliced s", "exact / sliced", "exact W2", "sliced W2"], rows
        ),
        "",
    ]
    if full.n_eval in per_call:
        lines += [
            f"Exact W2 for every method the claims of `--full` compare ({len(compared)}: "
            f"{', '.join(compared)}) at its own NFE: {len(compared)} methods x "
            f"{full.student_rounds} student rounds x {full.seeds} seeds x {full.eval_draws} "
            f"draws x {len(full.pairs)} pairs = {count} exact evaluations at n = {full.n_eval}, "
            f"about {count * per_call[full.n_eval] / 60:.0f} min of one core at the measured "
            "time per call.",
        ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section(SECTION, "Exact against sliced W2: the cost (`benchmarks/exact_w2.py`)", body)


if __name__ == "__main__":
    main()
