"""Predict-then-run questions: the student guesses first, the check explains, a cell then shows it.

Each :class:`Question` has lettered choices, the right letter and an explanation. In a lesson the
student writes ``def predict_...(): return "b"``, runs ``check_prediction("01.one-step", predict_...)``
and only then runs the cell that shows the answer. The texts live here, once; the notebook's
markdown asks the question and :func:`show_question` prints the choices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bezkit.exercises.result import CheckResult, attempt

__all__ = ["QUESTIONS", "Question", "check_prediction", "show_question"]


@dataclass(frozen=True)
class Question:
    """A multiple-choice prediction: ``choices`` maps a letter to its text."""

    prompt: str
    choices: dict[str, str]
    answer: str
    explanation: str

    def __post_init__(self) -> None:
        if self.answer not in self.choices:
            raise ValueError(f"answer {self.answer!r} is not one of {sorted(self.choices)}")


QUESTIONS: dict[str, Question] = {
    "01.one-step": Question(
        prompt="Where do the 1-RF's samples land after ONE Euler step from the 8 Gaussians?",
        choices={
            "a": "on the two moons, like the 100-step samples",
            "b": "bunched in a small blob near the middle of the moons",
            "c": "they barely move from the 8 Gaussians",
        },
        answer="b",
        explanation=(
            "at t = 0 the independent coupling pairs every X0 with any X1, so the ideal velocity "
            "is v(x, 0) = E[X1] - x and one step x + v(x, 0) sends EVERY point to the target's "
            "mean E[X1]. The trained 1-RF is close to that: a blob near the middle."
        ),
    ),
    "02.chords": Question(
        prompt=(
            "The 1-RF's trajectories never meet at the same (x, t). Do the straight chords "
            "Z0 -> Z1 of those trajectories (the 2-RF's training pairs) cross each other?"
        ),
        choices={
            "a": "no, never: trajectories that never meet give chords that never cross",
            "b": "yes, but far fewer than independent pairs",
            "c": "as often as independent pairs",
        },
        answer="b",
        explanation=(
            "the chords are not the trajectories: two curved paths that never meet can have "
            "crossing chords. Reflow removes most crossings (the coupling is far less tangled), "
            "not all of them; the 2-RF's chords cross even less."
        ),
    ),
    "04.t0-target": Question(
        prompt=(
            "A one-step student is trained only at t = 0 with the endpoint target on quadratic "
            "curves X0 -> G -> X1. What does it regress?"
        ),
        choices={
            "a": "the tangent at the start, 2 (G - X0)",
            "b": "X1 - X0, whatever the guide G",
            "c": "G - X0, towards the guide",
        },
        answer="b",
        explanation=(
            "at t = 0, B(0) = X0 and (X1 - B(0)) / (1 - 0) = X1 - X0 for every curve: the guide "
            "cannot matter. A one-step (t = 0) Bezier student with a real endpoint is a "
            "data-anchored distillation; the curve only matters for uniform t or N >= 2 steps."
        ),
    ),
    "05.anchored-side": Question(
        prompt=(
            "A data-anchored round trains on pairs (X0, X1): X1 is real held-in data, X0 comes "
            "from the previous round's reverse ODE. Where do those pairs carry the previous "
            "round's error?"
        ),
        choices={
            "a": "in X1, as for reflow pairs",
            "b": "in X0: its W2 to the source is above that of real source samples",
            "c": "nowhere: with a real endpoint the pairs are exact",
        },
        answer="b",
        explanation=(
            "the real X1 is exact, but the X0 that the reverse ODE returns are not distributed "
            "as the source: the error moves to the X0 side. Reflow pairs are the mirror image: "
            "X0 are fresh source samples and X1 are generated."
        ),
    ),
    "06.no-restarts": Question(
        prompt=(
            "A K = 4 B-DENSE student is trained from s = 0 only (no restarts). Sampled with 4 "
            "hops (0 -> 1/4 -> 1/2 -> 3/4 -> 1) instead of 1 step, its W2 is ..."
        ),
        choices={
            "a": "better: more network calls always help",
            "b": "worse: after the first hop it is asked about inputs at t > 0 it never saw",
            "c": "exactly the same",
        },
        answer="b",
        explanation=(
            "without restarts every training input is at s = 0; from t = 1/4 on the hops feed it "
            "states at times it was never trained at, and the errors add up."
        ),
    ),
    "07.distill-steps": Question(
        prompt="The distilled 2-RF (trained for one step) is sampled with 48 Euler steps. Its samples ...",
        choices={
            "a": "improve, as for the 1-RF",
            "b": "get worse than its own one-step samples",
            "c": "stay exactly the same",
        },
        answer="b",
        explanation=(
            "distillation trains the velocity at t = 0 only; at later times the network answers "
            "for inputs it never saw, so more steps move the samples off (see the table)."
        ),
    ),
}


def show_question(question_id: str) -> None:
    """Print the question and its lettered choices."""
    q = _question(question_id)
    print(q.prompt)
    for letter, text in q.choices.items():
        print(f"  ({letter}) {text}")


def _question(question_id: str) -> Question:
    if question_id not in QUESTIONS:
        raise KeyError(f"no question {question_id!r}; the questions are {sorted(QUESTIONS)}")
    return QUESTIONS[question_id]


def check_prediction(question_id: str, fn: Callable[[], str]) -> CheckResult:
    """Compare the letter ``fn()`` returns with the answer, and explain either way."""
    q = _question(question_id)
    name = f"{question_id} (prediction)"
    got = attempt(name, fn)
    if isinstance(got, CheckResult):
        return got
    letter = str(got).strip().lower().strip("()")
    if letter not in q.choices:
        return CheckResult.fail(name, f"answer one letter of {sorted(q.choices)}, not {got!r}.")
    if letter == q.answer:
        return CheckResult.ok(name, f"({letter}): {q.explanation}")
    return CheckResult.fail(
        name,
        f"you chose ({letter}) {q.choices[letter]!r}; the answer is ({q.answer}): {q.explanation}",
    )
