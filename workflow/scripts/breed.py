"""Stage breed: one slot of generation g+1 -- an elite copied with its lineage, or a child bred by
crossover in weight-delta space and mutation (model-free: imports torch and safetensors only). The
child's Lamarckian step, if any, is the next stage (lamarck.py).

By hand: python workflow/scripts/breed.py --config config.yaml --selection results/seed0/gen0/selection.json \
             --parents-dir results/seed0/gen0/adapters --slot s01 --out results/seed0/gen1/bred/s01 \
             --base results/base
"""

from pathlib import Path

from evoswarm import stage
from evoswarm.evolve.offspring import breed

if __name__ == "__main__":
    stage.entry(
        breed,
        stage="breed",
        selection=stage.Arg("input.selection", "--selection", required=True),
        parents_dir=stage.Arg(lambda job: str(Path(job.input.adapters[0]).parent), "--parents-dir", required=True),
        slot=stage.Arg("wildcards.agent", "--slot", required=True),
        out=stage.Arg("output[0]", "--out", required=True),
        base=stage.BASE,
    )
