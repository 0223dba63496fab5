"""Mutation of LoRA factors. All randomness comes from the generator passed in, which the breed stage
seeds from (run seed, generation, slot): never from the clock."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Factors = tuple[torch.Tensor, torch.Tensor]


def _rms(t: torch.Tensor) -> float:
    return t.double().pow(2).mean().sqrt().item()


def gaussian_noise(factors: dict[str, Factors], gen: torch.Generator, settings: dict) -> list[str] | None:
    """On a random `noise_fraction` of modules, add N(0, (noise_scale·RMS)²) noise to A and to B, each at
    its own RMS. Returns the mutated module names, or None when off (either key is 0)."""
    fraction, scale = settings["noise_fraction"], settings["noise_scale"]
    if fraction <= 0 or scale <= 0:
        return None
    names = sorted(factors)
    picked = [n for n, u in zip(names, torch.rand(len(names), generator=gen).tolist()) if u < fraction]
    for n in picked:
        a, b = factors[n]
        noise_a = torch.randn(a.shape, generator=gen, dtype=a.dtype) * (scale * _rms(a))
        noise_b = torch.randn(b.shape, generator=gen, dtype=b.dtype) * (scale * _rms(b))
        factors[n] = (a + noise_a, b + noise_b)
    return picked


def partial_reinit(factors: dict[str, Factors], gen: torch.Generator, settings: dict) -> list[str] | None:
    """On each module with probability `reinit_prob`, drop `reinit_k` of its r rank components: those rows
    of A get a fresh Kaiming-uniform init (as PEFT initialises A) and those columns of B are zeroed, so the
    components no longer contribute until trained again. Returns the mutated module names, or None when
    off (either key is 0)."""
    prob, k = settings["reinit_prob"], settings["reinit_k"]
    if prob <= 0 or k <= 0:
        return None
    picked = []
    for n in sorted(factors):
        if torch.rand(1, generator=gen).item() >= prob:
            continue
        a, b = factors[n]
        r = a.shape[0]
        drop = torch.randperm(r, generator=gen)[: min(k, r)]
        a, b = a.clone(), b.clone()
        bound = 1 / math.sqrt(a.shape[1])
        a[drop] = (torch.rand((len(drop), a.shape[1]), generator=gen, dtype=a.dtype) * 2 - 1) * bound
        b[:, drop] = 0
        factors[n] = (a, b)
        picked.append(n)
    return picked


# Applied in this order from one generator: reordering changes every bred child.
MUTATION: dict[str, Callable[[dict[str, Factors], torch.Generator, dict], list[str] | None]] = {
    "noise": gaussian_noise,
    "reinit": partial_reinit,
}


def mutate(factors: dict[str, Factors], seed: int, settings: dict) -> dict:
    """Apply every mutation operator that its settings turn on; returns what was done (for lineage)."""
    gen = torch.Generator().manual_seed(seed)
    done = {name: op(factors, gen, settings) for name, op in MUTATION.items()}
    return {name: len(picked) for name, picked in done.items() if picked is not None}
