"""Calibrated confidence: per-agent temperature scaling (Guo et al. 2017) fitted on dev, and the expected
calibration error that shows whether it helped.

A loglik turn records its choices' log-likelihoods (`choice_logprobs`); its confidence is the softmax's
top probability. Temperature T divides the log-likelihoods before the softmax: the answer (the argmax)
never changes, only how sure it says it is. T is fitted per agent on the dev debate's final answers by
the negative log-likelihood of the gold choice, over a fixed log-spaced grid (deterministic, no optimiser
state). Generated turns record no log-likelihoods: nothing to calibrate (T = 1).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# 1/T from 0.05 to 20 (T from 20 down to 0.05), log-spaced: a grid step is 1.5% in T.
INVERSE_TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 401))
BINS = 10


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def gold_turns(votes: Iterable[dict], agent: str) -> tuple[list[list[float]], list[int]]:
    """The agent's final-answer log-likelihoods and the gold choice's index, over the vote rows whose final
    records them (loglik turns) and whose gold is one of the choices."""
    logprobs, gold = [], []
    for v in votes:
        final = v["finals"].get(agent, {})
        if final.get("choice_logprobs") and v.get("choices") and v["gold"] in v["choices"]:
            logprobs.append(final["choice_logprobs"])
            gold.append(v["choices"].index(v["gold"]))
    return logprobs, gold


def fit_temperature(logprobs: list[list[float]], gold: list[int]) -> float:
    """The T on the grid that minimises the mean NLL of the gold choice (1.0 with no turns). Items may
    have different numbers of choices."""
    if not logprobs:
        return 1.0
    nll = np.zeros(len(INVERSE_TEMPERATURES))
    for lp, g in zip(logprobs, gold):
        z = np.outer(INVERSE_TEMPERATURES, np.asarray(lp, dtype=float))
        nll -= np.log(_softmax(z)[:, g] + 1e-12)
    return round(float(1.0 / INVERSE_TEMPERATURES[int(np.argmin(nll))]), 4)


def scaled_confidence(logprobs: list[float], temperature: float) -> float:
    """The top choice's probability after dividing the log-likelihoods by T."""
    return float(_softmax(np.asarray(logprobs, dtype=float) / temperature).max())


def ece(confidences: list[float], correct: list[float], bins: int = BINS) -> float:
    """Expected calibration error: over equal-width confidence bins, the item-weighted mean |accuracy -
    mean confidence| (0 with no items)."""
    if not confidences:
        return 0.0
    conf, right = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            gap += mask.sum() * abs(right[mask].mean() - conf[mask].mean())
    return round(float(gap / len(conf)), 4)


def calibration_errors(votes: list[dict], agent: str, temperature: float, split: str) -> dict:
    """The agent's final answers on these vote rows: {<split>_turns, <split>_ece (before), <split>_ece_scaled
    (after scaling by `temperature`)}."""
    logprobs, gold = gold_turns(votes, agent)
    right = [float(int(np.argmax(lp)) == g) for lp, g in zip(logprobs, gold)]
    before = [scaled_confidence(lp, 1.0) for lp in logprobs]
    after = [scaled_confidence(lp, temperature) for lp in logprobs]
    return {f"{split}_turns": len(gold), f"{split}_ece": ece(before, right), f"{split}_ece_scaled": ece(after, right)}
