"""The evaluators that run on the debate's backend: a team's test-split debate, the vote its round 1
gives (team-vote), the personas' prompts without adapters (prompt-vote) and base-model
self-consistency (base-sc). Each result records its budget (model calls, generated tokens, scored
continuations), counted by a CountingBackend from zero."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from evoswarm.backends import make_backend
from evoswarm.config import derive_seed
from evoswarm.debate.aggregate import Aggregator
from evoswarm.evaluate.harness import CountingBackend, budget, result_json, sample_answer, seeded_majority
from evoswarm.io import InputError
from evoswarm.model.base import load_tokenizer
from evoswarm.targets import Target

if TYPE_CHECKING:
    from evoswarm.debate.agents import Agent
    from evoswarm.debate.loop import DebateSettings


def counting_backend(config: dict, base: str, backend=None, on_call=None) -> CountingBackend:
    """The debate's backend over the base (or `backend`, already loaded), counting what it generates and
    scores (for the budget) from zero."""
    backend = backend or make_backend(config["debate"]["backend"], base, config)
    return CountingBackend(backend, load_tokenizer(base, config["base"]["trust_remote_code"]), on_call)


def debate_settings(config: dict, seed: int, rounds: int) -> DebateSettings:
    from evoswarm.debate.loop import DebateSettings

    return dataclasses.replace(
        DebateSettings.from_config(config["debate"], config["tasks"]["scorer"], seed), rounds=rounds
    )


def team_agents(backend, target: Target, base: str, adapters=(), systems: dict[str, str] | None = None) -> list[Agent]:
    """Generation adapters, or (prompt-vote) the base under each persona's system prompt with no adapter."""
    from evoswarm.debate.agents import Agent, load_agents

    if adapters:
        return load_agents(backend, base, adapters)
    agents = [Agent(name, system, adapter=None) for name, system in (systems or {}).items()]
    if not agents:
        raise InputError(f"target {target}: no agents (needs adapters or persona system prompts)")
    return agents


def team_result(target, agents, items, per_item, turns, s, judge, spent, extra=None) -> dict:
    return result_json(
        per_item,
        "debate",
        {
            "target": str(target),
            "agents": [a.name for a in agents],
            "adapters": [a.adapter for a in agents],
            "systems": [a.system for a in agents],
            "rounds": s.rounds,
            "judge": bool(judge),
            "parse_failure_rate": sum(not t["parsed"] for t in turns) / len(turns),
            "budget": spent,
            **(extra or {}),
        },
        s.scorer,
    )


def team_debate(
    config: dict,
    target: Target,
    backend: CountingBackend,
    agents: list[Agent],
    items: list[dict],
    seed: int,
    rounds: int,
    aggregators: dict[str, Aggregator] | None = None,
) -> tuple[dict, list[dict]]:
    """A team through the debate evaluator; the judge takes part as in the debate stage.
    `aggregators`: every AGGREGATORS entry fitted on the generation's dev debate (None: the confidence vote,
    as for prompt-vote, whose agents never debated on dev); `debate.aggregator`'s answer is the team's, each
    one's per-item scores are recorded beside it (evoswarm.aggregators) with what the fit learned
    (evoswarm.dev_accuracy), with each agent's calibration on dev and test (evoswarm.calibration). Returns
    (result, transcripts)."""
    from evoswarm.debate.loop import judge_agent, run_debate

    s = debate_settings(config, seed, rounds)
    judge = judge_agent(config["debate"])
    chosen = config["debate"]["aggregator"] if aggregators else "confidence"
    aggregator = (aggregators or {}).get(chosen)
    # The last round's summaries are read by no one here (a judge still gets them): not generated.
    transcripts, votes = run_debate(
        backend, agents, items, s, judge=judge, final_summaries=False, aggregator=aggregator
    )
    skills = {it["id"]: it.get("skill", "") for it in items}
    per_item = [{"id": v["question_id"], "skill": skills[v["question_id"]], "correct": v["correct"]} for v in votes]
    turns = len(transcripts) + (len(items) if judge else 0)  # one model call per agent turn and judge turn
    extra = {"aggregator": chosen}
    if aggregators:
        names = [a.name for a in agents]
        extra["aggregators"] = {name: a.scores(votes, names, s.seed, s.scorer) for name, a in aggregators.items()}
        fitted = next(iter(aggregators.values()))  # every entry holds the same fit
        extra["dev_accuracy"] = fitted.weights_table()
        extra["calibration"] = calibration_table(fitted, votes)
    result = team_result(target, agents, items, per_item, transcripts, s, judge, backend.budget(turns), extra)
    return result, transcripts


def calibration_table(fitted: Aggregator, votes: list[dict]) -> dict[str, dict]:
    """Per agent: its dev temperature and ECE before/after (the fit's), and the same on these test votes."""
    from evoswarm.debate.calibration import calibration_errors

    return {
        a: {**dev, **calibration_errors(votes, a, dev["temperature"], "test")} for a, dev in fitted.calibration.items()
    }


def first_round_vote(
    config: dict,
    target: Target,
    backend: CountingBackend,
    agents: list[Agent],
    items: list[dict],
    transcripts: list[dict],
    debate_seed: int,
    debated: Target,
    aggregator: Aggregator | None = None,
) -> dict:
    """The team's answer had the debate (`transcripts`, seed `debate_seed`, run on `backend` from zero)
    stopped after round 1: the aggregator's vote (None: the confidence vote) of the round-1 turns with the
    debate's tie-break, or the judge's pick over them (asked now, with the debate's judge seed). Budget:
    round 1's model calls, tokens and continuations (CountingBackend.spent_on its prompts), plus this
    judge's: what a one-round debate costs."""
    from evoswarm.debate.loop import final_answer, judge_agent, judge_answers
    from evoswarm.protocol.prompts import PeerAnswer
    from evoswarm.protocol.scoring import SCORERS

    s = debate_settings(config, debate_seed, rounds=1)
    judge = judge_agent(config["debate"])
    round1 = [t for t in transcripts if t["round"] == 1]
    turns = {it["id"]: {} for it in items}
    for t in round1:
        turns[t["question_id"]][t["agent"]] = PeerAnswer(t["agent"], t["answer"], t["confidence"], t["summary"])
    generated, scored = backend.spent_on({t["prompt_sha"] for t in round1})
    if not judge and s.answer_mode == "loglik":
        generated = 0  # a one-round loglik debate without a judge generates no (unread) summaries
    if judge:
        before = (backend.generated_tokens, backend.scored_continuations)
        picks = {q: j["answer"] for q, j in judge_answers(backend, judge, items, turns, s).items()}
        generated += backend.generated_tokens - before[0]
        scored += backend.scored_continuations - before[1]
    else:
        # The round-1 rows themselves, not what a judge sees: they keep choice_logprobs (the calibrated vote).
        finals = {it["id"]: {} for it in items}
        for t in round1:
            finals[t["question_id"]][t["agent"]] = final_answer(t)
        aggregator = aggregator or Aggregator()
        picks = {it["id"]: aggregator.vote(finals[it["id"]], it, s.seed, s.scorer)[0] for it in items}
    score = SCORERS[s.scorer]
    per_item = [
        {
            "id": it["id"],
            "skill": it.get("skill", ""),
            "correct": score(picks[it["id"]], it["answer"], it.get("choices")),
        }
        for it in items
    ]
    spent = budget(len(round1) + (len(items) if judge else 0), generated, scored)
    return team_result(target, agents, items, per_item, round1, s, judge, spent, {"round_1_of": str(debated)})


def self_consistency(
    config: dict, target: Target, backend: CountingBackend, items: list[dict], seed: int, k: int
) -> dict:
    """k full round-1 turns of the base (no system prompt) sampled per item, each seeded; the majority of
    the parsed answers, whatever the debate's answer mode. Unparsed samples abstain."""
    from evoswarm.backends import GenRequest
    from evoswarm.protocol.chat import chat
    from evoswarm.protocol.prompts import turn_prompt
    from evoswarm.protocol.scoring import SCORERS

    dcfg, ecfg = config["debate"], config["evaluation"]
    temperature, top_p = ecfg["self_consistency_temperature"], ecfg["self_consistency_top_p"]
    msgs = [chat("", turn_prompt(it["question"], it.get("choices"))) for it in items]  # a round-1 debate turn
    texts = backend.generate(
        [
            GenRequest(None, m, dcfg["max_new_tokens"], temperature, top_p, derive_seed(seed, "sample", j))
            for j in range(k)
            for m in msgs
        ]
    )
    scorer = config["tasks"]["scorer"]
    score = SCORERS[scorer]
    per_item, abstained = [], 0
    for i, it in enumerate(items):
        answers = [sample_answer(texts[j * len(items) + i], it.get("choices")) for j in range(k)]
        abstained += answers.count("")
        answer, votes = seeded_majority(answers, seed, it["id"], scorer)
        correct = score(answer, it["answer"], it.get("choices"))  # an abstention ('') scores 0 by every scorer
        per_item.append(
            {"id": it["id"], "skill": it.get("skill", ""), "correct": correct, "answer": answer, "votes": votes}
        )
    return result_json(
        per_item,
        "self-consistency",
        {
            "target": str(target),
            "k": k,
            "temperature": temperature,
            "top_p": top_p,
            "parse_failure_rate": abstained / (k * len(items)) if items else 0.0,
            "budget": backend.budget(k * len(items)),
        },
        scorer,
    )
