"""Debate efficiency: per question in votes.jsonl (rounds, the round the agents agreed, the round-1 vote,
generated tokens) and per generation in the report, on a scripted debate whose answers are known."""

import pytest
from evoswarm.debate.agents import Agent
from evoswarm.debate.loop import DebateSettings, agreed_round, run_debate
from evoswarm.io import write_jsonl
from evoswarm.report.build import Efficiency, debate_efficiency, efficiency_section

CHOICES = ["7", "8"]
ITEMS = [{"id": q, "question": f"question {q}?", "choices": CHOICES, "answer": "7"} for q in ("q1", "q2", "q3", "q4")]
# (agent, question) -> its answer in rounds 1 and 2; "?" is a turn with no JSON (unparsed). Gold is 7 throughout.
SCRIPT = {
    ("a", "q1"): "87", ("b", "q1"): "87", ("c", "q1"): "77",  # vote 8 -> all 7: agreed in 2, wrong -> right
    ("a", "q2"): "78", ("b", "q2"): "78", ("c", "q2"): "88",  # vote 7 -> all 8: agreed in 2, right -> wrong
    ("a", "q3"): "77", ("b", "q3"): "78", ("c", "q3"): "77",  # all 7 in round 1 (agreed in 1), then split; 7 stays
    ("a", "q4"): "??", ("b", "q4"): "77", ("c", "q4"): "77",  # a never parses: never agreed; 7 stays
}  # fmt: skip
TURN = '{"answer": "%s", "confidence": 0.9, "summary": "one two three"}'  # 8 words


class ScriptedBackend:
    """A backend stand-in answering from SCRIPT; the round is told by the prompt (later rounds show the agent
    its own previous turn). Words stand in for tokens."""

    def add_adapter(self, name, path):
        pass

    def generate(self, requests):
        out = []
        for r in requests:
            user = r.messages[-1]["content"]
            q = next(it["id"] for it in ITEMS if it["question"] in user)
            answer = SCRIPT[(r.adapter, q)]["You:" in user]
            out.append("no idea" if answer == "?" else TURN % answer)
        return out

    @staticmethod
    def tok(text, add_special_tokens=False):
        return {"input_ids": text.split()}


@pytest.fixture(scope="module")
def scripted():
    agents = [Agent(n, f"I am {n}.", adapter=n) for n in ("a", "b", "c")]
    s = DebateSettings(rounds=2, answer_mode="generate", scorer="choice", seed=3)
    return run_debate(ScriptedBackend(), agents, ITEMS, s)


def test_vote_rows_record_agreement_round_one_vote_and_tokens(scripted):
    transcripts, votes = scripted
    by_q = {v["question_id"]: v for v in votes}
    assert {q: v["agreed_round"] for q, v in by_q.items()} == {"q1": 2, "q2": 2, "q3": 1, "q4": None}
    assert {q: (v["round1_answer"], v["round1_correct"]) for q, v in by_q.items()} == {
        "q1": ("8", False),
        "q2": ("7", True),
        "q3": ("7", True),
        "q4": ("7", True),
    }
    assert {q: (v["team_answer"], v["correct"]) for q, v in by_q.items()} == {
        "q1": ("7", True),
        "q2": ("8", False),
        "q3": ("7", True),
        "q4": ("7", True),
    }
    assert {v["rounds"] for v in votes} == {2}
    # 3 agents x 2 rounds x 8 words; q4's unparsed turns are 2 words each
    assert {q: v["generated_tokens"] for q, v in by_q.items()} == {"q1": 48, "q2": 48, "q3": 48, "q4": 36}
    assert sum(t["generated_tokens"] for t in transcripts) == sum(v["generated_tokens"] for v in votes)


def test_agreement_is_the_vote_grouping_every_parsed_answer_as_one():
    def turns(*rounds, parsed=True):
        return [
            {"question_id": "q", "round": r, "agent": f"x{k}", "answer": a, "confidence": 0.5, "parsed": parsed}
            for r, answers in enumerate(rounds, 1)
            for k, a in enumerate(answers)
        ]

    assert agreed_round(turns(["Seven ", "seven"]), 0) == 1  # the vote's normalisation: one answer
    assert agreed_round(turns(["7", "8"], ["8", "8"], ["8", "7"]), 0) == 2  # the first round, even if split later
    assert agreed_round(turns(["7", ""], ["", ""]), 0) is None  # an empty answer abstains: no agreement
    assert agreed_round(turns(["7", "7"], parsed=False), 0) is None


def test_report_counts_changes_by_direction(scripted, tmp_path):
    _, votes = scripted
    e = debate_efficiency([{**v, "seconds": 0.25} for v in votes])
    assert e == Efficiency(
        questions=4,
        rounds=2,
        agreed=3,
        agreed_in_round_1=1,
        mean_agreed_round=5 / 3,
        changed=2,
        right_to_wrong=1,
        wrong_to_right=1,
        tokens_per_question=45.0,
        seconds_per_question=0.25,
    )
    old = [{k: v for k, v in row.items() if k in ("question_id", "finals", "team_answer", "correct")} for row in votes]
    write_jsonl(tmp_path / "gen0.jsonl", [{**v, "seconds": 0.25} for v in votes])
    write_jsonl(tmp_path / "gen1.jsonl", old)
    section = efficiency_section({0: [str(tmp_path / "gen0.jsonl"), str(tmp_path / "gen1.jsonl")]}, "choice")
    assert section.rows[0] == [
        "0", "0", "4", "2", "3 (75%)", "1 (25%)", "1.667", "2 (50%)", "1 (25%)", "1 (25%)", "45", "0.25"
    ]  # fmt: skip
    assert section.rows[1][2].startswith("not recorded")
