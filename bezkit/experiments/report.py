"""The experiment's Markdown report: how it was made, then one section per (source, target).

Every number is a mean over training seeds with its 95% t-interval ``mean [low, high]``;
comparisons between methods are paired differences (same seeds, same evaluation draws), read from
:mod:`bezkit.experiments.results`.
"""

from __future__ import annotations

from typing import Any

from bezkit.experiments.chains import CHAIN_ABOUT
from bezkit.experiments.claims import findings
from bezkit.experiments.protocol import STUDENTS
from bezkit.experiments.results import (
    baseline_values,
    budget_table,
    chain_by_k,
    chain_difference_by_k,
    coupling_by_k,
    format_table,
    method_values,
    methods_of,
    metric_by_k,
    paired_table,
    student_budgets,
    student_rounds,
    twin_table,
)
from bezkit.experiments.statistics import seed_means, t_interval

__all__ = ["findings", "markdown_report"]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _columns(exp: dict[str, Any]) -> list[tuple[int, int, str]]:
    """``(k, budget, column label)`` of every round and student budget."""
    budgets = student_budgets(exp)
    return [
        (k, b, f"k={k}" if len(budgets) == 1 else f"k={k}, {b} steps")
        for k in student_rounds(exp)
        for b in budgets
    ]


def _students(exp: dict[str, Any]) -> list[str]:
    ks = student_rounds(exp)
    if not ks:
        return []
    cols = _columns(exp)
    lines = ["### Students of the k-RF: W2 at the NFE each is made for", ""]
    rows: dict[str, dict[str, Any]] = {}
    for k, b, label in cols:
        for m, by_k in metric_by_k(exp, budget=b).items():
            spec = STUDENTS.get(m)
            row = rows.setdefault(
                m, {"NFE": str(spec.nfe if spec else 1), "what": spec.about if spec else ""}
            )
            if k in by_k:
                row[label] = by_k[k]
    lines += [format_table(rows, row_label="method"), ""]
    lines += [
        "### Paired differences against plain k-RF distillation at equal NFE",
        "",
        "Method minus `rf-distill` (one step) or `rf-distill-N` (N steps), same seeds and "
        "evaluation draws, at each student budget; negative = better than plain distillation. "
        "Uniform-t students are compared with uniform-t students only (their linear twin). "
        "Raw 95% intervals; the claims table above gives the adjusted verdicts.",
        "",
    ]
    paired_rows: dict[str, dict[str, Any]] = {}
    twins: dict[str, dict[str, Any]] = {}
    for k, b, label in cols:
        for m, iv in paired_table(exp, k, budget=b).items():
            paired_rows.setdefault(m, {})[label] = iv
        for m, iv in twin_table(exp, k, budget=b).items():
            twins.setdefault(m, {"linear twin": STUDENTS[m].linear_twin})[label] = iv
    lines += [format_table(paired_rows, row_label="method"), ""]
    if twins:
        lines += [
            "### The curve against the line: Bezier minus its linear twin",
            "",
            "Same pairs, time distribution, steps and budget; only the path differs "
            "(negative = the curve is better). The `bezier-forward-*` and `bezier-state-*` "
            "students are on `rf-distill-N`'s own forward pairs: their twin is `rf-distill-N`.",
            "",
            format_table(twins, row_label="method"),
            "",
        ]
    lines += _restart_tables(exp, ks)
    exact = {m: v for m, v in metric_by_k(exp, field="w2_exact").items() if v}
    if exact:
        exact_rows = {m: {f"k={k}": iv for k, iv in by_k.items()} for m, by_k in exact.items()}
        lines += [
            "### Exact W2 (POT) at the own NFE, where computed",
            "",
            format_table(exact_rows, row_label="method"),
            "",
        ]
    return lines


def _restart_tables(exp: dict[str, Any], ks: list[int]) -> list[str]:
    lines: list[str] = []
    for m in methods_of(exp, baselines=False):
        if m not in STUDENTS or not STUDENTS[m].restarts:
            continue
        rows: dict[str, dict[str, Any]] = {}
        for k in ks:
            for field, label in (("w2", "Euler"), ("w2_restart", "restart sampler")):
                for s in (1, 2, 4):
                    try:
                        iv = t_interval(seed_means(method_values(exp, m, k, s, field=field)))
                    except KeyError:
                        continue
                    rows.setdefault(f"{label}, k={k}", {})[f"{s} NFE"] = iv
        lines += [
            f"### {m}: Euler against its own restart sampler",
            "",
            format_table(rows, row_label="sampler"),
            "",
        ]
    return lines


def _chains(exp: dict[str, Any]) -> list[str]:
    if not exp.get("chains"):
        return []
    lines = ["### Chains: each round's teacher is the previous round's model", ""]
    fields = {
        "trained on": None,
        "its pairs: X0 W2 to source": "trained_on_x0_w2",
        "its pairs: X1 W2 to target": "trained_on_x1_w2",
        "W2 @1": "w2_one_step",
        "W2 @many": "w2_many_steps",
        "W2 adaptive": "w2_adaptive",
        "reverse X0 W2 to source": "reverse_x0_w2",
        "straightness": "straightness",
    }
    if "w2_adaptive" not in exp["chains"][0]["metrics"]:  # a run saved before it was measured
        del fields["W2 adaptive"]
    tables = {f: chain_by_k(exp, f) for f in fields.values() if f}
    for kind in tables["w2_one_step"]:
        lines += [f"**{kind}** chain: {CHAIN_ABOUT.get(kind, '')}", ""]
        rows = {}
        for k in tables["w2_one_step"][kind]:
            rec = next(c for c in exp["chains"] if c["chain"] == kind and c["k"] == k)
            rows[k] = {"trained on": rec["trained_on"]["pairs"]}
            rows[k].update({label: tables[f][kind][k] for label, f in fields.items() if f})
        lines += [format_table(rows, row_label="round k"), ""]
    lines += [
        "Columns: *its pairs* are the pairs the round was trained on (made by round k - 1; round 1: "
        "independent pairs), both sides against held-out data; *W2 @many* is the X1 side of the "
        "pairs the round makes (fixed Euler grid), *W2 adaptive* the same flow solved with "
        "dopri5 (no grid error), *reverse X0 W2* the X0 side of the data-anchored pairs it makes.",
        "",
        "Paired differences between chains (chain minus reflow chain, and Bezier minus "
        "data-anchored chain: same endpoints, only the path differs; same seeds and draws):",
        "",
    ]
    diff_rows: dict[str, dict[str, Any]] = {}
    kinds = {c["chain"] for c in exp["chains"]}
    bases = [b for b in ("reflow", "anchored") if b in kinds]
    for field, label in (
        ("w2_many_steps", "W2 @many"),
        ("w2_adaptive", "W2 adaptive"),
        ("w2_one_step", "W2 @1"),
        ("reverse_x0_w2", "reverse X0 W2"),
    ):
        if field not in fields.values():
            continue
        for base in bases:
            for kind, by_k in chain_difference_by_k(exp, field, baseline=base).items():
                if base == "anchored" and kind != "bezier":
                    continue
                for k, iv in by_k.items():
                    diff_rows.setdefault(f"{kind} - {base}, k={k}", {})[label] = iv
    lines += [format_table(diff_rows, row_label="difference"), ""]
    return lines


def _experiment_section(exp: dict[str, Any]) -> list[str]:
    lines = [f"## {exp['source']} -> {exp['target']}", ""]
    data = exp.get("data", {})
    for side in ("source", "target"):
        info = data.get(side, {})
        if info.get("kind") == "points":
            lines.append(
                f"{side.capitalize()} file {info['name']}: {info['train']} training points, "
                f"{info['held_out']} held out (the reference draws n points from the held-out part, "
                "with replacement; the noise floor compares the training part with it)."
            )
    lines += [
        f"Seeds {exp['seeds']}; {exp['eval_draws']} evaluation draws of n = {exp['n_eval']}; "
        f"W2 estimator: {exp['w2_estimator']}. Noise floor (a perfect sampler's W2 against the "
        f"same reference, per draw): target {', '.join(f'{v:.3f}' for v in exp['noise_floor'])}; "
        f"source {', '.join(f'{v:.3f}' for v in exp['source_noise_floor'])}. It describes the "
        f"estimator, not a significance threshold: compare methods by the paired differences. "
        f"Wall time of this pair: {exp['wall_seconds']:.0f} s.",
        "",
        "### Budgets (one training, mean over seeds and rounds)",
        "",
        "Wall seconds include generating the pairs the method trains on, counted in full for "
        "every method that uses a shared pool. Teacher NFE = pairs x teacher evaluations per pair.",
        "",
    ]
    budgets = {
        name: {
            "steps": str(b["steps"]),
            "pairs": str(b["pairs"]),
            "teacher NFE": f"{b['teacher_nfe']:.0f}",
            "wall s": f"{b['wall_seconds']:.1f}",
        }
        for name, b in budget_table(exp).items()
    }
    lines += [format_table(budgets, row_label="method"), ""]
    lines += [
        "### The seed's claims, answered by paired differences",
        "",
        "Each row: the raw interval of (claim's method minus what it is compared with), same "
        "seeds and evaluation draws (each seed its own), with its raw t-test p-value and the "
        "Holm-adjusted one (family: the column, i.e. every student claim at one student budget, "
        "or every chain claim; docs/METHODS.md section 6). The answer is *yes* (below 0) or "
        "*no (worse)* only where the adjusted p is below 0.05 at every student budget; where "
        "the budgets disagree it is *depends on budget*.",
        "",
    ]
    students = findings(exp, family="students")
    if students:
        lines += ["**Students**", "", format_table(students, row_label="claim"), ""]
    chains = findings(exp, family="chains")
    if chains:
        lines += ["**Chains**", "", format_table(chains, row_label="claim"), ""]
    lines += _students(exp)
    base = baseline_values(exp, 1)
    if base:
        many = max(int(s) for r in exp["runs"] if r["k"] is None for s in r["metrics"]["w2"])
        many_v = baseline_values(exp, many)
        rows = {m: {"W2 @1": base[m], f"W2 @{many}": many_v[m]} for m in base}
        lines += [
            "### OT baselines (trained once per seed)",
            "",
            format_table(rows, row_label="baseline"),
            "",
        ]
    lines += _chains(exp)
    cp = {side: coupling_by_k(exp, side) for side in ("x0_w2", "x1_w2")}
    if cp["x1_w2"]:
        lines += [
            "### The students' pools: both sides of each coupling",
            "",
            "Reflow pairs: fresh X0, generated X1. Data-anchored pairs: held-in real X1, "
            "reverse-ODE X0 (the generated side carries the error).",
            "",
        ]
        rows = {}
        for name, by_k in cp["x1_w2"].items():
            for k in by_k:
                rows[f"{name}, k={k}"] = {
                    "X0 W2 to source": cp["x0_w2"][name][k],
                    "X1 W2 to target": by_k[k],
                }
        lines += [format_table(rows, row_label="pool"), ""]
    return lines


def _budgets_text(cfg: dict[str, Any]) -> str:
    factors = cfg.get("budget_factors", [1])
    return " and ".join(str(cfg["student_steps"] * f) for f in factors)


def markdown_report(results: dict[str, Any], figures: list[str]) -> str:
    """The whole report (``results`` in the schema of :mod:`bezkit.experiments.results`)."""
    m = results["machine"]
    cfg = results["config"]
    lines = [
        "# bezkit 2D experiment: chains, students and OT baselines over seeds",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['threads']} torch "
        f"thread(s)), Python {m['python']}  ",
        f"Date: {results['date']}; total wall time {results['wall_seconds']:.0f} s.",
        "",
        f"Protocol (METHODS.md section 6): {cfg['seeds']} training seeds, K = {cfg['rounds']} "
        f"chain rounds, students at k = 1..{cfg['student_rounds']}; every student "
        f"fine-tuned from the k-RF on {cfg['n_pairs']} pairs for "
        f"{_budgets_text(cfg)} optimiser steps (the student budgets: every student that takes "
        "part in a claim is trained at each, and a claim's answer is yes / no only where they "
        "agree); one-step students trained at t = 0, N-step students on their N-step grid, "
        "`*-uniform` students at t ~ U[0, 1] (named as such and compared with uniform-t students "
        "only). With the endpoint target at t = 0 every curve gives X1 - X0, so there is no "
        "one-step Bezier column: the curve is compared at 2 and 4 steps and through the "
        "uniform-t variants.",
        "",
        f"W2: {cfg['w2']} estimator"
        + (
            f" ({cfg['n_projections']} seeded directions shared by all)"
            if cfg["w2"] == "sliced"
            else " (POT)"
        )
        + f" between n = {cfg['n_eval']} generated and n = {cfg['n_eval']} reference points "
        "(for a point file drawn with replacement from its held-out part), "
        f"{cfg['eval_draws']} draws per seed (each seed its own); exact W2 (POT) also for: "
        f"{', '.join(cfg['exact_methods']) or 'none'}. Numbers are mean [95% t-interval] over "
        "seeds (draws averaged within a seed, so the interval includes the evaluation noise). The claims are answered in this estimator: exact "
        "W2 at n = 4096 costs about 15 times a sliced one (3 s a call on an idle core, 12 s "
        "loaded; `benchmarks/exact_w2.py`), too much for every compared method of every seed "
        "and draw (docs/METHODS.md section 6).",
        "",
    ]
    for exp in results["experiments"]:
        lines += _experiment_section(exp)
    if figures:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(lines)
