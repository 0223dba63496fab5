"""Answer scorers (chosen by `tasks.scorer`) and the confidence-weighted vote.

A scorer gives one item's score in [0, 1]: choice, exact and numeric a bool (right or wrong), the
free-text scorers rouge_l and f1 partial credit. A target's score is the mean over items.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import string
from collections import Counter
from collections.abc import Callable

from evoswarm.protocol.parsing import match_choice, normalize_answer


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


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def squad_normalize(text: str) -> str:
    """SQuAD v1.1's answer normalisation (its evaluate script's normalize_answer): lower case, punctuation
    and the articles a / an / the removed, whitespace collapsed."""
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def score_f1(answer: str, gold: str, choices: list[str] | None = None) -> float:
    """Token F1 as SQuAD computes it: the overlap of the normalised answer's and gold's tokens (a multiset)."""
    pred, ref = squad_normalize(answer).split(), squad_normalize(gold).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


class _SquadTokens:
    """rouge-score tokenizer over SQuAD-normalised words. Why not rouge-score's own: it keeps only [a-z0-9]
    (other scripts' words vanish) and keeps articles; with this one ROUGE-L and F1 count the same tokens."""

    def tokenize(self, text: str) -> list[str]:
        return squad_normalize(text).split()


@functools.cache
def _rouge_l():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_SquadTokens())


def score_rouge_l(answer: str, gold: str, choices: list[str] | None = None) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens) by Google's rouge-score package."""
    return _rouge_l().score(gold, answer)["rougeL"].fmeasure


SCORERS: dict[str, Callable[[str, str, list[str] | None], float]] = {
    "choice": score_choice,
    "exact": score_exact,
    "numeric": score_numeric,
    "rouge_l": score_rouge_l,
    "f1": score_f1,
}

# Free-text scorers: partial credit, answers compared (and votes grouped) in SQuAD's normal form.
FREE_TEXT = ("rouge_l", "f1")
# The name of a target's mean score in the report (and the lm-eval metric of free-text tasks).
METRIC_NAMES = {"rouge_l": "ROUGE-L", "f1": "token F1"}


def metric_name(scorer: str) -> str:
    return METRIC_NAMES.get(scorer, "accuracy")


def vote_key(scorer: str) -> Callable[[str], str]:
    """The form in which the vote groups answers as the same: the scorer's normalisation."""
    return squad_normalize if scorer in FREE_TEXT else normalize_answer


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


def weighted_vote(
    answers: list[tuple[str, float]], seed: int, question_id: str, key: Callable[[str], str] = normalize_answer
) -> tuple[str, dict[str, float]]:
    """Confidence-weighted vote over (answer, confidence) pairs; answers with the same `key` (the scorer's
    normalisation, vote_key) count as one; empty ones abstain.

    Returns (winner, scores by normalised answer). Answers tied on score (rounded to 9 digits, so
    float summation order cannot split a tie) go to the smallest seeded_hash(seed, question_id,
    normalised answer): the result depends on the answers given, never on who gave them first.
    """
    confs: dict[str, list[float]] = {}
    texts: dict[str, list[str]] = {}
    for ans, conf in answers:
        norm = key(ans)
        if not norm:
            continue
        confs.setdefault(norm, []).append(conf)
        texts.setdefault(norm, []).append(ans)
    if not confs:
        return "", {}
    scores = {k: math.fsum(c) for k, c in confs.items()}  # exact sum: independent of order
    top = max(round(v, 9) for v in scores.values())
    tied = [k for k, v in scores.items() if round(v, 9) == top]
    best = min(tied, key=lambda k: seeded_hash(seed, question_id, k))
    return min(texts[best]), {k: round(v, 6) for k, v in sorted(scores.items())}
