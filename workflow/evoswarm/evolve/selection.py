"""Selection: survival of elites (SURVIVAL: by fitness, or one per skill), then parent choice
(SELECTION: tournament or top-k), and blend weights (BLEND). Each family is a registry chosen by name
in the config.

`select` is a pure function of the fitness table and the seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from evoswarm.config import bred_slots, derive_seed
from evoswarm.evolve.fitness import read_fitness_csv
from evoswarm.io import InputError


def ranked(fitness: dict[str, float]) -> list[str]:
    """Agents best first; ties broken by name so the order never depends on dict order."""
    return sorted(fitness, key=lambda a: (-fitness[a], a))


def best_agent(fitness_csv: str | None, who: str) -> str:
    """The agent a generation's fitness.csv ranks first; `who` (what asks) names it in an error."""
    if not fitness_csv:
        raise InputError(f"{who}: needs the generation's fitness.csv")
    return ranked(read_fitness_csv(fitness_csv))[0]


def best_adapter(adapters: list[str], fitness_csv: str | None, who: str) -> tuple[str, str]:
    """(agent, adapter folder) of the generation's best agent among the `adapters` folders."""
    best = best_agent(fitness_csv, who)
    found = [a for a in adapters if Path(a).name == best]
    if not found:
        raise InputError(f"{who}: the best agent {best} of {fitness_csv} is not among the adapters given")
    return best, found[0]


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
    from evoswarm.protocol.scoring import softmax

    return capped_simplex(softmax([f / temperature for f in fitness]), low, high)


def _normalised(raw: list[float]) -> list[float]:
    total = sum(raw)
    return [w / total for w in raw]


def fixed_weights(fitness: list[float], rng: random.Random, blend: dict) -> list[float]:
    """The first parent gets `value`, the others share the rest equally."""
    n = len(fitness)
    return _normalised([blend["value"]] + [(1 - blend["value"]) / (n - 1)] * (n - 1))


def uniform_weights(fitness: list[float], rng: random.Random, blend: dict) -> list[float]:
    """Two parents: the first's share uniform in [low, high]; more: each uniform in [low, high], then
    normalised to sum 1. More than two discard the first draw, so earlier runs' plans reproduce."""
    n = len(fitness)
    first = rng.uniform(blend["low"], blend["high"])
    if n == 2:
        return _normalised([first, 1 - first])
    return _normalised([rng.uniform(blend["low"], blend["high"]) for _ in range(n)])


def fitness_mode_weights(fitness: list[float], rng: random.Random, blend: dict) -> list[float]:
    """`fitness_weights` with the config's temperature and bounds."""
    return _normalised(fitness_weights(fitness, blend["temperature"], blend["low"], blend["high"]))


def task_arithmetic_weights(fitness: list[float], rng: random.Random, blend: dict) -> list[float]:
    """Task arithmetic (Ilharco et al., 2023): child delta = Σ w_k delta_k, each w_k uniform in
    [scale_low, scale_high] and NOT normalised: the child may keep each parent's delta at near full
    strength, where a convex blend of two parents halves them."""
    return [rng.uniform(blend["scale_low"], blend["scale_high"]) for _ in fitness]


# mode -> weights of the parents (given their fitness, in parent order). The schema's blend.mode lists
# exactly these names.
BLEND: dict[str, Callable[[list[float], random.Random, dict], list[float]]] = {
    "fixed": fixed_weights,
    "uniform": uniform_weights,
    "fitness": fitness_mode_weights,
    "task_arithmetic": task_arithmetic_weights,
}


def blend_weights(parents: list[str], fitness: dict[str, float], rng: random.Random, blend: dict) -> list[float]:
    """The parents' blend weights by `blend.mode` (see BLEND), rounded to 6 decimals so the plan's JSON
    reads well. One parent has nothing to blend: its weight is 1 in every mode."""
    if len(parents) == 1:
        return [1.0]
    return [round(w, 6) for w in BLEND[blend["mode"]]([fitness[p] for p in parents], rng, blend)]


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
