"""Fitness parts: task (solo accuracy), cooperation (leave-one-out or Shapley gain of the team), novelty;
and fitness.csv, which holds them: its columns, its writer (score_generation, the fitness stage) and readers.

Cooperation is a value function v(S) = team accuracy of coalition S (v(∅) = 0), either by
re-voting the recorded final answers (cheap; with a judge, re-judging them) or by re-running the
debate without the others (counterfactual): evolve.cooperation. Novelty is chosen by name
(`fitness.novelty`, NOVELTY). Parts are put on a common scale within the generation
by a normaliser chosen by name (`fitness.normalise`) that does not stretch noise, then weighted.
The seed's max(0, team − solo) is not used: it rewards weak agents and measures no contribution.

Imports no model code at load time: selection and the report read fitness.csv through this module.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evoswarm.io import InputError, write_text

if TYPE_CHECKING:
    from evoswarm.evolve.cooperation import Debate

# fitness.csv's columns, then one solo-accuracy column per skill of the dev items (SKILL_PREFIX + skill).
COLUMNS = [
    "agent",
    "adapter_sha",
    "n_items",
    "solo_acc",
    "team_acc",
    "loo",
    "shapley",
    "novelty",
    "task_norm",
    "cooperation_norm",
    "novelty_norm",
    "fitness",
]
SKILL_PREFIX = "solo_acc_"
_TEXT_COLUMNS = ("agent", "adapter_sha", "n_items")  # every other column is a number written to 6 decimals


def fitness_csv(rows: list[dict], skills: list[str]) -> str:
    """fitness.csv's text: one row per agent, COLUMNS and the skills' columns."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS + [SKILL_PREFIX + sk for sk in skills], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: v if k in _TEXT_COLUMNS else f"{v:.6f}" for k, v in r.items()})
    return buf.getvalue()


def read_fitness_rows(path: str) -> list[dict]:
    """fitness.csv's rows as written (column -> text), for the report's tables."""
    if not Path(path).is_file():
        raise InputError(f"{path}: file not found")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "fitness" not in rows[0]:
        raise InputError(f"{path}: no fitness rows")
    return rows


def read_fitness_csv(path: str) -> dict[str, float]:
    """agent -> fitness from a fitness.csv."""
    return {r["agent"]: float(r["fitness"]) for r in read_fitness_rows(path)}


def read_skill_accuracy(path: str) -> dict[str, dict[str, float]]:
    """skill -> agent -> solo accuracy on that skill's dev items (empty when the items name no skill)."""
    rows = read_fitness_rows(path)
    skills = [c[len(SKILL_PREFIX) :] for c in rows[0] if c.startswith(SKILL_PREFIX)]
    return {sk: {r["agent"]: float(r[SKILL_PREFIX + sk]) for r in rows} for sk in skills}


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def solo_accuracy(rows: list[dict], agents: list[str]) -> dict[str, float]:
    """Each agent's round-1 accuracy over transcript `rows` (0 where it has none)."""
    first = [r for r in rows if r["round"] == 1]
    return {
        a: sum(r["correct"] for r in first if r["agent"] == a) / max(1, sum(1 for r in first if r["agent"] == a))
        for a in agents
    }


def embedding_novelty(embeddings: dict[str, Sequence[float]]) -> dict[str, float]:
    """1 − cos(agent's mean embedding, mean of the others' embeddings)."""
    out = {}
    for a, e in embeddings.items():
        others = [embeddings[b] for b in embeddings if b != a]
        if not others:
            out[a] = 0.0
            continue
        mean = [sum(col) / len(others) for col in zip(*others)]
        out[a] = 1.0 - cosine(e, mean)
    return out


def answer_novelty(votes: list[dict], scorer: str = "choice") -> dict[str, float]:
    """Answer divergence: the mean share of the other agents whose final answer differs from the agent's
    (compared as the vote compares them: scoring.vote_key)."""
    from evoswarm.protocol.scoring import vote_key

    key = vote_key(scorer)
    agents = list(votes[0]["finals"])
    out = {a: 0.0 for a in agents}
    for v in votes:
        ans = {a: key(v["finals"][a]["answer"]) for a in agents}
        for a in agents:
            others = [b for b in agents if b != a]
            out[a] += sum(ans[b] != ans[a] for b in others) / max(1, len(others))
    return {a: s / len(votes) for a, s in out.items()}


def _embedding_part(d: Debate) -> dict[str, float]:
    """embedding_novelty of each agent's mean base-model embedding over its turns (the debate's hf backend, or
    the base loaded for it)."""
    from evoswarm.backends.hf import HFBackend

    be = d.backend if d.config["debate"]["backend"] == "hf" else HFBackend.from_base(d.base, d.config)
    emb = {}
    for a in d.agents:
        vecs = be.embed([r["raw"] for r in d.transcripts if r["agent"] == a])
        emb[a] = [sum(col) / len(vecs) for col in zip(*vecs)]
    return embedding_novelty(emb)


# `fitness.novelty` -> each agent's novelty in a recorded debate.
NOVELTY: dict[str, Callable[[Debate], dict[str, float]]] = {
    "embedding": _embedding_part,
    "answers": lambda d: answer_novelty(d.votes, d.settings.scorer),
}


def floored(values: dict[str, float], floor: float) -> dict[str, float]:
    """(x − min) / max(range, floor): min-max scaling whose spread never falls below `floor`.

    Why: plain min-max maps any spread to [0, 1], so at P = 3 one dev question (1/n_items) weighs as
    much as the whole range. With the floor at the data's resolution, differences smaller than the
    floor stay small, and differences larger than it still span [0, 1]. A part with no spread is 0."""
    lo, hi = min(values.values()), max(values.values())
    spread = max(hi - lo, floor)
    if spread <= 0:
        return {k: 0.0 for k in values}
    return {k: (v - lo) / spread for k, v in values.items()}


def rank(values: dict[str, float], floor: float = 0.0) -> dict[str, float]:
    """(average rank − 1) / (n − 1): ties share their rank, so equal values score equal; `floor` unused.

    Rank differences ignore the size of a difference: one question apart is a full step. Kept as an
    option for parts whose scale is not comparable across generations; `floored` is the default."""
    n = len(values)
    if n == 1:
        return {k: 0.0 for k in values}
    out = {}
    for k, v in values.items():
        below = sum(x < v for x in values.values())
        tied = sum(x == v for x in values.values())
        out[k] = (below + (tied - 1) / 2) / (n - 1)  # average of the 0-based ranks it ties with
    return out


NORMALISERS: dict[str, Callable[[dict[str, float], float], dict[str, float]]] = {"floored": floored, "rank": rank}


def part_floors(n_items: int, resolution_items: float, novelty: str, embedding_floor: float) -> dict[str, float]:
    """The spread floor of each fitness part. Shares of the n_items dev questions (task, cooperation,
    answer-divergence novelty) get `resolution_items` questions' worth; embedding novelty (1 − cosine,
    no item resolution) gets the absolute `embedding_floor`.

    Defaults, why: 5 questions is about one binomial standard error of a dev accuracy near 0.5 at
    n ≈ 90 (sqrt(90 · 0.25) ≈ 4.7). On the smoke world, an agent's embedding novelty moved by ≈ 1e-4
    (bootstrap SD over questions) while the personas were ≈ 5e-3 apart: 0.001 keeps such real
    differences full-range and keeps near-clones' differences small."""
    share_floor = resolution_items / max(1, n_items)
    return {
        "task": share_floor,
        "cooperation": share_floor,
        "novelty": embedding_floor if novelty == "embedding" else share_floor,
    }


def combine(
    parts: dict[str, dict[str, float]],
    weights: dict[str, float],
    normalise: str,
    floors: dict[str, float],
) -> tuple[dict, dict[str, float]]:
    """Normalise each part within the generation (NORMALISERS[normalise], with floors[part]) and
    take the weighted mean. Returns (normalised parts, fitness)."""
    scale = NORMALISERS[normalise]
    norm = {p: scale(vals, floors[p]) for p, vals in parts.items()}
    total = sum(weights[p] for p in parts)
    agents = next(iter(parts.values())).keys()
    fit = {a: sum(weights[p] * norm[p][a] for p in parts) / total for a in agents}
    return norm, fit


def score_generation(
    config: dict, base: str, adapters: list[str], transcripts: str, votes: str, tasks: str, out: str, gen: int = 0
) -> None:
    """Score each agent of generation `gen` from its recorded debate -> fitness.csv at `out`."""
    from evoswarm.config import derive_seed
    from evoswarm.evolve.cooperation import COOPERATION, Debate, leave_one_out, shapley, value_function
    from evoswarm.model.adapters import read_lineage

    fcfg = config["fitness"]
    d = Debate.read(config, base, adapters, transcripts, votes, tasks, gen)
    agents = d.agents
    solo = solo_accuracy(d.transcripts, agents)
    skill_of = {v["question_id"]: v.get("skill", "") for v in d.votes}
    skills = sorted({sk for sk in skill_of.values() if sk})
    by_skill = {
        sk: solo_accuracy([r for r in d.transcripts if skill_of.get(r["question_id"]) == sk], agents) for sk in skills
    }
    v = value_function(d)
    seed = derive_seed(config["seed"], gen, "fitness")
    loo = leave_one_out(agents, v)
    shap = shapley(agents, v, seed=seed)
    coop = COOPERATION[fcfg["cooperation"]](agents, v, seed=seed)
    novelty = NOVELTY[fcfg["novelty"]](d)
    n_items = len(d.votes)
    floors = part_floors(n_items, fcfg["resolution_items"], fcfg["novelty"], fcfg["embedding_novelty_floor"])
    norm, fit = combine(
        {"task": solo, "cooperation": coop, "novelty": novelty}, fcfg["weights"], fcfg["normalise"], floors
    )
    team = v(tuple(agents))
    rows = [
        {
            "agent": a,
            "adapter_sha": read_lineage(path)["sha256"],
            "n_items": n_items,
            "solo_acc": solo[a],
            "team_acc": team,
            "loo": loo[a],
            "shapley": shap[a],
            "novelty": novelty[a],
            "task_norm": norm["task"][a],
            "cooperation_norm": norm["cooperation"][a],
            "novelty_norm": norm["novelty"][a],
            "fitness": fit[a],
            **{SKILL_PREFIX + sk: by_skill[sk][a] for sk in skills},
        }
        for a, path in zip(agents, adapters)
    ]
    text = fitness_csv(rows, skills)
    write_text(out, text)
    print(text)
