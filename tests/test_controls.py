"""The controls the loop must beat: which ones a config can give (and one line when it cannot), the oracle
router on generation 0's results, and the trained controls' budgets, lineage and weights."""

import copy
import json
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO, SMOKE
from evoswarm.config import control_targets, validate
from evoswarm.controls import TRAINERS, train_control
from evoswarm.evaluate.harness import result_json
from evoswarm.evaluate.single import oracle
from evoswarm.io import InputError, write_json, write_jsonl
from evoswarm.model.adapters import read_adapter, read_lineage
from evoswarm.targets import ORACLE, TRAINED_CONTROLS, Target


def smoke_raw() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def test_every_trained_control_has_one_trainer():
    assert sorted(TRAINERS) == sorted(str(c) for c in TRAINED_CONTROLS)


def test_unset_controls_are_those_the_personas_allow():
    raw = smoke_raw()
    assert validate(raw)["controls"]["targets"] == ["multitask", "specialist-long", "oracle"]
    one = {**raw, "personas": raw["personas"][:1]}
    assert validate(one)["controls"]["targets"] == ["specialist-long", "oracle"]
    skill_less = copy.deepcopy(raw)
    for p in skill_less["personas"]:
        p.pop("skill")
    assert validate(skill_less)["controls"]["targets"] == ["multitask", "specialist-long"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(personas=r["personas"][:1]), "controls.targets: multitask needs at least 2 personas"),
        (lambda r: [p.pop("skill") for p in r["personas"]], "controls.targets: oracle routes each item"),
    ],
)
def test_a_named_control_the_personas_cannot_give_is_one_line(change, message):
    raw = smoke_raw()
    raw["controls"] = {"targets": ["multitask", "oracle"]}
    change(raw)
    with pytest.raises(InputError, match=message):
        validate(raw)


def test_specialist_long_runs_only_when_evolution_trains():
    raw = smoke_raw()
    raw["evolution"] = {**raw.get("evolution", {}), "lamarck": {"step": "none"}}
    assert [str(c) for c in control_targets(validate(raw))] == ["multitask", "oracle"]
    raw["evolution"]["lamarck"] = {"step": "persona_sft", "max_steps": 3}
    assert [str(c) for c in control_targets(validate(raw))] == ["multitask", "specialist-long", "oracle"]


def test_a_persona_skill_the_test_split_never_asks_stops_before_any_job(tmp_path):
    items = [json.loads(x) for x in (REPO / "data/tasks/test.jsonl").read_text().splitlines()]
    test = tmp_path / "test.jsonl"
    write_jsonl(test, [i for i in items if i["skill"] != "category"])
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(SMOKE), "--config", f"results={tmp_path}/r",
         f"tasks={{'test': '{test}'}}"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode != 0
    line = next(x for x in (r.stdout + r.stderr).splitlines() if x.startswith("error:"))
    assert "personas' skill category has no items in" in line and str(test) in line


def agent_result(path, per_item, calls, agent=None):
    extra = {"target": path.stem, "budget": {"model_calls": calls, "generated_tokens": 0}}
    if agent:
        extra["agent"] = agent
    write_json(path, result_json(per_item, "lm-eval", extra))
    return str(path)


def test_the_oracle_answers_each_item_as_its_skills_persona_did(tmp_path):
    items = [("a1", "arithmetic"), ("a2", "arithmetic"), ("s1", "sequence"), ("x1", "riddle")]
    # critic-1 (the critic's second copy) is wrong everywhere: the first slot of a skill answers it
    right = {
        "gen0-critic": {"a1", "a2"},
        "gen0-critic-1": set(),
        "gen0-implementer": {"s1", "a1"},
        "gen0-ideator": {"x1"},
    }
    evals = []
    for name, ok in right.items():
        per_item = [{"id": i, "skill": k, "correct": i in ok} for i, k in items]
        evals.append(agent_result(tmp_path / f"{name}.json", per_item, calls=4))
    # gen0-best is the ideator: the riddle, which no persona's skill covers, is answered as it answered
    best_items = [{"id": i, "skill": k, "correct": i in right["gen0-ideator"]} for i, k in items]
    evals.append(agent_result(tmp_path / "gen0-best.json", best_items, calls=4, agent="ideator"))
    skills = {"critic": "arithmetic", "implementer": "sequence", "critic-1": "arithmetic", "ideator": "category"}
    res = oracle(Target.parse(str(ORACLE)), skills, evals)
    ev = res["evoswarm"]
    assert ev["router"] == {"arithmetic": "critic", "sequence": "implementer", "category": "ideator"}
    assert [(r["id"], r["agent"], r["correct"]) for r in ev["per_item"]] == [
        ("a1", "critic", True),
        ("a2", "critic", True),
        ("s1", "implementer", True),
        ("x1", "ideator", True),
    ]
    assert res["results"]["evoswarm_mc"]["acc,none"] == 1.0
    # one model call per item, charged to the result that answered it
    assert ev["budget"]["model_calls"] == 4


def test_the_oracle_needs_every_routed_persona(tmp_path):
    per_item = [{"id": "a1", "skill": "arithmetic", "correct": True}]
    evals = [agent_result(tmp_path / "gen0-best.json", per_item, calls=1, agent="critic")]
    with pytest.raises(InputError, match="no gen0-critic.json among the agent results"):
        oracle(Target.parse(str(ORACLE)), {"critic": "arithmetic"}, evals)


def test_trained_controls_spend_their_budget_and_record_it(tmp_path, tiny_base, tiny_adapters, smoke_config):
    config = copy.deepcopy(smoke_config)
    config["training"]["max_steps"] = 2
    config["seed"] = 0
    config["personas"] = [{**p, "data": str(REPO / p["data"]), "training": {}} for p in config["personas"]]
    config["evolution"]["lamarck"] = {**config["evolution"]["lamarck"], "step": "persona_sft", "max_steps": 1}
    fitness = tmp_path / "fitness.csv"
    fitness.write_text("agent,fitness\ncritic,0.2\nideator,0.9\n")
    adapters = [str(a) for a in tiny_adapters.values()]

    train_control(config, "multitask", str(tiny_base), str(tmp_path / "multitask"))
    multitask = read_lineage(tmp_path / "multitask")
    assert multitask["operator"] == "control:multitask" and multitask["parents"] == []
    assert multitask["params"]["max_steps"] == 2 * config["population"]  # generation 0's total steps
    assert multitask["system"] == config["controls"]["multitask_system"]

    train_control(config, "specialist-long", str(tiny_base), str(tmp_path / "long"), adapters, str(fitness))
    long = read_lineage(tmp_path / "long")
    steps = config["generations"] * (config["population"] - config["evolution"]["elites"])
    assert long["operator"] == "control:specialist-long" and long["parents"] == ["ideator"]
    assert long["persona"] == "ideator" and long["params"]["max_steps"] == steps
    _, before = read_adapter(tiny_adapters["ideator"])
    _, after = read_adapter(tmp_path / "long")
    assert before.keys() == after.keys()  # the ideator's adapter, trained further
    assert any(not torch.equal(before[k], after[k]) for k in before)

    from evoswarm.model.base import read_manifest
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(read_manifest(str(tiny_base))["path"], use_safetensors=True)
    assert PeftModel.from_pretrained(model, str(tmp_path / "multitask")).peft_config
