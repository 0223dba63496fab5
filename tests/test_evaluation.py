"""lm-eval on the local task: deterministic, and the same numbers our own scorer gives."""

import pytest
from conftest import REPO


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


def test_missing_adapter_is_a_failed_target(evaluate_stage, tiny_base, smoke_config, tmp_path):
    import json

    out = tmp_path / "gen0-ghost.json"
    evaluate_stage.main(
        smoke_config,
        "gen0-ghost",
        str(tiny_base),
        str(REPO / "data/tasks/test.jsonl"),
        str(out),
        adapters=[str(tmp_path / "ghost")],
    )
    res = json.loads(out.read_text())
    assert res["failed"] and "ghost" in res["error"]


def test_task_file_missing_fields_names_file_and_line(tmp_path):
    from evoswarm.io import InputError
    from evoswarm.population import load_items

    p = tmp_path / "t.jsonl"
    p.write_text('{"id": "a", "question": "q", "answer": "1", "choices": ["1", "2"]}\n{"id": "b", "question": "q"}\n')
    with pytest.raises(InputError, match=r"t\.jsonl:2: missing field\(s\) answer"):
        load_items(str(p))
