"""Cooperation: the value v(S) of a coalition of agents and the contributions computed from it.

v(S) = team accuracy of coalition S (v(empty) = 0), by re-voting the recorded final answers or, with a
judge, re-judging them; leave-one-out and exact Shapley values are computed over it."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence

from evoswarm.backends import Backend
from evoswarm.debate.agents import Agent
from evoswarm.debate.loop import DebateSettings, judge_answers
from evoswarm.protocol.prompts import PeerAnswer
from evoswarm.protocol.scoring import SCORERS, vote_key, weighted_vote


def revote(votes: list[dict], subset: list[str], scorer: str, seed: int) -> float:
    """Team accuracy (mean score) of a subset of agents by re-voting their recorded final answers (0 if empty).

    `seed` is the debate's (DebateSettings.seed): with the full team this gives back the debate's
    own team answers, ties included."""
    if not subset or not votes:
        return 0.0
    score = SCORERS[scorer]
    correct = 0
    for v in votes:
        finals = [(v["finals"][a]["answer"], v["finals"][a]["confidence"]) for a in subset]
        team, _ = weighted_vote(finals, seed, v["question_id"], vote_key(scorer))
        correct += score(team, v["gold"], v.get("choices"))
    return correct / len(votes)


def final_turns(transcripts: list[dict]) -> dict[str, dict[str, PeerAnswer]]:
    """Each agent's last-round turn per question, as the judge sees it: {question id: {agent: turn}}."""
    last_round = max(r["round"] for r in transcripts)
    out: dict[str, dict[str, PeerAnswer]] = {}
    for r in transcripts:
        if r["round"] == last_round:
            out.setdefault(r["question_id"], {})[r["agent"]] = PeerAnswer(
                r["agent"], r["answer"], r["confidence"], r["summary"]
            )
    return out


def rejudge(
    backend: Backend,
    judge: Agent,
    items: list[dict],
    finals: dict[str, dict[str, PeerAnswer]],
    subset: list[str],
    s: DebateSettings,
) -> float:
    """Accuracy of the judge shown only the final turns of the agents in `subset` (0 if empty).

    Same prompt layout and seed as the debate's judge: with the full team this gives back the
    debate's own judged accuracy."""
    if not subset or not items:
        return 0.0
    score = SCORERS[s.scorer]
    shown = {it["id"]: {a: finals[it["id"]][a] for a in subset} for it in items}
    judged = judge_answers(backend, judge, items, shown, s)
    return sum(score(judged[it["id"]]["answer"], it["answer"], it.get("choices")) for it in items) / len(items)


ValueFn = Callable[[tuple[str, ...]], float]


def cached(value: ValueFn) -> ValueFn:
    """Memoise v on the coalition as a sorted tuple (coalitions are sets)."""
    memo: dict[tuple[str, ...], float] = {}

    def v(coalition: tuple[str, ...]) -> float:
        key = tuple(sorted(coalition))
        if key not in memo:
            memo[key] = value(key) if key else 0.0
        return memo[key]

    return v


def leave_one_out(agents: Sequence[str], v: ValueFn) -> dict[str, float]:
    """v(N) − v(N \\ {i}) for each agent i."""
    full = v(tuple(agents))
    return {a: full - v(tuple(b for b in agents if b != a)) for a in agents}


def shapley(
    agents: Sequence[str], v: ValueFn, exact_max: int = 8, samples: int = 200, seed: int = 0
) -> dict[str, float]:
    """Shapley values of v. Exact over all coalitions for n <= exact_max; else a seeded
    permutation-sampling estimate. Exact values sum to v(N) − v(∅) (efficiency)."""
    n = len(agents)
    phi = {a: 0.0 for a in agents}
    if n <= exact_max:
        for a in agents:
            others = [b for b in agents if b != a]
            for k in range(n):
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                for s in itertools.combinations(others, k):
                    phi[a] += weight * (v(s + (a,)) - v(s))
        return phi
    rng = random.Random(seed)
    for _ in range(samples):
        order = list(agents)
        rng.shuffle(order)
        prev = 0.0
        for i, a in enumerate(order):
            cur = v(tuple(order[: i + 1]))
            phi[a] += (cur - prev) / samples
            prev = cur
    return phi


COOPERATION: dict[str, Callable[..., dict[str, float]]] = {
    "loo": lambda agents, v, seed=0: leave_one_out(agents, v),
    "shapley": lambda agents, v, seed=0: shapley(agents, v, seed=seed),
}
