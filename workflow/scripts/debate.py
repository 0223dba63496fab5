"""Stage debate (and debate_train): the agents of one generation debate the task items; writes
transcripts and votes. `debate` runs the dev split (fitness); `debate_train` a seeded sample of the
train split (the data of debate distillation, `evolution.lamarck.step: distill`).

By hand (any task file, any adapters):
  python workflow/scripts/debate.py --config config.yaml --base results/base --tasks data/tasks/dev.jsonl \
      --adapters results/seed0/gen0/adapters/critic results/seed0/gen0/adapters/ideator --out results/my-debate
(`--shard INDEX COUNT` debates one slice of the questions; workflow/scripts/debate_merge.py joins them.)
"""

import argparse
import random
import time
from pathlib import Path

from evoswarm import stage
from evoswarm.backends import make_backend
from evoswarm.config import derive_seed
from evoswarm.debate.agents import load_agents
from evoswarm.debate.loop import DebateSettings, judge_agent, run_debate
from evoswarm.debate.shards import shard_bounds
from evoswarm.io import InputError, write_jsonl
from evoswarm.world.items import load_items


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
    `debate.max_questions`. `config["shard"]` ([index, count], set by a `debate.shards` run): debate only
    that contiguous slice of the questions (debate_merge.py joins the slices)."""
    dcfg = config["debate"]
    if sample:
        items = load_items(tasks, scorer=config["tasks"]["scorer"])
        items = random.Random(derive_seed(config["seed"], gen, "debate_train")).sample(items, min(sample, len(items)))
    else:
        items = load_items(tasks, dcfg["max_questions"], config["tasks"]["scorer"])
    if "shard" in config:
        index, count = config["shard"]
        if not 0 <= index < count:
            raise InputError(f"shard {index} of {count}: the index runs from 0 to {count - 1}")
        start, stop = shard_bounds(len(items), count)[index]
        print(f"shard {index + 1}/{count}: questions {start + 1}-{stop} of {len(items)}", flush=True)
        items = items[start:stop]
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
    start = time.perf_counter()
    rows, vote_rows = run_debate(
        backend, agents, items, settings, judge=judge, log=lambda line: print(line, flush=True)
    )
    # Every round is one batched backend call over all questions, so a question's own time cannot be told
    # apart: each gets the debate's wall time (model loading excluded) divided by the questions.
    per_question = (time.perf_counter() - start) / len(items)
    for v in vote_rows:
        v["seconds"] = round(per_question, 4)
    write_jsonl(transcripts, rows)
    write_jsonl(votes, vote_rows)  # written last: its presence means the debate finished
    for a in agents:
        solo = [r["correct"] for r in rows if r["agent"] == a.name and r["round"] == 1]
        print(f"  {a.name}: solo accuracy {sum(solo) / len(solo):.3f}")
    fails = sum(not r["parsed"] for r in rows)
    agreed = sum(v["agreed_round"] is not None for v in vote_rows)
    print(
        f"agents agreed on {agreed}/{len(vote_rows)} questions; "
        f"{sum(v['generated_tokens'] for v in vote_rows) / len(vote_rows):.0f} generated tokens and "
        f"{per_question:.2f} s a question",
        flush=True,
    )
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
    ap.add_argument("--shard", type=int, nargs=2, metavar=("INDEX", "COUNT"), help="debate only this slice (0-based)")
    a = ap.parse_args()
    out = Path(a.out)
    cfg = stage_config(load_config(a.config), "debate")
    if a.shard:
        cfg["shard"] = a.shard
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
