import itertools
import random

import pytest
from evoswarm.config import validate
from evoswarm.evolve.selection import blend_weights, fitness_weights, select
from hypothesis import given, settings
from hypothesis import strategies as st
from test_config import base_config


def evo(**kw):
    return validate({**base_config(), "population": 4, "evolution": kw})["evolution"]


FIT = {"critic": 0.9, "implementer": 0.2, "ideator": 0.5, "critic-1": 0.1}


def test_selection_is_a_pure_function_of_fitness_and_seed():
    assert select(FIT, 0, 0, 4, evo()) == select(dict(reversed(list(FIT.items()))), 0, 0, 4, evo())
    assert select(FIT, 0, 0, 4, evo()) != select(FIT, 1, 0, 4, evo())


@pytest.mark.parametrize("scheme", ["tournament", "topk"])
def test_elites_then_children(scheme):
    plan = select(FIT, 0, 0, 4, evo(elites=2, selection=scheme, blend={"mode": "fixed", "value": 0.7}))
    assert plan["elites"] == {"s00": "critic", "s01": "ideator"}
    assert set(plan["children"]) == {"s02", "s03"}
    for c in plan["children"].values():
        assert len(set(c["parents"])) == 2 and c["weights"] == [0.7, 0.3]
        assert c["operator"] == "svd"
    if scheme == "topk":
        for c in select(FIT, 0, 0, 4, evo(elites=0, selection="topk", topk=2))["children"].values():
            assert set(c["parents"]) == {"critic", "ideator"}


def test_fitness_proportional_weights():
    plan = select(FIT, 0, 0, 4, evo(blend={"mode": "fitness"}))
    for c in plan["children"].values():
        assert abs(sum(c["weights"]) - 1) < 1e-5
        w = dict(zip(c["parents"], c["weights"]))
        best = max(c["parents"], key=FIT.get)
        assert w[best] == max(c["weights"])


BLEND = {"mode": "fitness", "temperature": 0.2, "low": 0.3, "high": 0.7}


def test_fitness_weights_on_values():
    rng = random.Random(0)
    close = blend_weights(["x", "y"], {"x": 0.52, "y": 0.50}, rng, BLEND)
    assert close == pytest.approx([0.525, 0.475], abs=1e-3)  # softmax(0.1 / 0.2): close fitness, close weights
    far = blend_weights(["x", "y"], {"x": 0.9, "y": 0.1}, rng, BLEND)
    assert far == pytest.approx([0.7, 0.3])  # the weaker parent keeps its floor, never ~0
    assert blend_weights(["y", "x"], {"x": 0.9, "y": 0.1}, rng, BLEND) == pytest.approx([0.3, 0.7])
    assert blend_weights(["x", "y"], {"x": 0.4, "y": 0.4}, rng, BLEND) == [0.5, 0.5]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=5),
    st.floats(0.01, 2),
    st.floats(0, 0.5),
    st.floats(0.5, 1),
)
def test_fitness_weights_sum_to_one_within_bounds_better_gets_more(fit, temperature, low, high):
    w = fitness_weights(fit, temperature, low, high)
    n = len(fit)
    assert sum(w) == pytest.approx(1)
    assert all(min(low, 1 / n) - 1e-9 <= x <= max(high, 1 / n) + 1e-9 for x in w)
    for i, j in itertools.permutations(range(n), 2):
        if fit[i] > fit[j]:
            assert w[i] >= w[j] - 1e-12


def test_task_arithmetic_weights_are_seeded_within_bounds_not_normalised():
    """Same bounds as a convex blend's, but each weight drawn on its own: the sum is not 1."""
    blend = evo(blend={"mode": "task_arithmetic", "scale_low": 0.3, "scale_high": 1.7})["blend"]
    draws = [blend_weights(["critic", "ideator"], FIT, random.Random(seed), blend) for seed in range(50)]
    assert draws[0] == blend_weights(["critic", "ideator"], FIT, random.Random(0), blend)
    assert all(0.3 <= w <= 1.7 for ws in draws for w in ws)
    assert all(w == round(w, 6) for ws in draws for w in ws)
    assert not any(sum(ws) == pytest.approx(1) for ws in draws)
    assert len({tuple(ws) for ws in draws}) == 50
    plan = select(FIT, 0, 0, 4, evo(blend={"mode": "task_arithmetic"}))
    assert all(0.5 <= w <= 1.0 for c in plan["children"].values() for w in c["weights"])
