"""Stage report: results/report/index.html (one offline file: tables + plots) and report.md.

By hand: python workflow/scripts/report.py --config config.yaml
"""

import argparse
import json
from pathlib import Path

from evoswarm import stage
from evoswarm.io import read_jsonl, write_text
from evoswarm.report import (
    accuracy_rows,
    answer_diversity,
    benchmark_rows,
    lineage_rows,
    plots,
    read_fitness,
    tables,
    to_html,
    to_markdown,
)


def main(
    config: dict,
    evals: list[str],
    fitness: list[str],
    votes: list[str],
    transcripts: list[str],
    adapters: list[str],
    benchmarks: str,
    html_out: str,
    md_out: str,
) -> None:
    loaded = {}
    for p in evals:
        path = Path(p)
        loaded[path.stem] = json.loads(path.read_text()) if path.is_file() else None
    skills, acc = accuracy_rows(loaded, config["evaluation"]["bootstrap"], config["seed"])
    fit = read_fitness(fitness)
    vote_rows = [read_jsonl(v) for v in votes]
    turns = [read_jsonl(t) for t in transcripts]
    parse_rates = [(len(t), sum(not r["parsed"] for r in t)) for t in turns]
    tabs = tables(skills, acc, fit, lineage_rows(adapters), parse_rates, benchmark_rows(benchmarks))
    title = f"evoswarm report: P={config['population']}, G={config['generations']}, seed {config['seed']}"
    w = config["fitness"]["weights"]
    intro = (
        f"Fitness = {w['task']} task + {w['cooperation']} cooperation ({config['fitness']['cooperation']}) "
        f"+ {w['novelty']} novelty ({config['fitness']['novelty']}), each part min-max normalised within its "
        "generation. Accuracy intervals: 95% percentile bootstrap over test items. Majority voting explains "
        "much of what is credited to debate: compare team-gen0 with team-vote and base-sc."
    )
    write_text(md_out, to_markdown(title, tabs))
    write_text(html_out, to_html(title, intro, tabs, plots(fit, [answer_diversity(v) for v in vote_rows])))
    print(to_markdown(title, {k: tabs[k] for k in ("Accuracy on the test split",)}))


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            config=sm.params.config,
            evals=list(sm.input.evals),
            fitness=list(sm.input.fitness),
            votes=list(sm.input.votes),
            transcripts=list(sm.input.transcripts),
            adapters=list(sm.input.adapters),
            benchmarks=sm.params.benchmarks,
            html_out=sm.output.html,
            md_out=sm.output.md,
        ),
        sm.log[0],
        sm.threads,
    )
elif __name__ == "__main__":
    from evoswarm.config import evaluation_targets, load_config, members, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    a = ap.parse_args()
    cfg = load_config(a.config)
    r, gens = cfg["results"], range(cfg["generations"] + 1)
    evals = [f"{r}/eval/{t}.json" for t in evaluation_targets(cfg)]
    stage.run(
        main,
        dict(
            config=stage_config(cfg, "report"),
            evals=evals,
            fitness=[f"{r}/gen{g}/fitness.csv" for g in gens],
            votes=[f"{r}/gen{g}/debate/votes.jsonl" for g in gens],
            transcripts=[f"{r}/gen{g}/debate/transcripts.jsonl" for g in gens],
            adapters=[f"{r}/gen{g}/adapters/{m}" for g in gens for m in members(cfg, g)],
            benchmarks="benchmarks",
            html_out=f"{r}/report/index.html",
            md_out=f"{r}/report/report.md",
        ),
    )
