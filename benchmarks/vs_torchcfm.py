"""OT-CFM training with bezkit next to torchcfm's ``ExactOptimalTransportConditionalFlowMatcher``.

One run trains the same ``MLPVelocity(2, hidden=256)`` (same initial weights) on 8 Gaussians ->
moons for the same steps, batch, lr and seed, with the same loop (``bezkit.training.train``: AdamW,
cosine schedule, grad clip 1.0) and the same raw batches (``x0``, ``x1`` drawn from the same seeded
generators). Only the pairing and the regression target differ:

- **bezkit**: ``MinibatchOTCoupling`` (exact OT permutation, ``--solver``) + ``FlowMatchingLoss``
  (linear path, tangent target), batches prepared ahead by ``TrainConfig.prefetch``;
- **bezkit, prefetch 0**: the same, pairing in the training loop (shows what the overlap buys; its
  batches, hence its model and W2, are identical to the prefetched run);
- **torchcfm**: independent raw batches, then in the loss ``t, x_t, u_t =
  ExactOptimalTransportConditionalFlowMatcher(sigma=0).sample_location_and_conditional_flow(x0, x1)``
  and ``||v(x_t, t) - u_t||^2``, i.e. torchcfm's own training recipe, in which the OT plan is
  computed inside the step.

Reported: total training wall time, ms/step excluding ``--warmup`` steps, the wall-time ratio
bezkit / torchcfm (target of the issue: <= 0.5), and the exact W2 (``bezkit.metrics.wasserstein2``)
of ``--ode-steps`` Euler steps from ``--eval-n`` held-out source points to ``--eval-n`` held-out
target points, beside the noise floor (target: bezkit no worse than torchcfm).

torchcfm: the real package is used when importable (``--impl torchcfm``/``auto``); otherwise
``torchcfm_reference.py`` (``--impl reference``), and RESULTS.md says which one ran.

    PYTHONPATH=/tmp/torchcfm-nodeps python benchmarks/vs_torchcfm.py
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numpy as np
import torch
from _common import (
    StepClock,
    command_line,
    load_average,
    machine_lines,
    markdown_table,
    now,
    write_section,
)

from bezkit.couplings import IndependentCoupling, MinibatchOTCoupling
from bezkit.data.toy2d import get_sampler
from bezkit.metrics.wasserstein import noise_floor, wasserstein2
from bezkit.models.mlp import MLPVelocity
from bezkit.solvers import solve_ode
from bezkit.training import FlowMatchingLoss, TrainConfig, train

SECTION = "vs_torchcfm"


def load_matcher(impl: str):
    """Return (matcher factory, description)."""
    if impl in ("auto", "torchcfm"):
        try:
            import torchcfm
            from torchcfm.conditional_flow_matching import (
                ExactOptimalTransportConditionalFlowMatcher,
            )

            desc = f"torchcfm {torchcfm.__version__} (the real package, {torchcfm.__file__})"
            return (lambda: ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)), desc
        except ImportError:
            if impl == "torchcfm":
                raise
    from torchcfm_reference import ReferenceExactOTCFM

    desc = (
        "benchmarks/torchcfm_reference.py: a reading of torchcfm's "
        "ExactOptimalTransportConditionalFlowMatcher (torchcfm itself was not importable)"
    )
    return (lambda: ReferenceExactOTCFM(sigma=0.0)), desc


def check_reference(source, target, n: int = 256) -> str:
    """The reference reading returns exactly torchcfm's tensors under the same seeds."""
    try:
        from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher
    except ImportError:
        return "reference check skipped (torchcfm not importable)"
    from torchcfm_reference import ReferenceExactOTCFM

    g = torch.Generator().manual_seed(123)
    x0, x1 = source.sample(n, g), target.sample(n, g)
    outs = []
    for m in (ExactOptimalTransportConditionalFlowMatcher(sigma=0.0), ReferenceExactOTCFM()):
        np.random.seed(7)
        torch.manual_seed(7)
        outs.append(m.sample_location_and_conditional_flow(x0, x1))
    same = all(torch.equal(a, b) for a, b in zip(*outs, strict=True))
    return f"torchcfm_reference.py vs torchcfm, batch {n}: {'identical' if same else 'DIFFERENT'}"


def torchcfm_loss(matcher):
    """torchcfm's loss ``||v(x_t, t) - u_t||^2``; ``matcher`` draws the pairing and ``t``."""

    def loss(model, pairs, generator):  # generator unused: torchcfm draws t from torch's state
        t, xt, ut = matcher.sample_location_and_conditional_flow(pairs.x0, pairs.x1)
        return (model(xt, t) - ut).pow(2).mean()

    return loss


@torch.no_grad()
def evaluate(model, source, target, n: int, ode_steps: int, seed: int) -> float:
    """W2 of ``n`` Euler-sampled points (``ode_steps``) to ``n`` seeded target points."""
    x0 = source.sample(n, torch.Generator().manual_seed(10_000 + seed))
    ref = target.sample(n, torch.Generator().manual_seed(20_000 + seed))
    return wasserstein2(solve_ode(model, x0, method="euler", steps=ode_steps).x, ref)


Results = dict[tuple[int, int, str], list[tuple[float, float, float]]]


def run_grid(args: argparse.Namespace, source, target, impls: list[str], make_matcher) -> Results:
    """Train every (batch, threads, seed, implementation) once; evaluation is not timed."""
    default_threads = torch.get_num_threads()
    # results[(batch, threads, impl)] -> list of (wall s, ms/step, W2) over seeds
    results: Results = {}
    for k, (batch, threads, seed) in enumerate(
        itertools.product(args.batch_sizes, args.threads, args.seeds)
    ):
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        init = MLPVelocity(2, hidden=args.hidden).state_dict()
        order = impls if k % 2 == 0 else impls[::-1]  # alternate to spread drifts in the load
        for impl in order:
            model = MLPVelocity(2, hidden=args.hidden)
            model.load_state_dict(init)
            if impl == "torchcfm":
                np.random.seed(seed)
                sample = IndependentCoupling(source, target).sample
                loss, prefetch = torchcfm_loss(make_matcher()), 0
            else:
                sample = MinibatchOTCoupling(source, target, solver=args.solver).sample
                loss = FlowMatchingLoss()
                prefetch = args.prefetch if impl == "bezkit" else 0
            clock = StepClock(loss)
            config = TrainConfig(
                steps=args.steps, batch_size=batch, lr=args.lr, seed=seed, prefetch=prefetch,
                device="cpu", progress=False,
            )  # fmt: skip
            res = train(model, clock, sample, config)
            clock.stop()
            ms = 1e3 * clock.per_step(args.warmup)[0]
            torch.set_num_threads(default_threads)  # evaluation is not timed
            w2 = evaluate(res.model, source, target, args.eval_n, args.ode_steps, seed)
            torch.set_num_threads(threads)
            results.setdefault((batch, threads, impl), []).append((res.wall_seconds, ms, w2))
            print(
                f"batch {batch} threads {threads} seed {seed} {impl:13s}: "
                f"{res.wall_seconds:6.2f} s, {ms:6.2f} ms/step, W2 {w2:.4f}",
                flush=True,
            )
    torch.set_num_threads(default_threads)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256])
    p.add_argument("--steps", type=int, default=2000, help="training steps of every run")
    p.add_argument("--warmup", type=int, default=50, help="steps left out of the ms/step")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="torch.set_num_threads values; every implementation runs at each",
    )
    p.add_argument("--prefetch", type=int, default=2, help="bezkit's TrainConfig.prefetch")
    p.add_argument("--solver", default="emd", choices=["emd", "hungarian"])
    p.add_argument("--no-serial", action="store_true", help="skip the bezkit prefetch-0 runs")
    p.add_argument("--impl", default="auto", choices=["auto", "torchcfm", "reference"])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--source", default="8gaussians")
    p.add_argument("--target", default="moons")
    p.add_argument("--eval-n", type=int, default=2000)
    p.add_argument("--ode-steps", type=int, default=100)
    p.add_argument("--target-ratio", type=float, default=0.5)
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every configuration, print the table and verdicts, and update RESULTS.md."""
    args = parse_args(argv)

    t_start = time.perf_counter()
    load_before, date = load_average(), now()
    source, target = get_sampler(args.source), get_sampler(args.target)
    make_matcher, impl_desc = load_matcher(args.impl)
    ref_check = check_reference(source, target) if args.impl != "reference" else "-"
    print(f"torchcfm side: {impl_desc}\n{ref_check}", flush=True)

    impls = ["bezkit", *([] if args.no_serial else ["bezkit-serial"]), "torchcfm"]
    results = run_grid(args, source, target, impls, make_matcher)
    floors: dict[int, float] = {}
    for seed in args.seeds:
        floors[seed] = noise_floor(target, args.eval_n, seed=30_000 + seed)
    floor = statistics.mean(floors.values())

    def mean_sd(xs: list[float], fmt: str) -> str:
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{format(statistics.mean(xs), fmt)} ± {format(sd, fmt)}"

    rows, summary_rows, verdicts = [], [], []
    for batch, threads in itertools.product(args.batch_sizes, args.threads):
        tc = results[(batch, threads, "torchcfm")]
        for impl in impls:
            r = results[(batch, threads, impl)]
            ratio = [a[0] / b[0] for a, b in zip(r, tc, strict=True)]
            rows.append([
                batch, threads, impl, mean_sd([x[0] for x in r], ".2f"),
                mean_sd([x[1] for x in r], ".2f"), mean_sd(ratio, ".3f"),
                mean_sd([x[2] for x in r], ".4f"),
            ])  # fmt: skip
    for batch in args.batch_sizes:

        def best(impl: str, batch: int = batch) -> int:
            walls = {
                n: statistics.mean(x[0] for x in results[(batch, n, impl)]) for n in args.threads
            }
            return min(walls, key=walls.get)

        tb, tt = best("bezkit"), best("torchcfm")
        b, t = results[(batch, tb, "bezkit")], results[(batch, tt, "torchcfm")]
        ratio = statistics.mean(x[0] for x in b) / statistics.mean(x[0] for x in t)
        w2b, w2t = statistics.mean(x[2] for x in b), statistics.mean(x[2] for x in t)
        # paired by seed: same initial weights, raw batches and evaluation points
        dw = [x[2] - y[2] for x, y in zip(b, t, strict=True)]
        dw_mean, dw_sd = statistics.mean(dw), statistics.stdev(dw) if len(dw) > 1 else 0.0
        same = {
            th: statistics.mean(
                x[0] / y[0]
                for x, y in zip(
                    results[(batch, th, "bezkit")], results[(batch, th, "torchcfm")], strict=True
                )
            )
            for th in args.threads
        }
        summary_rows.append([
            batch, f"{statistics.mean(x[0] for x in b):.2f} (threads {tb})",
            f"{statistics.mean(x[0] for x in t):.2f} (threads {tt})", f"{ratio:.3f}",
            ", ".join(f"{r:.3f} ({th} thr)" for th, r in same.items()),
            f"{w2b:.4f}", f"{w2t:.4f}", f"{dw_mean:+.4f} ± {dw_sd:.4f}", f"{floor:.4f}",
        ])  # fmt: skip
        if dw_mean <= 0:
            w2_verdict = "no worse: MET"
        else:
            within = "within" if dw_mean <= dw_sd else "outside"
            w2_verdict = (
                f"higher by {dw_mean:.4f}, {within} the seed-to-seed spread of the paired "
                f"difference ({dw_sd:.4f}): strictly MISSED"
            )
        verdicts.append(
            f"- batch {batch}: wall-time ratio bezkit/torchcfm, each at its fastest thread "
            f"setting, {ratio:.3f} (at equal threads: "
            + ", ".join(f"{r:.3f} with {th}" for th, r in same.items())
            + f") -> target (<= {args.target_ratio}) "
            f"{'MET' if ratio <= args.target_ratio else 'MISSED'}"
        )
        verdicts.append(
            f"- batch {batch}: W2 bezkit {w2b:.4f} vs torchcfm {w2t:.4f} (mean of "
            f"{len(args.seeds)} seeds; paired difference {dw_mean:+.4f} ± {dw_sd:.4f}) -> "
            f"{w2_verdict}"
        )
    table = markdown_table(
        ["batch", "torch threads", "implementation", "train wall s", "ms/step",
         "wall ratio to torchcfm", f"W2 ({args.ode_steps} Euler steps)"],
        rows,
    )  # fmt: skip
    summary = markdown_table(
        ["batch", "bezkit wall s", "torchcfm wall s", "ratio (fastest vs fastest)",
         "ratio at equal threads", "W2 bezkit", "W2 torchcfm", "W2 difference (paired)",
         "noise floor"],
        summary_rows,
    )  # fmt: skip
    elapsed = time.perf_counter() - t_start
    print("\n" + summary + "\n" + "\n".join(verdicts) + "\n\n" + table)

    body = "\n".join([
        f"Command: `{command_line()}`",
        "",
        f"- date: {date}; wall time of the whole benchmark: {elapsed:.0f} s",
        *machine_lines(args.threads),
        f"- load average (1/5/15 min) before: {load_before}; after: {load_average()}",
        f"- torchcfm side: {impl_desc}; {ref_check}",
        f"- data: {args.source} -> {args.target}; model MLPVelocity(2, hidden={args.hidden}); "
        f"{args.steps} steps ({args.warmup} left out of ms/step), AdamW lr {args.lr}, cosine, "
        f"grad clip 1.0, seeds {args.seeds}; bezkit: exact OT permutation ({args.solver}), "
        f"prefetch {args.prefetch}",
        f"- W2: exact, {args.eval_n} generated ({args.ode_steps} Euler steps from held-out "
        f"source points) vs {args.eval_n} held-out target points; noise floor (two independent "
        f"target samples of {args.eval_n}): {floor:.4f}",
        "- values are mean ± standard deviation over the seeds; the ratio is per seed, then "
        "averaged",
        "",
        summary,
        "",
        *verdicts,
        "",
        table,
    ])  # fmt: skip
    if not args.no_write:
        write_section(SECTION, "bezkit vs torchcfm, OT-CFM training (`benchmarks/vs_torchcfm.py`)",
                      body)  # fmt: skip
        print(f"\nwrote section '{SECTION}' of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
