"""Answer scorers (chosen by `tasks.scorer`) and the confidence-weighted vote."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from evoswarm.parsing import match_choice, normalize_answer


def score_choice(answer: str, gold: str, choices: list[str] | None = None) -> bool:
    if choices:
        return match_choice(answer, choices) == gold
    return normalize_answer(answer) == normalize_answer(gold)


def score_exact(answer: str, gold: str, choices: list[str] | None = None) -> bool:
    return normalize_answer(answer) == normalize_answer(gold)


def score_numeric(answer: str, gold: str, choices: list[str] | None = None) -> bool:
    nums = re.findall(r"[-+]?\d*\.?\d+", normalize_answer(answer))
    try:
        return bool(nums) and math.isclose(float(nums[-1]), float(gold), rel_tol=1e-6, abs_tol=1e-9)
    except ValueError:
        return False


SCORERS: dict[str, Callable[[str, str, list[str] | None], bool]] = {
    "choice": score_choice,
    "exact": score_exact,
    "numeric": score_numeric,
}


def softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [v / s for v in e]


def weighted_vote(answers: list[tuple[str, float]]) -> tuple[str, dict[str, float]]:
    """Confidence-weighted vote over (answer, confidence) pairs; empty answers abstain.

    Returns (winner, scores by normalised answer). Ties go to the answer given first, so the
    result never depends on anything but the order of the agents.
    """
    scores: dict[str, float] = {}
    first: dict[str, str] = {}
    for ans, conf in answers:
        key = normalize_answer(ans)
        if not key:
            continue
        scores[key] = scores.get(key, 0.0) + conf
        first.setdefault(key, ans)
    if not scores:
        return "", {}
    order = list(first)
    best = max(order, key=lambda k: (round(scores[k], 9), -order.index(k)))
    return first[best], {k: round(v, 6) for k, v in scores.items()}
