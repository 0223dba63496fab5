"""The debate protocol (Du et al. 2023 style) over any backend.

Round 1: every agent answers alone (its solo accuracy). Round r > 1: every agent sees its own and
the others' previous answers and summaries and may revise. The team answer is the confidence-weighted
vote of the final round (ties broken by `scoring.seeded_hash`), or an optional judge's pick. Who is
listed first (to an agent or to the judge) is a seeded shuffle per question, so the debate's outcome
does not depend on the order of the agents in the config. All agents' prompts of a round go to the
backend in one call, so the `hf` backend runs them as mixed-adapter batches.

Answer modes:
- `loglik`: each choice's text is scored as the continuation of '{"answer": "'; the answer is the
  best choice, confidence the softmax over choices; a short summary is then generated after it (in the
  last round only if someone reads it: see run_debate's `final_summaries`).
- `generate`: the whole JSON turn is generated and parsed leniently (parse failures recorded).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from evoswarm.backends import Backend, GenRequest, ScoreRequest
from evoswarm.parsing import match_choice, parse_turn
from evoswarm.progress import Progress
from evoswarm.prompts import (
    ANSWER_PREFIX,
    ANSWER_SUFFIX,
    DEBATE_RULES,
    PeerAnswer,
    chat,
    judge_prompt,
    turn_prompt,
)
from evoswarm.scoring import SCORERS, seeded_hash, softmax, vote_key, weighted_vote


@dataclass(frozen=True)
class Agent:
    name: str
    system: str
    adapter: str | None  # the backend's adapter name; None runs the base model
    sha: str = ""


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


def _messages(
    agent: Agent, item: dict, own: PeerAnswer | None, peers: list[PeerAnswer] | None, s: DebateSettings, rnd: int
) -> list[dict]:
    user = turn_prompt(item["question"], item.get("choices"), peers, s.rules, rnd == s.rounds and rnd > 1, own=own)
    return chat(agent.system, user)


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
        turns.append({"answer": answer, "confidence": t.confidence, "summary": t.summary, "raw": text, "parsed": t.ok})
    return turns


def ask(
    backend: Backend,
    reqs: list[tuple[str | None, list[dict], dict]],
    s: DebateSettings,
    seed: int,
    summaries: bool = True,
) -> list[dict]:
    """One batch of turns: (adapter, messages, item) -> turn dicts (answer, confidence, summary, raw, parsed).
    `summaries=False` spares loglik mode the generation of summaries that nobody will read."""
    if not reqs:
        return []
    if s.answer_mode == "loglik" and all(it.get("choices") for _, _, it in reqs):
        return _loglik_turns(backend, reqs, s, seed, summaries)
    return _generated_turns(backend, reqs, s, seed)


def _seen(last: dict, item: dict, name: str) -> PeerAnswer:
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
) -> tuple[list[dict], list[dict]]:
    """Run the debate; returns (transcript rows, vote rows) in the formats of DESIGN.md section 3.

    `final_summaries=False`: in loglik mode the last round's turns get no generated summary (empty;
    `raw` holds the turn's JSON without it), for a caller that reads neither the last round's summaries
    nor its raw text (a judge, which reads them, always gets them). `log`: a progress line per round."""
    from evoswarm.config import derive_seed

    score = SCORERS[s.scorer]
    transcripts: list[dict] = []
    last: dict[tuple[str, str], dict] = {}
    progress = Progress("debate", len(items) * len(agents) * s.rounds, "turns")
    for rnd in range(1, s.rounds + 1):
        reqs, keys = [], []
        for it in items:
            order = seeded_order([a.name for a in agents], s.seed, it["id"])
            for ag in agents:
                own, peers = None, None
                if rnd > 1:
                    own = _seen(last, it, ag.name)
                    peers = [_seen(last, it, o) for o in order if o != ag.name]
                msgs = _messages(ag, it, own, peers, s, rnd)
                reqs.append((ag.adapter, msgs, it))
                keys.append((it, ag, msgs))
        summaries = rnd < s.rounds or final_summaries or judge is not None
        turns = ask(backend, reqs, s, derive_seed(s.seed, "debate", rnd), summaries)
        for (it, ag, msgs), t in zip(keys, turns):
            last[(it["id"], ag.name)] = t
            transcripts.append(
                {
                    "question_id": it["id"],
                    "round": rnd,
                    "agent": ag.name,
                    "adapter_sha": ag.sha,
                    "prompt_sha": prompt_hash(msgs),
                    "messages": msgs,  # the prompt as the agent saw it (debate distillation trains on it)
                    "raw": t["raw"],
                    "answer": t["answer"],
                    "confidence": t["confidence"],
                    "summary": t["summary"],
                    "parsed": t["parsed"],
                    "correct": score(t["answer"], it["answer"], it.get("choices")),
                }
            )
        if log:
            log(progress.line(len(transcripts), f"round {rnd}/{s.rounds}"))
    judged = {}
    if judge:
        finals_seen = {it["id"]: {a.name: _seen(last, it, a.name) for a in agents} for it in items}
        judged = _judge(backend, judge, items, finals_seen, s)
    votes = []
    for it in items:
        finals = {
            ag.name: {
                "answer": last[(it["id"], ag.name)]["answer"],
                "confidence": last[(it["id"], ag.name)]["confidence"],
            }
            for ag in agents
        }
        team, scores = weighted_vote(
            [(f["answer"], f["confidence"]) for f in finals.values()], s.seed, it["id"], vote_key(s.scorer)
        )
        row = {
            "question_id": it["id"],
            "skill": it.get("skill", ""),
            "gold": it["answer"],
            "choices": it.get("choices"),
            "finals": finals,
            "vote_scores": scores,
            "team_answer": team,
        }
        if judge:
            row["vote_answer"], row["team_answer"] = team, judged[it["id"]]["answer"]
            row["judge"] = judged[it["id"]]
        row["correct"] = score(row["team_answer"], it["answer"], it.get("choices"))
        votes.append(row)
    return transcripts, votes


def _judge(
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
    return {
        it["id"]: {"answer": t["answer"], "confidence": t["confidence"], "summary": t["summary"], "raw": t["raw"]}
        for it, t in zip(items, turns)
    }


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
    judged = _judge(backend, judge, items, shown, s)
    return sum(score(judged[it["id"]]["answer"], it["answer"], it.get("choices")) for it in items) / len(items)
