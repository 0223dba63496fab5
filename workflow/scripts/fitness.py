"""Stage fitness: score each agent of a generation from its debate -> fitness.csv.

task = solo accuracy (round 1); cooperation = Shapley value or leave-one-out gain of the team
(re-voting recorded answers, or re-running the debate); novelty = embedding distance from the
others (base model hidden states over the agent's turns) or answer divergence.

By hand: python workflow/scripts/fitness.py --config config.yaml --gen 0
"""

import argparse
import csv
import io
from pathlib import Path

from evoswarm import stage
from evoswarm.adapters import read_lineage
from evoswarm.config import derive_seed
from evoswarm.debate import revote
from evoswarm.fitness import COOPERATION, answer_novelty, cached, combine, embedding_novelty, leave_one_out, shapley
from evoswarm.io import read_jsonl, write_text

COLUMNS = [
    "agent",
    "adapter_sha",
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


def rerun_value(config, base, adapters, tasks, gen):
    """v(S) by re-running the whole debate with only the agents in S (counterfactual, costly)."""
    from evoswarm.backends import make_backend
    from evoswarm.debate import DebateSettings, run_debate
    from evoswarm.population import load_agents, load_items

    backend = make_backend(config["debate"]["backend"], base, config)
    agents = {a.name: a for a in load_agents(backend, base, adapters)}
    items = load_items(tasks, config["debate"]["max_questions"])
    s = DebateSettings.from_config(
        config["debate"], config["tasks"]["scorer"], derive_seed(config["seed"], gen, "debate")
    )

    def value(coalition):
        _, votes = run_debate(backend, [agents[a] for a in coalition], items, s)
        print(f"  rerun without others: {coalition} -> {sum(v['correct'] for v in votes) / len(votes):.3f}", flush=True)
        return sum(v["correct"] for v in votes) / len(votes)

    return value


def main(
    config: dict, base: str, adapters: list[str], transcripts: str, votes: str, tasks: str, out: str, gen: int = 0
) -> None:
    fcfg = config["fitness"]
    rows = read_jsonl(transcripts, required=["agent", "round", "correct"])
    vote_rows = read_jsonl(votes, required=["finals", "gold"])
    agents = [Path(a).name for a in adapters]
    solo = {
        a: sum(r["correct"] for r in rows if r["agent"] == a and r["round"] == 1)
        / max(1, sum(1 for r in rows if r["agent"] == a and r["round"] == 1))
        for a in agents
    }
    if fcfg["cooperation_mode"] == "revote":
        v = cached(lambda s: revote(vote_rows, list(s), config["tasks"]["scorer"]))
    else:
        v = cached(rerun_value(config, base, adapters, tasks, gen))
    seed = derive_seed(config["seed"], gen, "fitness")
    loo = leave_one_out(agents, v)
    shap = shapley(agents, v, seed=seed)
    coop = COOPERATION[fcfg["cooperation"]](agents, v, seed=seed)
    if fcfg["novelty"] == "embedding":
        from evoswarm.backends.hf import HFBackend

        backend = HFBackend.from_base(base, config)
        # One embedding per turn, averaged: the agent's mean embedding.
        emb = {}
        for a in agents:
            vecs = backend.embed([r["raw"] for r in rows if r["agent"] == a])
            emb[a] = [sum(col) / len(vecs) for col in zip(*vecs)]
        novelty = embedding_novelty(emb)
    else:
        novelty = answer_novelty(vote_rows)
    norm, fit = combine({"task": solo, "cooperation": coop, "novelty": novelty}, fcfg["weights"])
    team = v(tuple(agents))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for a, path in zip(agents, adapters):
        w.writerow(
            {
                "agent": a,
                "adapter_sha": read_lineage(path)["sha256"],
                "solo_acc": f"{solo[a]:.6f}",
                "team_acc": f"{team:.6f}",
                "loo": f"{loo[a]:.6f}",
                "shapley": f"{shap[a]:.6f}",
                "novelty": f"{novelty[a]:.6f}",
                "task_norm": f"{norm['task'][a]:.6f}",
                "cooperation_norm": f"{norm['cooperation'][a]:.6f}",
                "novelty_norm": f"{norm['novelty'][a]:.6f}",
                "fitness": f"{fit[a]:.6f}",
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
    )
elif __name__ == "__main__":
    from evoswarm.config import load_config, members, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--gen", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    cfg = load_config(a.config)
    g = Path(cfg["results"]) / f"gen{a.gen}"
    stage.run(
        main,
        dict(
            config=stage_config(cfg, "fitness"),
            base=f"{cfg['results']}/base",
            adapters=[str(g / "adapters" / m) for m in members(cfg, a.gen)],
            transcripts=str(g / "debate/transcripts.jsonl"),
            votes=str(g / "debate/votes.jsonl"),
            tasks=cfg["tasks"]["dev"],
            out=str(g / "fitness.csv"),
            gen=a.gen,
        ),
        threads=a.threads,
    )
