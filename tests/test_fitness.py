import itertools
import math
import random

import pytest
from evoswarm.evolve.cooperation import cached, leave_one_out, revote, shapley
from evoswarm.evolve.fitness import answer_novelty, combine, embedding_novelty, floored, part_floors, rank
from hypothesis import given, settings
from hypothesis import strategies as st


def brute_shapley(agents, v):
    """Shapley by averaging marginal contributions over every ordering."""
    phi = {a: 0.0 for a in agents}
    perms = list(itertools.permutations(agents))
    for order in perms:
        for i, a in enumerate(order):
            phi[a] += (v(tuple(order[: i + 1])) - v(tuple(order[:i]))) / len(perms)
    return phi


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_shapley_matches_brute_force_and_is_efficient(n, seed):
    rng = random.Random(seed)
    agents = [f"a{i}" for i in range(n)]
    table = {tuple(sorted(s)): rng.random() for k in range(1, n + 1) for s in itertools.combinations(agents, k)}
    v = cached(lambda s: table[tuple(sorted(s))])
    phi = shapley(agents, v)
    brute = brute_shapley(agents, v)
    assert all(math.isclose(phi[a], brute[a], abs_tol=1e-12) for a in agents)
    assert math.isclose(sum(phi.values()), v(tuple(agents)) - 0.0, abs_tol=1e-12)  # efficiency, v(∅) = 0


def test_leave_one_out_by_hand():
    vals = {("a", "b", "c"): 0.9, ("b", "c"): 0.5, ("a", "c"): 0.9, ("a", "b"): 0.7}
    v = cached(lambda s: vals[tuple(sorted(s))])
    assert leave_one_out(["a", "b", "c"], v) == {"a": 0.9 - 0.5, "b": 0.0, "c": 0.9 - 0.7}


def test_sampled_shapley_for_large_populations_is_seeded():
    agents = [f"a{i}" for i in range(10)]
    v = cached(lambda s: len(s) / 10 + (0.1 if "a3" in s else 0))
    assert shapley(agents, v, seed=1) == shapley(agents, v, seed=1)
    assert math.isclose(sum(shapley(agents, v, seed=1).values()), v(tuple(agents)), abs_tol=1e-9)


def votes(rows):
    return [
        {
            "question_id": f"q{i}",
            "gold": g,
            "choices": None,
            "finals": {a: {"answer": x, "confidence": c} for a, (x, c) in f.items()},
        }
        for i, (g, f) in enumerate(rows)
    ]


def test_revote_and_leave_one_out():
    # a and c outvote b on q2 with a wrong answer: without either of them the team is right twice.
    v = votes(
        [
            ("1", {"a": ("1", 0.9), "b": ("1", 0.6), "c": ("2", 0.3)}),
            ("5", {"a": ("4", 0.5), "b": ("5", 0.6), "c": ("4", 0.4)}),
        ]
    )
    assert revote(v, ["a", "b", "c"], "choice", 0) == 0.5
    assert revote(v, ["a", "b"], "choice", 0) == 1.0
    assert revote(v, [], "choice", 0) == 0.0
    val = cached(lambda s: revote(v, list(s), "choice", 0))
    loo = leave_one_out(["a", "b", "c"], val)
    assert loo == {"a": -0.5, "b": 0.0, "c": -0.5}


def test_novelty_and_normalisation():
    nov = embedding_novelty({"a": [1.0, 0.0], "b": [1.0, 0.0], "c": [0.0, 1.0]})
    assert nov["c"] > nov["a"] and math.isclose(nov["a"], 1 - 1 / math.sqrt(2), abs_tol=1e-9)
    v = votes([("1", {"a": ("1", 1), "b": ("1", 1), "c": ("2", 1)})])
    assert answer_novelty(v) == {"a": 0.5, "b": 0.5, "c": 1.0}
    norm, fit = combine(
        {"task": {"a": 1.0, "b": 0.0}, "cooperation": {"a": 0.0, "b": 1.0}},
        {"task": 0.75, "cooperation": 0.25},
        "floored",
        {"task": 0.1, "cooperation": 0.1},
    )
    assert fit == {"a": 0.75, "b": 0.25}


def fitness_at_p3(solo, n_items):
    """Fitness of three agents that differ in solo accuracy only (cooperation and novelty equal)."""
    same = {a: 0.1 for a in solo}
    parts = {"task": solo, "cooperation": same, "novelty": dict(same)}
    weights = {"task": 0.6, "cooperation": 0.3, "novelty": 0.1}
    _, fit = combine(parts, weights, "floored", part_floors(n_items, 5, "answers", 0.001))
    return fit


def test_one_question_apart_is_a_small_fitness_difference():
    n = 90
    fit = fitness_at_p3({"s00": 46 / n, "s01": 49 / n, "s02": 48 / n}, n)  # s01 beats s02 by one question
    assert 0 < fit["s01"] - fit["s02"] <= 0.6 / 5 + 1e-9  # a fifth of the task weight, not all of it
    assert fit["s01"] - fit["s00"] == pytest.approx(0.6 * 3 / 5)


def test_a_large_difference_still_spans_the_range():
    n = 90
    fit = fitness_at_p3({"s00": 30 / n, "s01": 60 / n, "s02": 45 / n}, n)
    assert fit["s01"] - fit["s00"] == pytest.approx(0.6)
    assert fit["s02"] - fit["s00"] == pytest.approx(0.3)


def test_floored_scaling():
    assert floored({"a": 2.0, "b": 2.0}, 0.0) == {"a": 0.0, "b": 0.0}  # no spread: no signal
    assert floored({"a": 0.50, "b": 0.51, "c": 0.52}, 0.1) == pytest.approx({"a": 0.0, "b": 0.1, "c": 0.2})
    assert floored({"a": 0.2, "b": 0.6, "c": 0.4}, 0.1) == pytest.approx({"a": 0.0, "b": 1.0, "c": 0.5})
    assert part_floors(90, 5, "embedding", 0.001) == {"task": 5 / 90, "cooperation": 5 / 90, "novelty": 0.001}
    assert part_floors(90, 5, "answers", 0.001)["novelty"] == 5 / 90


def test_rank_scaling_shares_ties():
    assert rank({"a": 0.3, "b": 0.1, "c": 0.3}) == {"a": 0.75, "b": 0.0, "c": 0.75}
    assert rank({"a": 1.0, "b": 2.0, "c": 3.0}) == {"a": 0.0, "b": 0.5, "c": 1.0}
    assert rank({"a": 1.0}) == {"a": 0.0}


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.floats(-1, 1), min_size=1), st.floats(0, 1))
def test_normalisers_stay_in_unit_range_and_never_reverse_order(values, floor):
    for scale in (floored, rank):
        out = scale(values, floor)
        assert all(-1e-12 <= x <= 1 + 1e-12 for x in out.values())
        for a, b in itertools.permutations(values, 2):
            if values[a] < values[b]:
                assert out[a] <= out[b]


def test_fitness_csv_reads_back_what_it_writes(tmp_path):
    from evoswarm.evolve.fitness import COLUMNS, fitness_csv, read_fitness_csv, read_skill_accuracy

    numbers = {c: 0.25 for c in COLUMNS[3:]}
    rows = [
        {"agent": a, "adapter_sha": "ab" * 32, "n_items": 4, **numbers, "fitness": f, "solo_acc_sums": s}
        for a, f, s in (("critic", 0.5, 1.0), ("ideator", 1 / 3, 0.0))
    ]
    path = tmp_path / "fitness.csv"
    path.write_text(fitness_csv(rows, ["sums"]))
    assert path.read_text().splitlines()[:2] == [
        ",".join(COLUMNS) + ",solo_acc_sums",
        "critic," + "ab" * 32 + ",4," + "0.250000," * 8 + "0.500000,1.000000",
    ]
    assert read_fitness_csv(str(path)) == {"critic": 0.5, "ideator": 0.333333}
    assert read_skill_accuracy(str(path)) == {"sums": {"critic": 1.0, "ideator": 0.0}}
