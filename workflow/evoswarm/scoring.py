"""Answer scorers (chosen by `tasks.scorer`) and the confidence-weighted vote."""

from __future__ import annotations

import hashlib
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


def seeded_hash(seed: int, question_id: str, key: str) -> str:
    """A stable pseudo-random rank for `key` on one question: sha256 of (seed, question id, key).

    Sorting by it orders answers (tie-break) or agents (who is listed first) without favouring
    the first agent in config order or the alphabetically first name."""
    return hashlib.sha256(f"{seed}\x1f{question_id}\x1f{key}".encode()).hexdigest()


def weighted_vote(answers: list[tuple[str, float]], seed: int, question_id: str) -> tuple[str, dict[str, float]]:
    """Confidence-weighted vote over (answer, confidence) pairs; empty answers abstain.

    Returns (winner, scores by normalised answer). Answers tied on score (rounded to 9 digits, so
    float summation order cannot split a tie) go to the smallest seeded_hash(seed, question_id,
    normalised answer): the result depends on the answers given, never on who gave them first.
    """
    confs: dict[str, list[float]] = {}
    texts: dict[str, list[str]] = {}
    for ans, conf in answers:
        key = normalize_answer(ans)
        if not key:
            continue
        confs.setdefault(key, []).append(conf)
        texts.setdefault(key, []).append(ans)
    if not confs:
        return "", {}
    scores = {k: math.fsum(c) for k, c in confs.items()}  # exact sum: independent of order
    top = max(round(v, 9) for v in scores.values())
    tied = [k for k, v in scores.items() if round(v, 9) == top]
    best = min(tied, key=lambda k: seeded_hash(seed, question_id, k))
    return min(texts[best]), {k: round(v, 6) for k, v in sorted(scores.items())}
