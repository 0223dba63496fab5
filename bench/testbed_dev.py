"""Generation 0 on the testbed world, dev split only: each persona's and the base's round-1 accuracy per
skill (log-likelihood answers, the debate's round-1 prompts) and the three personas' round-1
confidence-weighted vote. Reads a results folder that holds base/ and seed0/gen0/adapters/, e.g. after

  snakemake --cores 1 --configfile configs/testbed.yaml --config results=/tmp/testbed -- \\
      /tmp/testbed/seed0/gen0/adapters/{critic,implementer,ideator}

  PYTHONPATH=workflow python bench/testbed_dev.py /tmp/testbed [--split train]

Never run it on the test split: selection reads dev, and test is the evaluation's alone.
"""

from __future__ import annotations

import argparse
import collections

from evoswarm.backends.hf import HFBackend
from evoswarm.config import load_config
from evoswarm.debate.agents import Agent, load_agents
from evoswarm.debate.loop import DebateSettings, ask, turn_messages
from evoswarm.protocol.scoring import weighted_vote
from evoswarm.world.items import load_items

PERSONAS = ("critic", "implementer", "ideator")


def accuracy(items: list[dict], answers: list[str], skills: list[str]) -> list[float]:
    right, n = collections.Counter(), collections.Counter()
    for it, a in zip(items, answers):
        n[it["skill"]] += 1
        right[it["skill"]] += a == it["answer"]
    return [right[k] / n[k] for k in skills] + [sum(right.values()) / len(items)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--split", choices=["dev", "train"], default="dev")
    a = ap.parse_args()
    cfg = load_config("configs/testbed.yaml")
    items = load_items(cfg["tasks"][a.split])
    if a.split == "train":  # the first 100 of each skill (the split is interleaved)
        items = items[:300]
    skills = sorted({it["skill"] for it in items})
    backend = HFBackend.from_base(f"{a.results}/base", cfg)
    adapters = [f"{a.results}/seed0/gen0/adapters/{p}" for p in PERSONAS]
    agents = [Agent("base", "", None), *load_agents(backend, f"{a.results}/base", adapters)]
    s = DebateSettings.from_config(cfg["debate"], cfg["tasks"]["scorer"], 0)
    turns = {}
    for ag in agents:  # round 1: the agent alone, as the debate asks it first
        reqs = [(ag.adapter, turn_messages(ag, it, [ag.name], {}, s, 1), it) for it in items]
        turns[ag.name] = ask(backend, reqs, s, 0, summaries=False)
    vote = [
        weighted_vote([(turns[p][i]["answer"], turns[p][i]["confidence"]) for p in PERSONAS], 0, it["id"])[0]
        for i, it in enumerate(items)
    ]
    rows = {name: [t["answer"] for t in ts] for name, ts in turns.items()} | {"vote (round 1)": vote}
    print(f"{a.split}, {len(items)} items | " + " | ".join([*skills, "all"]))
    for name, answers in rows.items():
        print(f"{name} | " + " | ".join(f"{x:.3f}" for x in accuracy(items, answers, skills)))


if __name__ == "__main__":
    main()
