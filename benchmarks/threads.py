"""The Python API's thread setting for small models: ``TrainConfig(cpu_threads="auto")`` (one
thread while a small model trains, the caller's setting restored) against ``cpu_threads=None``
(torch's default thread count, what a recipe called from Python used before issue 17).

The README's first recipe, ``train_flow`` of a 1-RF (8 Gaussians -> moons, ``new_mlp(2)``: hidden
256, depth 3, batch 256), for ``--steps`` steps, each setting ``--repeats`` times, interleaved;
wall time of the whole call (median). The process starts with torch's default threads (do not set
OMP_NUM_THREADS for this script).

    python benchmarks/threads.py
    python benchmarks/threads.py --steps 100 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import command_line, load_average, machine_lines, markdown_table, now, write_section

from bezkit.couplings import IndependentCoupling
from bezkit.data.toy2d import get_sampler
from bezkit.methods import new_mlp, train_flow
from bezkit.training import TrainConfig

SECTION = "threads"


def one_run(steps: int, cpu_threads: str | None) -> float:
    coupling = IndependentCoupling(get_sampler("8gaussians"), get_sampler("moons"))
    config = TrainConfig(steps=steps, progress=False, cpu_threads=cpu_threads)
    t0 = time.perf_counter()
    train_flow(new_mlp(2, seed=0), coupling, config)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    load_before = load_average()
    times: dict[str, list[float]] = {"None (torch default)": [], '"auto" (1 thread)': []}
    for _ in range(args.repeats):
        times["None (torch default)"].append(one_run(args.steps, None))
        times['"auto" (1 thread)'].append(one_run(args.steps, "auto"))
        assert torch.get_num_threads() == default_threads  # the caller's setting restored
    rows = []
    base = statistics.median(times["None (torch default)"])
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append([name, f"{med:.2f}", f"{base / med:.1f}x", " ".join(f"{t:.2f}" for t in ts)])
    table = markdown_table(["cpu_threads", "median s", "speed-up", "runs (s)"], rows)
    print(table)
    if args.no_write:
        return
    body = "\n".join(
        [
            f"`{command_line()}`, {now()}; load average before: {load_before}, after: "
            f"{load_average()}",
            "",
            *machine_lines([default_threads, 1]),
            "",
            f"`train_flow(new_mlp(2), IndependentCoupling(8gaussians, moons), "
            f"TrainConfig(steps={args.steps}, cpu_threads=...))`, wall time of the call:",
            "",
            table,
        ]
    )
    write_section(SECTION, "Thread setting of the Python API (benchmarks/threads.py)", body)


if __name__ == "__main__":
    main()
