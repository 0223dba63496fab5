"""Accuracy and paired differences over replicate seeds and test items, with hierarchical bootstrap
intervals and plain verdict lines.

A replicate (seed) reruns persona training, debate, evolution and evaluation; the test items are the
same in every replicate. Both sources of variation count, so intervals resample seeds, then items
within each drawn seed (items only when there is one seed). Paired comparisons take per-item
differences A - B within a seed (same items, same seed), which cancels the items' difficulty.

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
    """One evaluation target's per-item correctness in each replicate.

    by_seed: seed -> item id -> correct; skills: item id -> skill; sources: seed -> the file it came from.
    """

    target: str
    by_seed: dict[int, dict[str, bool]]
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
        by_seed[seed] = {r["id"]: bool(r["correct"]) for r in rows}
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


def hierarchical_bootstrap(groups: Sequence[Sequence[float]], iters: int, seed: int) -> tuple[float, float, float]:
    """Mean of the per-group means and its 95% percentile interval.

    groups: one sequence of per-item values per seed (each non-empty). Each bootstrap draw resamples the
    groups with replacement (when there are several), then the items within each drawn group, and
    averages the groups' means. Returns (mean, lo, hi).
    """
    arrays = [np.asarray(g, dtype=float) for g in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("hierarchical_bootstrap needs at least one group and no empty group")
    point = float(np.mean([a.mean() for a in arrays]))
    rng = np.random.default_rng(seed)
    n_groups = len(arrays)
    # One seed: nothing to resample at the seed level (its spread is unknown, not zero).
    drawn = rng.integers(0, n_groups, size=(iters, n_groups)) if n_groups > 1 else np.zeros((iters, 1), dtype=int)
    means = np.empty(drawn.shape)
    for g, a in enumerate(arrays):
        where = drawn == g
        means[where] = a[rng.integers(0, a.size, size=(int(where.sum()), a.size))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(means.mean(axis=1), [tail, 100 - tail])
    return point, float(lo), float(hi)


def accuracy(scored: Scored, iters: int, seed: int) -> Estimate:
    """Mean accuracy over seeds and items with its hierarchical bootstrap interval."""
    groups = [_values(scored.by_seed[s]) for s in sorted(scored.by_seed)]
    mean, lo, hi = hierarchical_bootstrap(groups, iters, seed)
    return Estimate(mean, lo, hi, len(groups), scored.n_items())


def paired_difference(a: Scored, b: Scored, iters: int, seed: int) -> Estimate:
    """Accuracy of A minus accuracy of B, paired by seed and item: the mean over seeds of each seed's mean
    per-item difference, with a paired hierarchical bootstrap interval.

    A and B must cover the same seeds, and in each seed the same items; otherwise InputError names the files.
    """
    if set(a.by_seed) != set(b.by_seed):
        raise InputError(
            f"{a.target} vs {b.target}: different seeds ({sorted(a.by_seed)} vs {sorted(b.by_seed)}): "
            f"{', '.join(a.sources.values())} vs {', '.join(b.sources.values())}"
        )
    groups = []
    for s in sorted(a.by_seed):
        ia, ib = a.by_seed[s], b.by_seed[s]
        if set(ia) != set(ib):
            odd = sorted(set(ia) ^ set(ib))
            raise InputError(
                f"{a.sources[s]} and {b.sources[s]} scored different items "
                f"({len(odd)} not in both, e.g. {', '.join(odd[:3])})"
            )
        groups.append([float(ia[i]) - float(ib[i]) for i in sorted(ia)])
    mean, lo, hi = hierarchical_bootstrap(groups, iters, seed)
    return Estimate(mean, lo, hi, len(groups), min(len(g) for g in groups))


def _values(items: dict[str, bool]) -> list[float]:
    return [float(items[i]) for i in sorted(items)]


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
