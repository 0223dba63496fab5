"""Selection: elitism, then tournament or top-k parent choice, and blend weights.

`select` is a pure function of the fitness table and the seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from evoswarm.config import bred_slots, derive_seed


def ranked(fitness: dict[str, float]) -> list[str]:
    """Agents best first; ties broken by name so the order never depends on dict order."""
    return sorted(fitness, key=lambda a: (-fitness[a], a))


def tournament(fitness: dict[str, float], rng: random.Random, n: int, size: int) -> list[str]:
    """n distinct parents, each the fittest of `size` agents drawn at random from those left."""
    pool, chosen = sorted(fitness), []
    for _ in range(min(n, len(pool))):
        entrants = rng.sample(pool, min(size, len(pool)))
        best = ranked({a: fitness[a] for a in entrants})[0]
        chosen.append(best)
        pool.remove(best)
    return chosen


def topk(fitness: dict[str, float], rng: random.Random, n: int, k: int) -> list[str]:
    """n distinct parents drawn uniformly from the k fittest (best first)."""
    best = ranked(fitness)[: max(k, n)]
    return ranked({a: fitness[a] for a in rng.sample(best, min(n, len(best)))})


SELECTION: dict[str, Callable[..., list[str]]] = {"tournament": tournament, "topk": topk}


def blend_weights(parents: list[str], fitness: dict[str, float], rng: random.Random, blend: dict) -> list[float]:
    """Weights summing to 1: fixed (first parent gets `value`), uniform in [low, high], or fitness-proportional."""
    n = len(parents)
    if n == 1:
        return [1.0]
    if blend["mode"] == "fixed":
        raw = [blend["value"]] + [(1 - blend["value"]) / (n - 1)] * (n - 1)
    elif blend["mode"] == "uniform":
        first = rng.uniform(blend["low"], blend["high"])
        raw = (
            [first] + [(1 - first) / (n - 1)] * (n - 1)
            if n == 2
            else [rng.uniform(blend["low"], blend["high"]) for _ in parents]
        )
    else:
        low = min(fitness[p] for p in parents)
        raw = [fitness[p] - low + 1e-3 for p in parents]
    total = sum(raw)
    return [round(w / total, 6) for w in raw]


def select(fitness: dict[str, float], run_seed: int, gen: int, population: int, evo: dict) -> dict:
    """The plan for generation gen+1: which agents survive as elites, and each child slot's parents,
    weights, operator and mutation settings, with its own seed."""
    order = ranked(fitness)
    next_gen = gen + 1
    slots = bred_slots(population)
    plan = {"generation": gen, "ranking": order, "elites": {}, "children": {}}
    for slot, agent in zip(slots[: evo["elites"]], order):
        plan["elites"][slot] = agent
    for slot in slots[evo["elites"] :]:
        seed = derive_seed(run_seed, next_gen, slot)
        rng = random.Random(seed)
        scheme = SELECTION[evo["selection"]]
        size = evo["tournament_size"] if evo["selection"] == "tournament" else evo["topk"]
        parents = scheme(fitness, rng, evo["parents"], size)
        plan["children"][slot] = {
            "parents": parents,
            "weights": blend_weights(parents, fitness, rng, evo["blend"]),
            "operator": evo["crossover"],
            "rank": evo["child_rank"],
            "mutation": evo["mutation"],
            "seed": seed,
        }
    return plan
