"""Evaluation targets: lm-eval deterministic and agreeing with our scorer, the same with the base loaded
once as per target; team-vote is round 1 of the generation's debate; base-sc really samples generated
turns; prompt-vote is the base under the personas' prompts; every target records its budget."""

import copy
import json
from pathlib import Path

import pytest
from conftest import REPO
from evoswarm.evaluate import job
from evoswarm.evaluate.single import single
from evoswarm.evaluate.teams import counting_backend, first_round_vote, team_agents, team_debate
from evoswarm.targets import KINDS, TEAM_VOTE, persona, team
from hypothesis import given, settings
from hypothesis import strategies as st

TEST = str(REPO / "data/tasks/test.jsonl")
BUDGET_KEYS = {"model_calls", "generated_tokens", "scored_continuations"}


@pytest.fixture(scope="module")
def loaded_lm(tiny_base, tiny_adapters, smoke_config):
    """lm-eval's model as the evaluation jobs load it: the base once, both adapters in one PeftModel."""
    from evoswarm.evaluate.harness import load_lm_eval_model
    from evoswarm.model.base import read_manifest

    adapters = {name: str(a) for name, a in tiny_adapters.items()}
    return load_lm_eval_model(read_manifest(str(tiny_base))["path"], adapters, smoke_config, 4)


def test_lm_eval_twice_gives_the_same_number(loaded_lm, tiny_base, tiny_adapters, smoke_config):
    from evoswarm.world.items import load_items

    items = load_items(str(REPO / "data/tasks/test.jsonl"), 12)
    critic = str(tiny_adapters["critic"])
    a = single(smoke_config, persona("critic"), str(tiny_base), critic, items, 5, loaded_lm)
    b = single(smoke_config, persona("critic"), str(tiny_base), critic, items, 5, loaded_lm)
    assert a["results"]["evoswarm_mc"]["acc,none"] == b["results"]["evoswarm_mc"]["acc,none"]
    assert a["evoswarm"]["per_item"] == b["evoswarm"]["per_item"] and len(a["evoswarm"]["per_item"]) == 12


def test_lm_eval_agrees_with_the_debate_scorer(loaded_lm, tiny_base, tiny_adapters, smoke_config):
    """lm-eval's multiple_choice acc (on the model loaded once) and our loglik round-1 answers pick the same
    choices, adapter by adapter: a member's solo answers are round 1 of the debate."""
    from evoswarm.backends.hf import HFBackend
    from evoswarm.debate.agents import load_agents
    from evoswarm.debate.loop import DebateSettings, run_debate
    from evoswarm.world.items import load_items

    items = load_items(str(REPO / "data/tasks/test.jsonl"), 12)
    be = HFBackend.from_base(str(tiny_base), smoke_config)
    agents = load_agents(be, str(tiny_base), [str(a) for a in tiny_adapters.values()])
    s = DebateSettings.from_config({**smoke_config["debate"], "rounds": 1}, "choice", seed=0)
    transcripts, _ = run_debate(be, agents, items, s)
    for name, adapter in tiny_adapters.items():
        res = single(smoke_config, persona(name), str(tiny_base), str(adapter), items, 5, loaded_lm)
        ours = {t["question_id"]: (t["answer"], t["correct"]) for t in transcripts if t["agent"] == name}
        theirs = {r["id"]: (r["answer"], r["correct"]) for r in res["evoswarm"]["per_item"]}
        assert ours == theirs


def test_a_failed_target_exits_non_zero_and_leaves_a_failure_record(tiny_base, tmp_path):
    """Snakemake must see the failure (so a rerun retries it): no result JSON, exit 1, one error line; the
    record beside it says why, for the report."""
    import subprocess
    import sys

    from evoswarm.layout import eval_failure

    out = tmp_path / "eval" / "gen0-ghost.json"
    done = subprocess.run(
        [sys.executable, "workflow/scripts/evaluate.py", "--config", "configs/smoke.yaml"]
        + ["--targets", "gen0-ghost", "--base", str(tiny_base), "--adapters", str(tmp_path / "ghost")]
        + ["--out-dir", str(out.parent)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and not out.exists()
    assert done.stdout.strip().splitlines()[-1] == f"error: target gen0-ghost: adapter {tmp_path / 'ghost'} is missing"
    record = json.loads(Path(eval_failure(str(out))).read_text())
    assert record["failed"] and "ghost" in record["error"] and record["evoswarm"]["target"] == "gen0-ghost"


def test_a_target_that_succeeds_on_retry_drops_its_failure_record(tiny_base, smoke_config, tmp_path):
    from evoswarm.config import stage_config
    from evoswarm.io import write_json
    from evoswarm.layout import eval_failure

    out = tmp_path / "base-sc.json"
    write_json(eval_failure(str(out)), {"failed": True, "error": "RuntimeError: CUDA out of memory"})
    config = stage_config(smoke_config, "evaluate")
    config["evaluation"] = {**config["evaluation"], "limit": 2, "self_consistency_k": 1}
    job.evaluate(config, str(tiny_base), TEST, {"base-sc": str(out)})
    assert not json.loads(out.read_text()).get("failed") and not Path(eval_failure(str(out))).exists()


def test_task_file_missing_fields_names_file_and_line(tmp_path):
    from evoswarm.io import InputError
    from evoswarm.world.items import load_items

    p = tmp_path / "t.jsonl"
    p.write_text('{"id": "a", "question": "q", "answer": "1", "choices": ["1", "2"]}\n{"id": "b", "question": "q"}\n')
    with pytest.raises(InputError, match=r"t\.jsonl:2: missing field\(s\) answer"):
        load_items(str(p))


@given(
    answers=st.lists(st.sampled_from(["A", "b", "B", "c", ""]), max_size=8),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
@settings(max_examples=200, deadline=None)
def test_majority_ignores_sample_order_and_abstentions(answers, seed, data):
    from evoswarm.evaluate.harness import seeded_majority
    from evoswarm.protocol.parsing import normalize_answer

    shuffled = data.draw(st.permutations(answers))
    winner, counts = seeded_majority(answers, seed, "q1")
    assert (winner, counts) == seeded_majority(shuffled, seed, "q1")
    if not any(answers):
        assert winner == "" and counts == {}
    else:
        assert "" not in counts and sum(counts.values()) == sum(1 for a in answers if a)
        assert counts[normalize_answer(winner)] == max(counts.values())


def test_majority_ties_go_by_seed_not_by_order():
    from evoswarm.evaluate.harness import seeded_majority

    winners = {seeded_majority(["x", "y"], seed, "q1")[0] for seed in range(40)}
    assert winners == {"x", "y"}  # a hash of the seed decides, not which answer came first
    assert seeded_majority(["x", "y", "y"], 0, "q1")[0] == "y"


def test_counting_backend_counts_new_tokens_and_scored_continuations():
    """Without a count of its own, the backend's text after the forced prefix is counted by the tokenizer."""
    from evoswarm.backends import GenRequest, ScoreRequest
    from evoswarm.evaluate.harness import CountingBackend

    class Echo:
        def generate(self, requests):
            return [r.prefix + "one two three" for r in requests]

        def score(self, requests):
            return [[0.0] * len(r.continuations) for r in requests]

    def words(text, add_special_tokens=False):
        return {"input_ids": text.split()}

    b = CountingBackend(Echo(), words)
    b.generate([GenRequest(None, [], prefix="forced prefix "), GenRequest(None, [])])
    b.score([ScoreRequest(None, [], ["a", "b", "c"]), ScoreRequest(None, [], ["a", "b"])])
    assert b.budget(2) == {"model_calls": 2, "generated_tokens": 6, "scored_continuations": 5}


class Recorder:
    """A backend wrapper that keeps every request it is sent and every text it generates."""

    def __init__(self, backend):
        self.backend, self.gen, self.texts, self.scored, self.added = backend, [], [], [], []

    def add_adapter(self, name, path):
        self.added.append(name)
        self.backend.add_adapter(name, path)

    def generate(self, requests):
        self.gen += requests
        texts = self.backend.generate(requests)
        self.texts += texts
        return texts

    def score(self, requests):
        self.scored += requests
        return self.backend.score(requests)

    def __getattr__(self, name):  # the backend's own counters
        return getattr(self.backend, name)


@pytest.fixture
def recorders(monkeypatch):
    """The backends the evaluation job makes, recorded (one Recorder per target run)."""
    made = []
    real = job.make_backend

    def make(name, base, config):
        made.append(Recorder(real(name, base, config)))
        return made[-1]

    monkeypatch.setattr(job, "make_backend", make)
    return made


def eval_config(smoke_config, limit=4, **evaluation):
    cfg = copy.deepcopy(smoke_config)
    cfg["evaluation"].update(limit=limit, **evaluation)
    return cfg


def run_target(config, target, base, tmp_path, adapters=(), fitness=None):
    """One target through an evaluation job of its own, read back from its JSON."""
    from evoswarm.config import gen0_systems, stage_config

    out = tmp_path / f"{target}.json"
    job.evaluate(
        stage_config(config, "evaluate"),
        str(base),
        TEST,
        {target: str(out)},
        [str(a) for a in adapters],
        fitness,
        config["population"],
        gen0_systems(config),
    )
    return json.loads(out.read_text())


def test_base_sc_samples_k_generated_turns_per_item(recorders, tiny_base, smoke_config, tmp_path):
    from evoswarm.protocol.chat import chat
    from evoswarm.protocol.prompts import turn_prompt
    from evoswarm.world.items import load_items

    cfg = eval_config(smoke_config, self_consistency_k=3, self_consistency_temperature=1.0)
    res = run_target(cfg, "base-sc", tiny_base, tmp_path)
    rec = recorders[0]
    items = load_items(TEST, 4)
    assert len(rec.gen) == 3 * 4 and not rec.scored and not rec.added  # full turns, even in loglik mode
    round1 = [chat("", turn_prompt(it["question"], it.get("choices"))) for it in items]
    assert all(r.adapter is None and r.temperature == 1.0 and not r.prefix for r in rec.gen)
    assert [r.messages for r in rec.gen] == round1 * 3
    assert len({r.seed for r in rec.gen}) == 3  # one seed per sample
    samples = [[rec.texts[j * 4 + i] for j in range(3)] for i in range(4)]
    assert any(len(set(s)) > 1 for s in samples)  # different seeds, different turns
    ev = res["evoswarm"]
    assert ev["k"] == 3 and 0.0 <= ev["parse_failure_rate"] <= 1.0
    assert ev["budget"]["model_calls"] == 12 and ev["budget"]["scored_continuations"] == 0
    assert 0 < ev["budget"]["generated_tokens"] <= 12 * cfg["debate"]["max_new_tokens"]
    assert res == run_target(cfg, "base-sc", tiny_base, tmp_path)  # seeded: same config, same result


def test_base_sc_at_temperature_zero_is_the_greedy_round_one_answer(recorders, tiny_base, smoke_config, tmp_path):
    from evoswarm.backends.hf import HFBackend
    from evoswarm.debate.agents import Agent
    from evoswarm.debate.loop import DebateSettings, run_debate
    from evoswarm.world.items import load_items

    cfg = eval_config(smoke_config, self_consistency_k=2, self_consistency_temperature=0.0)
    res = run_target(cfg, "base-sc", tiny_base, tmp_path)
    dcfg = {**cfg["debate"], "answer_mode": "generate", "rounds": 1, "temperature": 0.0}
    s = DebateSettings.from_config(dcfg, "choice", seed=0)
    transcripts, _ = run_debate(
        HFBackend.from_base(str(tiny_base), cfg), [Agent("base", "", None)], load_items(TEST, 4), s
    )
    assert recorders[0].texts[:4] == [t["raw"] for t in transcripts]
    assert [r["answer"] for r in res["evoswarm"]["per_item"]] == [t["answer"] for t in transcripts]
    assert [r["correct"] for r in res["evoswarm"]["per_item"]] == [bool(t["correct"]) for t in transcripts]


def test_prompt_vote_is_the_base_under_each_persona_prompt(recorders, tiny_base, smoke_config, tmp_path):
    from evoswarm.config import gen0_systems

    cfg = eval_config(smoke_config)
    res = run_target(cfg, "prompt-vote", tiny_base, tmp_path)
    rec = recorders[0]
    systems = gen0_systems(cfg)
    assert not rec.added and all(r.adapter is None for r in rec.gen + rec.scored)
    # One scored turn per persona and item, each under its persona's prompt; one round, no judge: no
    # summary is generated (nobody would read it).
    seen = sorted(r.messages[0]["content"] for r in rec.scored if r.messages[0]["role"] == "system")
    assert len(rec.scored) == len(systems) * 4 and seen == sorted(list(systems.values()) * 4)
    assert rec.gen == []
    ev = res["evoswarm"]
    assert ev["agents"] == list(systems) and ev["adapters"] == [None] * len(systems) and ev["rounds"] == 1
    assert ev["budget"]["model_calls"] == len(systems) * 4


def test_generation_jobs_write_every_target_with_its_budget(tiny_base, tiny_adapters, smoke_config, tmp_path, capsys):
    """The jobs as the workflow runs them (shared base; generation 0; gen0-best; generation 1), each target's
    JSON with its budget: lm-eval one call and all choices per item, nothing generated; a debate more on
    every count; team-vote what round 1 of the generation-0 debate cost. The log tells progress and ETA."""
    from evoswarm.config import stage_config
    from evoswarm.world.items import load_items

    cfg = eval_config(smoke_config)
    items = load_items(TEST, 4)
    adapters = [str(a) for a in tiny_adapters.values()]
    fitness = tmp_path / "fitness.csv"
    fitness.write_text("agent,fitness,task,cooperation,novelty\nideator,0.5,0.5,0.5,0.5\ncritic,0.4,0.4,0.4,0.4\n")
    gen0 = ["team-gen0", "team-vote", "prompt-vote", "base-sc", "gen0-critic", "gen0-ideator"]
    outs = {t: str(tmp_path / f"{t}.json") for t in ["base", *gen0, "gen0-best", "team-gen1", "gen1-best"]}
    config, systems = stage_config(cfg, "evaluate"), {"critic": "c", "ideator": "i"}
    for asked, inputs in [
        (["base"], {}),
        (gen0, {"adapters": adapters}),
        (["gen0-best"], {"fitness": str(fitness), "agent_evals": [outs["gen0-critic"], outs["gen0-ideator"]]}),
        (["team-gen1", "gen1-best"], {"adapters": adapters, "fitness": str(fitness)}),
    ]:
        job.evaluate(config, str(tiny_base), TEST, {t: outs[t] for t in asked}, population=2, systems=systems, **inputs)
    log = capsys.readouterr().out
    assert "team-gen0: started" in log and "team-gen0: 8/24 backend requests" in log and "; ETA " in log
    res = {t: json.loads(Path(p).read_text()) for t, p in outs.items()}
    budgets = {t: r["evoswarm"]["budget"] for t, r in res.items()}
    assert all(set(b) == BUDGET_KEYS and all(isinstance(v, int) for v in b.values()) for b in budgets.values())
    assert {t: r["evoswarm"]["target"] for t, r in res.items()} == {t: t for t in outs}
    assert res["gen0-best"]["evoswarm"]["agent"] == res["gen1-best"]["evoswarm"]["agent"] == "ideator"
    assert res["gen0-best"]["results"] == res["gen0-ideator"]["results"]
    assert res["gen1-best"]["evoswarm"]["per_item"] == res["gen0-ideator"]["evoswarm"]["per_item"]  # same adapter
    n_choices = sum(len(it["choices"]) for it in items)
    assert budgets["base"] == {"model_calls": 4, "generated_tokens": 0, "scored_continuations": n_choices}
    assert budgets["gen0-critic"] == budgets["base"] == budgets["gen1-best"] == budgets["gen0-best"]
    rounds = cfg["debate"]["rounds"]
    assert budgets["team-gen1"]["model_calls"] == 2 * rounds * 4 == 2 * budgets["team-vote"]["model_calls"]
    assert budgets["team-gen1"]["scored_continuations"] == 2 * rounds * n_choices  # loglik: every choice, every turn
    assert budgets["team-vote"]["scored_continuations"] == 2 * n_choices  # round 1 only
    # Summaries are generated where a later round reads them: not in the last (no judge here).
    assert budgets["team-vote"]["generated_tokens"] == budgets["prompt-vote"]["generated_tokens"] == 0
    assert budgets["team-gen0"]["generated_tokens"] > 0 and budgets["team-gen1"]["generated_tokens"] > 0
    for t in ("prompt-vote", "team-vote", "team-gen1"):
        assert all(budgets[t][k] >= budgets["base"][k] for k in BUDGET_KEYS)
        assert budgets[t]["model_calls"] > budgets["base"]["model_calls"]


@pytest.mark.parametrize("judge", [False, True])
def test_team_vote_is_round_one_of_the_generation_debate(tiny_base, tiny_adapters, smoke_config, judge):
    """Read off the two-round debate, team-vote gives what a debate of one round (same seed) gives, item by
    item, at that debate's cost; with a judge, the judge over the round-1 turns (one more call per item)."""
    from evoswarm.config import stage_config
    from evoswarm.world.items import load_items

    cfg = eval_config(smoke_config)
    cfg["debate"]["judge"] = judge
    config, items, base = stage_config(cfg, "evaluate"), load_items(TEST, 4), str(tiny_base)
    adapters = [str(a) for a in tiny_adapters.values()]
    seed = job.target_seed(config, team(0))

    def debate(rounds):
        backend = counting_backend(config, base)
        agents = team_agents(backend, team(0), base, adapters)
        res, transcripts = team_debate(config, team(0), backend, agents, items, seed, rounds)
        return res, transcripts, backend, agents

    _, transcripts, backend, agents = debate(cfg["debate"]["rounds"])
    derived = first_round_vote(config, TEAM_VOTE, backend, agents, items, transcripts, seed, team(0))
    one_round = debate(1)[0]["evoswarm"]
    assert derived["evoswarm"]["per_item"] == one_round["per_item"]
    assert derived["evoswarm"]["budget"] == one_round["budget"]
    assert derived["evoswarm"]["budget"]["model_calls"] == (2 + judge) * 4
    assert derived["evoswarm"]["rounds"] == 1 and derived["evoswarm"]["judge"] == judge


@pytest.mark.slow  # lm-eval's model loaded afresh per target (27 s)
def test_lm_eval_with_the_base_loaded_once_scores_as_one_model_per_target(
    loaded_lm, tiny_base, tiny_adapters, smoke_config
):
    """Both adapters in one PeftModel on one HFLM, switched per target, give lm-eval's own per-target
    results (base + `peft=` from model_args): the same answers, the same accuracy."""
    import torch
    from evoswarm.evaluate.harness import use_adapter
    from evoswarm.world.items import load_items

    items = load_items(TEST, 12)
    adapters = {name: str(a) for name, a in tiny_adapters.items()}
    own = {n: single(smoke_config, persona(n), str(tiny_base), a, items, 5) for n, a in adapters.items()}
    for name in ["ideator", "critic", "ideator"]:  # back and forth: switching leaves no trace
        once = single(smoke_config, persona(name), str(tiny_base), adapters[name], items, 5, loaded_lm)
        assert once["evoswarm"] == own[name]["evoswarm"] and len(once["evoswarm"]["per_item"]) == 12
        assert once["results"] == own[name]["results"]
        assert once["config"]["model_args"] == own[name]["config"]["model_args"]
        task_once, task_own = dict(once["configs"]["evoswarm_mc"]), dict(own[name]["configs"]["evoswarm_mc"])
        assert task_once.pop("dataset_kwargs") != task_own.pop("dataset_kwargs")  # each in its own temp folder
        assert task_once == task_own  # lm-eval's record of the task, its metadata included
    logits = {}  # switching really switches: the two adapters score differently
    for name in adapters:
        use_adapter(loaded_lm, name)
        logits[name] = loaded_lm.model(torch.tensor([[1, 2, 3, 4]])).logits
    assert not torch.allclose(logits["critic"], logits["ideator"])


def test_every_kind_of_target_has_its_evaluator():
    """targets.KINDS names each kind's evaluator (it may not import this package): the job must know them all."""
    named = {k.evaluator for k in KINDS.values()} | {k.gen0_evaluator for k in KINDS.values() if k.gen0_evaluator}
    assert named == set(job.EVALUATORS)
