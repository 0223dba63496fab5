"""Cooperation: the value v(S) of a coalition of agents and the contributions computed from it.

v(S) = team accuracy of coalition S (v(empty) = 0), chosen by `fitness.cooperation_mode`: re-voting the
recorded final answers (with a judge, re-judging them), or re-running the debate with S alone
(COOPERATION_MODES); leave-one-out and exact Shapley values are computed over it (COOPERATION). The vote
is `debate.aggregator`'s, fitted on the same dev debate (in-sample: fitness is all dev)."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from evoswarm.backends import Backend, check_reply_fits, make_backend
from evoswarm.debate.agents import Agent, load_agents
from evoswarm.debate.aggregate import Aggregator
from evoswarm.debate.loop import DebateSettings, judge_agent, judge_answers, run_debate
from evoswarm.io import InputError, read_jsonl
from evoswarm.protocol.prompts import PeerAnswer
from evoswarm.protocol.scoring import SCORERS
from evoswarm.world.items import load_items


@dataclass
class Debate:
    """A generation's recorded debate as the fitness stage reads it: what v(S) and novelty are computed from."""

    config: dict  # the fitness stage's
    base: str
    adapters: list[str]
    transcripts: list[dict]
    votes: list[dict]
    votes_path: str
    tasks: str
    settings: DebateSettings
    judge: Agent | None

    @classmethod
    def read(
        cls, config: dict, base: str, adapters: list[str], transcripts: str, votes: str, tasks: str, gen: int
    ) -> Debate:
        rows = read_jsonl(transcripts, required=["question_id", "agent", "round", "correct", "answer", "confidence"])
        vote_rows = read_jsonl(votes, required=["question_id", "finals", "gold"])
        settings = DebateSettings.for_generation(config, gen)
        return cls(config, base, adapters, rows, vote_rows, votes, tasks, settings, judge_agent(config["debate"]))

    @property
    def agents(self) -> list[str]:
        return [Path(a).name for a in self.adapters]

    @cached_property
    def aggregator(self) -> Aggregator:
        """`debate.aggregator` fitted on this debate's votes."""
        return Aggregator.fit(self.config["debate"]["aggregator"], self.votes, self.settings.scorer)

    @cached_property
    def backend(self) -> Backend:
        """The debate's backend, loaded on first use (re-voting needs none)."""
        backend = make_backend(self.config["debate"]["backend"], self.base, self.config)
        check_reply_fits(backend, self.config["debate"]["max_new_tokens"], "debate.max_new_tokens")
        return backend


def revote(votes: list[dict], subset: list[str], scorer: str, seed: int, aggregator: Aggregator | None = None) -> float:
    """Team accuracy (mean score) of a subset of agents by re-voting their recorded final answers (0 if empty).

    `seed` is the debate's (DebateSettings.seed): with the full team and the debate's aggregator (None: the
    confidence vote) this gives back the debate's own team answers, ties included."""
    if not subset or not votes:
        return 0.0
    return sum((aggregator or Aggregator()).scores(votes, subset, seed, scorer)) / len(votes)


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


def rerun_value(
    backend: Backend,
    agents: dict[str, Agent],
    items: list[dict],
    s: DebateSettings,
    judge,
    aggregator: Aggregator | None = None,
) -> ValueFn:
    """v(S) by re-running the whole debate with only the agents in S (counterfactual, costly)."""

    def value(coalition):
        members = [agents[a] for a in coalition]
        _, votes = run_debate(backend, members, items, s, judge=judge, final_summaries=False, aggregator=aggregator)
        acc = sum(v["correct"] for v in votes) / len(votes)
        print(f"  rerun without others: {coalition} -> {acc:.3f}", flush=True)
        return acc

    return value


def _revote(d: Debate) -> ValueFn:
    """Re-vote the recorded final answers; with a judge, re-judge the final turns of S."""
    if d.judge is None:
        return lambda s: revote(d.votes, list(s), d.settings.scorer, d.settings.seed, d.aggregator)
    by_id = {it["id"]: it for it in load_items(d.tasks, scorer=d.settings.scorer, answer_mode=d.settings.answer_mode)}
    missing = [r["question_id"] for r in d.votes if r["question_id"] not in by_id]
    if missing:
        raise InputError(f"{d.votes_path}: question {missing[0]} is not in {d.tasks}")
    items = [by_id[r["question_id"]] for r in d.votes]
    finals = final_turns(d.transcripts)
    return lambda s: rejudge(d.backend, d.judge, items, finals, list(s), d.settings)


def _rerun(d: Debate) -> ValueFn:
    loaded = {ag.name: ag for ag in load_agents(d.backend, d.base, d.adapters)}
    items = load_items(d.tasks, d.config["debate"]["max_questions"], d.settings.scorer, d.settings.answer_mode)
    return rerun_value(d.backend, loaded, items, d.settings, d.judge, d.aggregator)


# `fitness.cooperation_mode` -> the value function v(S) of a debate's coalitions.
COOPERATION_MODES: dict[str, Callable[[Debate], ValueFn]] = {"revote": _revote, "rerun": _rerun}


def value_function(d: Debate) -> ValueFn:
    """The memoised v(S) that `fitness.cooperation_mode` names."""
    return cached(COOPERATION_MODES[d.config["fitness"]["cooperation_mode"]](d))


COOPERATION: dict[str, Callable[..., dict[str, float]]] = {
    "loo": lambda agents, v, seed=0: leave_one_out(agents, v),
    "shapley": lambda agents, v, seed=0: shapley(agents, v, seed=seed),
}
