"""Stage export_best: a generation's best agent (the one its fitness.csv ranks first, as gen<g>-best is
picked) merged into the base -> a standalone model folder (safetensors, tokenizer, model card). Run on
request (`snakemake export`), not part of the default target. Deterministic: no seed.

By hand: python workflow/scripts/export_best.py --base results/base --adapters results/seed0/gen2/adapters/* \
             --fitness results/seed0/gen2/fitness.csv --out results/seed0/gen2/best-merged
"""

from evoswarm import stage
from evoswarm.evolve.selection import best_adapter
from evoswarm.model.export import export_merged


def main(base: str, adapters: list[str], fitness: str, out: str) -> None:
    agent, folder = best_adapter(adapters, fitness, f"export of {fitness}'s best agent")
    lineage = export_merged(base, folder, out)
    print(f"{out}: {agent} (generation {lineage.get('generation')}, sha {lineage['sha256'][:12]}) merged into the base")


if __name__ == "__main__":
    stage.entry(
        main,
        threads=stage.MODEL_THREADS,
        base=stage.BASE,
        adapters=stage.Arg("input.adapters", "--adapters", nargs="+", required=True),
        fitness=stage.Arg("input.fitness", "--fitness", required=True),
        out=stage.Arg("output[0]", "--out", required=True),
    )
