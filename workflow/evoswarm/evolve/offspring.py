"""The next generation's slots: each bred (the breed stage: an elite copied with its lineage, or a child of
crossover in weight-delta space and mutation), then given its Lamarckian step (the lamarck stage: a
bounded, seeded SFT from its own weights, or a copy). Breeding is model-free (torch and safetensors only);
a copy imports no torch at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from evoswarm.config import derive_seed
from evoswarm.evolve.lamarck import LAMARCK
from evoswarm.io import InputError, atomic_path, read_json
from evoswarm.model.adapters import check_hashes, lineage_record, read_lineage, verify_adapter, write_lineage

DATA = "lamarck.jsonl"  # the chats a Lamarckian step trained on, kept beside the weights for audit


def breed(config: dict, selection: str, parents_dir: str, slot: str, out: str, base: str) -> None:
    """Slot `slot` of the generation after selection.json's: its elite's copy or its child."""
    from evoswarm.evolve.crossover import crossover_adapters
    from evoswarm.evolve.mutation import mutate
    from evoswarm.model.adapters import factors_to_tensors, write_adapter
    from evoswarm.model.base import read_manifest

    plan = read_json(selection)
    gen = plan["generation"] + 1
    manifest = read_manifest(base)
    if slot in plan["elites"]:
        src = Path(parents_dir) / plan["elites"][slot]
        _, _, parent = verify_adapter(src, manifest)  # an elite is checked as a child's parents are
        with atomic_path(out, is_dir=True) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
            lineage = lineage_record(
                parent,
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
    lineage = lineage_record(
        generation=gen,
        slot=slot,
        persona=first.get("persona"),
        system=first.get("system", ""),
        parents=child["parents"],
        parent_personas=[p.get("persona") for p in lineages],
        parent_generation=plan["generation"],
        operator=child["operator"],
        params={
            "weights": child["weights"],
            "rank": config_c["r"],
            "mutation": child["mutation"],
            "mutated_modules": mutated,
        },
        seed=child["seed"],
        base=first["base"],
    )
    sha = write_adapter(out, config_c, factors_to_tensors(factors), lineage)
    print(
        f"{slot}: {child['operator']}({', '.join(child['parents'])}) w={child['weights']} r={config_c['r']} "
        f"mutated {mutated} -> sha {sha[:12]}"
    )


def lamarck_step(
    config: dict, bred: str, out: str, base: str, transcripts: str | None = None, votes: str | None = None
) -> None:
    """The bred child at `bred` after its Lamarckian step (`evolution.lamarck.step`); `transcripts` and
    `votes`: its parents' train-split debate, for distillation. Elites and steps without data are copied."""
    lcfg = config["evolution"]["lamarck"]
    lineage = read_lineage(bred)
    check_hashes(bred, lineage)  # both paths rewrite the lineage: it must vouch for what breed wrote
    step = LAMARCK[lcfg["step"]]
    chats = None
    if step is not None and lineage["operator"] != "elite":
        ctx = {"personas": config["personas"], "transcripts": transcripts, "votes": votes}
        chats = step(lineage, ctx)
    if not chats:
        with atomic_path(out, is_dir=True) as tmp:
            shutil.copytree(bred, tmp, dirs_exist_ok=True)
            if lineage["operator"] != "elite":
                write_lineage(tmp, lineage_record(lineage, lamarck={"step": lcfg["step"], "examples": 0}))
        print(f"{Path(out).name}: {lineage['operator']}, no Lamarckian step ({lcfg['step']}): copied")
        return
    from evoswarm.model.training import train_lora

    tcfg = {
        **config["training"],
        "max_steps": lcfg["max_steps"],
        "learning_rate": lcfg["learning_rate"] or config["training"]["learning_rate"],
    }
    seed = derive_seed(lineage["seed"], "lamarck")
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        data = tmp / DATA
        data.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in chats), encoding="utf-8")
        stats = train_lora(base, str(data), lineage["system"] or None, tcfg, config, seed, tmp, init_adapter=bred)
        step_record = {"step": lcfg["step"], "max_steps": tcfg["max_steps"], "seed": seed, **stats}
        sha = write_lineage(tmp, lineage_record(lineage, lamarck=step_record))
    print(
        f"{Path(out).name}: {lcfg['step']} on {len(chats)} chats, {tcfg['max_steps']} steps, "
        f"loss {stats['train_loss']:.4f} in {stats['seconds']}s -> sha {sha[:12]}"
    )
