"""The report over replicate seeds, on a synthetic finished run (no models): verdicts first, the tables,
failures and bad input, and every image decoding in a real headless browser."""

import csv
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SMOKE
from evoswarm.config import members, stage_config, validate
from evoswarm.evaluate.harness import result_json
from evoswarm.io import InputError, write_json, write_jsonl, write_text
from evoswarm.layout import BENCHMARKS, benchmark, eval_failure, report_files
from evoswarm.report.build import build, to_html, to_markdown
from evoswarm.targets import Target

SKILLS = ["arithmetic", "sequence", "category"]
TEST_ITEMS = [(f"t{i:02d}", SKILLS[i % 3]) for i in range(12)]
RUN_CONFIG = "run.yaml"  # the fake run's config, beside its files
FITNESS_COLUMNS = (
    "agent adapter_sha solo_acc team_acc loo shapley novelty task_norm cooperation_norm novelty_norm fitness"
)


def outcome(target: str, seed: int, item: str, skill: str) -> bool:
    """Chosen outcomes: the debate beats the vote everywhere, the critic beats the base on arithmetic only."""
    if target == "team-gen0":
        return True
    if target == "team-vote":
        return False
    if target == "gen0-critic":
        return skill == "arithmetic"
    if target == "base":
        return False
    return random.Random(zlib.crc32(f"{target}/{seed}/{item}".encode())).random() < 0.5


def fake_run(root: Path, seeds=(0, 1), generations=1, budget=False, drop_skill=False) -> tuple[dict, dict]:
    """Write a finished run's files where the report expects them; returns (report config, files map)."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw.update(seeds=list(seeds), generations=generations, results=str(root / "results"))
    if drop_skill:
        for p in raw["personas"]:
            p.pop("skill", None)
    dev = root / "dev.jsonl"
    raw["tasks"] = {**raw["tasks"], "dev": str(dev)}
    cfg = validate(raw)
    write_text(root / RUN_CONFIG, yaml.safe_dump(raw, sort_keys=False))  # for the report stage run by hand
    files = report_files(cfg)
    dev_items = [
        {"id": f"d{i}", "question": f"What is {i} + 1?", "choices": [str(i + 1), str(i + 2)], "answer": str(i + 1)}
        for i in range(4)
    ]
    write_jsonl(dev, dev_items)
    for s in seeds:
        for target, path in files["evals"][s].items():
            per_item = [{"id": i, "skill": k, "correct": outcome(target, s, i, k)} for i, k in TEST_ITEMS]
            extra = {"target": target}
            if budget:
                extra["budget"] = {"model_calls": 12 * (s + 1), "generated_tokens": 0, "scored_continuations": 24}
            if Target.parse(target).kind == "best":
                extra["agent"] = members(cfg, Target.parse(target).generation)[-1]
            if Target.parse(target).kind == "team":  # the router right everywhere, the weighted vote nowhere
                extra["aggregator"] = "confidence"
                extra["calibration"] = {
                    a: {"temperature": 2.0, "dev_turns": 4, "dev_ece": 0.3, "dev_ece_scaled": 0.1,
                        "test_turns": 12, "test_ece": 0.25, "test_ece_scaled": 0.15}
                    for a in members(cfg, Target.parse(target).generation)
                }  # fmt: skip
                extra["aggregators"] = {
                    "confidence": [r["correct"] for r in per_item],
                    "weighted": [False] * len(per_item),
                    "router": [True] * len(per_item),
                }
            write_json(path, result_json(per_item, "lm-eval", extra))
        for g in range(generations + 1):
            agents = members(cfg, g)
            table = io.StringIO()
            w = csv.writer(table)
            w.writerow(FITNESS_COLUMNS.split())
            for k, a in enumerate(agents):
                w.writerow([a, "ab" * 32, 0.5 + 0.1 * k, 0.7, 0.01 * k, 0.02 * k, 0.1, 0.0, 0.5, 1.0, 0.3 * k])
            write_text(files["fitness"][s][g], table.getvalue())
            turns, votes = [], []
            for it in dev_items:
                for rnd in (1, 2):
                    for k, a in enumerate(agents):
                        # d1: the agents disagree in round 1, so it is the first example debate shown
                        ans = it["choices"][k % 2] if (it["id"] == "d1" and rnd == 1) else it["answer"]
                        turns.append(
                            {"question_id": it["id"], "round": rnd, "agent": a, "answer": ans, "confidence": 0.6,
                             "summary": f"{a} thinks {ans}", "parsed": k != 1, "correct": ans == it["answer"]}
                        )  # fmt: skip
                votes.append(
                    {"question_id": it["id"], "skill": "arithmetic", "gold": it["answer"], "choices": it["choices"],
                     "finals": {a: {"answer": it["answer"], "confidence": 0.6} for a in agents},
                     "vote_scores": {it["answer"]: 1.8}, "team_answer": it["answer"], "correct": True,
                     "rounds": 2, "agreed_round": 2 if it["id"] == "d1" else 1,
                     "round1_answer": it["choices"][1] if it["id"] == "d1" else it["answer"],
                     "round1_correct": it["id"] != "d1", "generated_tokens": 30 + g, "seconds": 0.5}
                )  # fmt: skip
            write_jsonl(files["transcripts"][s][g], turns)
            write_jsonl(files["votes"][s][g], votes)
        for d in files["adapters"][s]:
            g, slot = int(Path(d).parent.parent.name[3:]), Path(d).name
            prev = members(cfg, g - 1) if g else []
            lineage = {"generation": g, "slot": slot, "persona": slot if not g else "critic", "sha256": "cd" * 32}
            if g == 0:
                lineage.update(parents=[], operator="sft")
            elif slot == "s00":
                lineage.update(parents=[prev[0]], operator="elite", params={}, parent_generation=g - 1)
            else:
                lineage.update(
                    parents=prev[:2], operator="svd", params={"weights": [0.7, 0.3]}, parent_generation=g - 1
                )
            write_json(Path(d) / "lineage.json", lineage)
    for path, row in [
        (benchmark("debate", seed=0, gen=0), "12.5\t0:00:12\t900.1"),
        (benchmark("debate", seed=1, gen=0), "10.0\t0:00:10\t900.1"),
        (benchmark("build_base"), "40.0\t0:00:40\t700"),
    ]:
        write_text(root / path, f"s\th:m:s\tmax_rss\n{row}\n")
    return stage_config(cfg, "report"), files


def report(root, **kw):
    cfg, files = fake_run(root, **kw)
    return build(cfg, files, str(root / BENCHMARKS))


def test_verdicts_come_first_and_say_what_the_difference_means(tmp_path):
    title, intro, sections = report(tmp_path)
    assert sections[0].title == "Verdicts"
    lines = sections[0].lines
    # the controls first, each against the last generation's best agent and team and generation 0's (the smoke
    # config's evolution trains nothing: no specialist-long)
    assert [x.split(":")[0] for x in lines[:7]] == [
        "gen-1 best vs multitask (gen1-best vs multitask)",
        "team gen-1 vs multitask (team-gen1 vs multitask)",
        "gen-0 best vs multitask (gen0-best vs multitask)",
        "team gen-0 vs multitask (team-gen0 vs multitask)",
        "gen-1 best vs oracle (gen1-best vs oracle)",
        "team gen-1 vs oracle (team-gen1 vs oracle)",
        "oracle vs gen-0 best (oracle vs gen0-best)",
    ]
    assert "debate vs vote (team-gen0 vs team-vote): +1.000 [+1.000, +1.000], the debate helps" in lines
    critic = next(x for x in lines if x.startswith("persona critic vs base"))
    # restricted to the arithmetic items, where the critic is always right and the base always wrong
    assert (
        critic
        == "persona critic vs base on arithmetic (gen0-critic vs base): +1.000 [+1.000, +1.000], critic beats the base"
    )
    assert any(x.startswith("gen-1 best vs gen-0 best (gen1-best vs gen0-best): ") for x in lines)
    assert any(x.startswith("team gen-1 vs team gen-0 (team-gen1 vs team-gen0): ") for x in lines)
    for x in lines:
        assert re.search(r": [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\], ", x), x
    assert "seeds 0, 1" in title


def test_a_persona_without_a_skill_is_compared_on_every_item(tmp_path):
    _, _, sections = report(tmp_path, drop_skill=True)
    critic = next(x for x in sections[0].lines if x.startswith("persona critic vs base"))
    assert critic.startswith("persona critic vs base (gen0-critic vs base): +0.333 ")


def test_same_tables_in_html_and_markdown_in_the_promised_order(tmp_path):
    title, intro, sections = report(tmp_path, budget=True)
    html, md = to_html(title, intro, sections), to_markdown(title, intro, sections)
    titles = [s.title for s in sections]
    order = ["Verdicts", "Accuracy on the test split", "Team aggregation", "Accuracy per generation", "Dev vs test",
             "Lineage",
             "Example debate 1", "Example debate 3", "Raw fitness parts", "Debate efficiency",
             "Stage timings"]  # fmt: skip
    positions = [next(i for i, t in enumerate(titles) if t.startswith(o)) for o in order]
    assert positions == sorted(positions)
    for s in sections:
        assert s.title in md and s.title.replace("'", "&#x27;") in html
        for row in s.rows:
            assert "| " + " | ".join(row) + " |" in md
    assert md.count("\n|---") == html.count("<table>")
    assert html.count("data:image/png;base64,") == 3  # the verdicts' forest plot, per-generation accuracy, lineage
    acc = next(s for s in sections if s.title == "Accuracy on the test split")
    assert "model_calls" in acc.head
    row = next(r for r in acc.rows if r[0] == "base-sc")
    assert row[acc.head.index("model_calls")] == "18"  # mean of 12 and 24 over the two seeds
    raw = next(s for s in sections if s.title.startswith("Raw fitness parts"))
    assert "solo_acc" in raw.head and not any(h.endswith("_norm") for h in raw.head)
    timing = next(s for s in sections if s.title.startswith("Stage timings by rule"))
    assert "shared jobs (base, base evaluation) 40 s; per replicate: seed 0 12 s, seed 1 10 s" in timing.note
    eff = next(s for s in sections if s.title.startswith("Debate efficiency per generation"))
    # d1 only: the round-1 vote was wrong and the agents agreed on the gold answer in round 2
    assert [r[:3] for r in eff.rows] == [["0", "0", "4"], ["0", "1", "4"], ["1", "0", "4"], ["1", "1", "4"]]
    assert eff.rows[1][4:] == ["4 (100%)", "3 (75%)", "1.250", "1 (25%)", "0 (0%)", "1 (25%)", "31", "0.50"]
    first = next(s for s in sections if s.title.startswith("Example debate 1"))
    assert "d1" in first.title and "What is 1 + 1?" in first.note and len(first.rows) == 2 * 3


def test_every_aggregator_of_every_generation_is_paired_against_its_best_agent(tmp_path):
    _, _, sections = report(tmp_path)
    agg = next(s for s in sections if s.title == "Team aggregation")
    assert [r[:2] for r in agg.rows] == [
        [g, a] for g in ("0", "1") for a in ("confidence (the run's)", "weighted", "router")
    ]
    by = {(r[0], r[1].split()[0]): r for r in agg.rows}
    assert by[("0", "router")][2] == "1.000" and by[("0", "router")][5] == "the team beats its best member"
    assert by[("1", "weighted")][2] == "0.000" and by[("1", "weighted")][5] == "its best member beats the team"
    team0 = next(s for s in sections if s.title == "Accuracy on the test split")
    assert next(r for r in team0.rows if r[0] == "team-gen0")[2] == by[("0", "confidence")][2]


def test_calibration_shows_each_generation_0_agent_before_and_after_on_dev_and_test(tmp_path):
    cfg, files = fake_run(tmp_path)
    sections = build(cfg, files, str(tmp_path / BENCHMARKS))[2]
    cal = next(s for s in sections if s.title.startswith("Calibration"))
    assert [r[:2] for r in cal.rows] == [[str(s), a] for s in (0, 1) for a in sorted(members(cfg, 0))]
    assert cal.rows[0][2:] == ["2.000", "0.300", "0.100", "0.250", "0.150", "4 / 12"]


def test_job_names_are_the_documented_paths_and_the_timings_read_their_seed():
    from evoswarm.layout import job_name, job_seed, log

    assert log("debate", seed=0, gen=1) == "logs/debate/seed0-gen1.log"  # the README's example
    assert benchmark("evaluate", arm="study/a/", seed="{seed}", target="gen0-best") == (
        "benchmarks/evaluate/study/a/seed{seed}-gen0-best.tsv"
    )
    assert log("build_base") == "logs/build_base/build_base.log"
    assert job_seed(job_name("lamarck", seed=12, gen=1, agent="s01")) == 12
    assert job_seed(job_name("evaluate", target="base")) is None


def test_dev_vs_test_shows_the_selected_agents(tmp_path):
    _, _, sections = report(tmp_path)
    dvt = next(s for s in sections if s.title.startswith("Dev vs test"))
    assert [r[:4] for r in dvt.rows[:2]] == [["0", "0", "ideator", "0.700"], ["0", "1", "ideator", "0.700"]]
    assert [r[2] for r in dvt.rows[2:]] == ["s02", "s02"]


def test_a_failed_target_shows_as_failed_and_is_not_compared(tmp_path):
    """A target whose evaluation failed has no result, only its failure record (the report built by hand)."""
    cfg, files = fake_run(tmp_path)
    path = files["evals"][1]["team-vote"]
    Path(path).unlink()
    failure = {"failed": True, "error": "RuntimeError: out of memory", "evoswarm": {"target": "team-vote"}}
    write_json(eval_failure(path), failure)
    _, _, sections = build(cfg, files, str(tmp_path / BENCHMARKS))
    assert (
        f"debate vs vote (team-gen0 vs team-vote): not compared, team-vote failed in seed 1 ({path}): "
        "RuntimeError: out of memory"
    ) in sections[0].lines
    acc = next(s for s in sections if s.title == "Accuracy on the test split")
    assert next(r for r in acc.rows if r[0] == "team-vote")[-1].startswith("failed in seed 1")


def test_by_hand_after_a_failed_evaluation_the_report_shows_missing_targets(tmp_path):
    """Snakemake deletes a failed job's outputs: one target leaves its failure record, the job's others neither
    a result nor a record. Built by hand meanwhile (README), the report shows them as missing."""
    cfg, files = fake_run(tmp_path)
    failed, missing = files["evals"][0]["team-gen1"], files["evals"][0]["gen1-best"]
    Path(failed).unlink()
    Path(missing).unlink()
    write_json(
        eval_failure(failed),
        {"failed": True, "error": "RuntimeError: out of memory", "evoswarm": {"target": "team-gen1"}},
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    stage = [sys.executable, str(REPO / "workflow/scripts/report.py"), "--config", RUN_CONFIG]
    done = subprocess.run(stage, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    md = (tmp_path / "results/report/report.md").read_text()
    why = f"missing in seed 0 ({missing}): neither a result nor a failure record"
    assert f"- gen-1 best vs multitask (gen1-best vs multitask): not compared, gen1-best {why}" in md
    rows = {r.split(" | ")[0]: r for r in md.splitlines() if r.startswith(("| gen1-best | ", "| team-gen1 | "))}
    assert rows["| gen1-best"].endswith(f" | {why} |")
    assert rows["| team-gen1"].endswith(f" | failed in seed 0 ({failed}): RuntimeError: out of memory |")


def test_a_target_missing_in_one_seed_is_not_scored_on_the_others(tmp_path):
    """Missing in seed 0 only: neither the aggregation table nor the controls pair what seed 1 has alone."""
    cfg, files = fake_run(tmp_path)
    for t in ("gen1-best", "multitask"):
        Path(files["evals"][0][t]).unlink()
    _, _, sections = build(cfg, files, str(tmp_path / BENCHMARKS))
    aggregation = next(s for s in sections if s.title == "Team aggregation")
    assert {r[0] for r in aggregation.rows} == {"0"}
    controls = next(s for s in sections if s.title == "Controls")
    assert next(r for r in controls.rows if r[0] == "multitask")[-1] == "missing"


def test_a_report_over_mismatched_seeds_is_refused(tmp_path):
    cfg, files = fake_run(tmp_path, seeds=(0, 1))
    with pytest.raises(InputError, match=r"seeds \[0, 2\] are not the files' seeds \[0, 1\]"):
        build({**cfg, "seeds": [0, 2]}, files, str(tmp_path / BENCHMARKS))


def test_mismatched_items_between_targets_name_the_files(tmp_path):
    cfg, files = fake_run(tmp_path)
    for seed in (0, 1):  # the same odd item in both seeds: only the comparison with team-gen0 can notice
        path = files["evals"][seed]["team-vote"]
        res = json.loads(Path(path).read_text())
        res["evoswarm"]["per_item"][0]["id"] = "other"
        write_json(path, res)
    first = files["evals"][0]
    with pytest.raises(InputError, match=re.escape(f"{first['team-gen0']} and {first['team-vote']} scored different")):
        build(cfg, files, str(tmp_path / BENCHMARKS))


def test_items_differing_between_seeds_name_the_files(tmp_path):
    cfg, files = fake_run(tmp_path)
    path = files["evals"][1]["team-gen1"]
    res = json.loads(Path(path).read_text())
    res["evoswarm"]["per_item"].pop()
    write_json(path, res)
    with pytest.raises(InputError, match=re.escape(f"{files['evals'][0]['team-gen1']} and {path} scored different")):
        build(cfg, files, str(tmp_path / BENCHMARKS))


# Prints, in the process that builds the report, the order in which a set of the run's target names iterates.
SET_ORDER = """
import sys
from evoswarm.config import evaluation_targets, load_config
print(" ".join(set(evaluation_targets(load_config(sys.argv[1])))))
"""


def test_same_files_same_report(tmp_path):
    """The report stage, run by hand in two processes whose str hashes differ (PYTHONHASHSEED), writes the
    same bytes: no set or hash order reaches the report. Within one process the order is fixed, so this
    can only show across processes."""
    fake_run(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    outputs, orders = [], []
    for hash_seed in ("1", "2"):
        env["PYTHONHASHSEED"] = hash_seed
        stage = [sys.executable, str(REPO / "workflow/scripts/report.py"), "--config", RUN_CONFIG]
        subprocess.run(stage, cwd=tmp_path, env=env, check=True, capture_output=True)
        report_dir = tmp_path / "results/report"
        outputs.append({name: (report_dir / name).read_bytes() for name in ("index.html", "report.md")})
        shutil.rmtree(report_dir)
        probe = [sys.executable, "-c", SET_ORDER, RUN_CONFIG]
        orders.append(subprocess.run(probe, cwd=tmp_path, env=env, check=True, capture_output=True).stdout)
    assert orders[0] != orders[1], "the two hash seeds iterate the targets alike: the test could not tell"
    assert outputs[0]["report.md"] == outputs[1]["report.md"]
    assert outputs[0]["index.html"] == outputs[1]["index.html"]  # the plots' PNG bytes too


# Runs after the page has loaded: records, per <img>, whether it decoded (naturalWidth > 0).
IMAGE_PROBE = (
    "<script>window.addEventListener('load', () => document.body.setAttribute('data-images', "
    "Array.from(document.images, i => i.complete && i.naturalWidth > 0 ? '1' : '0').join('')));</script>"
)


def decoded_images(html_file: Path, work: Path) -> str:
    """'1' or '0' per <img> of the page as headless Chromium renders it (installed first when missing);
    the probed copy of the page and the browser profile go to `work`."""
    found = subprocess.run(
        [str(REPO / "tests/support/ensure_chromium.sh")], capture_output=True, text=True, timeout=900
    )
    assert found.returncode == 0, f"no headless Chromium: {found.stderr}"
    work.mkdir(parents=True, exist_ok=True)
    probe = (work / "probe.html").resolve()
    probe.write_text(html_file.read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    run = subprocess.run(
        [found.stdout.split()[-1], "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={work / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    m = re.search(r'data-images="([01]*)"', run.stdout)
    assert m, f"the page never reported its images: {run.stderr[-2000:]}"
    return m.group(1)


@pytest.mark.slow  # headless Chromium, installed when missing
def test_every_report_image_decodes_in_headless_chromium(tmp_path):
    title, intro, sections = report(tmp_path)
    page = tmp_path / "index.html"
    page.write_text(to_html(title, intro, sections))
    assert decoded_images(page, tmp_path / "chromium") == "111"


@pytest.mark.slow  # headless Chromium, installed when missing
def test_the_image_check_catches_a_broken_image(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><img src='data:image/png;base64,AAAA'></body></html>")
    assert decoded_images(page, tmp_path / "chromium") == "0"
