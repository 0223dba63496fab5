"""The debate protocol (Du et al. 2023 style) over any backend.

Round 1: every agent answers alone (its solo accuracy). Round r > 1: every agent sees its own and
the others' previous answers and summaries and may revise. The team answer is the final round's vote
by the run's aggregator (debate.aggregate; the confidence-weighted vote unless given one fitted on dev;
ties broken by `scoring.seeded_hash`), or an optional judge's pick. Who is
listed first (to an agent or to the judge) is a seeded shuffle per question, so the debate's outcome
does not depend on the order of the agents in the config. All agents' prompts of a round go to the
backend in one call, so the `hf` backend runs them as mixed-adapter batches.

Answer modes:
- `loglik`: each choice's text is scored as the continuation of '{"answer": "'; the answer is the
  best choice, confidence the softmax over choices; a short summary is then generated after it (in the
  last round only if someone reads it: see run_debate's `final_summaries`).
- `generate`: the whole JSON turn is generated and parsed leniently (parse failures recorded).

Efficiency (per question in the vote rows): the debate always runs all its rounds (no early stop);
`agreed_round` is the first round after which every agent's answer parsed and the vote counts them as one
answer (None if none did), i.e. where the debate could have stopped; `round1_answer` is the round-1 vote
(the team's answer had it stopped there, without a judge); `generated_tokens` counts every turn's
generated text (and the judge's) re-encoded with the backend's tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from evoswarm.backends import Backend, GenRequest, ScoreRequest
from evoswarm.debate.agents import Agent
from evoswarm.debate.aggregate import Aggregator
from evoswarm.io import InputError
from evoswarm.progress import Progress
from evoswarm.protocol.chat import chat
from evoswarm.protocol.parsing import match_choice, normalize_answer, parse_turn
from evoswarm.protocol.prompts import ANSWER_PREFIX, ANSWER_SUFFIX, DEBATE_RULES, PeerAnswer, judge_prompt, turn_prompt
from evoswarm.protocol.scoring import SCORERS, seeded_hash, softmax, vote_key, weighted_vote


@dataclass(frozen=True)
class DebateSettings:
    rounds: int = 2
    answer_mode: str = "loglik"
    max_new_tokens: int = 48
    temperature: float = 0.0
    top_p: float = 1.0
    rules: str = ""
    language: str = "ja"
    judge: bool = False
    default_confidence: float = 0.5
    scorer: str = "choice"
    seed: int = 0

    @classmethod
    def from_config(cls, dcfg: dict, scorer: str, seed: int) -> DebateSettings:
        rules = dcfg["rules"] if dcfg["rules"] is not None else DEBATE_RULES[dcfg["language"]]
        return cls(
            dcfg["rounds"],
            dcfg["answer_mode"],
            dcfg["max_new_tokens"],
            dcfg["temperature"],
            dcfg["top_p"],
            rules,
            dcfg["language"],
            dcfg["judge"],
            dcfg["default_confidence"],
            scorer,
            seed,
        )

    @classmethod
    def for_generation(cls, config: dict, gen: int) -> DebateSettings:
        """The settings of generation `gen`'s dev debate; the fitness stage re-votes with the same seed."""
        from evoswarm.config import derive_seed

        return cls.from_config(config["debate"], config["tasks"]["scorer"], derive_seed(config["seed"], gen, "debate"))


def judge_agent(dcfg: dict) -> Agent | None:
    """The judge of a debate config (`debate.judge`): the base model without adapter, or None.

    The one place a judge is built: the debate stage, the fitness value function and the team
    evaluation all use it, so "the team's answer" means the same thing everywhere."""
    return Agent("judge", "", adapter=None) if dcfg["judge"] else None


def seeded_order(names: list[str], seed: int, question_id: str) -> list[str]:
    """The agents in a seeded per-question order (independent of the order they are given in)."""
    return sorted(names, key=lambda n: seeded_hash(seed, question_id, n))


def prompt_hash(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


def turn_messages(
    agent: Agent, item: dict, names: list[str], last: dict[tuple[str, str], dict], s: DebateSettings, rnd: int
) -> list[dict]:
    """The prompt of `agent`'s turn on `item` in round `rnd`: alone in round 1; later with its own previous
    turn and the others' (team `names`, in seeded per-question order) from `last` {(question id, agent): turn}."""
    own, peers = None, None
    if rnd > 1:
        own = seen_turn(last, item, agent.name)
        peers = [seen_turn(last, item, o) for o in seeded_order(names, s.seed, item["id"]) if o != agent.name]
    user = turn_prompt(item["question"], item.get("choices"), peers, s.rules, rnd == s.rounds and rnd > 1, own=own)
    return chat(agent.system, user)


def _token_count(backend: Backend, text: str) -> int:
    return len(backend.tok(text, add_special_tokens=False)["input_ids"]) if text else 0


def _summary_text(generated: str) -> str:
    """The summary string from text generated after '"summary": "' (up to its closing quote)."""
    try:
        return json.loads('"' + generated.split('"}')[0].split('"\n')[0] + '"')
    except json.JSONDecodeError:
        return generated.split('"')[0]


def _loglik_turns(
    backend: Backend, reqs: list[tuple[str | None, list[dict], dict]], s: DebateSettings, seed: int, summaries: bool
) -> list[dict]:
    """Answer by scoring each choice, then generate the summary after the chosen answer (unless not
    `summaries`: then the summary is empty and raw the turn's JSON without it)."""
    scores = backend.score(
        [ScoreRequest(a, m, [c + ANSWER_SUFFIX for c in it["choices"]], ANSWER_PREFIX) for a, m, it in reqs]
    )
    turns = []
    for (_, _, it), sc in zip(reqs, scores):
        probs = softmax(sc)
        best = max(range(len(probs)), key=probs.__getitem__)
        turns.append(
            {
                "answer": it["choices"][best],
                "confidence": round(probs[best], 4),
                "choice_logprobs": [round(x, 4) for x in sc],
                "parsed": True,
            }
        )
    if not summaries:
        for t in turns:
            t["raw"] = json.dumps({"answer": t["answer"], "confidence": t["confidence"]}, ensure_ascii=False)
            t["summary"] = ""
            t["generated_tokens"] = 0
        return turns
    prefixes = [
        ANSWER_PREFIX
        + json.dumps(t["answer"], ensure_ascii=False)[1:-1]
        + f'", "confidence": {t["confidence"]}, "summary": "'
        for t in turns
    ]
    texts = backend.generate(
        [
            GenRequest(a, m, s.max_new_tokens, s.temperature, s.top_p, seed, prefix=p)
            for (a, m, _), p in zip(reqs, prefixes)
        ]
    )
    for t, p, text in zip(turns, prefixes, texts):
        t["raw"] = text
        t["summary"] = _summary_text(text[len(p) :])
        t["generated_tokens"] = _token_count(backend, text[len(p) :])
    return turns


def _generated_turns(
    backend: Backend, reqs: list[tuple[str | None, list[dict], dict]], s: DebateSettings, seed: int
) -> list[dict]:
    texts = backend.generate([GenRequest(a, m, s.max_new_tokens, s.temperature, s.top_p, seed) for a, m, _ in reqs])
    turns = []
    for (_, _, it), text in zip(reqs, texts):
        t = parse_turn(text, s.default_confidence)
        answer = t.answer
        if it.get("choices") and t.ok:
            answer = match_choice(t.answer, it["choices"]) or t.answer
        turns.append(
            {
                "answer": answer,
                "confidence": t.confidence,
                "summary": t.summary,
                "raw": text,
                "parsed": t.ok,
                "generated_tokens": _token_count(backend, text),
            }
        )
    return turns


def ask(
    backend: Backend,
    reqs: list[tuple[str | None, list[dict], dict]],
    s: DebateSettings,
    seed: int,
    summaries: bool = True,
) -> list[dict]:
    """One batch of turns: (adapter, messages, item) -> turn dicts (answer, confidence, summary, raw, parsed,
    generated_tokens).
    `summaries=False` spares loglik mode the generation of summaries that nobody will read."""
    if not reqs:
        return []
    if s.answer_mode == "loglik":
        # The config picks the answer mode, never the data: the task reader refuses such items first.
        bare = next((it["id"] for _, _, it in reqs if not it.get("choices")), None)
        if bare is not None:
            raise InputError(f"debate.answer_mode loglik scores choices: item {bare} has none")
        return _loglik_turns(backend, reqs, s, seed, summaries)
    return _generated_turns(backend, reqs, s, seed)


def seen_turn(last: dict, item: dict, name: str) -> PeerAnswer:
    """What the agent itself, the others or the judge see of an agent's latest turn on an item."""
    t = last[(item["id"], name)]
    return PeerAnswer(name, t["answer"], t["confidence"], t["summary"])


def run_debate(
    backend: Backend,
    agents: list[Agent],
    items: list[dict],
    s: DebateSettings,
    judge: Agent | None = None,
    final_summaries: bool = True,
    log: Callable[[str], None] | None = None,
    aggregator: Aggregator | None = None,
) -> tuple[list[dict], list[dict]]:
    """Run the debate; returns (transcript rows, vote rows) in the formats of docs/design.md, "File contracts".

    `aggregator`: how the final (and round-1) answers become the team's; None: the confidence vote.
    `final_summaries=False`: in loglik mode the last round's turns get no generated summary (empty;
    `raw` holds the turn's JSON without it), for a caller that reads neither the last round's summaries
    nor its raw text (a judge, which reads them, always gets them). `log`: a progress line per round."""
    transcripts: list[dict] = []
    last: dict[tuple[str, str], dict] = {}
    names = [a.name for a in agents]
    progress = Progress("debate", len(items) * len(agents) * s.rounds, "turns")
    for rnd in range(1, s.rounds + 1):
        reqs, keys = [], []
        for it in items:
            for ag in agents:
                msgs = turn_messages(ag, it, names, last, s, rnd)
                reqs.append((ag.adapter, msgs, it))
                keys.append((it, ag, msgs))
        summaries = rnd < s.rounds or final_summaries or judge is not None
        turns = ask(backend, reqs, s, round_seed(s, rnd), summaries)
        for (it, ag, msgs), t in zip(keys, turns):
            last[(it["id"], ag.name)] = t
            transcripts.append(transcript_row(it, ag, msgs, t, rnd, s))
        if log:
            log(progress.line(len(transcripts), f"round {rnd}/{s.rounds}"))
    judged = {}
    if judge:
        finals_seen = {it["id"]: {a.name: seen_turn(last, it, a.name) for a in agents} for it in items}
        judged = judge_answers(backend, judge, items, finals_seen, s)
    by_question: dict[str, list[dict]] = {}
    for t in transcripts:
        by_question.setdefault(t["question_id"], []).append(t)
    votes = []
    for it in items:
        row = vote_row(it, names, last, by_question[it["id"]], s, aggregator)
        if judge:
            add_judge(row, judged[it["id"]], it, s)
        votes.append(row)
    return transcripts, votes


def round_seed(s: DebateSettings, rnd: int) -> int:
    """The seed of round `rnd`'s turns (used when sampling)."""
    from evoswarm.config import derive_seed

    return derive_seed(s.seed, "debate", rnd)


def transcript_row(item: dict, agent: Agent, msgs: list[dict], turn: dict, rnd: int, s: DebateSettings) -> dict:
    """One line of transcripts.jsonl: `agent`'s turn (from `ask`) on `item` in round `rnd`, prompted with `msgs`."""
    return {
        "question_id": item["id"],
        "round": rnd,
        "agent": agent.name,
        "adapter_sha": agent.sha,
        "prompt_sha": prompt_hash(msgs),
        "messages": msgs,  # the prompt as the agent saw it (debate distillation trains on it)
        "raw": turn["raw"],
        "answer": turn["answer"],
        "confidence": turn["confidence"],
        "summary": turn["summary"],
        "parsed": turn["parsed"],
        "correct": SCORERS[s.scorer](turn["answer"], item["answer"], item.get("choices")),
        "generated_tokens": turn["generated_tokens"],
        **({"choice_logprobs": turn["choice_logprobs"]} if "choice_logprobs" in turn else {}),
    }


def vote_row(
    item: dict,
    names: list[str],
    last: dict[tuple[str, str], dict],
    turns: list[dict],
    s: DebateSettings,
    aggregator: Aggregator | None = None,
) -> dict:
    """One line of votes.jsonl without a judge: the agents' final turns (`last`), the aggregator's vote over
    them, and the question's efficiency fields from its transcript rows `turns` (every round)."""
    score = SCORERS[s.scorer]
    finals = {n: final_answer(last[(item["id"], n)]) for n in names}
    key = vote_key(s.scorer)  # free-text answers equal under the scorer's normalisation count as one
    aggregator = aggregator or Aggregator()
    team, scores = aggregator.vote(finals, item, s.seed, s.scorer)
    round1_turns = {t["agent"]: t for t in turns if t["round"] == 1}
    round1, _ = aggregator.vote(round1_turns, item, s.seed, s.scorer)
    return {
        "question_id": item["id"],
        "skill": item.get("skill", ""),
        "gold": item["answer"],
        "choices": item.get("choices"),
        "finals": finals,
        "vote_scores": scores,
        "team_answer": team,
        "correct": score(team, item["answer"], item.get("choices")),
        "rounds": s.rounds,
        "agreed_round": agreed_round(turns, s.seed, key),
        "round1_answer": round1,
        "round1_correct": score(round1, item["answer"], item.get("choices")),
        "generated_tokens": sum(t["generated_tokens"] for t in turns),
    }


def final_answer(turn: dict) -> dict:
    """What a vote row keeps of an agent's final turn: its answer and confidence, and in loglik mode the
    choices' log-likelihoods (calibration rescales them)."""
    keep = ("answer", "confidence", "choice_logprobs")
    return {k: turn[k] for k in keep if k in turn}


def add_judge(row: dict, pick: dict, item: dict, s: DebateSettings) -> None:
    """The judge's `pick` (from `judge_answers`) becomes the vote row's team answer; the vote's stays as vote_answer."""
    row["vote_answer"], row["team_answer"] = row["team_answer"], pick["answer"]
    row["judge"] = pick
    row["correct"] = SCORERS[s.scorer](pick["answer"], item["answer"], item.get("choices"))
    row["generated_tokens"] += pick["generated_tokens"]


def agreed_round(turns: list[dict], seed: int, key: Callable[[str], str] = normalize_answer) -> int | None:
    """The first round after which all agents agree on a question: every turn of the round parsed with a
    non-empty answer and the vote counts them as one answer. None if no round did. `turns`: the question's
    transcript rows (every round and agent); `seed` the debate's (it orders no answer here); `key` the
    vote's grouping of answers (vote_key of the scorer)."""
    by_round: dict[int, list[dict]] = {}
    for t in turns:
        by_round.setdefault(t["round"], []).append(t)
    for rnd in sorted(by_round):
        ts = by_round[rnd]
        _, scores = weighted_vote([(t["answer"], t["confidence"]) for t in ts], seed, ts[0]["question_id"], key)
        if all(t["parsed"] and t["answer"].strip() for t in ts) and len(scores) == 1:
            return rnd
    return None


def judge_answers(
    backend: Backend, judge: Agent, items: list[dict], finals: dict[str, dict[str, PeerAnswer]], s: DebateSettings
) -> dict[str, dict]:
    """The judge's pick per item, shown the final turns `finals[question id][agent]` (in seeded order)."""
    from evoswarm.config import derive_seed

    reqs = []
    for it in items:
        shown = [finals[it["id"]][a] for a in seeded_order(list(finals[it["id"]]), s.seed, it["id"])]
        prompt = judge_prompt(it["question"], it.get("choices"), shown, s.language)
        reqs.append((judge.adapter, chat(judge.system, prompt), it))
    turns = ask(backend, reqs, s, derive_seed(s.seed, "judge"))
    keep = ("answer", "confidence", "summary", "raw", "generated_tokens")
    return {it["id"]: {k: t[k] for k in keep} for it, t in zip(items, turns)}
