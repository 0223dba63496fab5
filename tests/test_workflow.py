"""The smoke config end to end through Snakemake: outputs, report, reruns, and a hard kill mid-generation."""

import json
import os
import re
import signal
import subprocess
import time

import pytest
from conftest import SMOKE, SMOKE_REP, adapter_hashes, fitness_table, run_snakemake, snakemake_cmd

pytestmark = pytest.mark.slow  # the smoke config run to the end by Snakemake, then reruns of it

R = "results-smoke"
REP = SMOKE_REP


def test_every_stage_wrote_its_files(smoke_run):
    w = smoke_run / REP
    for g in range(3):
        assert (w / f"gen{g}/debate/transcripts.jsonl").is_file() and (w / f"gen{g}/debate/votes.jsonl").is_file()
        rows = fitness_table(smoke_run, g)
        assert len(rows) == 3 and all(0 <= float(r["fitness"]) <= 1 for r in rows)
        for a in w.glob(f"gen{g}/adapters/*"):
            assert {"adapter_config.json", "adapter_model.safetensors", "lineage.json"} <= {p.name for p in a.iterdir()}
    plan = json.loads((w / "gen0/selection.json").read_text())
    assert list(plan["elites"]) == ["s00"] and set(plan["children"]) == {"s01", "s02"}
    lin = json.loads((w / "gen1/adapters/s01/lineage.json").read_text())
    assert lin["operator"] == "svd" and len(lin["parents"]) == 2 and lin["generation"] == 1
    assert (smoke_run / R / "base").is_dir() and (smoke_run / R / "eval/base.json").is_file()  # shared by seeds
    assert not list((smoke_run / R).rglob(".tmp-*")), "no temporary files left behind"


def test_bred_adapters_load_in_peft(smoke_run):
    """Every adapter the run bred (generations 1 and 2: elites' copies and children), loaded by PEFT from its
    folder, computes base + s·B·A with B and A from its safetensors and s from its adapter_config.json: a
    scale PEFT reads otherwise, a factor under a name PEFT does not load, a rank it cannot take, all fail."""
    from support.lora_reference import peft_and_reference_logits
    from support.tolerance import FP32_RTOL, scaled_max_diff

    bred = sorted((smoke_run / REP).glob("gen[12]/adapters/*"))
    assert len(bred) == 6
    for folder in bred:
        got, want, plain = peft_and_reference_logits(smoke_run / R / "base", folder)
        assert scaled_max_diff(got, want) < FP32_RTOL, folder  # fp32 rounding only (support/tolerance.py)
        assert scaled_max_diff(got, plain) > 100 * FP32_RTOL, folder  # the adapter acts: the test can tell


def test_export_writes_each_generations_best_agent_as_a_standalone_model(smoke_run):
    """`snakemake export` (not part of `all`) on the finished run: each generation's fittest agent merged
    into the base, loadable without PEFT, its card naming the adapter's sha256."""
    from evoswarm.evolve.selection import best_agent
    from transformers import AutoModelForCausalLM

    run_snakemake(smoke_run, "--cores", "2", "export")
    for g in range(3):
        folder = smoke_run / REP / f"gen{g}/best-merged"
        best = best_agent(str(smoke_run / REP / f"gen{g}/fitness.csv"), "test")
        lineage = json.loads((smoke_run / REP / f"gen{g}/adapters/{best}/lineage.json").read_text())
        assert lineage["sha256"] in (folder / "README.md").read_text()
        model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
        assert not any("lora" in n for n, _ in model.named_parameters())
    assert "Nothing to be done" in run_snakemake(smoke_run, "-n").stdout  # `all` never needed the exports


def test_report_shows_verdicts_tables_and_plots_with_the_eval_numbers(smoke_run):
    from evoswarm.config import evaluation_targets, load_config

    html = (smoke_run / R / "report/index.html").read_text()
    md = (smoke_run / R / "report/report.md").read_text()
    titles = [
        "Verdicts",
        "Accuracy on the test split",
        "Accuracy per generation",
        "Dev vs test",
        "Lineage",
        "Example debate 1",
        "Raw fitness parts",
        "Stage timings",
    ]
    assert [md.index(f"## {t}") for t in titles] == sorted(md.index(f"## {t}") for t in titles)
    assert all(t in html for t in titles)
    assert re.search(r"debate vs vote \(team-gen0 vs team-vote\): [+-]\d\.\d{3} \[", md)
    assert html.count("data:image/png;base64,") == 3  # the verdicts' forest plot, accuracy per generation, lineage
    assert re.search(r"gen-2 best vs multitask \(gen2-best vs multitask\): [+-]\d\.\d{3} \[", md)
    assert re.search(r"team gen-2 vs oracle \(team-gen2 vs oracle\): [+-]\d\.\d{3} \[", md)
    assert "## Controls" in md and "| multitask |" in md and "| oracle |" in md
    evals = sorted((smoke_run / REP / "eval").glob("*.json")) + [smoke_run / R / "eval/base.json"]
    for f in evals:
        res = json.loads(f.read_text())
        acc = res["results"]["evoswarm_mc"]["acc,none"]
        row = next(line for line in md.splitlines() if line.startswith(f"| {f.stem} |"))
        assert f"| {acc:.3f} |" in row, (f.stem, row)
    assert sorted(f.stem for f in evals) == sorted(evaluation_targets(load_config(SMOKE)))


def test_nothing_to_do_after_a_finished_run(smoke_run):
    out = run_snakemake(smoke_run, "-n").stdout
    assert "Nothing to be done" in out


def test_raising_generations_reruns_no_earlier_generation(smoke_run):
    out = run_snakemake(smoke_run, "-n", "--config", "generations=3").stdout
    assert "gen3" in out
    assert not re.search(r"rule (train_persona|build_base)", out)
    new = re.findall(rf"output: ({REP}/gen[0-2]/\S+)", out)
    assert new == [f"{REP}/gen2/selection.json"]  # the only earlier-generation job: gen2's selection, now needed


def test_adding_a_seed_runs_only_the_new_replicate_and_the_report(smoke_run):
    out = run_snakemake(smoke_run, "-n", "--config", "seeds=[0,1]").stdout
    assert re.search(rf"output: {R}/seed1/gen0/adapters/critic", out)
    assert not re.search(r"rule (build_base|evaluate_shared)", out)  # the base and its evaluation are shared
    assert not re.search(rf"output: {REP}/", out)  # seed 0 is done
    assert re.search(rf"output: {R}/report/index.html", out)


def test_changing_a_fitness_weight_reruns_fitness_and_downstream_only(smoke_run, tmp_path):
    edited = tmp_path / "smoke.yaml"
    edited.write_text(
        SMOKE.read_text().replace(
            "weights: {task: 0.6, cooperation: 0.3, novelty: 0.1}",
            "weights: {task: 1.0, cooperation: 0.0, novelty: 0.0}",
        )
    )
    assert edited.read_text() != SMOKE.read_text()
    out = run_snakemake(smoke_run, "-n", config=edited).stdout
    assert re.search(rf"output: {REP}/gen0/fitness.csv", out)
    assert not re.search(r"rule (train_persona|build_base)", out)
    assert not re.search(rf"output: {REP}/gen0/debate/", out)


def test_hard_kill_mid_generation_resumes_to_the_same_results(smoke_run, tmp_path):
    work = tmp_path / "killed"
    run_snakemake(work, "--cores", "2", f"{REP}/gen0/selection.json")  # generation 0 done, then kill in gen 1
    cmd = snakemake_cmd(work, "--cores", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (work / "logs/debate/seed0-gen1.log").exists():
        time.sleep(0.2)
    time.sleep(1.5)  # the gen1 debate is running
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / R / "report/index.html").exists()
    run_snakemake(work, "--unlock")
    run_snakemake(work, "--cores", "2", "--rerun-incomplete")
    for g in range(3):
        assert fitness_table(work, g) == fitness_table(smoke_run, g)
    assert adapter_hashes(work) == adapter_hashes(smoke_run)


def test_a_study_runs_end_to_end_on_the_main_runs_generation_0(smoke_run, tmp_path):
    """A two-arm study in the finished smoke run: the default arm is the main run itself, the distill arm
    reuses its generation 0, debates train items only, distils them into its children, and the table has
    both arms."""
    import yaml

    arms = {
        "default": {},
        "distill": {
            "evolution.lamarck.step": "distill",
            "evolution.lamarck.max_steps": 2,
            "evolution.lamarck.train_items": 12,
        },
    }
    cfg = tmp_path / "study.yaml"
    cfg.write_text(
        SMOKE.read_text() + yaml.safe_dump({"generations": 1, "study": {"baseline": "default", "arms": arms}})
    )
    r = run_snakemake(smoke_run, "--cores", "2", config=cfg)
    ran = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", r.stdout + r.stderr, re.M)}
    assert not ran & {"build_base", "train_persona"}  # generation 0 is the main run's
    assert "debate_train" in ran and "lamarck" in ran and "study" in ran
    table = (smoke_run / R / "study/table.md").read_text()
    assert "| default |" in table and "| distill |" in table
    train = {json.loads(x)["question"] for x in open(smoke_run / "data/tasks/train.jsonl", encoding="utf-8")}
    held_out = {
        json.loads(x)["question"]
        for split in ("dev", "test")
        for x in open(smoke_run / f"data/tasks/{split}.jsonl", encoding="utf-8")
    }
    children = [
        d
        for d in (smoke_run / R / "study/distill/seed0/gen1/adapters").iterdir()
        if json.loads((d / "lineage.json").read_text())["operator"] != "elite"
    ]
    assert children
    distilled = [json.loads(x) for d in children if (d / "lamarck.jsonl").exists() for x in open(d / "lamarck.jsonl")]
    assert distilled, "the team got no sampled train item right: nothing was distilled"
    for chat in distilled:
        question = next(m["content"] for m in chat["messages"] if m["role"] == "user").split("\n")[0][len("Q: ") :]
        assert question in train and question not in held_out
