"""configs/freetext.yaml end to end through Snakemake: free-text tasks scored by ROUGE-L in the debate (turns
generated, votes grouped by the scorer's normalisation), the fitness, lm-eval (generate_until, the same
metric) and the report, which names the metric."""

import json

import pytest
import yaml
from conftest import REPO, run_snakemake
from evoswarm.config import evaluation_targets, load_config
from evoswarm.protocol.scoring import SCORERS, squad_normalize

pytestmark = pytest.mark.slow  # configs/freetext.yaml run to the end by Snakemake

FREETEXT = REPO / "configs" / "freetext.yaml"
R = "results-freetext"
REP = f"{R}/seed0"
rouge_l = SCORERS["rouge_l"]


# configs/freetext.yaml at the smoke config's sizes: a tiny base, a few training steps, 6 questions.
SHRINK = {
    "generations": 1,
    "base": {"embedded": yaml.safe_load((REPO / "configs/smoke.yaml").read_text())["base"]["embedded"]},
    "training": {"r": 8, "lora_alpha": 16, "max_steps": 6, "batch_size": 8, "logging_steps": 2},
    "debate": {"max_questions": 6, "max_new_tokens": 12},
    "evaluation": {"limit": 6, "bootstrap": 200},
}


@pytest.fixture(scope="module")
def freetext_config(tmp_path_factory):
    config = yaml.safe_load(FREETEXT.read_text())
    for key, value in SHRINK.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path_factory.mktemp("freetext-config") / "freetext-small.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def freetext_run(tmp_path_factory, freetext_config):
    work = tmp_path_factory.mktemp("freetext")
    run_snakemake(work, "--cores", "2", config=freetext_config)
    return work


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_debate_and_fitness_score_free_text_with_the_metric(freetext_run, freetext_config):
    config = load_config(freetext_config)
    gold = {it["id"]: it["answer"] for it in _jsonl(REPO / config["tasks"]["dev"])}
    for g in range(config["generations"] + 1):
        debate = freetext_run / REP / f"gen{g}/debate"
        turns, votes = _jsonl(debate / "transcripts.jsonl"), _jsonl(debate / "votes.jsonl")
        assert len(votes) == config["debate"]["max_questions"]
        for t in turns:
            assert t["correct"] == pytest.approx(rouge_l(t["answer"], gold[t["question_id"]]))
        for v in votes:
            assert v["choices"] is None and v["gold"] == gold[v["question_id"]]
            assert all(k == squad_normalize(k) for k in v["vote_scores"])  # grouped in the scorer's form
            assert v["correct"] == pytest.approx(rouge_l(v["team_answer"], v["gold"]))
        fitness = (freetext_run / REP / f"gen{g}/fitness.csv").read_text().splitlines()
        assert len(fitness) == config["population"] + 1


def test_every_target_reports_rouge_l_and_the_report_names_it(freetext_run, freetext_config):
    gold = {it["id"]: it["answer"] for it in _jsonl(REPO / "data/tasks/freetext/test.jsonl")}
    evals = sorted((freetext_run / REP / "eval").glob("*.json")) + [freetext_run / R / "eval/base.json"]
    assert sorted(f.stem for f in evals) == sorted(evaluation_targets(load_config(freetext_config)))
    md = (freetext_run / R / "report/report.md").read_text()
    assert "## ROUGE-L on the test split" in md and "| target | what | ROUGE-L | 95% CI |" in md
    for f in evals:
        res = json.loads(f.read_text())
        per_item = res["evoswarm"]["per_item"]
        mean = res["results"]["evoswarm_gen"]["rouge_l,none"]
        assert mean == pytest.approx(sum(r["correct"] for r in per_item) / len(per_item))
        if res["evoswarm"]["evaluator"] == "lm-eval":  # generate_until, scored by our scorer
            assert res["configs"]["evoswarm_gen"]["output_type"] == "generate_until"
            for r in per_item:
                assert r["correct"] == pytest.approx(rouge_l(r["answer"], gold[r["id"]]))
        row = next(line for line in md.splitlines() if line.startswith(f"| {f.stem} |"))
        assert f"| {mean:.3f} |" in row, (f.stem, row)
