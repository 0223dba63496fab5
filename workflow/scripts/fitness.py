"""Stage fitness: score each agent of a generation from its debate -> fitness.csv.

task = solo accuracy (round 1); cooperation = Shapley value or leave-one-out gain of the team, with
v(S) the team accuracy of coalition S: re-voting the recorded final answers with the debate's
tie-break seed (with `debate.judge`, re-running the judge on S's final turns), or re-running the
debate; novelty = embedding distance from the others (base model hidden states over the agent's
turns) or answer divergence. fitness.csv keeps the raw parts, the normalised parts and the fitness.

By hand: python workflow/scripts/fitness.py --config config.yaml --gen 0
"""

import argparse
import csv
import io
from functools import cache
from pathlib import Path

from evoswarm import stage
from evoswarm.config import derive_seed
from evoswarm.debate.agents import load_agents
from evoswarm.debate.loop import DebateSettings, judge_agent, run_debate
from evoswarm.evolve.cooperation import COOPERATION, cached, final_turns, leave_one_out, rejudge, revote, shapley
from evoswarm.evolve.fitness import SKILL_PREFIX, answer_novelty, combine, embedding_novelty, part_floors
from evoswarm.io import InputError, read_jsonl, write_text
from evoswarm.model.adapters import read_lineage
from evoswarm.world.items import load_items

COLUMNS = [
    "agent",
    "adapter_sha",
    "n_items",
    "solo_acc",
    "team_acc",
    "loo",
    "shapley",
    "novelty",
    "task_norm",
    "cooperation_norm",
    "novelty_norm",
    "fitness",
]


def solo_accuracy(rows: list[dict], agents: list[str]) -> dict[str, float]:
    """Each agent's round-1 accuracy over `rows` (0 where it has none)."""
    first = [r for r in rows if r["round"] == 1]
    return {
        a: sum(r["correct"] for r in first if r["agent"] == a) / max(1, sum(1 for r in first if r["agent"] == a))
        for a in agents
    }


def rerun_value(backend, agents, items, s, judge):
    """v(S) by re-running the whole debate with only the agents in S (counterfactual, costly)."""

    def value(coalition):
        _, votes = run_debate(backend, [agents[a] for a in coalition], items, s, judge=judge, final_summaries=False)
        acc = sum(v["correct"] for v in votes) / len(votes)
        print(f"  rerun without others: {coalition} -> {acc:.3f}", flush=True)
        return acc

    return value


def main(
    config: dict, base: str, adapters: list[str], transcripts: str, votes: str, tasks: str, out: str, gen: int = 0
) -> None:
    fcfg = config["fitness"]
    rows = read_jsonl(transcripts, required=["question_id", "agent", "round", "correct", "answer", "confidence"])
    vote_rows = read_jsonl(votes, required=["question_id", "finals", "gold"])
    agents = [Path(a).name for a in adapters]
    settings = DebateSettings.for_generation(config, gen)
    judge = judge_agent(config["debate"])

    @cache
    def debate_backend():
        from evoswarm.backends import make_backend

        return make_backend(config["debate"]["backend"], base, config)

    solo = solo_accuracy(rows, agents)
    skill_of = {v["question_id"]: v.get("skill", "") for v in vote_rows}
    skills = sorted({sk for sk in skill_of.values() if sk})
    by_skill = {sk: solo_accuracy([r for r in rows if skill_of.get(r["question_id"]) == sk], agents) for sk in skills}
    if fcfg["cooperation_mode"] == "rerun":
        loaded = {ag.name: ag for ag in load_agents(debate_backend(), base, adapters)}
        items = load_items(tasks, config["debate"]["max_questions"], settings.scorer)
        v = cached(rerun_value(debate_backend(), loaded, items, settings, judge))
    elif judge:
        by_id = {it["id"]: it for it in load_items(tasks, scorer=settings.scorer)}
        missing = [r["question_id"] for r in vote_rows if r["question_id"] not in by_id]
        if missing:
            raise InputError(f"{votes}: question {missing[0]} is not in {tasks}")
        items = [by_id[r["question_id"]] for r in vote_rows]
        finals = final_turns(rows)
        v = cached(lambda s: rejudge(debate_backend(), judge, items, finals, list(s), settings))
    else:
        v = cached(lambda s: revote(vote_rows, list(s), settings.scorer, settings.seed))
    seed = derive_seed(config["seed"], gen, "fitness")
    loo = leave_one_out(agents, v)
    shap = shapley(agents, v, seed=seed)
    coop = COOPERATION[fcfg["cooperation"]](agents, v, seed=seed)
    if fcfg["novelty"] == "embedding":
        from evoswarm.backends.hf import HFBackend

        be = debate_backend() if config["debate"]["backend"] == "hf" else HFBackend.from_base(base, config)
        # One embedding per turn, averaged: the agent's mean embedding.
        emb = {}
        for a in agents:
            vecs = be.embed([r["raw"] for r in rows if r["agent"] == a])
            emb[a] = [sum(col) / len(vecs) for col in zip(*vecs)]
        novelty = embedding_novelty(emb)
    else:
        novelty = answer_novelty(vote_rows, settings.scorer)
    n_items = len(vote_rows)
    floors = part_floors(n_items, fcfg["resolution_items"], fcfg["novelty"], fcfg["embedding_novelty_floor"])
    parts = {"task": solo, "cooperation": coop, "novelty": novelty}
    norm, fit = combine(parts, fcfg["weights"], fcfg["normalise"], floors)
    team = v(tuple(agents))
    buf = io.StringIO()
    # One solo-accuracy column per skill (SKILL_PREFIX + skill): per_skill survival reads them.
    w = csv.DictWriter(buf, fieldnames=COLUMNS + [SKILL_PREFIX + sk for sk in skills], lineterminator="\n")
    w.writeheader()
    for a, path in zip(agents, adapters):
        w.writerow(
            {
                "agent": a,
                "adapter_sha": read_lineage(path)["sha256"],
                "n_items": n_items,
                "solo_acc": f"{solo[a]:.6f}",
                "team_acc": f"{team:.6f}",
                "loo": f"{loo[a]:.6f}",
                "shapley": f"{shap[a]:.6f}",
                "novelty": f"{novelty[a]:.6f}",
                "task_norm": f"{norm['task'][a]:.6f}",
                "cooperation_norm": f"{norm['cooperation'][a]:.6f}",
                "novelty_norm": f"{norm['novelty'][a]:.6f}",
                "fitness": f"{fit[a]:.6f}",
                **{SKILL_PREFIX + sk: f"{by_skill[sk][a]:.6f}" for sk in skills},
            }
        )
    write_text(out, buf.getvalue())
    print(buf.getvalue())


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            config=sm.params.config,
            base=sm.input.base,
            adapters=list(sm.input.adapters),
            transcripts=sm.input.transcripts,
            votes=sm.input.votes,
            tasks=sm.input.tasks,
            out=sm.output[0],
            gen=int(sm.wildcards.gen),
        ),
        sm.log[0],
        sm.threads,
        without_bitsandbytes=sm.params.config["debate"]["backend"] == "hf",  # loads no quantized model
    )
elif __name__ == "__main__":
    from evoswarm import layout
    from evoswarm.config import load_config, members, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--gen", type=int, required=True)
    ap.add_argument("--seed", type=int, default=None, help="the replicate (default: the config's first seed)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    cfg = load_config(a.config)
    R, seed = cfg["results"], cfg["seeds"][0] if a.seed is None else a.seed
    stage.run(
        main,
        dict(
            config=stage_config(cfg, "fitness", seed),
            base=layout.base_dir(R),
            adapters=[layout.adapter_dir(R, seed, a.gen, m) for m in members(cfg, a.gen)],
            transcripts=layout.debate_out(R, seed, a.gen, "transcripts"),
            votes=layout.debate_out(R, seed, a.gen, "votes"),
            tasks=cfg["tasks"]["dev"],
            out=layout.fitness_csv(R, seed, a.gen),
            gen=a.gen,
        ),
        threads=a.threads,
        without_bitsandbytes=cfg["debate"]["backend"] == "hf",
    )
