"""Stage debate (and debate_train): the agents of one generation debate the task items; writes
transcripts and votes. `debate` runs the dev split (fitness); `debate_train` a seeded sample of the
train split (the data of debate distillation, `evolution.lamarck.step: distill`).

By hand (any task file, any adapters):
  python workflow/scripts/debate.py --config config.yaml --base results/base --tasks data/tasks/dev.jsonl \
      --adapters results/seed0/gen0/adapters/critic results/seed0/gen0/adapters/ideator --out results/my-debate
"""

import argparse
import random
from pathlib import Path

from evoswarm import stage
from evoswarm.backends import make_backend
from evoswarm.config import derive_seed
from evoswarm.debate import DebateSettings, judge_agent, run_debate
from evoswarm.io import write_jsonl
from evoswarm.population import load_agents, load_items


def main(
    config: dict,
    base: str,
    adapters: list[str],
    tasks: str,
    transcripts: str,
    votes: str,
    gen: int = 0,
    sample: int | None = None,
) -> None:
    """`sample`: debate a seeded sample of this many items (the train split's debate) instead of the first
    `debate.max_questions`."""
    dcfg = config["debate"]
    if sample:
        items = load_items(tasks, scorer=config["tasks"]["scorer"])
        items = random.Random(derive_seed(config["seed"], gen, "debate_train")).sample(items, min(sample, len(items)))
    else:
        items = load_items(tasks, dcfg["max_questions"], config["tasks"]["scorer"])
    backend = make_backend(dcfg["backend"], base, config)
    agents = load_agents(backend, base, adapters)
    judge = judge_agent(dcfg)
    settings = DebateSettings.for_generation(config, gen)
    print(
        f"debate gen{gen}: {len(agents)} agents x {len(items)} questions x {settings.rounds} rounds "
        f"({dcfg['backend']}, {settings.answer_mode})",
        flush=True,
    )
    # Every turn's summary is read downstream, the last round's too: the fitness stage embeds each turn's raw text
    # (novelty), the report prints the summaries of example debates, debate distillation trains on them.
    rows, vote_rows = run_debate(
        backend, agents, items, settings, judge=judge, log=lambda line: print(line, flush=True)
    )
    write_jsonl(transcripts, rows)
    write_jsonl(votes, vote_rows)  # written last: its presence means the debate finished
    for a in agents:
        solo = [r["correct"] for r in rows if r["agent"] == a.name and r["round"] == 1]
        print(f"  {a.name}: solo accuracy {sum(solo) / len(solo):.3f}")
    fails = sum(not r["parsed"] for r in rows)
    print(
        f"team accuracy {sum(v['correct'] for v in vote_rows) / len(vote_rows):.3f}; "
        f"parse failures {fails}/{len(rows)} ({fails / len(rows):.1%}); "
        f"truncated prompts {getattr(backend, 'truncated', 0)}"
    )


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            config=sm.params.config,
            base=sm.input.base,
            adapters=list(sm.input.adapters),
            tasks=sm.input.tasks,
            transcripts=sm.output.transcripts,
            votes=sm.output.votes,
            gen=int(sm.wildcards.gen),
            sample=sm.params.get("sample"),
        ),
        sm.log[0],
        sm.threads,
        without_bitsandbytes=sm.params.config["debate"]["backend"] == "hf",  # loads no quantized model
    )
elif __name__ == "__main__":
    from evoswarm.config import load_config, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--base", default="results/base")
    ap.add_argument("--tasks", required=True)
    ap.add_argument("--adapters", nargs="+", required=True)
    ap.add_argument("--out", required=True, help="folder for transcripts.jsonl and votes.jsonl")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    out = Path(a.out)
    cfg = stage_config(load_config(a.config), "debate")
    stage.run(
        main,
        dict(
            config=cfg,
            base=a.base,
            adapters=a.adapters,
            tasks=a.tasks,
            transcripts=str(out / "transcripts.jsonl"),
            votes=str(out / "votes.jsonl"),
        ),
        threads=a.threads,
        without_bitsandbytes=cfg["debate"]["backend"] == "hf",
    )
