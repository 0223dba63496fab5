"""The trained controls (config.control_targets): adapters the loop must beat at the same training compute,
each one entry of TRAINERS, trained by the train_control stage once per replicate.

- `multitask`: one LoRA on the union of the personas' SFT files, with the run's training settings, for
  generation 0's total steps (config.gen0_training_steps), under `controls.multitask_system`.
- `specialist-long`: generation 0's best agent (by its fitness) trained further on its persona's SFT file
  for as many steps as evolution's Lamarckian steps spend in all (config.evolution_sft_steps): evolution
  against simply training longer.

The oracle control needs no training: evaluate.single.oracle routes generation 0's results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evoswarm.config import control_steps, derive_seed
from evoswarm.evolve.selection import best_adapter
from evoswarm.io import InputError, atomic_path
from evoswarm.model.adapters import base_identity, lineage_record, read_lineage, verify_adapter, write_lineage
from evoswarm.model.base import read_manifest
from evoswarm.model.training import train_lora
from evoswarm.targets import MULTITASK, SPECIALIST_LONG, Target


def _multitask(config: dict, target: Target, ctx: dict) -> dict:
    """Training of the multitask control: every persona's data, a fresh LoRA of the run's rank."""
    files = sorted({p["data"] for p in config["personas"]})
    return {
        "data": files,
        "system": config["controls"]["multitask_system"],
        "init_adapter": None,
        "parents": [],
        "persona": None,
        "learning_rate": config["training"]["learning_rate"],
    }


def _specialist_long(config: dict, target: Target, ctx: dict) -> dict:
    """Training of specialist-long: generation 0's best agent, from its weights, on its persona's data."""
    agent, adapter = best_adapter(ctx["adapters"], ctx["fitness"], f"control {target}")
    lineage = read_lineage(adapter)
    persona = next((p for p in config["personas"] if p["name"] == lineage.get("persona")), None)
    if persona is None:
        raise InputError(f"control {target}: {adapter}'s persona {lineage.get('persona')!r} is not in 'personas'")
    lcfg = config["evolution"]["lamarck"]
    return {
        "data": [persona["data"]],
        "system": lineage["system"],
        "init_adapter": adapter,
        "parents": [agent],
        "persona": persona["name"],
        "learning_rate": lcfg["learning_rate"] or config["training"]["learning_rate"],
    }


TRAINERS: dict[str, Callable[[dict, Target, dict], dict]] = {
    str(MULTITASK): _multitask,
    str(SPECIALIST_LONG): _specialist_long,
}


def train_control(
    config: dict,
    control: str,
    base: str,
    out: str,
    adapters: list[str] | None = None,
    fitness: str | None = None,
) -> None:
    """Train control `control` (a TRAINERS name) into `out`, its budget written in its lineage;
    `adapters` and `fitness`: generation 0's, for specialist-long."""
    target = Target.parse(control)
    plan = TRAINERS[control](config, target, {"adapters": adapters or [], "fitness": fitness})
    if plan["init_adapter"]:  # trained further: checked as a parent is before breeding
        verify_adapter(plan["init_adapter"], read_manifest(base))
    steps = control_steps(config, target)
    tcfg = {**config["training"], "max_steps": steps, "learning_rate": plan["learning_rate"]}
    seed = derive_seed(config["seed"], "control", control)
    print(f"control {control}: {steps} steps on {', '.join(plan['data'])} (r={tcfg['r']}, seed {seed})", flush=True)
    with atomic_path(out, is_dir=True) as tmp:
        stats = train_lora(
            base, plan["data"], plan["system"], tcfg, config, seed, Path(tmp), init_adapter=plan["init_adapter"]
        )
        record = lineage_record(
            generation=0,
            slot=control,
            persona=plan["persona"],
            system=plan["system"],
            parents=plan["parents"],
            operator=f"control:{control}",
            params=tcfg,
            seed=seed,
            base=base_identity(read_manifest(base)),
            train=stats,
        )
        sha = write_lineage(tmp, record)
    print(f"control {control}: loss {stats['train_loss']:.4f} in {stats['seconds']}s, sha256 {sha[:12]} -> {out}")
