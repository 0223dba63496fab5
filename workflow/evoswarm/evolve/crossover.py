"""Crossover of LoRA adapters in weight-delta space (docs/design.md, "Crossover").

A module's delta is ΔW = s·B·A. Every operator maps the parents' factors (A_k [r_k, d_in],
B_k [d_out, r_k]), their scalings s_k and blend weights w_k to the child's factors with the child's
scaling folded in (the child's adapter_config has lora_alpha = r, so s = 1).

- `svd`: the best rank-r approximation of Σ w_k s_k B_k A_k, computed from QRs of the stacked
  factors and an SVD of the small R×R core, never forming ΔW. Cost O((d_in + d_out)·R²).
- `cat`: the exact sum, at rank R = Σ r_k.
- `naive_ab`: the seed's separate blend of A's and B's. An ABLATION: it adds cross terms B_i·A_j
  and is not the blend of the deltas.

The weights need not sum to 1: with selection's `task_arithmetic` blend, Σ w_k s_k B_k A_k is task
arithmetic (Ilharco et al.), which `cat`, and `svd` at child_rank 'sum', give exactly.

DARE and TIES are not here on purpose: TIES elects a sign per element of the dense delta and DARE drops
elements of it, and neither fits the factored form B·A. Forming each dense delta and re-factoring it
(an SVD of every d_out×d_in module: 36 layers × 7 modules at Qwen3-4B) would break the model-free,
seconds-per-job breed stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from evoswarm.config import child_rank_mismatch
from evoswarm.io import InputError
from evoswarm.model.adapters import lora_factors, module_scaling

Factors = tuple[torch.Tensor, torch.Tensor]  # (A [r, d_in], B [d_out, r])


def crossover_svd(parents: list[Factors], weights: list[float], scalings: list[float], rank: int) -> Factors:
    """Best rank-`rank` factors of Σ w_k s_k B_k A_k (Eckart–Young), from the factors alone."""
    dtype = parents[0][0].dtype
    a_cat = torch.cat([a.double() for a, _ in parents], dim=0)  # [R, d_in]
    b_cat = torch.cat([b.double() for _, b in parents], dim=1)  # [d_out, R]
    coeff = torch.cat(
        [torch.full((a.shape[0],), w * s, dtype=torch.float64) for (a, _), w, s in zip(parents, weights, scalings)]
    )
    q_b, r_b = torch.linalg.qr(b_cat)  # B_cat = Q_b R_b
    q_a, r_a = torch.linalg.qr(a_cat.T)  # A_catᵀ = Q_a R_a
    u, s, vh = torch.linalg.svd(r_b @ torch.diag(coeff) @ r_a.T)
    k = min(rank, s.shape[0])
    root = s[:k].sqrt()
    b = q_b @ (u[:, :k] * root)
    a = (root[:, None] * vh[:k]) @ q_a.T
    return _pad_rank(a.to(dtype), b.to(dtype), rank)


def crossover_cat(parents: list[Factors], weights: list[float], scalings: list[float], rank: int) -> Factors:
    """Exact: stack the parents' components, each scaled by sqrt(w_k s_k) on both sides."""
    a = torch.cat([a * math.sqrt(w * s) for (a, _), w, s in zip(parents, weights, scalings)], dim=0)
    b = torch.cat([b * math.sqrt(w * s) for (_, b), w, s in zip(parents, weights, scalings)], dim=1)
    return a, b


def crossover_naive_ab(parents: list[Factors], weights: list[float], scalings: list[float], rank: int) -> Factors:
    """ABLATION (the seed's sketch): A = Σ w_k A_k, B = Σ w_k B_k, scaled by the first parent's s."""
    ranks = {a.shape[0] for a, _ in parents}
    if len(ranks) != 1:
        raise InputError(f"naive_ab crossover needs parents of one rank, got ranks {sorted(ranks)}")
    root = math.sqrt(scalings[0])
    a = sum(w * a for (a, _), w in zip(parents, weights)) * root
    b = sum(w * b for (_, b), w in zip(parents, weights)) * root
    return a, b


def _pad_rank(a: torch.Tensor, b: torch.Tensor, rank: int) -> Factors:
    """Zero components up to `rank` (when d or R is smaller), so every module has the config's rank."""
    k = a.shape[0]
    if k >= rank:
        return a, b
    return (torch.cat([a, a.new_zeros(rank - k, a.shape[1])]), torch.cat([b, b.new_zeros(b.shape[0], rank - k)], dim=1))


# The child_rank each operator requires is declared in config.CHILD_RANK (validation reads it there).
CROSSOVER: dict[str, Callable[..., Factors]] = {
    "svd": crossover_svd,
    "cat": crossover_cat,
    "naive_ab": crossover_naive_ab,
}


def child_rank(operator: str, parent_ranks: list[int], requested: int | str) -> int:
    """The child's rank from evolution.child_rank ('max', 'sum' or a number) and the parents' ranks.

    An operator's required child_rank is config.CHILD_RANK's, which validation checks before any job
    runs; here it guards plans made by hand. A number above the sum is an error, not zero padding: svd
    has no more components to keep."""
    mismatch = child_rank_mismatch(operator, requested)
    if mismatch:
        raise InputError(mismatch)
    total = sum(parent_ranks)
    if requested == "max":
        return max(parent_ranks)
    if requested == "sum":
        return total
    if requested > total:
        raise InputError(
            f"evolution.child_rank: {requested} is above the sum of the parents' ranks {parent_ranks} ({total})"
        )
    return requested


def crossover_adapters(
    parents: list[tuple[dict, dict]], weights: list[float], operator: str, rank: int | str = "max"
) -> tuple[dict, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Cross whole adapters given as (adapter_config, tensors) at `rank` (evolution.child_rank, see
    child_rank). Returns (child config, module -> factors).

    Parents must target the same modules with the same shapes; the error names the first that differs.
    """
    if operator not in CROSSOVER:
        raise InputError(f"evolution.crossover: unknown operator {operator!r} ({', '.join(CROSSOVER)})")
    if len(parents) != len(weights):
        raise ValueError("one weight per parent")
    factors = [lora_factors(t) for _, t in parents]
    modules = sorted(factors[0])
    for k, f in enumerate(factors[1:], 1):
        diff = sorted(set(modules) ^ set(f))
        if diff:
            raise InputError(f"parents 0 and {k} target different modules, e.g. {diff[0]}")
    ranks = [f[modules[0]][0].shape[0] for f in factors]
    r = child_rank(operator, ranks, rank)
    op = CROSSOVER[operator]
    child = {}
    for m in modules:
        pf = [f[m] for f in factors]
        shapes = {(a.shape[1], b.shape[0]) for a, b in pf}
        if len(shapes) != 1:
            raise InputError(f"parents disagree on the shape of module {m}: {sorted(shapes)}")
        scal = [module_scaling(cfg, m, a.shape[0]) for (cfg, _), (a, _) in zip(parents, pf)]
        child[m] = op(pf, weights, scal, r)
    config = dict(parents[0][0])
    config.update(r=r, lora_alpha=r, use_rslora=False, rank_pattern={}, alpha_pattern={})
    return config, child
