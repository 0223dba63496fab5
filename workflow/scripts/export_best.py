"""Stage export_best: a generation's best agent (the one its fitness.csv ranks first, as gen<g>-best is
picked) merged into the base -> a standalone model folder (safetensors, tokenizer, model card). Run on
request (`snakemake export`), not part of the default target. Deterministic: no seed.

By hand: python workflow/scripts/export_best.py --base results/base --adapters results/seed0/gen2/adapters/* \
             --fitness results/seed0/gen2/fitness.csv --out results/seed0/gen2/best-merged
"""

import argparse

from evoswarm import stage
from evoswarm.evolve.selection import best_adapter
from evoswarm.model.export import export_merged


def main(base: str, adapters: list[str], fitness: str, out: str) -> None:
    agent, folder = best_adapter(adapters, fitness, f"export of {fitness}'s best agent")
    lineage = export_merged(base, folder, out)
    print(f"{out}: {agent} (generation {lineage.get('generation')}, sha {lineage['sha256'][:12]}) merged into the base")


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(base=sm.input.base, adapters=list(sm.input.adapters), fitness=sm.input.fitness, out=sm.output[0]),
        sm.log[0],
        sm.threads,
        without_bitsandbytes=True,
    )
elif __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="results/base")
    ap.add_argument("--adapters", nargs="+", required=True)
    ap.add_argument("--fitness", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    stage.run(main, dict(base=a.base, adapters=a.adapters, fitness=a.fitness, out=a.out))
