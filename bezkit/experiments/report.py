"""The experiment's Markdown report: one table per question, numbers as measured."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

__all__ = ["error_accumulation_table", "markdown_report"]


def _f(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}f}"


def _by_method(runs: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in runs:
        out[r["method"]][r["k"]] = r
    return out


def error_accumulation_table(exp: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Per round k: W2 of the k-RF at many and one step, of each one-step student, and of the
    round's training endpoints (the error baked into its pairs)."""
    by = _by_method(exp["runs"])
    steps = sorted({int(s) for r in exp["runs"] for s in r["metrics"]["w2"]})
    many, one = str(steps[-1]), str(steps[0])
    # round 1 trains on independent pairs (real endpoints); round k >= 2 on the (k-1)-RF's outputs
    endpoints = {
        c["k"]: c["endpoint_w2"]
        for c in exp["couplings"]
        if c["coupling"] in ("independent", "reflow")
    }
    table: dict[int, dict[str, float]] = {}
    ks = sorted(
        {r["k"] for r in exp["runs"] if r["method"] == "rf"} | set(by.get("rf-distill", {}))
    )
    for k in ks:
        row: dict[str, float] = {}
        if k in endpoints:
            row["training endpoints"] = endpoints[k]
        if k in by.get("rf", {}):
            row[f"k-RF @{many}"] = by["rf"][k]["metrics"]["w2"][many]
            row[f"k-RF @{one}"] = by["rf"][k]["metrics"]["w2"][one]
        for method in (
            "rf-distill",
            "anchored-distill",
            "bezier-quadratic",
            "bezier-cubic",
            "bdense",
            "bezier-quadratic-interp",
            "bezier-quadratic-tangent",
            "bezier-quadratic-teacher",
        ):
            if k in by.get(method, {}):
                row[f"{method} @{one}"] = by[method][k]["metrics"]["w2"][one]
        table[k] = row
    return table


def _experiment_section(exp: dict[str, Any]) -> list[str]:
    lines = [f"## {exp['source']} -> {exp['target']}", ""]
    lines.append(
        f"W2 noise floor (fresh real samples of the evaluation size against the same held-out "
        f"reference, {len(exp['noise_floor_samples'])} draws): **{_f(exp['noise_floor'])} ± "
        f"{_f(exp['noise_floor_std'])}** (mean ± std). Differences between methods smaller than "
        f"about that spread are within sampling noise. Wall time of this pair: "
        f"{exp['wall_seconds']:.0f} s."
    )
    lines.append("")
    steps = sorted({int(s) for r in exp["runs"] for s in r["metrics"]["w2"]})
    lines.append("### W2 to held-out data by Euler steps (NFE = steps)")
    lines.append("")
    head = "| method | k | " + " | ".join(f"{s} step{'s' if s > 1 else ''}" for s in steps)
    lines += [head + " | train s |", "|" + " --- |" * (len(steps) + 3)]
    for r in exp["runs"]:
        w2 = " | ".join(_f(r["metrics"]["w2"][str(s)]) for s in steps)
        lines.append(f"| {r['method']} | {r['k']} | {w2} | {r['train_seconds']:.1f} |")
    lines += [
        "",
        f"### Straightness, curvature, crossings, cost (on the {steps[-1]}-step trajectories)",
        "",
    ]
    lines += [
        "| method | k | straightness | normalised | curvature | crossing pairs (of C(m,2)) "
        "| crossings / trajectory | transport cost | path energy |",
        "|" + " --- |" * 9,
    ]
    for r in exp["runs"]:
        m = r["metrics"]
        lines.append(
            f"| {r['method']} | {r['k']} | {_f(m['straightness'], 4)} | "
            f"{_f(m['normalised_straightness'], 4)} | {_f(m['curvature'], 4)} | "
            f"{m['crossing_pairs']} ({m['crossing_fraction']:.4f}) | "
            f"{_f(m['crossings_per_trajectory'], 2)} | {_f(m['transport_cost'])} | "
            f"{_f(m['path_energy'])} |"
        )
    lines += [
        "",
        "### Couplings (the training pairs themselves)",
        "",
        "| coupling | used by round k | endpoint W2 to real data | transport cost E‖X1-X0‖² "
        "| crossing fraction of straight segments |",
        "|" + " --- |" * 5,
    ]
    for c in exp["couplings"]:
        lines.append(
            f"| {c['coupling']} | {c['k']} | {_f(c['endpoint_w2'])} | "
            f"{_f(c['transport_cost'])} | {c['segment_crossing_fraction']:.4f} |"
        )
    table = error_accumulation_table(exp)
    cols = sorted(
        {c for row in table.values() for c in row},
        key=lambda c: (c != "training endpoints", not c.startswith("k-RF"), c),
    )
    lines += [
        "",
        "### Error accumulation across k (W2; lower is better)",
        "",
        "| k | " + " | ".join(cols) + " |",
        "|" + " --- |" * (len(cols) + 1),
    ]
    for k, row in table.items():
        lines.append(f"| {k} | " + " | ".join(_f(row[c]) if c in row else "" for c in cols) + " |")
    lines.append("")
    return lines


def markdown_report(results: dict[str, Any], figures: list[str]) -> str:
    """The whole report: how it was made, then one section per (source, target)."""
    lines = ["# bezkit 2D experiment: reflow, distillation, Bezier distillation, B-DENSE, OT", ""]
    lines.append(f"Command: `{results['command']}`  ")
    m = results["machine"]
    lines.append(
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
        f"({m['threads']} thread(s)), Python {m['python']}  "
    )
    lines.append(
        f"Date: {results['date']}; total wall time {results['wall_seconds']:.0f} s; "
        f"seed {results['config']['seed']}."
    )
    lines += [
        "",
        "All W2 values are exact (POT) between the generated samples and the same "
        "held-out target sample; compare them to the noise floor, not to zero. "
        "One-step students are evaluated with Euler at every step count, although they were "
        "trained for one step.",
        "",
    ]
    for exp in results["experiments"]:
        lines += _experiment_section(exp)
    if figures:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(lines)
