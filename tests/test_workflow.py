"""The smoke config end to end through Snakemake: outputs, report, reruns, and a hard kill mid-generation."""

import csv
import json
import os
import re
import signal
import subprocess
import time

import pytest
from conftest import SMOKE, run_snakemake, snakemake_cmd

R = "results-smoke"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    run_snakemake(work, "--cores", "2")
    return work


def fitness_table(work, g):
    with open(work / R / f"gen{g}/fitness.csv", newline="") as f:
        return list(csv.DictReader(f))


def adapter_hashes(work):
    return {
        str(p.parent.relative_to(work)): json.loads(p.read_text())["sha256"]
        for p in sorted((work / R).glob("gen*/adapters/*/lineage.json"))
    }


def test_every_stage_wrote_its_files(smoke_run):
    w = smoke_run / R
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
    assert not list(w.rglob(".tmp-*")), "no temporary files left behind"


def test_bred_adapters_load_in_peft(smoke_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(smoke_run / R / "base")
    model = PeftModel.from_pretrained(base, str(smoke_run / R / "gen2/adapters/s02"))
    assert (
        model.peft_config["default"].r
        == json.loads((smoke_run / R / "gen2/adapters/s02/adapter_config.json").read_text())["r"]
    )


def test_report_shows_every_table_and_plot_with_the_eval_numbers(smoke_run):
    html = (smoke_run / R / "report/index.html").read_text()
    md = (smoke_run / R / "report/report.md").read_text()
    for title in [
        "Accuracy on the test split",
        "Fitness by generation",
        "Lineage",
        "Parse-failure rate of debate turns",
        "Stage timings",
    ]:
        assert title in html and title in md
    assert html.count("data:image/png;base64,") == 2
    for f in sorted((smoke_run / R / "eval").glob("*.json")):
        res = json.loads(f.read_text())
        acc = res["results"]["evoswarm_mc"]["acc,none"]
        row = next(line for line in md.splitlines() if line.startswith(f"| {f.stem} |"))
        assert f"| {acc:.3f} |" in row, (f.stem, row)
    assert len(list((smoke_run / R / "eval").glob("*.json"))) == 12


def test_nothing_to_do_after_a_finished_run(smoke_run):
    out = run_snakemake(smoke_run, "-n").stdout
    assert "Nothing to be done" in out


def test_raising_generations_reruns_no_earlier_generation(smoke_run):
    out = run_snakemake(smoke_run, "-n", "--config", "generations=3").stdout
    assert "gen3" in out
    assert not re.search(r"rule (train_persona|build_base)", out)
    new = re.findall(rf"output: ({R}/gen[0-2]/\S+)", out)
    assert new == [f"{R}/gen2/selection.json"]  # the only earlier-generation job: gen2's selection, now needed


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
    assert re.search(rf"output: {R}/gen0/fitness.csv", out)
    assert not re.search(r"rule (train_persona|build_base)", out)
    assert not re.search(rf"output: {R}/gen0/debate/", out)


def test_hard_kill_mid_generation_resumes_to_the_same_results(smoke_run, tmp_path):
    work = tmp_path / "killed"
    run_snakemake(work, "--cores", "2", f"{R}/gen0/selection.json")  # generation 0 done, then kill in gen 1
    cmd = snakemake_cmd(work, "--cores", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (work / "logs/debate/gen1.log").exists():
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
