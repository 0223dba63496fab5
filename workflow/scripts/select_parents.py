"""Stage select: elites and each child slot's parents, blend weights and operators -> selection.json.

A pure function of fitness.csv and the seed (imports no model code).
By hand: python workflow/scripts/select_parents.py --config config.yaml --fitness results/seed0/gen0/fitness.csv --gen 0
"""

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


if __name__ == "__main__":
    stage.entry(
        main,
        stage="select",
        fitness=stage.Arg("input[0]", "--fitness", required=True),
        gen=stage.Arg("wildcards.gen", "--gen", type=int, required=True),
        out=stage.Arg("output[0]", "--out", required=True),
    )
