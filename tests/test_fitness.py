import itertools
import math
import random

from evoswarm.debate import revote
from evoswarm.fitness import answer_novelty, cached, combine, embedding_novelty, leave_one_out, minmax, shapley
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
        {"gold": g, "choices": None, "finals": {a: {"answer": x, "confidence": c} for a, (x, c) in f.items()}}
        for g, f in rows
    ]


def test_revote_and_leave_one_out():
    # a and c outvote b on q2 with a wrong answer: without either of them the team is right twice.
    v = votes(
        [
            ("1", {"a": ("1", 0.9), "b": ("1", 0.6), "c": ("2", 0.3)}),
            ("5", {"a": ("4", 0.5), "b": ("5", 0.6), "c": ("4", 0.4)}),
        ]
    )
    assert revote(v, ["a", "b", "c"]) == 0.5
    assert revote(v, ["a", "b"]) == 1.0
    assert revote(v, []) == 0.0
    val = cached(lambda s: revote(v, list(s)))
    loo = leave_one_out(["a", "b", "c"], val)
    assert loo == {"a": -0.5, "b": 0.0, "c": -0.5}


def test_novelty_and_normalisation():
    nov = embedding_novelty({"a": [1.0, 0.0], "b": [1.0, 0.0], "c": [0.0, 1.0]})
    assert nov["c"] > nov["a"] and math.isclose(nov["a"], 1 - 1 / math.sqrt(2), abs_tol=1e-9)
    v = votes([("1", {"a": ("1", 1), "b": ("1", 1), "c": ("2", 1)})])
    assert answer_novelty(v) == {"a": 0.5, "b": 0.5, "c": 1.0}
    assert minmax({"a": 2.0, "b": 2.0}) == {"a": 0.0, "b": 0.0}
    norm, fit = combine(
        {"task": {"a": 1.0, "b": 0.0}, "cooperation": {"a": 0.0, "b": 1.0}}, {"task": 0.75, "cooperation": 0.25}
    )
    assert fit == {"a": 0.75, "b": 0.25}
