import pytest
from evoswarm.config import validate
from evoswarm.selection import select
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
