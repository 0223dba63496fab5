"""Stage breed: one slot of generation g+1 -- an elite copied with its lineage, or a child bred by
crossover in weight-delta space and mutation (model-free: imports torch and safetensors only). The
child's Lamarckian step, if any, is the next stage (lamarck.py).

By hand: python workflow/scripts/breed.py --config config.yaml --selection results/seed0/gen0/selection.json \
             --parents-dir results/seed0/gen0/adapters --slot s01 --out results/seed0/gen1/bred/s01 \
             --base results/base
"""

import argparse
import shutil
from pathlib import Path

from evoswarm import stage
from evoswarm.evolve.crossover import crossover_adapters
from evoswarm.evolve.mutation import mutate
from evoswarm.io import InputError, atomic_path, read_json
from evoswarm.model.adapters import factors_to_tensors, verify_adapter, write_adapter, write_lineage
from evoswarm.model.base import read_manifest


def main(config: dict, selection: str, parents_dir: str, slot: str, out: str, base: str) -> None:
    plan = read_json(selection)
    gen = plan["generation"] + 1
    manifest = read_manifest(base)
    if slot in plan["elites"]:
        src = Path(parents_dir) / plan["elites"][slot]
        _, _, lineage = verify_adapter(src, manifest)  # an elite is checked as a child's parents are
        with atomic_path(out, is_dir=True) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
            lineage.update(
                generation=gen,
                slot=slot,
                parents=[src.name],
                operator="elite",
                params={},
                parent_generation=plan["generation"],
            )
            sha = write_lineage(tmp, lineage)  # the sha of the copy, as written
        print(f"{slot}: elite copy of {src.name} (sha {sha[:12]})")
        return
    if slot not in plan["children"]:
        raise InputError(f"{selection}: slot {slot!r} is neither an elite nor a child")
    child = plan["children"][slot]
    # Every parent is checked (base first) before crossover compares their modules.
    verified = [verify_adapter(Path(parents_dir) / p, manifest) for p in child["parents"]]
    parents = [(config_p, tensors) for config_p, tensors, _ in verified]
    config_c, factors = crossover_adapters(parents, child["weights"], child["operator"], child["rank"])
    mutated = mutate(factors, child["seed"], child["mutation"])
    lineages = [lineage for _, _, lineage in verified]
    first = lineages[0]  # the child speaks with its first (highest-ranked) parent's voice
    lineage = {
        "generation": gen,
        "slot": slot,
        "persona": first.get("persona"),
        "system": first.get("system", ""),
        "parents": child["parents"],
        "parent_personas": [p.get("persona") for p in lineages],
        "parent_generation": plan["generation"],
        "operator": child["operator"],
        "params": {
            "weights": child["weights"],
            "rank": config_c["r"],
            "mutation": child["mutation"],
            "mutated_modules": mutated,
        },
        "seed": child["seed"],
        "base": first["base"],
    }
    sha = write_adapter(out, config_c, factors_to_tensors(factors), lineage)
    print(
        f"{slot}: {child['operator']}({', '.join(child['parents'])}) w={child['weights']} r={config_c['r']} "
        f"mutated {mutated} -> sha {sha[:12]}"
    )


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            config=sm.params.config,
            selection=sm.input.selection,
            parents_dir=str(Path(sm.input.adapters[0]).parent),
            slot=sm.wildcards.agent,
            out=sm.output[0],
            base=sm.input.base,
        ),
        sm.log[0],
        sm.threads,
    )
elif __name__ == "__main__":
    from evoswarm.config import load_config, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--selection", required=True)
    ap.add_argument("--parents-dir", required=True)
    ap.add_argument("--slot", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", default="results/base")
    a = ap.parse_args()
    stage.run(
        main,
        dict(
            config=stage_config(load_config(a.config), "breed"),
            selection=a.selection,
            parents_dir=a.parents_dir,
            slot=a.slot,
            out=a.out,
            base=a.base,
        ),
    )
