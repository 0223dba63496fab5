"""Team aggregation (`debate.aggregator`): how the agents' final answers on an item become the team's
answer, one AGGREGATORS entry each. Every entry is a weighted vote (scoring.weighted_vote, its seeded
tie-break) whose weights an aggregator fits on a generation's dev debate only (its votes.jsonl rows).

- `confidence`: each agent's vote counts its own confidence (the softmax over choices): needs no fit.
- `weighted`: each agent's vote on an item of skill k counts max(0, log((K - 1) p / (1 - p))), p its dev
  accuracy on skill k with add-one smoothing, K the item's choices (2 for free text): the optimal weights
  of independent voters (Nitzan and Paroush 1982). Where every agent's weight is 0, the confidences.
- `router`: the coalition's agent with the best dev accuracy on the item's skill answers alone (ties: a
  seeded hash); a skill dev never saw falls back to the confidences.
- `calibrated`: the confidence vote after per-agent temperature scaling fitted on dev
  (debate.calibration); generated turns, which record no log-likelihoods, keep their confidence.

The judge (`debate.judge`) is the fourth way to a team answer; it reads the turns with the base model,
so it is a model call, not a re-aggregation of recorded answers, and is switched on by its own key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from evoswarm.debate.calibration import calibration_errors, fit_temperature, gold_turns, scaled_confidence
from evoswarm.protocol.scoring import SCORERS, seeded_hash, vote_key, weighted_vote

# agent -> skill -> (dev score sum, dev items)
DevRecord = dict[str, dict[str, tuple[float, int]]]


def dev_record(votes: Iterable[dict], scorer: str) -> DevRecord:
    """Each agent's final-answer score per skill on a dev debate's vote rows."""
    score = SCORERS[scorer]
    record: DevRecord = {}
    for v in votes:
        for agent, final in v["finals"].items():
            right, n = record.setdefault(agent, {}).get(v.get("skill", ""), (0.0, 0))
            record[agent][v.get("skill", "")] = (right + score(final["answer"], v["gold"], v.get("choices")), n + 1)
    return record


def dev_accuracy(record: DevRecord, agent: str, skill: str) -> float | None:
    """The agent's smoothed dev accuracy (right + 1) / (n + 2) on the skill; None if dev has no such item."""
    right, n = record.get(agent, {}).get(skill, (0.0, 0))
    return (right + 1) / (n + 2) if n else None


# (the fitted aggregator, the coalition's final answers {agent: {answer, confidence[, choice_logprobs]}},
# the item's skill, its number of choices, the debate's seed) -> each agent's weight in the vote.
Weigh = Callable[["Aggregator", dict[str, dict], str, int, int], dict[str, float]]


def _confidence(fit: Aggregator, finals: dict[str, dict], skill: str, n_choices: int, seed: int) -> dict:
    return {a: f["confidence"] for a, f in finals.items()}


def _weighted(fit: Aggregator, finals: dict[str, dict], skill: str, n_choices: int, seed: int) -> dict:
    weights = {}
    for a in finals:
        p = dev_accuracy(fit.record, a, skill)
        weights[a] = 0.0 if p is None else max(0.0, math.log((n_choices - 1) * p / (1 - p)))
    return weights if any(weights.values()) else _confidence(fit, finals, skill, n_choices, seed)


def _router(fit: Aggregator, finals: dict[str, dict], skill: str, n_choices: int, seed: int) -> dict:
    seen = {a: p for a in finals if (p := dev_accuracy(fit.record, a, skill)) is not None}
    if not seen:
        return _confidence(fit, finals, skill, n_choices, seed)
    top = max(seen.values())
    chosen = min((a for a, p in seen.items() if p == top), key=lambda a: seeded_hash(seed, skill, a))
    return {a: float(a == chosen) for a in finals}


def _calibrated(fit: Aggregator, finals: dict[str, dict], skill: str, n_choices: int, seed: int) -> dict:
    return {
        a: scaled_confidence(f["choice_logprobs"], fit.temperatures.get(a, 1.0))
        if f.get("choice_logprobs")
        else f["confidence"]
        for a, f in finals.items()
    }


AGGREGATORS: dict[str, Weigh] = {
    "confidence": _confidence,
    "weighted": _weighted,
    "router": _router,
    "calibrated": _calibrated,
}


@dataclass(frozen=True)
class Aggregator:
    """An AGGREGATORS entry fitted on dev (each agent's per-skill `record`, its `temperatures`, and the
    `calibration` they give on dev), answering for any coalition of the agents."""

    name: str = "confidence"
    record: DevRecord = field(default_factory=dict)
    temperatures: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def fit(cls, name: str, dev_votes: Iterable[dict], scorer: str) -> Aggregator:
        """Every entry's fit (each reads its part; the confidence vote none): small, and the same for all."""
        votes = list(dev_votes)
        record = dev_record(votes, scorer)
        temperatures, calibration = {}, {}
        for agent in sorted(record):
            logprobs, gold = gold_turns(votes, agent)
            if not logprobs:
                continue
            t = temperatures[agent] = fit_temperature(logprobs, gold)
            calibration[agent] = {"temperature": t, **calibration_errors(votes, agent, t, "dev")}
        return cls(name, record, temperatures, calibration)

    def vote(self, finals: dict[str, dict], item: dict, seed: int, scorer: str) -> tuple[str, dict[str, float]]:
        """(team answer, vote scores by normalised answer) of the coalition's `finals` on `item`
        ({id, skill, choices}; a vote row's question_id serves as id)."""
        qid = item.get("id", item.get("question_id"))
        n_choices = len(item["choices"]) if item.get("choices") else 2
        weights = AGGREGATORS[self.name](self, finals, item.get("skill", ""), n_choices, seed)
        answers = [(f["answer"], weights[a]) for a, f in finals.items()]
        return weighted_vote(answers, seed, qid, vote_key(scorer))

    def scores(self, votes: Iterable[dict], agents: list[str], seed: int, scorer: str) -> list[float]:
        """Per vote row, the score of the answer of coalition `agents` (their recorded final answers)."""
        score = SCORERS[scorer]
        return [
            score(self.vote({a: v["finals"][a] for a in agents}, v, seed, scorer)[0], v["gold"], v.get("choices"))
            for v in votes
        ]

    def weights_table(self) -> dict[str, dict[str, float]]:
        """agent -> skill -> smoothed dev accuracy: what the fit learned (recorded beside the result)."""
        return {
            a: {k: round(dev_accuracy(self.record, a, k), 4) for k in sorted(skills)}
            for a, skills in sorted(self.record.items())
        }
