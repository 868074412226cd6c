"""Seeds trained together (``train_ensemble``) against one at a time (``train``): speed and numbers.

For S seeds of one configuration (the 2D experiment's default model and batch: ``MLPVelocity`` with
``ExperimentConfig``'s hidden width and depth, its batch size, AdamW with cosine decay and gradient
clipping, flow matching at t ~ U[0, 1] on a fixed pool of pairs per seed, as in a distillation
round), the script trains

- one at a time: ``train(models[s], loss, pools[s].sample, replace(config, seed=seeds[s]))`` for
  every s, one after the other;
- together: ``train_ensemble(models, loss, [p.sample for p in pools], config, seeds)``;

and reports the wall time and the process CPU time of each, the seeds trained per second (S / wall
seconds of the whole job), the speed-up (one-at-a-time time / together time) and the largest
difference between the two runs' final weights and losses (the same numbers up to float rounding).
Both ways run interleaved ``--repeats`` times; the tables give medians. CPU time is less sensitive
than wall time to other processes sharing the cores.

Run by hand from the repository root (a few minutes on 2 cores); the table is printed and written
to ``benchmarks/RESULTS.md``::

    python benchmarks/ensemble.py
    python benchmarks/ensemble.py --seeds 1 3 5 --steps 300 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time

import torch
from _common import command_line, load_average, machine_lines, markdown_table, now, write_section

from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.data.toy2d import get_sampler
from bezkit.experiments.config import ExperimentConfig
from bezkit.methods.flow import new_mlp
from bezkit.training import FlowMatchingLoss, TrainConfig, train, train_ensemble

SECTION = "ensemble"


def make_pools(num: int, n_pairs: int, source: str, target: str) -> list[PairPool]:
    """One fixed pool of (source, target) pairs per seed, each drawn with its own generator."""
    src, tgt = get_sampler(source), get_sampler(target)
    pools = []
    for s in range(num):
        g = torch.Generator().manual_seed(1000 + s)
        pools.append(PairPool(Pairs(src.sample(n_pairs, g), tgt.sample(n_pairs, g))))
    return pools


def timed(fn, *args):
    """``(result, wall seconds, process CPU seconds)`` of ``fn(*args)``."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w0, time.process_time() - c0


def one_at_a_time(models, loss, pools, config, seeds):
    """Each seed with ``train``, one after the other (on copies of the initial models)."""
    return [
        train(copy.deepcopy(m), loss, pool.sample, dataclasses.replace(config, seed=seed))
        for m, pool, seed in zip(models, pools, seeds, strict=False)
    ]


def all_together(models, loss, pools, config, seeds):
    """All seeds with ``train_ensemble`` (on copies of the initial models)."""
    num = len(models)
    return train_ensemble(
        [copy.deepcopy(m) for m in models], loss, [p.sample for p in pools[:num]], config, seeds
    )


def max_differences(solo, together) -> tuple[float, float]:
    """Largest absolute weight difference and largest relative loss difference over all seeds."""
    weight, loss = 0.0, 0.0
    for a, b in zip(solo, together, strict=True):
        for (_, p), (_, q) in zip(
            a.raw_model.state_dict().items(), b.raw_model.state_dict().items(), strict=True
        ):
            weight = max(weight, float((p - q).abs().max()))
        la, lb = torch.tensor(a.losses), torch.tensor(b.losses)
        loss = max(loss, float(((la - lb).abs() / la.abs()).max()))
    return weight, loss


def main() -> None:
    defaults = ExperimentConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5], help="values of S")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--hidden", type=int, default=defaults.hidden)
    parser.add_argument("--depth", type=int, default=defaults.depth)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--n-pairs", type=int, default=defaults.n_pairs)
    parser.add_argument("--source", default="8gaussians")
    parser.add_argument("--target", default="moons")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if min(args.seeds) < 1 or args.steps < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--seeds, --steps, --repeats and --threads must be >= 1")

    torch.set_num_threads(args.threads)
    started, load_before = now(), load_average()
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=defaults.lr,
        progress=False,
        device="cpu",
    )
    loss = FlowMatchingLoss()
    pools = make_pools(max(args.seeds), args.n_pairs, args.source, args.target)
    # warm-up (first calls, lazy initialisation) before anything is timed
    warm = dataclasses.replace(config, steps=5)
    models = [new_mlp(hidden=args.hidden, depth=args.depth, seed=s) for s in range(2)]
    one_at_a_time(models, loss, pools, warm, [0, 1])
    all_together(models, loss, pools, warm, [0, 1])
    rows, t_all = [], time.perf_counter()
    for num in args.seeds:
        seeds = list(range(num))
        models = [new_mlp(hidden=args.hidden, depth=args.depth, seed=s) for s in seeds]
        solo_wall, solo_cpu, ens_wall, ens_cpu = [], [], [], []
        diffs = (0.0, 0.0)
        for _ in range(args.repeats):
            solo, wall, cpu = timed(one_at_a_time, models, loss, pools, config, seeds)
            solo_wall.append(wall)
            solo_cpu.append(cpu)
            together, wall, cpu = timed(all_together, models, loss, pools, config, seeds)
            ens_wall.append(wall)
            ens_cpu.append(cpu)
            got = max_differences(solo, together)
            diffs = (max(diffs[0], got[0]), max(diffs[1], got[1]))
        sw, ew = statistics.median(solo_wall), statistics.median(ens_wall)
        sc, ec = statistics.median(solo_cpu), statistics.median(ens_cpu)
        rows.append(
            [
                num,
                f"{sw:.2f}",
                f"{ew:.2f}",
                f"{num / sw:.3f}",
                f"{num / ew:.3f}",
                f"{sw / ew:.2f}",
                f"{sc:.2f}",
                f"{ec:.2f}",
                f"{sc / ec:.2f}",
                f"{diffs[0]:.1e}",
                f"{diffs[1]:.1e}",
            ]
        )
        print(markdown_table(HEADERS, rows[-1:]), flush=True)
    total = time.perf_counter() - t_all
    table = markdown_table(HEADERS, rows)
    print(table)
    if args.no_write:
        return
    body = "\n".join(
        [
            f"Command: `{command_line()}` ({started}), {total:.0f} s in all. Load average "
            f"(1 / 5 / 15 min) before: {load_before}; after: {load_average()}.",
            "",
            *machine_lines([args.threads]),
            "",
            f"Model `MLPVelocity(2, hidden={args.hidden}, depth={args.depth})`, batch "
            f"{args.batch_size}, {args.steps} AdamW steps (lr {defaults.lr}, cosine, gradient "
            f"clipping 1.0), flow matching at t ~ U[0, 1] on a pool of {args.n_pairs} "
            f"{args.source} -> {args.target} pairs per seed. Medians over {args.repeats} "
            "interleaved repeats. Seeds/s = S / seconds for the whole job; speed-up = one at a "
            "time / together; max differences between the final weights (absolute) and the "
            "losses (relative) of the two ways, over all seeds, steps and repeats.",
            "",
            table,
        ]
    )
    # the default model has its own section; other widths get one each (e.g. --hidden 128, --quick)
    key, title = SECTION, "Seed ensembles: trained together vs one at a time"
    if (args.hidden, args.depth) != (defaults.hidden, defaults.depth):
        key = f"{SECTION}-hidden{args.hidden}-depth{args.depth}"
        title += f" (hidden {args.hidden}, depth {args.depth})"
    write_section(key, title, body)


HEADERS = [
    "S",
    "one at a time, wall s",
    "together, wall s",
    "seeds/s one at a time",
    "seeds/s together",
    "speed-up (wall)",
    "one at a time, CPU s",
    "together, CPU s",
    "speed-up (CPU)",
    "max weight diff",
    "max loss rel. diff",
]


if __name__ == "__main__":
    main()
