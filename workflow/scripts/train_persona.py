"""Stage train_persona: one generation-0 agent = the base + a LoRA trained with TRL on its persona's chats.

By hand: python workflow/scripts/train_persona.py --config config.yaml --persona critic \
             --base results/base --out results/seed0/gen0/adapters/critic
"""

import argparse
from pathlib import Path

from evoswarm import stage
from evoswarm.config import derive_seed, gen0_members, persona_training
from evoswarm.io import atomic_path
from evoswarm.model.adapters import base_identity, write_lineage
from evoswarm.model.base import read_manifest
from evoswarm.model.training import train_lora


def main(config: dict, slot: str, persona: dict, base: str, out: str) -> None:
    tcfg = persona_training(config, persona)
    seed = derive_seed(config["seed"], 0, slot)
    print(
        f"training {slot} (persona {persona['name']}) on {persona['data']}: r={tcfg['r']} "
        f"alpha={tcfg['lora_alpha']} steps={tcfg['max_steps']} quantization={tcfg['quantization']} seed={seed}"
    )
    with atomic_path(out, is_dir=True) as tmp:
        stats = train_lora(base, persona["data"], persona["system"], tcfg, config, seed, Path(tmp))
        sha = write_lineage(
            tmp,
            {
                "generation": 0,
                "slot": slot,
                "persona": persona["name"],
                "system": persona["system"],
                "parents": [],
                "operator": "sft",
                "params": tcfg,
                "seed": seed,
                "base": base_identity(read_manifest(base)),
                "train": stats,
            },
        )
    print(f"{slot}: loss {stats['train_loss']:.4f} in {stats['seconds']}s, sha256 {sha[:12]} -> {out}")


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            config=sm.params.config,
            slot=sm.wildcards.agent,
            persona=sm.params.persona,
            base=sm.input.base,
            out=sm.output[0],
        ),
        sm.log[0],
        sm.threads,
        without_bitsandbytes=persona_training(sm.params.config, sm.params.persona)["quantization"] == "none",
    )
elif __name__ == "__main__":
    from evoswarm.config import load_config, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--persona", required=True, help="a generation-0 slot name (a persona name)")
    ap.add_argument("--base", default="results/base")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    cfg = load_config(a.config)
    slots = gen0_members(cfg)
    if a.persona not in slots:
        raise SystemExit(f"--persona: {a.persona!r} is not a generation-0 slot ({', '.join(slots)})")
    tc = stage_config(cfg, "train_persona")
    stage.run(
        main,
        dict(config=tc, slot=a.persona, persona=slots[a.persona], base=a.base, out=a.out),
        threads=a.threads,
        without_bitsandbytes=persona_training(tc, slots[a.persona])["quantization"] == "none",
    )
