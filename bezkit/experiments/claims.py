"""The seed's claims as paired differences, with verdicts that survive many tests and two budgets.

Each claim is a paired difference ``A - B`` (negative: the claim's method ``A`` is better), an
:class:`~bezkit.experiments.statistics.Interval` over seeds with its raw two-sided t-test p-value.
Verdicts are read from **Holm-adjusted** p-values (METHODS.md section 6), one family per column:

- the student claims of one (source, target) at one student budget form one family (every claim
  of that column of the report's claims table, all rounds k);
- the chain claims of one (source, target) form another.

A student claim is answered at every student budget; its answer is *yes* or *no (worse)* only
where every budget gives that answer (:func:`~bezkit.experiments.statistics.budget_verdict`),
otherwise *depends on budget* (the table shows each budget's difference). The raw 95% interval
stays in the table: it excludes 0 exactly when the raw p-value is below 0.05.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bezkit.experiments.protocol import STUDENTS
from bezkit.experiments.results import (
    chain_difference_by_k,
    chain_values,
    method_difference,
    methods_of,
    paired_table,
    student_budgets,
    student_rounds,
    twin_table,
)
from bezkit.experiments.statistics import (
    Interval,
    budget_verdict,
    holm,
    paired_difference,
    verdict,
)

__all__ = ["Claim", "claims", "claims_record", "findings", "with_claims"]

#: How the "error accumulates" claims read a verdict on (round K minus round 1).
_GROWS = {"yes": "no: it decreases", "no (worse)": "yes: it grows"}


@dataclass
class Claim:
    """One claim: its label, its family (``"students"`` or ``"chains"``), and per student budget
    (``None`` for a chain claim, which has no student budget) the interval of ``A - B``, the
    Holm-adjusted p-value and the verdict; ``answer`` is the verdict over all budgets."""

    label: str
    family: str
    intervals: dict[int | None, Interval]
    adjusted: dict[int | None, float] = field(default_factory=dict)
    verdicts: dict[int | None, str] = field(default_factory=dict)
    answer: str = ""
    grows: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: ``{"label", "family", "answer", "by_budget": [{"budget" (optimiser
        steps, None for chains), "mean", "low", "high", "n", "p", "p_holm", "verdict"}]}``."""
        return {
            "label": self.label,
            "family": self.family,
            "answer": self.answer,
            "by_budget": [
                {
                    "budget": b,
                    **iv.to_dict(),
                    "p_holm": self.adjusted[b],
                    "verdict": self.verdicts[b],
                }
                for b, iv in self.intervals.items()
            ],
        }


def _student_claims(exp: dict[str, Any], budget: int | None) -> dict[str, Interval]:
    """Every student claim of ``exp`` at one budget, by label."""
    out: dict[str, Interval] = {}
    names = methods_of(exp, baselines=False)
    for k in student_rounds(exp):
        twins = twin_table(exp, k, budget=budget)
        for m, iv in twins.items():
            out[f"{m} beats its linear twin {STUDENTS[m].linear_twin} (k={k})"] = iv
        for m, iv in paired_table(exp, k, budget=budget).items():
            spec = STUDENTS[m]
            if spec.order > 1 and not (m in twins and spec.linear_twin == f"rf-distill-{spec.nfe}"):
                out[f"{m} beats plain distillation rf-distill-{spec.nfe} at equal NFE (k={k})"] = iv
        for n in (2, 4):
            curve, state = f"bezier-forward-{n}-secant", f"bezier-state-{n}-secant"
            if curve in names and state in names:
                iv = method_difference(exp, curve, state, k, budget=budget)
                out[f"{curve} (the curve) beats the teacher-state control {state} (k={k})"] = iv
        if "bdense-restart" in names:
            for n in (2, 4):
                if f"rf-distill-{n}" not in names:
                    continue
                try:
                    iv = method_difference(
                        exp,
                        "bdense-restart",
                        f"rf-distill-{n}",
                        k,
                        n,
                        field="w2_restart",
                        other_field="w2",
                        budget=budget,
                    )
                except KeyError:
                    continue
                out[f"bdense-restart (restart sampler) beats rf-distill-{n} at {n} NFE (k={k})"] = (
                    iv
                )
        if "bezier-cubic-uniform" in names and "bezier-quadratic-uniform" in names:
            iv = method_difference(
                exp, "bezier-cubic-uniform", "bezier-quadratic-uniform", k, budget=budget
            )
            out[f"multi-teacher cubic beats quadratic, both uniform t (k={k})"] = iv
    return out


_CHAIN_FIELDS = (
    ("w2_many_steps", "many-step Euler W2"),
    ("w2_adaptive", "adaptive-solver W2"),
    ("w2_one_step", "one-step W2"),
)


def _chain_claims(exp: dict[str, Any]) -> tuple[dict[str, Interval], set[str]]:
    """Every chain claim of ``exp`` by label, and the labels of the "error accumulates" ones."""
    out: dict[str, Interval] = {}
    grows: set[str] = set()
    chains = exp.get("chains") or []
    if not chains:
        return out, grows
    kinds = list(dict.fromkeys(c["chain"] for c in chains))
    fields = [
        (f, what)
        for f, what in _CHAIN_FIELDS
        if f != "w2_adaptive" or "w2_adaptive" in chains[0]["metrics"]
    ]
    comparisons = [(kind, "reflow") for kind in kinds if kind != "reflow" and "reflow" in kinds]
    if "bezier" in kinds and "anchored" in kinds:
        comparisons.append(("bezier", "anchored"))
    for f, what in fields:
        for kind, base in comparisons:
            by_k = chain_difference_by_k(exp, f, baseline=base)[kind]
            last = max(by_k)
            label = f"{kind} chain beats the {base} chain at round {last}, {what}"
            if (kind, base) == ("bezier", "anchored"):
                label += " (same pairs, only the path differs)"
            out[label] = by_k[last]
    for f, what in [fw for fw in fields if fw[0] in ("w2_many_steps", "w2_adaptive")]:
        for kind in kinds:
            ks = sorted({c["k"] for c in chains if c["chain"] == kind})
            if len(ks) < 2:
                continue
            iv = paired_difference(
                chain_values(exp, kind, ks[-1], f), chain_values(exp, kind, ks[0], f)
            )
            label = f"{kind} chain: error accumulates ({what}, round {ks[-1]} minus round 1)"
            out[label] = iv
            grows.add(label)
    return out, grows


def _adjust(family: list[tuple[Claim, int | None]]) -> None:
    """Holm over one family of (claim, budget) tests; sets each adjusted p and verdict."""
    adjusted = holm([claim.intervals[b].p for claim, b in family])
    for (claim, b), p in zip(family, adjusted, strict=True):
        claim.adjusted[b] = p
        claim.verdicts[b] = verdict(claim.intervals[b], p)


def claims(exp: dict[str, Any]) -> list[Claim]:
    """Every claim of one experiment with raw intervals, Holm-adjusted p-values per family, the
    verdict at each student budget and the answer over budgets."""
    budgets: list[int | None] = list(student_budgets(exp)) or [None]
    out: list[Claim] = []
    by_label: dict[str, Claim] = {}
    for b in budgets:
        family: list[tuple[Claim, int | None]] = []
        if b is None:
            break
        for label, iv in _student_claims(exp, b).items():
            claim = by_label.setdefault(label, Claim(label, "students", {}))
            if not claim.intervals:
                out.append(claim)
            claim.intervals[b] = iv
            family.append((claim, b))
        _adjust(family)
    chain_ivs, grows = _chain_claims(exp)
    chain_family: list[tuple[Claim, int | None]] = []
    for label, iv in chain_ivs.items():
        claim = Claim(label, "chains", {None: iv}, grows=label in grows)
        out.append(claim)
        chain_family.append((claim, None))
    _adjust(chain_family)
    for claim in out:
        answers = [claim.verdicts[b] for b in claim.intervals]
        if len(answers) < len(budgets) and claim.family == "students":
            answers.append("not measured at every budget")
        answer = budget_verdict(answers)
        claim.answer = _GROWS.get(answer, answer) if claim.grows else answer
    return out


def claims_record(exp: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims of one experiment as ``results.json`` keeps them (:meth:`Claim.to_dict`): each
    with its raw interval and p-value, its Holm-adjusted p-value and verdict at every student
    budget, and its answer. Derived from the per-seed numbers beside them: a reader without
    bezkit sees the verdicts, and :func:`claims` recomputes them."""
    return [claim.to_dict() for claim in claims(exp)]


def with_claims(results: Mapping[str, Any]) -> bool:
    """Set every experiment's ``"claims"`` (:func:`claims_record`) in ``results``; whether any
    changed (a run saved before the claims were kept gains them)."""
    changed = False
    for exp in results["experiments"]:
        record = claims_record(exp)
        if exp.get("claims") != record:
            exp["claims"] = record
            changed = True
    return changed


def _cell(iv: Interval, p_holm: float) -> str:
    return f"{iv.format()} (p {iv.p:.3g}, Holm {p_holm:.3g})"


def findings(
    exp: dict[str, Any],
    *,
    family: str | None = None,
    cell: Callable[[Interval, float], str] = _cell,
) -> dict[str, dict[str, Any]]:
    """The claims (of ``family``, default all) as table rows ``{label: {"students, <budget>
    steps" or "chains (no student budget)": cell, ..., "answer": str}}``: each budget's raw
    difference ``mean [95% CI]`` with its raw and Holm-adjusted p-values, and the answer (yes /
    no (worse) / not distinguishable / depends on budget; for the accumulation claims: yes: it
    grows / no: it decreases)."""
    rows: dict[str, dict[str, Any]] = {}
    for claim in claims(exp):
        if family is not None and claim.family != family:
            continue
        row: dict[str, Any] = {}
        for b, iv in claim.intervals.items():
            key = "chains (no student budget)" if b is None else f"students, {b} steps"
            row[key] = cell(iv, claim.adjusted[b])
        row["answer"] = claim.answer
        rows[claim.label] = row
    return rows
