"""Stage breed: one slot of generation g+1 -- an elite copied with its lineage, or a child bred by
crossover in weight-delta space and mutation (model-free: imports torch and safetensors only). The
child's Lamarckian step, if any, is the next stage (lamarck.py).

By hand: python workflow/scripts/breed.py --config config.yaml --selection results/seed0/gen0/selection.json \
             --parents-dir results/seed0/gen0/adapters --slot s01 --out results/seed0/gen1/bred/s01
"""

import argparse
import json
import shutil
from pathlib import Path

from evoswarm import stage
from evoswarm.adapters import LINEAGE, factors_to_tensors, read_adapter, read_lineage, write_adapter
from evoswarm.crossover import crossover_adapters
from evoswarm.io import InputError, atomic_path
from evoswarm.mutation import mutate


def main(config: dict, selection: str, parents_dir: str, slot: str, out: str) -> None:
    plan = json.loads(Path(selection).read_text())
    gen = plan["generation"] + 1
    if slot in plan["elites"]:
        src = Path(parents_dir) / plan["elites"][slot]
        lineage = read_lineage(src)
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
            (tmp / LINEAGE).write_text(json.dumps(lineage, indent=2, ensure_ascii=False) + "\n")
        print(f"{slot}: elite copy of {src.name} (sha {lineage['sha256'][:12]})")
        return
    if slot not in plan["children"]:
        raise InputError(f"{selection}: slot {slot!r} is neither an elite nor a child")
    child = plan["children"][slot]
    paths = [Path(parents_dir) / p for p in child["parents"]]
    parents = [read_adapter(p) for p in paths]
    config_c, factors = crossover_adapters(parents, child["weights"], child["operator"], child["rank"])
    mutated = mutate(factors, child["seed"], child["mutation"])
    lineages = [read_lineage(p) for p in paths]
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
    a = ap.parse_args()
    stage.run(
        main,
        dict(
            config=stage_config(load_config(a.config), "breed"),
            selection=a.selection,
            parents_dir=a.parents_dir,
            slot=a.slot,
            out=a.out,
        ),
    )
