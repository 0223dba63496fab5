"""Seed x item bootstrap, paired differences and verdict lines."""

import math
import random

import pytest
from evoswarm.io import InputError
from evoswarm.report.stats import (
    NO_EVIDENCE,
    Estimate,
    Scored,
    accuracy,
    paired_difference,
    scored_from_per_item,
    seed_item_bootstrap,
    verdict,
)
from hypothesis import given, settings
from hypothesis import strategies as st

# seed x item tables of 0/1 outcomes: 1-4 seeds, the same 1-30 items in every seed.
groups_st = st.integers(1, 30).flatmap(
    lambda n: st.lists(st.lists(st.integers(0, 1), min_size=n, max_size=n), min_size=1, max_size=4)
)


def scored(target, by_seed, skills=None):
    items = {i for v in by_seed.values() for i in v}
    return Scored(
        target,
        by_seed,
        skills or dict.fromkeys(items, ""),
        {s: f"seed{s}/eval/{target}.json" for s in by_seed},
    )


@settings(max_examples=60, deadline=None)
@given(groups=groups_st, seed=st.integers(0, 2**31 - 1))
def test_interval_lies_within_the_data_and_the_mean_is_the_mean_of_seed_means(groups, seed):
    mean, lo, hi = seed_item_bootstrap(groups, 200, seed)
    assert math.isclose(mean, sum(sum(g) / len(g) for g in groups) / len(groups))
    values = [x for g in groups for x in g]
    assert min(values) - 1e-12 <= lo <= hi <= max(values) + 1e-12
    assert seed_item_bootstrap(groups, 200, seed) == (mean, lo, hi)


@given(value=st.integers(0, 1), seeds=st.integers(1, 4), items=st.integers(1, 20))
def test_constant_outcomes_have_a_zero_width_interval(value, seeds, items):
    assert seed_item_bootstrap([[value] * items] * seeds, 100, 0) == (value, value, value)


def test_one_seed_resamples_items():
    # 400 coin flips at p = 0.5: a 95% interval of the mean is about +-1.96 * sqrt(0.25 / 400) = +-0.049.
    rng = random.Random(1)
    flips = [rng.random() < 0.5 for _ in range(400)]
    mean, lo, hi = seed_item_bootstrap([flips], 2000, 3)
    assert 0.08 < hi - lo < 0.12 and lo < mean < hi


def test_a_target_identical_in_every_seed_gets_one_seeds_interval():
    # The shared base scores the same in every replicate: three copies are not three times the evidence.
    rng = random.Random(2)
    flips = [rng.random() < 0.5 for _ in range(200)]
    _, lo1, hi1 = seed_item_bootstrap([flips], 2000, 0)
    _, lo3, hi3 = seed_item_bootstrap([flips] * 3, 2000, 0)
    assert abs((hi3 - lo3) - (hi1 - lo1)) < 0.02


def test_several_seeds_resample_seeds_too():
    # Two replicates that disagree completely: resampling items alone would give a zero-width interval.
    mean, lo, hi = seed_item_bootstrap([[1] * 50, [0] * 50], 1000, 0)
    assert mean == 0.5 and lo == 0.0 and hi == 1.0


@pytest.mark.parametrize("table", [[], [[]], [[1, 0], [1]]])
def test_empty_or_ragged_tables_are_refused(table):
    with pytest.raises(ValueError):
        seed_item_bootstrap(table, 100, 0)


@settings(max_examples=40, deadline=None)
@given(
    outcomes=st.integers(1, 25).flatmap(
        lambda n: st.lists(
            st.lists(st.tuples(st.booleans(), st.booleans()), min_size=n, max_size=n), min_size=1, max_size=3
        )
    ),
    seed=st.integers(0, 10_000),
)
def test_paired_difference_is_antisymmetric_and_bounded(outcomes, seed):
    a = scored("A", {s: {f"q{i}": x for i, (x, _) in enumerate(g)} for s, g in enumerate(outcomes)})
    b = scored("B", {s: {f"q{i}": y for i, (_, y) in enumerate(g)} for s, g in enumerate(outcomes)})
    ab, ba = paired_difference(a, b, 300, seed), paired_difference(b, a, 300, seed)
    assert math.isclose(ab.mean, accuracy(a, 10, 0).mean - accuracy(b, 10, 0).mean, abs_tol=1e-12)
    assert math.isclose(ab.mean, -ba.mean, abs_tol=1e-12)
    assert math.isclose(ab.lo, -ba.hi, abs_tol=1e-9) and math.isclose(ab.hi, -ba.lo, abs_tol=1e-9)
    diffs = [float(x) - float(y) for g in outcomes for x, y in g]
    assert min(diffs) - 1e-12 <= ab.lo <= ab.hi <= max(diffs) + 1e-12
    assert paired_difference(a, a, 300, seed) == Estimate(0.0, 0.0, 0.0, len(outcomes), min(map(len, outcomes)))


def test_pairing_removes_item_difficulty():
    # B is A with one item flipped: the paired interval is tight around +1/n, far from an unpaired one.
    n = 60
    rng = random.Random(0)
    a_items = {f"q{i}": rng.random() < 0.5 for i in range(n)}
    b_items = dict(a_items)
    flipped = next(i for i, c in a_items.items() if c)
    b_items[flipped] = False
    d = paired_difference(scored("A", {0: a_items}), scored("B", {0: b_items}), 1000, 0)
    assert d.mean == pytest.approx(1 / n) and d.lo >= 0 and d.hi <= 3 / n


def test_different_seed_sets_name_the_files():
    a = scored("team-gen0", {0: {"q": True}, 1: {"q": True}})
    b = scored("team-vote", {0: {"q": False}})
    with pytest.raises(InputError, match=r"different seeds.*seed1/eval/team-gen0\.json.*seed0/eval/team-vote\.json"):
        paired_difference(a, b, 100, 0)


def test_different_items_name_both_files():
    a = scored("team-gen0", {0: {"q1": True, "q2": True}})
    b = scored("team-vote", {0: {"q1": False, "q3": True}})
    with pytest.raises(InputError, match=r"seed0/eval/team-gen0\.json and seed0/eval/team-vote\.json.*q2, q3"):
        paired_difference(a, b, 100, 0)


def test_different_items_across_seeds_name_the_files():
    a = scored("gen0-critic", {0: {"q1": True}, 1: {"q2": True}})
    with pytest.raises(InputError, match=r"seed0/eval/gen0-critic\.json and seed1/eval/gen0-critic\.json"):
        accuracy(a, 100, 0)


def test_duplicate_items_in_a_file_are_refused():
    with pytest.raises(InputError, match="x.json: duplicate item ids"):
        scored_from_per_item("t", {0: [{"id": "q", "correct": 1}, {"id": "q", "correct": 0}]}, {0: "x.json"})


def test_only_skill_keeps_that_skill():
    s = scored_from_per_item(
        "t",
        {0: [{"id": "a", "skill": "arithmetic", "correct": 1}, {"id": "b", "skill": "category", "correct": 0}]},
        {0: "x"},
    )
    assert s.only_skill("arithmetic").by_seed == {0: {"a": True}} and s.only_skill("none").n_items() == 0


@pytest.mark.parametrize(
    "est, meaning",
    [
        (Estimate(-0.24, -0.31, -0.17, 3, 150), "the debate hurts"),
        (Estimate(0.05, 0.01, 0.09, 3, 150), "the debate helps"),
        (Estimate(0.02, -0.03, 0.07, 3, 150), NO_EVIDENCE),
        (Estimate(0.0, 0.0, 0.04, 3, 150), NO_EVIDENCE),  # touching 0 is not excluding it
    ],
)
def test_verdict_line(est, meaning):
    line = verdict("debate vs vote", est, "the debate helps", "the debate hurts")
    assert line == f"debate vs vote: {est.mean:+.3f} [{est.lo:+.3f}, {est.hi:+.3f}], {meaning}"
