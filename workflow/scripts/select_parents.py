"""Stage select: elites and each child slot's parents, blend weights and operators -> selection.json.

A pure function of fitness.csv and the seed (imports no model code).
By hand: python workflow/scripts/select_parents.py --config config.yaml --fitness results/seed0/gen0/fitness.csv --gen 0
"""

import argparse

from evoswarm import stage
from evoswarm.evolve.fitness import read_fitness_csv, read_skill_accuracy
from evoswarm.evolve.selection import select
from evoswarm.io import write_json


def main(config: dict, fitness: str, out: str, gen: int) -> None:
    plan = select(
        read_fitness_csv(fitness),
        config["seed"],
        gen,
        config["population"],
        config["evolution"],
        skills=read_skill_accuracy(fitness),
    )
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
