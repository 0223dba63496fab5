"""One generation's debate as its stage runs it: the items (the first `debate.max_questions`, or a seeded
sample of the train split; with `debate.shards`, one slice of them), the agents on the configured backend,
the transcripts and votes written, and a summary in the log."""

from __future__ import annotations

import random
import time

from evoswarm.backends import check_reply_fits, make_backend
from evoswarm.config import derive_seed
from evoswarm.debate.agents import load_agents
from evoswarm.debate.loop import DebateSettings, judge_agent, run_debate
from evoswarm.debate.shards import shard_bounds
from evoswarm.io import InputError, write_jsonl
from evoswarm.world.items import load_items


def debate_items(config: dict, tasks: str, gen: int, sample: int | None) -> list[dict]:
    """`sample`: a seeded sample of this many items (the train split's debate) instead of the first
    `debate.max_questions`. `config["shard"]` ([index, count], set by a `debate.shards` run): only that
    contiguous slice of them (debate_merge joins the slices)."""
    if sample:
        items = load_items(tasks, scorer=config["tasks"]["scorer"], answer_mode=config["debate"]["answer_mode"])
        items = random.Random(derive_seed(config["seed"], gen, "debate_train")).sample(items, min(sample, len(items)))
    else:
        items = load_items(
            tasks, config["debate"]["max_questions"], config["tasks"]["scorer"], config["debate"]["answer_mode"]
        )
    if "shard" in config:
        index, count = config["shard"]
        if not 0 <= index < count:
            raise InputError(f"shard {index} of {count}: the index runs from 0 to {count - 1}")
        start, stop = shard_bounds(len(items), count)[index]
        print(f"shard {index + 1}/{count}: questions {start + 1}-{stop} of {len(items)}", flush=True)
        items = items[start:stop]
    return items


def debate_generation(
    config: dict,
    base: str,
    adapters: list[str],
    tasks: str,
    transcripts: str,
    votes: str,
    gen: int = 0,
    sample: int | None = None,
) -> None:
    """Debate generation `gen`'s agents on debate_items(...) and write `transcripts` and `votes`."""
    dcfg = config["debate"]
    items = debate_items(config, tasks, gen, sample)
    backend = make_backend(dcfg["backend"], base, config)
    check_reply_fits(backend, dcfg["max_new_tokens"], "debate.max_new_tokens")
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
