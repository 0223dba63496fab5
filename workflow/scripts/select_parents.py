"""Stage select: elites and each child slot's parents, blend weights and operators -> selection.json.

A pure function of fitness.csv and the seed (imports no model code).
By hand: python workflow/scripts/select_parents.py --config config.yaml --fitness results/gen0/fitness.csv --gen 0
"""

import argparse
import csv

from evoswarm import stage
from evoswarm.io import InputError, write_json
from evoswarm.selection import select


def read_fitness(path: str) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "fitness" not in rows[0]:
        raise InputError(f"{path}: no fitness rows")
    return {r["agent"]: float(r["fitness"]) for r in rows}


def main(config: dict, fitness: str, out: str, gen: int) -> None:
    plan = select(read_fitness(fitness), config["seed"], gen, config["population"], config["evolution"])
    write_json(out, plan)
    print(f"gen{gen} -> gen{gen + 1}: elites {plan['elites']}")
    for slot, c in plan["children"].items():
        print(f"  {slot}: {c['operator']}({', '.join(c['parents'])}) weights {c['weights']} seed {c['seed']}")


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(config=sm.params.config, fitness=sm.input[0], out=sm.output[0], gen=int(sm.wildcards.gen)),
        sm.log[0],
        sm.threads,
    )
elif __name__ == "__main__":
    from evoswarm.config import load_config, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--fitness", required=True)
    ap.add_argument("--gen", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    stage.run(main, dict(config=stage_config(load_config(a.config), "select"), fitness=a.fitness, out=a.out, gen=a.gen))
