"""Evaluation targets: lm-eval deterministic and agreeing with our scorer; base-sc really samples
generated turns; prompt-vote is the base under the personas' prompts; every target records its budget."""

import copy
import json
from pathlib import Path

import pytest
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

TEST = str(REPO / "data/tasks/test.jsonl")
BUDGET_KEYS = {"model_calls", "generated_tokens", "scored_continuations"}


@pytest.fixture(scope="module")
def evaluate_stage():
    """The evaluate stage script, imported by path (it runs nothing on import)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("evaluate_target", REPO / "workflow/scripts/evaluate_target.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lm_eval_twice_gives_the_same_number(evaluate_stage, tiny_base, tiny_adapters, smoke_config):
    from evoswarm.population import load_items

    items = load_items(str(REPO / "data/tasks/test.jsonl"), 12)
    a = evaluate_stage.single(smoke_config, "gen0-critic", str(tiny_base), str(tiny_adapters["critic"]), items, 5)
    b = evaluate_stage.single(smoke_config, "gen0-critic", str(tiny_base), str(tiny_adapters["critic"]), items, 5)
    assert a["results"]["evoswarm_mc"]["acc,none"] == b["results"]["evoswarm_mc"]["acc,none"]
    assert a["evoswarm"]["per_item"] == b["evoswarm"]["per_item"] and len(a["evoswarm"]["per_item"]) == 12


def test_lm_eval_agrees_with_the_debate_scorer(evaluate_stage, tiny_base, tiny_adapters, smoke_config):
    """lm-eval's multiple_choice acc and our loglik round-1 answers pick the same choices."""
    from evoswarm.backends.hf import HFBackend
    from evoswarm.debate import DebateSettings, run_debate
    from evoswarm.population import load_agents, load_items

    items = load_items(str(REPO / "data/tasks/test.jsonl"), 12)
    res = evaluate_stage.single(smoke_config, "gen0-critic", str(tiny_base), str(tiny_adapters["critic"]), items, 5)
    be = HFBackend.from_base(str(tiny_base), smoke_config)
    agents = load_agents(be, str(tiny_base), [str(tiny_adapters["critic"])])
    s = DebateSettings.from_config({**smoke_config["debate"], "rounds": 1}, "choice", seed=0)
    transcripts, _ = run_debate(be, agents, items, s)
    ours = {t["question_id"]: t["correct"] for t in transcripts}
    theirs = {r["id"]: r["correct"] for r in res["evoswarm"]["per_item"]}
    assert ours == theirs


def test_a_failed_target_exits_non_zero_and_leaves_a_failure_record(tiny_base, tmp_path):
    """Snakemake must see the failure (so a rerun retries it): no result JSON, exit 1, one error line; the
    record beside it says why, for the report."""
    import subprocess
    import sys

    from evoswarm.layout import eval_failure

    out = tmp_path / "eval" / "gen0-ghost.json"
    done = subprocess.run(
        [sys.executable, "workflow/scripts/evaluate_target.py", "--config", "configs/smoke.yaml"]
        + ["--target", "gen0-ghost", "--base", str(tiny_base), "--adapters", str(tmp_path / "ghost")]
        + ["--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and not out.exists()
    assert done.stdout.strip().splitlines()[-1] == f"error: target gen0-ghost: adapter {tmp_path / 'ghost'} is missing"
    record = json.loads(Path(eval_failure(str(out))).read_text())
    assert record["failed"] and "ghost" in record["error"] and record["evoswarm"]["target"] == "gen0-ghost"


def test_a_target_that_succeeds_on_retry_drops_its_failure_record(evaluate_stage, tiny_base, smoke_config, tmp_path):
    from evoswarm.config import stage_config
    from evoswarm.io import write_json
    from evoswarm.layout import eval_failure

    out = tmp_path / "base-sc.json"
    write_json(eval_failure(str(out)), {"failed": True, "error": "RuntimeError: CUDA out of memory"})
    config = stage_config(smoke_config, "evaluate")
    config["evaluation"] = {**config["evaluation"], "limit": 2, "self_consistency_k": 1}
    evaluate_stage.main(config, "base-sc", str(tiny_base), TEST, str(out))
    assert not json.loads(out.read_text()).get("failed") and not Path(eval_failure(str(out))).exists()


def test_task_file_missing_fields_names_file_and_line(tmp_path):
    from evoswarm.io import InputError
    from evoswarm.population import load_items

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
    from evoswarm.evaluation import seeded_majority
    from evoswarm.parsing import normalize_answer

    shuffled = data.draw(st.permutations(answers))
    winner, counts = seeded_majority(answers, seed, "q1")
    assert (winner, counts) == seeded_majority(shuffled, seed, "q1")
    if not any(answers):
        assert winner == "" and counts == {}
    else:
        assert "" not in counts and sum(counts.values()) == sum(1 for a in answers if a)
        assert counts[normalize_answer(winner)] == max(counts.values())


def test_majority_ties_go_by_seed_not_by_order():
    from evoswarm.evaluation import seeded_majority

    winners = {seeded_majority(["x", "y"], seed, "q1")[0] for seed in range(40)}
    assert winners == {"x", "y"}  # a hash of the seed decides, not which answer came first
    assert seeded_majority(["x", "y", "y"], 0, "q1")[0] == "y"


def test_counting_backend_counts_new_tokens_and_scored_continuations():
    """Without a count of its own, the backend's text after the forced prefix is counted by the tokenizer."""
    from evoswarm.backends import GenRequest, ScoreRequest
    from evoswarm.evaluation import CountingBackend

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
def recorders(evaluate_stage, monkeypatch):
    """The backends the evaluate stage makes, recorded (one Recorder per target run)."""
    made = []
    real = evaluate_stage.make_backend

    def make(name, base, config):
        made.append(Recorder(real(name, base, config)))
        return made[-1]

    monkeypatch.setattr(evaluate_stage, "make_backend", make)
    return made


def eval_config(smoke_config, limit=4, **evaluation):
    cfg = copy.deepcopy(smoke_config)
    cfg["evaluation"].update(limit=limit, **evaluation)
    return cfg


def run_target(evaluate_stage, config, target, base, adapters=(), fitness=None):
    from evoswarm.config import gen0_systems, stage_config

    return evaluate_stage.evaluate(
        stage_config(config, "evaluate"),
        target,
        str(base),
        TEST,
        [str(a) for a in adapters],
        fitness,
        config["population"],
        gen0_systems(config),
    )


def test_base_sc_samples_k_generated_turns_per_item(evaluate_stage, recorders, tiny_base, smoke_config):
    from evoswarm.population import load_items
    from evoswarm.prompts import chat, turn_prompt

    cfg = eval_config(smoke_config, self_consistency_k=3, self_consistency_temperature=1.0)
    res = run_target(evaluate_stage, cfg, "base-sc", tiny_base)
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
    assert res == run_target(evaluate_stage, cfg, "base-sc", tiny_base)  # seeded: same config, same result


def test_base_sc_at_temperature_zero_is_the_greedy_round_one_answer(evaluate_stage, recorders, tiny_base, smoke_config):
    from evoswarm.backends.hf import HFBackend
    from evoswarm.debate import Agent, DebateSettings, run_debate
    from evoswarm.population import load_items

    cfg = eval_config(smoke_config, self_consistency_k=2, self_consistency_temperature=0.0)
    res = run_target(evaluate_stage, cfg, "base-sc", tiny_base)
    dcfg = {**cfg["debate"], "answer_mode": "generate", "rounds": 1, "temperature": 0.0}
    s = DebateSettings.from_config(dcfg, "choice", seed=0)
    transcripts, _ = run_debate(
        HFBackend.from_base(str(tiny_base), cfg), [Agent("base", "", None)], load_items(TEST, 4), s
    )
    assert recorders[0].texts[:4] == [t["raw"] for t in transcripts]
    assert [r["answer"] for r in res["evoswarm"]["per_item"]] == [t["answer"] for t in transcripts]
    assert [r["correct"] for r in res["evoswarm"]["per_item"]] == [bool(t["correct"]) for t in transcripts]


def test_prompt_vote_is_the_base_under_each_persona_prompt(evaluate_stage, recorders, tiny_base, smoke_config):
    from evoswarm.config import gen0_systems

    cfg = eval_config(smoke_config)
    res = run_target(evaluate_stage, cfg, "prompt-vote", tiny_base)
    rec = recorders[0]
    systems = gen0_systems(cfg)
    assert not rec.added and all(r.adapter is None for r in rec.gen + rec.scored)
    for reqs in (rec.gen, rec.scored):  # one turn per persona and item, each under its persona's prompt
        seen = sorted(r.messages[0]["content"] for r in reqs if r.messages[0]["role"] == "system")
        assert len(reqs) == len(systems) * 4 and seen == sorted(list(systems.values()) * 4)
    ev = res["evoswarm"]
    assert ev["agents"] == list(systems) and ev["adapters"] == [None] * len(systems) and ev["rounds"] == 1
    assert ev["budget"]["model_calls"] == len(systems) * 4


def test_every_target_records_its_budget(evaluate_stage, tiny_base, tiny_adapters, smoke_config, tmp_path):
    """lm-eval: one call and all choices per item, nothing generated; a debate spends more on every count."""
    from evoswarm.config import stage_config
    from evoswarm.population import load_items

    cfg = eval_config(smoke_config)
    items = load_items(TEST, 4)
    adapters = list(tiny_adapters.values())
    fitness = tmp_path / "fitness.csv"
    fitness.write_text("agent,fitness,task,cooperation,novelty\ncritic,0.5,0.5,0.5,0.5\nideator,0.4,0.4,0.4,0.4\n")
    budgets = {}
    for target, adapters_in, fit in [
        ("base", [], None),
        ("gen0-critic", adapters[:1], None),
        ("gen1-best", adapters, str(fitness)),
        ("base-sc", [], None),
        ("prompt-vote", [], None),
        ("team-vote", adapters, None),
        ("team-gen1", adapters, None),
    ]:
        out = tmp_path / f"{target}.json"
        evaluate_stage.main(
            stage_config(cfg, "evaluate"),
            target,
            str(tiny_base),
            TEST,
            str(out),
            [str(a) for a in adapters_in],
            fit,
            cfg["population"],
            {"critic": "c", "ideator": "i"},
        )
        res = json.loads(out.read_text())
        assert not res.get("failed"), res.get("error")
        budgets[target] = res["evoswarm"]["budget"]
        assert set(budgets[target]) == BUDGET_KEYS and all(isinstance(v, int) for v in budgets[target].values())
    n_choices = sum(len(it["choices"]) for it in items)
    assert budgets["base"] == {"model_calls": 4, "generated_tokens": 0, "scored_continuations": n_choices}
    assert budgets["gen0-critic"] == budgets["base"] == budgets["gen1-best"]
    rounds = cfg["debate"]["rounds"]
    assert budgets["team-gen1"]["model_calls"] == 2 * rounds * 4 == 2 * budgets["team-vote"]["model_calls"]
    assert budgets["team-gen1"]["scored_continuations"] == 2 * rounds * n_choices  # loglik: every choice, every turn
    for team in ("prompt-vote", "team-vote", "team-gen1"):
        assert budgets[team]["generated_tokens"] > 0  # the summaries
        assert all(budgets[team][k] >= budgets["base"][k] for k in BUDGET_KEYS)
        assert budgets[team]["model_calls"] > budgets["base"]["model_calls"]


def test_team_with_a_judge_spends_a_judge_turn_per_item(evaluate_stage, tiny_base, tiny_adapters, smoke_config):
    cfg = eval_config(smoke_config)
    cfg["debate"]["judge"] = True
    res = run_target(evaluate_stage, cfg, "team-vote", tiny_base, tiny_adapters.values())
    assert res["evoswarm"]["judge"] and res["evoswarm"]["budget"]["model_calls"] == (2 + 1) * 4
