"""A generation-0 agent: the base plus a LoRA trained with TRL on its persona's chats (the train_persona stage)."""

from __future__ import annotations

from pathlib import Path

from evoswarm.config import derive_seed, persona_training
from evoswarm.io import atomic_path
from evoswarm.model.adapters import base_identity, lineage_record, write_lineage
from evoswarm.model.base import read_manifest
from evoswarm.model.training import train_lora


def persona_lineage(slot: str, persona: dict, tcfg: dict, seed: int, base: str, stats: dict) -> dict:
    """The lineage of a generation-0 agent: no parents, operator `sft` with its training settings and stats."""
    return lineage_record(
        generation=0,
        slot=slot,
        persona=persona["name"],
        system=persona["system"],
        parents=[],
        operator="sft",
        params=tcfg,
        seed=seed,
        base=base_identity(read_manifest(base)),
        train=stats,
    )


def train_persona(config: dict, slot: str, persona: dict, base: str, out: str) -> None:
    """Slot `slot`'s adapter, trained with the persona's settings from a seed of the run's and the slot."""
    tcfg = persona_training(config, persona)
    seed = derive_seed(config["seed"], 0, slot)
    print(
        f"training {slot} (persona {persona['name']}) on {persona['data']}: r={tcfg['r']} "
        f"alpha={tcfg['lora_alpha']} steps={tcfg['max_steps']} quantization={tcfg['quantization']} seed={seed}"
    )
    with atomic_path(out, is_dir=True) as tmp:
        stats = train_lora(base, persona["data"], persona["system"], tcfg, config, seed, Path(tmp))
        sha = write_lineage(tmp, persona_lineage(slot, persona, tcfg, seed, base, stats))
    print(f"{slot}: loss {stats['train_loss']:.4f} in {stats['seconds']}s, sha256 {sha[:12]} -> {out}")
