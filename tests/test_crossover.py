"""Crossover in weight-delta space against explicit deltas and against PEFT's own svd combination."""

import math
import random

import pytest
import torch
from evoswarm.evolve.crossover import child_rank, crossover_adapters, crossover_cat, crossover_naive_ab, crossover_svd
from evoswarm.evolve.mutation import gaussian_noise, mutate, partial_reinit
from evoswarm.io import InputError
from evoswarm.model.adapters import read_adapter
from hypothesis import given, settings
from hypothesis import strategies as st


def factors(r, d_in=24, d_out=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(r, d_in, generator=g, dtype=torch.float64), torch.randn(
        d_out, r, generator=g, dtype=torch.float64
    )


def truncated(delta, rank):
    u, s, vh = torch.linalg.svd(delta)
    return u[:, :rank] @ torch.diag(s[:rank]) @ vh[:rank]


def rel(a, b):
    return (torch.linalg.norm(a - b) / torch.linalg.norm(b)).item()


@settings(max_examples=25, deadline=None)
@given(
    r1=st.integers(1, 8),
    r2=st.integers(1, 8),
    rank=st.integers(1, 12),
    w=st.floats(0.05, 0.95),
    s1=st.floats(0.1, 4),
    s2=st.floats(0.1, 4),
    seed=st.integers(0, 1000),
)
def test_svd_equals_truncated_svd_of_blended_delta(r1, r2, rank, w, s1, s2, seed):
    p1, p2 = factors(r1, seed=seed), factors(r2, seed=seed + 1)
    a, b = crossover_svd([p1, p2], [w, 1 - w], [s1, s2], rank)
    delta = w * s1 * p1[1] @ p1[0] + (1 - w) * s2 * p2[1] @ p2[0]
    assert a.shape == (rank, 24) and b.shape == (20, rank)
    assert rel(b @ a, truncated(delta, rank)) < 1e-5 or torch.linalg.norm(b @ a - truncated(delta, rank)) < 1e-9


def test_svd_at_rank_sum_is_exact_and_cat_is_exact():
    p1, p2 = factors(4), factors(2, seed=3)
    delta = 0.3 * 2.0 * p1[1] @ p1[0] + 0.7 * 0.5 * p2[1] @ p2[0]
    a, b = crossover_svd([p1, p2], [0.3, 0.7], [2.0, 0.5], 6)
    assert rel(b @ a, delta) < 1e-10
    a, b = crossover_cat([p1, p2], [0.3, 0.7], [2.0, 0.5], 6)
    assert a.shape[0] == 6 and rel(b @ a, delta) < 1e-12


MODULE = "base_model.model.model.layers.0.self_attn.q_proj"


def adapter(r, alpha, seed):
    """(adapter_config, tensors) of one module, as read_adapter returns them."""
    a, b = factors(r, seed=seed)
    return {"r": r, "lora_alpha": alpha}, {f"{MODULE}.lora_A.weight": a, f"{MODULE}.lora_B.weight": b}


def test_task_arithmetic_is_the_weighted_sum_of_deltas():
    """Weights that do not sum to 1 (the task_arithmetic blend): cat, and svd at child_rank 'sum', give
    Σ w_k s_k B_k A_k exactly; svd at 'max' gives its best rank-max approximation."""
    from evoswarm.evolve.selection import blend_weights

    blend = {"mode": "task_arithmetic", "scale_low": 0.5, "scale_high": 1.0}
    drawn = blend_weights(["x", "y"], {"x": 0.5, "y": 0.5}, random.Random(0), blend)
    parents = [adapter(4, 8, seed=1), adapter(2, 8, seed=2)]  # s = 2 and 4
    for w in [(0.8, 0.9), drawn]:
        assert sum(w) != pytest.approx(1)
        delta = sum(
            wk * cfg["lora_alpha"] / cfg["r"] * t[f"{MODULE}.lora_B.weight"] @ t[f"{MODULE}.lora_A.weight"]
            for wk, (cfg, t) in zip(w, parents)
        )
        config, child = crossover_adapters(parents, list(w), "cat", "sum")
        a, b = child[MODULE]
        assert config["r"] == 6 and rel(b @ a, delta) < 1e-10
        config, child = crossover_adapters(parents, list(w), "svd", "sum")
        a, b = child[MODULE]
        assert config["r"] == 6 and a.shape == (6, 24) and rel(b @ a, delta) < 1e-10
        config, child = crossover_adapters(parents, list(w), "svd", "max")
        a, b = child[MODULE]
        assert config["r"] == 4 and rel(b @ a, truncated(delta, 4)) < 1e-10


def test_child_rank_choices():
    assert child_rank("svd", [4, 2], "max") == 4
    assert child_rank("svd", [4, 2], "sum") == 6
    assert child_rank("svd", [4, 2], 5) == 5
    assert child_rank("cat", [4, 2], "sum") == 6
    assert child_rank("naive_ab", [4, 4], "max") == 4
    for op, rank in [("svd", 7), ("cat", "max"), ("cat", 6), ("naive_ab", "sum")]:
        with pytest.raises(InputError, match=r"evolution\.child_rank"):
            child_rank(op, [4, 2], rank)
    with pytest.raises(InputError, match=r"evolution\.child_rank: 7 is above"):
        crossover_adapters([adapter(4, 8, seed=1), adapter(2, 8, seed=2)], [0.5, 0.5], "svd", 7)


def test_naive_ab_is_not_the_blended_delta():
    p1, p2 = factors(4), factors(4, seed=5)
    a, b = crossover_naive_ab([p1, p2], [0.5, 0.5], [2.0, 2.0], 4)
    delta = 0.5 * 2.0 * p1[1] @ p1[0] + 0.5 * 2.0 * p2[1] @ p2[0]
    assert rel(b @ a, delta) > 0.3  # the cross terms B1·A2 and B2·A1
    with pytest.raises(InputError, match="one rank"):
        crossover_naive_ab([p1, factors(2)], [0.5, 0.5], [1, 1], 4)


def test_matches_peft_add_weighted_adapter_svd(tiny_base, tiny_adapters):
    """Our factored svd crossover equals PEFT's svd combination (which forms ΔW) where scalings agree."""
    from evoswarm.model.base import read_manifest
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(read_manifest(tiny_base)["path"], dtype=torch.float64)
    model = PeftModel.from_pretrained(base, str(tiny_adapters["critic"]), adapter_name="critic")
    model.load_adapter(str(tiny_adapters["ideator"]), adapter_name="ideator")
    model.add_weighted_adapter(["critic", "ideator"], [0.6, 0.4], "child", combination_type="svd", svd_rank=6)
    parents = [read_adapter(tiny_adapters["critic"]), read_adapter(tiny_adapters["ideator"])]
    parents = [(c, {k: v.double() for k, v in t.items()}) for c, t in parents]
    config, child = crossover_adapters(parents, [0.6, 0.4], "svd", rank=6)
    assert config["r"] == 6 and config["lora_alpha"] == 6
    worst = 0.0
    for module, (a, b) in child.items():
        layer = model.get_submodule(module)
        ours = b @ a
        theirs = layer.get_delta_weight("child").double()
        if torch.linalg.norm(theirs) > 1e-12:
            worst = max(worst, rel(ours, theirs))
    assert worst < 1e-6


def test_parents_must_match_modules_and_shapes():
    cfg = {"r": 2, "lora_alpha": 4}
    m = "base_model.model.model.layers.0.self_attn.q_proj"
    t1 = {f"{m}.lora_A.weight": torch.ones(2, 4), f"{m}.lora_B.weight": torch.ones(3, 2)}
    t2 = {f"{m}.lora_A.weight": torch.ones(2, 5), f"{m}.lora_B.weight": torch.ones(3, 2)}
    with pytest.raises(InputError, match="q_proj"):
        crossover_adapters([(cfg, t1), (cfg, t2)], [0.5, 0.5], "svd")
    t3 = {k.replace("q_proj", "v_proj"): v for k, v in t1.items()}
    with pytest.raises(InputError, match="different modules"):
        crossover_adapters([(cfg, t1), (cfg, t3)], [0.5, 0.5], "svd")


def test_nan_adapters_are_rejected(tmp_path):
    from evoswarm.model.adapters import write_adapter

    m = "base_model.model.model.layers.0.self_attn.q_proj"
    write_adapter(
        tmp_path / "bad",
        {"peft_type": "LORA", "r": 2, "lora_alpha": 4},
        {f"{m}.lora_A.weight": torch.tensor([[math.nan, 0.0]] * 2), f"{m}.lora_B.weight": torch.zeros(2, 2)},
        {},
    )
    with pytest.raises(InputError, match="NaN or Inf"):
        read_adapter(tmp_path / "bad")


def test_mutation_is_seeded_and_scaled():
    f = {f"m{i}": factors(4, seed=i) for i in range(20)}
    f1 = {k: (a.clone(), b.clone()) for k, (a, b) in f.items()}
    f2 = {k: (a.clone(), b.clone()) for k, (a, b) in f.items()}
    settings_ = {"noise_fraction": 0.5, "noise_scale": 0.1, "reinit_prob": 0.2, "reinit_k": 1}
    assert mutate(f1, 7, settings_) == mutate(f2, 7, settings_)
    assert all(torch.equal(f1[k][0], f2[k][0]) for k in f)
    off = {**settings_, "reinit_prob": 0.0}
    assert set(mutate({k: (a.clone(), b.clone()) for k, (a, b) in f.items()}, 7, off)) == {"noise"}
    g = torch.Generator().manual_seed(0)
    f3 = {k: (a.clone(), b.clone()) for k, (a, b) in f.items()}
    picked = gaussian_noise(f3, g, {"noise_fraction": 1.0, "noise_scale": 0.1})
    assert len(picked) == 20
    for k in f:
        change = rel(f3[k][0], f[k][0])
        assert 0.05 < change < 0.2  # noise at 10% of the tensor's RMS
    f4 = {k: (a.clone(), b.clone()) for k, (a, b) in f.items()}
    partial_reinit(f4, torch.Generator().manual_seed(0), {"reinit_prob": 1.0, "reinit_k": 2})
    for k in f:
        assert (f4[k][1].abs().sum(0) == 0).sum() == 2  # two rank components dropped
