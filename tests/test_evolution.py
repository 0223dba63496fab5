"""Survival (niching), the Lamarckian steps' data, and the study's config and DAG."""

import json

import pytest
import yaml
from conftest import REPO, run_snakemake
from evoswarm.config import study_arms, validate
from evoswarm.evolve.lamarck import distill_chats, persona_sft
from evoswarm.evolve.selection import SURVIVAL, per_skill, select
from evoswarm.io import InputError, read_jsonl
from test_config import base_config

FIT = {"a": 0.9, "b": 0.8, "c": 0.3, "d": 0.1}
SKILLS = {  # a is best at two skills; d, the least fit, is the only one good at category
    "arithmetic": {"a": 0.9, "b": 0.5, "c": 0.2, "d": 0.1},
    "sequence": {"a": 0.8, "b": 0.7, "c": 0.3, "d": 0.2},
    "category": {"a": 0.2, "b": 0.1, "c": 0.3, "d": 0.9},
}


def test_niching_keeps_one_elite_per_skill():
    kept = per_skill(FIT, SKILLS, 3)
    assert sorted(kept) == ["a", "b", "d"]  # arithmetic: a; sequence: b (a is taken); category: d
    assert SURVIVAL["top"](FIT, SKILLS, 3) == ["a", "b", "c"]  # fitness alone drops the category specialist
    assert per_skill(FIT, SKILLS, 1) == ["a"]  # fewer slots than skills: the fittest champions
    assert per_skill(FIT, {}, 2) == ["a", "b"]  # no skills recorded: plain fitness order


def test_select_fills_elite_slots_by_the_survival_rule():
    evo = validate({**base_config(), "population": 4, "evolution": {"elites": 3, "survival": "per_skill"}})["evolution"]
    plan = select(FIT, 0, 0, 4, evo, skills=SKILLS)
    assert sorted(plan["elites"].values()) == ["a", "b", "d"] and len(plan["children"]) == 1


def turn(q, agent, rnd, answer, correct, summary=""):
    msgs = [{"role": "system", "content": f"I am {agent}."}, {"role": "user", "content": f"Q: {q}? round {rnd}"}]
    return {
        "question_id": q,
        "agent": agent,
        "round": rnd,
        "answer": answer,
        "correct": correct,
        "summary": summary,
        "messages": msgs,
    }


def test_distillation_answers_every_parent_turn_of_a_right_debate_with_the_team_answer():
    transcripts = [
        turn("q1", "x", 1, "5", False),
        turn("q1", "y", 1, "4", True),
        turn("q1", "x", 2, "4", True, "x revised"),
        turn("q1", "y", 2, "4", True, "y held"),
        turn("q1", "z", 2, "4", True),
        turn("q2", "x", 1, "7", False),  # the team got q2 wrong: never distilled
    ]
    votes = [
        {"question_id": "q1", "team_answer": "4", "correct": True},
        {"question_id": "q2", "team_answer": "7", "correct": False},
    ]
    chats = distill_chats(transcripts, votes, ["x", "y"])
    assert len(chats) == 4  # x and y, rounds 1 and 2 of q1; z is not a parent
    answers = [json.loads(c["messages"][-1]["content"]) for c in chats]
    assert {a["answer"] for a in answers} == {"4"}  # x's wrong round-1 turn learns the revision
    assert {a["summary"] for a in answers} == {"x revised"}  # a right last-round turn's words
    assert all(c["messages"][:-1] == t["messages"] for c, t in zip(chats, transcripts[:4]))


def test_persona_sft_reads_the_parents_persona_files():
    cfg = validate(base_config())
    chats = persona_sft({"parent_personas": ["critic", "ideator"]}, {"personas": cfg["personas"]})
    n = sum(len(read_jsonl(REPO / f"data/personas/{p}.jsonl")) for p in ("critic", "ideator"))
    assert len(chats) == n
    with pytest.raises(InputError, match="evolution.lamarck"):
        persona_sft({"parent_personas": ["nobody"]}, {"personas": cfg["personas"]})


def study_config(arms):
    return {**base_config(), "study": {"baseline": "default", "arms": {"default": {}, **arms}}}


@pytest.mark.parametrize(
    "arms, message",
    [
        ({"x": {"evolution.crossovr": "cat"}}, "study.arms.x: unknown key 'evolution.crossovr'"),
        ({"x": {"evolution.blend.nope": 1}}, "study.arms.x: unknown key 'evolution.blend.nope'"),
        ({"x": {"training.r": 4}}, "study.arms.x: key 'training.r' cannot vary between arms"),
        ({"x": {"evolution.survival": "everyone"}}, "study.arms.x: invalid value at 'evolution.survival'"),
    ],
)
def test_bad_study_arms_name_the_arm_and_key(arms, message):
    with pytest.raises(InputError, match=message.replace(".", r"\.").replace("'", "'")):
        study_arms(validate(study_config(arms)))


def test_unknown_baseline_is_refused():
    cfg = study_config({})
    cfg["study"]["baseline"] = "nope"
    with pytest.raises(InputError, match="study.baseline"):
        validate(cfg)


def test_study_dag_shares_generation_0_and_debates_only_train_items_for_distillation(tmp_path):
    """Every arm reuses the main run's personas and generation-0 debate; the train-split debate reads
    the train file and nothing else; the table is the default target."""
    cfg = tmp_path / "study.yaml"
    cfg.write_text(
        (REPO / "configs/smoke.yaml").read_text()
        + yaml.safe_dump(
            {
                "seeds": [0, 1],
                "study": {
                    "baseline": "default",
                    "arms": {
                        "default": {},
                        "distill": {"evolution.lamarck.step": "distill"},
                        "coop0": {"fitness.weights.cooperation": 0.0},
                    },
                },
            }
        )
    )
    out = run_snakemake(tmp_path / "w", "-n", "--quiet", "rules", config=cfg).stdout
    counts = {
        ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines() if len(ln.split()) == 2 and ln.split()[1].isdigit()
    }
    g, p = 2, 3
    assert counts["train_persona"] == 2 * p  # once per seed, for all arms
    assert counts["debate"] == 2 * (1 + 3 * g)  # generation 0 shared, then one per arm and generation
    assert counts["fitness"] == 2 * (1 + 1 + 3 * g)  # coop0 scores generation 0 its own way
    assert counts["debate_train"] == 2 * g  # only the distill arm, on generations 0 .. G-1
    assert counts["study"] == 1 and "report" not in counts
    detail = run_snakemake(tmp_path / "w", "-n", config=cfg).stdout
    jobs = detail.split("rule debate_train:")[1:]
    assert len(jobs) == 2 * g
    for job in jobs:
        inputs = next(ln for ln in job.splitlines() if ln.strip().startswith("input:"))
        assert "data/tasks/train.jsonl" in inputs
        assert "dev.jsonl" not in inputs and "test.jsonl" not in inputs
