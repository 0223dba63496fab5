"""Selection: survival of elites (by fitness, or one per skill), then tournament or top-k parent
choice, and blend weights. Each family is a registry chosen by name in the config.

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


def top(fitness: dict[str, float], skills: dict[str, dict[str, float]], n: int) -> list[str]:
    """The n fittest."""
    return ranked(fitness)[:n]


def per_skill(fitness: dict[str, float], skills: dict[str, dict[str, float]], n: int) -> list[str]:
    """Niching (MAP-Elites over the skill profile, as in CycleQD): one elite per skill first, each
    skill's most accurate agent on its dev items not already kept (ties: fitter, then name); when
    there are fewer slots than skills, the fittest of those champions; leftover slots by fitness.

    Why: fitness rewards the agent that is good on average, so selection alone lets one profile take
    over; keeping each skill's specialist keeps what the team's cooperation is built from."""
    champions: list[str] = []
    for sk in sorted(skills):
        acc = skills[sk]
        order = sorted(acc, key=lambda a: (-acc[a], -fitness[a], a))
        best = next((a for a in order if a not in champions), None)
        if best is not None:
            champions.append(best)
    kept = ranked({a: fitness[a] for a in champions})[:n]
    return kept + [a for a in ranked(fitness) if a not in kept][: n - len(kept)]


SURVIVAL: dict[str, Callable[..., list[str]]] = {"top": top, "per_skill": per_skill}


def capped_simplex(weights: list[float], low: float, high: float) -> list[float]:
    """The nearest point to `weights` (Euclidean) whose entries sum to 1 and lie in [low, high].

    It shifts every weight by the same amount, then clips (bisection on the shift), so the order of
    the weights is kept. Bounds that no n weights summing to 1 can meet are widened to include 1/n."""
    n = len(weights)
    low, high = min(low, 1 / n), max(high, 1 / n)

    def total(shift: float) -> float:
        return sum(min(high, max(low, w + shift)) for w in weights)

    a, b = low - max(weights), high - min(weights)  # total(a) = n * low <= 1 <= n * high = total(b)
    for _ in range(100):
        mid = (a + b) / 2
        a, b = (mid, b) if total(mid) < 1 else (a, mid)
    return [min(high, max(low, w + (a + b) / 2)) for w in weights]


def fitness_weights(fitness: list[float], temperature: float, low: float, high: float) -> list[float]:
    """softmax(f / temperature), kept within [low, high]: the fitter parent gets more, close fitness
    gives close weights, and no parent's share falls to ~0 (fitness is already on a 0..1 scale)."""
    from evoswarm.scoring import softmax

    return capped_simplex(softmax([f / temperature for f in fitness]), low, high)


def blend_weights(parents: list[str], fitness: dict[str, float], rng: random.Random, blend: dict) -> list[float]:
    """Weights summing to 1: fixed (first parent gets `value`), uniform in [low, high], or
    fitness-proportional (`fitness_weights`, with `temperature`, within [low, high])."""
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
        raw = fitness_weights([fitness[p] for p in parents], blend["temperature"], blend["low"], blend["high"])
    total = sum(raw)
    return [round(w / total, 6) for w in raw]


def select(
    fitness: dict[str, float],
    run_seed: int,
    gen: int,
    population: int,
    evo: dict,
    skills: dict[str, dict[str, float]] | None = None,
) -> dict:
    """The plan for generation gen+1: which agents survive as elites (`evolution.survival`), and each
    child slot's parents, weights, operator and mutation settings, with its own seed.

    `skills`: skill -> agent -> dev solo accuracy (fitness.csv's per-skill columns)."""
    order = ranked(fitness)
    next_gen = gen + 1
    slots = bred_slots(population)
    plan = {"generation": gen, "ranking": order, "survival": evo["survival"], "elites": {}, "children": {}}
    for slot, agent in zip(slots[: evo["elites"]], SURVIVAL[evo["survival"]](fitness, skills or {}, evo["elites"])):
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
