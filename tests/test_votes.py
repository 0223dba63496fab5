"""One seeded tie-break rule: the debate's vote, the cooperation re-vote and the team evaluation give
the same team the same answers, whatever the order of its agents."""

import itertools
import json
import random

import pytest
from conftest import REPO
from evoswarm.debate.agents import Agent
from evoswarm.debate.loop import DebateSettings, judge_agent, run_debate
from evoswarm.evolve.cooperation import final_turns, rejudge, revote
from evoswarm.io import read_jsonl
from evoswarm.protocol.scoring import seeded_hash, weighted_vote
from hypothesis import given, settings
from hypothesis import strategies as st

answers = st.lists(st.tuples(st.sampled_from(["7", "8", "9", "melon", ""]), st.sampled_from([0.25, 0.5, 0.75])))


@settings(max_examples=200, deadline=None)
@given(answers=answers, seed=st.integers(0, 2**31 - 1), qid=st.text(max_size=8), perm_seed=st.integers(0, 99))
def test_vote_is_deterministic_and_ignores_the_order_of_the_agents(answers, seed, qid, perm_seed):
    shuffled = list(answers)
    random.Random(perm_seed).shuffle(shuffled)
    assert weighted_vote(answers, seed, qid) == weighted_vote(shuffled, seed, qid) == weighted_vote(answers, seed, qid)


def test_ties_go_to_either_answer_by_question_not_to_the_first_agent():
    wins = [weighted_vote([("7", 0.5), ("8", 0.5)], 0, f"q{i}")[0] for i in range(200)]
    assert 60 < wins.count("7") < 140 and wins.count("7") + wins.count("8") == 200
    # another seed breaks some ties the other way
    assert wins != [weighted_vote([("7", 0.5), ("8", 0.5)], 1, f"q{i}")[0] for i in range(200)]


def test_tie_compares_rounded_scores_and_follows_the_seeded_hash():
    # 0.1 + 0.2 != 0.3 in floats: still a tie, decided by the hash, in either order
    votes = [("a", 0.1), ("a", 0.2), ("b", 0.3)]
    for qid in ("q1", "q2", "q3", "q4"):
        expected = min(["a", "b"], key=lambda k: seeded_hash(0, qid, k))
        assert weighted_vote(votes, 0, qid)[0] == weighted_vote(votes[::-1], 0, qid)[0] == expected


class TiedBackend:
    """A backend stand-in whose agents produce ties: each agent puts the same confidence on its own
    favourite choice (a: first, b: second, c: first or second by question). Records every prompt."""

    def __init__(self):
        self.prompts: list[tuple[str | None, str]] = []

    def add_adapter(self, name, path):
        pass

    def score(self, requests):
        out = []
        for r in requests:
            user = r.messages[-1]["content"]
            self.prompts.append((r.adapter, user))
            fav = {"a": 0, "b": 1}.get(r.adapter, len(user) % 2)
            out.append([0.0 if i == fav else -1.0 for i in range(len(r.continuations))])
        return out

    def generate(self, requests):
        return [r.prefix + f'{r.adapter} thinks so"}}' for r in requests]

    @staticmethod
    def tok(text, add_special_tokens=False):  # words stand in for tokens
        return {"input_ids": text.split()}


ITEMS = read_jsonl(REPO / "data/tasks/dev.jsonl")[:40]
SETTINGS = DebateSettings(rounds=2, answer_mode="loglik", seed=11)
AGENTS = [Agent(n, f"I am {n}.", adapter=n) for n in ("a", "b")]


def test_debate_team_answers_do_not_depend_on_the_order_of_the_agents():
    teams = []
    for order in itertools.permutations(AGENTS + [Agent("c", "I am c.", adapter="c")]):
        _, votes = run_debate(TiedBackend(), list(order), ITEMS, SETTINGS)
        teams.append([(v["team_answer"], v["correct"], v["vote_scores"]) for v in votes])
    assert all(t == teams[0] for t in teams)


def test_revote_of_the_full_team_gives_back_the_debate_answers_including_ties(tmp_path):
    _, votes = run_debate(TiedBackend(), AGENTS, ITEMS, SETTINGS)
    (tmp_path / "votes.jsonl").write_text("".join(json.dumps(v, ensure_ascii=False) + "\n" for v in votes))
    rows = read_jsonl(tmp_path / "votes.jsonl")
    assert all(len(set(r["vote_scores"].values())) == 1 and len(r["vote_scores"]) == 2 for r in rows)  # all tied
    team_answers = {r["team_answer"] for r in rows}
    assert {r["choices"][0] for r in rows} & team_answers and {r["choices"][1] for r in rows} & team_answers
    for r in rows:
        assert revote([r], ["a", "b"], "choice", SETTINGS.seed) == float(r["correct"])
        assert revote([r], ["b", "a"], "choice", SETTINGS.seed) == float(r["correct"])
    assert revote(rows, ["a", "b"], "choice", SETTINGS.seed) == sum(r["correct"] for r in rows) / len(rows)


def test_later_rounds_show_the_agent_its_own_previous_turn():
    backend = TiedBackend()
    transcripts, _ = run_debate(backend, AGENTS, ITEMS[:3], SETTINGS)
    first = {(t["question_id"], t["agent"]): t for t in transcripts if t["round"] == 1}
    round2 = backend.prompts[2 * 3 :]  # round 1: 2 agents x 3 items
    for (adapter, user), it in zip(round2, [it for it in ITEMS[:3] for _ in AGENTS]):
        own = first[(it["id"], adapter)]
        other = first[(it["id"], "b" if adapter == "a" else "a")]
        assert f"You: {own['answer']} ({own['confidence']:.2f}) {own['summary']}" in user
        assert f"- {other['agent']}: {other['answer']}" in user
        assert user.index("You:") < user.index("Others:")
        assert f"- {adapter}:" not in user  # the agent is not listed among the others


@pytest.mark.parametrize("seed", [0, 5])
def test_debate_is_deterministic(seed):
    s = DebateSettings(rounds=2, answer_mode="loglik", seed=seed)
    assert run_debate(TiedBackend(), AGENTS, ITEMS, s) == run_debate(TiedBackend(), AGENTS, ITEMS, s)


@pytest.fixture(scope="module")
def judged(tiny_base, tiny_adapters, smoke_config):
    """A judged debate of the two tiny persona adapters on dev questions, as generation 0 runs it."""
    from types import SimpleNamespace

    from evoswarm.backends.hf import HFBackend
    from evoswarm.config import stage_config
    from evoswarm.debate.agents import load_agents
    from evoswarm.world.items import load_items

    config = stage_config({**smoke_config, "debate": {**smoke_config["debate"], "judge": True}}, "fitness")
    backend = HFBackend.from_base(str(tiny_base), config)
    adapters = [str(p) for p in tiny_adapters.values()]
    agents = load_agents(backend, str(tiny_base), adapters)
    items = load_items(str(REPO / "data/tasks/dev.jsonl"), config["debate"]["max_questions"])
    s = DebateSettings.for_generation(config, 0)
    transcripts, votes = run_debate(backend, agents, items, s, judge=judge_agent(config["debate"]))
    return SimpleNamespace(
        config=config,
        base=str(tiny_base),
        backend=backend,
        agents=agents,
        adapters=adapters,
        items=items,
        settings=s,
        transcripts=transcripts,
        votes=votes,
    )


def test_judge_is_built_in_one_place():
    assert judge_agent({"judge": False}) is None
    assert judge_agent({"judge": True}) == Agent("judge", "", adapter=None)


def test_rejudging_the_full_team_gives_back_the_debate_judge_in_any_agent_order(judged):
    d = judged
    judge = judge_agent(d.config["debate"])
    names = [a.name for a in d.agents]
    team_acc = sum(v["correct"] for v in d.votes) / len(d.votes)
    finals = final_turns(d.transcripts)
    assert rejudge(d.backend, judge, d.items, finals, names, d.settings) == team_acc
    assert rejudge(d.backend, judge, d.items, finals, names[::-1], d.settings) == team_acc
    assert 0 <= rejudge(d.backend, judge, d.items, finals, names[:1], d.settings) <= 1
    _, reversed_votes = run_debate(d.backend, d.agents[::-1], d.items, d.settings, judge=judge)
    assert [v["team_answer"] for v in reversed_votes] == [v["team_answer"] for v in d.votes]
    assert [v["vote_answer"] for v in reversed_votes] == [v["vote_answer"] for v in d.votes]


def test_fitness_stage_values_the_team_by_its_judge(judged, tmp_path):
    import csv

    from evoswarm.evolve.fitness import score_generation
    from evoswarm.io import write_jsonl

    d = judged
    write_jsonl(tmp_path / "transcripts.jsonl", d.transcripts)
    write_jsonl(tmp_path / "votes.jsonl", d.votes)
    config = {**d.config, "fitness": {**d.config["fitness"], "novelty": "answers"}}
    out = tmp_path / "fitness.csv"
    score_generation(
        config,
        d.base,
        d.adapters,
        str(tmp_path / "transcripts.jsonl"),
        str(tmp_path / "votes.jsonl"),
        str(REPO / "data/tasks/dev.jsonl"),
        str(out),
        gen=0,
    )
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["team_acc"]) == pytest.approx(sum(v["correct"] for v in d.votes) / len(d.votes), abs=1e-6)
    assert {int(r["n_items"]) for r in rows} == {len(d.votes)}


def test_unread_final_summaries_are_skipped_and_change_no_answer(judged):
    """final_summaries=False leaves the last round's summaries ungenerated: same answers, confidences and
    votes; raw is the turn's JSON without a summary. A judge reads them, so with one they stay."""
    d = judged
    items = d.items[:5]
    full, full_votes = run_debate(d.backend, d.agents, items, d.settings)
    lines = []
    lean, lean_votes = run_debate(d.backend, d.agents, items, d.settings, final_summaries=False, log=lines.append)
    spent = [(v.pop("generated_tokens"), w.pop("generated_tokens")) for v, w in zip(lean_votes, full_votes)]
    assert lean_votes == full_votes
    assert all(lean_tokens < full_tokens for lean_tokens, full_tokens in spent)  # no last-round summaries
    last = d.settings.rounds
    assert [t for t in lean if t["round"] < last] == [t for t in full if t["round"] < last]
    for a, b in zip(lean, full):
        assert (a["answer"], a["confidence"], a["correct"], a["messages"]) == (
            b["answer"],
            b["confidence"],
            b["correct"],
            b["messages"],
        )
        if a["round"] == last:
            assert a["summary"] == "" and json.loads(a["raw"]) == {"answer": a["answer"], "confidence": a["confidence"]}
    turns = len(items) * len(d.agents)
    assert len(lines) == last and lines[-1].startswith(
        f"debate {turns * last}/{turns * last} turns (100%), round {last}/{last}"
    )
    assert "ETA 0s" in lines[-1]
    judge = judge_agent(d.config["debate"])
    judged_again, _ = run_debate(d.backend, d.agents, d.items, d.settings, judge=judge, final_summaries=False)
    assert judged_again == d.transcripts
