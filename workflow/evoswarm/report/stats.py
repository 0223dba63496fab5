"""Accuracy and paired differences over replicate seeds and test items, with bootstrap intervals and
plain verdict lines.

A replicate (seed) reruns persona training, debate, evolution and evaluation; the test items are the
same in every replicate. Both sources of variation count, so intervals resample seeds, then items
(items only when there is one seed). Paired comparisons take per-item differences A - B within a seed
(same items, same seed), which cancels the items' difficulty.

Pure and seeded: the same inputs and seed give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evoswarm.io import InputError

CONFIDENCE = 0.95
NO_EVIDENCE = "no evidence either way"


@dataclass(frozen=True)
class Scored:
    """One evaluation target's per-item scores in each replicate (right/wrong, or in [0, 1] for free text).

    by_seed: seed -> item id -> score; skills: item id -> skill; sources: seed -> the file it came from.
    """

    target: str
    by_seed: dict[int, dict[str, float]]
    skills: dict[str, str]
    sources: dict[int, str]

    def only_skill(self, skill: str) -> Scored:
        """The same target restricted to the items of one skill."""
        keep = {i for i, s in self.skills.items() if s == skill}
        return Scored(
            self.target,
            {s: {i: c for i, c in items.items() if i in keep} for s, items in self.by_seed.items()},
            {i: s for i, s in self.skills.items() if i in keep},
            self.sources,
        )

    def n_items(self) -> int:
        return min((len(items) for items in self.by_seed.values()), default=0)


def scored_from_per_item(target: str, per_item_by_seed: dict[int, list[dict]], sources: dict[int, str]) -> Scored:
    """Build a Scored from eval JSONs' `evoswarm.per_item` lists ({id, skill, correct}), one per seed."""
    by_seed, skills = {}, {}
    for seed, rows in per_item_by_seed.items():
        ids = [r["id"] for r in rows]
        if len(set(ids)) != len(ids):
            raise InputError(f"{sources[seed]}: duplicate item ids in evoswarm.per_item")
        by_seed[seed] = {r["id"]: float(r["correct"]) for r in rows}
        skills.update({r["id"]: r.get("skill", "") for r in rows})
    return Scored(target, by_seed, skills, sources)


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval, over `n_seeds` replicates of `n_items` items each."""

    mean: float
    lo: float
    hi: float
    n_seeds: int
    n_items: int


def seed_item_bootstrap(values: Sequence[Sequence[float]], iters: int, seed: int) -> tuple[float, float, float]:
    """Mean over seeds and items of a seed x item table, and its 95% percentile interval.

    values[s][i]: item i's value in seed s; every seed has the same items in the same order. Each bootstrap
    draw resamples the seeds with replacement (when there are several), then the items, and averages the
    drawn cells. The items are drawn once per draw for all seeds because the test items are shared by
    every replicate (a crossed design): an item the model always fails counts once, not once per seed,
    and a target that is identical in every seed (the shared base) gets the interval of one seed.
    Returns (mean, lo, hi).
    """
    rows = [list(r) for r in values]
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("seed_item_bootstrap needs a non-empty table with the same items in every seed")
    table = np.asarray(rows, dtype=float)
    n_seeds, n_items = table.shape
    rng = np.random.default_rng(seed)
    # One seed: nothing to resample at the seed level (its spread is unknown, not zero).
    if n_seeds > 1:
        seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=iters)
    else:
        seed_counts = np.ones((iters, 1))
    item_counts = rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=iters)
    draws = ((seed_counts @ table) * item_counts).sum(axis=1) / (n_seeds * n_items)
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(table.mean()), float(lo), float(hi)


def _same_items_in_every_seed(by_seed: dict[int, dict], sources: dict[int, str]) -> list[str]:
    """The item ids (sorted) shared by every seed; InputError naming the files if the seeds differ."""
    seeds = sorted(by_seed)
    ids = sorted(by_seed[seeds[0]])
    for s in seeds[1:]:
        if sorted(by_seed[s]) != ids:
            odd = sorted(set(by_seed[s]) ^ set(ids))
            raise InputError(
                f"{sources[seeds[0]]} and {sources[s]} scored different items "
                f"({len(odd)} not in both, e.g. {', '.join(odd[:3])})"
            )
    return ids


def accuracy(scored: Scored, iters: int, seed: int) -> Estimate:
    """Mean accuracy over seeds and items with its seed x item bootstrap interval."""
    ids = _same_items_in_every_seed(scored.by_seed, scored.sources)
    table = [[float(scored.by_seed[s][i]) for i in ids] for s in sorted(scored.by_seed)]
    mean, lo, hi = seed_item_bootstrap(table, iters, seed)
    return Estimate(mean, lo, hi, len(table), len(ids))


def paired_difference(a: Scored, b: Scored, iters: int, seed: int) -> Estimate:
    """Accuracy of A minus accuracy of B, paired by seed and item: the mean over seeds of each seed's mean
    per-item difference, with a paired seed x item bootstrap interval (the same draws for A and B).

    A and B must cover the same seeds and the same items; otherwise InputError names the files.
    """
    if set(a.by_seed) != set(b.by_seed):
        raise InputError(
            f"{a.target} vs {b.target}: different seeds ({sorted(a.by_seed)} vs {sorted(b.by_seed)}): "
            f"{', '.join(a.sources.values())} vs {', '.join(b.sources.values())}"
        )
    for s in sorted(a.by_seed):
        if set(a.by_seed[s]) != set(b.by_seed[s]):
            odd = sorted(set(a.by_seed[s]) ^ set(b.by_seed[s]))
            raise InputError(
                f"{a.sources[s]} and {b.sources[s]} scored different items "
                f"({len(odd)} not in both, e.g. {', '.join(odd[:3])})"
            )
    ids = _same_items_in_every_seed(a.by_seed, a.sources)
    table = [[float(a.by_seed[s][i]) - float(b.by_seed[s][i]) for i in ids] for s in sorted(a.by_seed)]
    mean, lo, hi = seed_item_bootstrap(table, iters, seed)
    return Estimate(mean, lo, hi, len(table), len(ids))


def verdict(label: str, diff: Estimate, better: str, worse: str) -> str:
    """'<label>: +0.012 [-0.030, +0.050], <better | worse | no evidence either way>'.

    `better` / `worse` say what an interval above / below 0 means for this comparison
    (e.g. 'the debate helps' / 'the debate hurts'); an interval touching 0 is no evidence either way.
    """
    if diff.lo > 0:
        meaning = better
    elif diff.hi < 0:
        meaning = worse
    else:
        meaning = NO_EVIDENCE
    return f"{label}: {diff.mean:+.3f} [{diff.lo:+.3f}, {diff.hi:+.3f}], {meaning}"
