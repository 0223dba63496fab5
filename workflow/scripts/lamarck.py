"""Stage lamarck: one slot of a bred generation after its Lamarckian step (`evolution.lamarck.step`):
a bounded, seeded SFT of the bred child from its own weights, or a copy (elites, step `none`).

By hand: python workflow/scripts/lamarck.py --config config.yaml --bred results/seed0/gen1/bred/s01 \
             --out results/seed0/gen1/adapters/s01 [--transcripts .../gen0/debate_train/transcripts.jsonl \
             --votes .../gen0/debate_train/votes.jsonl]
"""

import argparse
import json
import shutil
from pathlib import Path

from evoswarm import stage
from evoswarm.config import derive_seed
from evoswarm.evolve.lamarck import LAMARCK
from evoswarm.io import atomic_path
from evoswarm.model.adapters import LINEAGE, read_lineage, write_lineage

DATA = "lamarck.jsonl"  # the chats the step trained on, kept beside the weights for audit


def main(config: dict, bred: str, out: str, base: str, transcripts: str | None = None, votes: str | None = None):
    lcfg = config["evolution"]["lamarck"]
    lineage = read_lineage(bred)
    step = LAMARCK[lcfg["step"]]
    chats = None
    if step is not None and lineage["operator"] != "elite":
        ctx = {"personas": config["personas"], "transcripts": transcripts, "votes": votes}
        chats = step(lineage, ctx)
    if not chats:
        with atomic_path(out, is_dir=True) as tmp:
            shutil.copytree(bred, tmp, dirs_exist_ok=True)
            if lineage["operator"] != "elite":
                lineage["lamarck"] = {"step": lcfg["step"], "examples": 0}
                (tmp / LINEAGE).write_text(json.dumps(lineage, indent=2, ensure_ascii=False) + "\n")
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
        sha = write_lineage(
            tmp,
            {
                **lineage,
                "lamarck": {"step": lcfg["step"], "max_steps": tcfg["max_steps"], "seed": seed, **stats},
            },
        )
    print(
        f"{Path(out).name}: {lcfg['step']} on {len(chats)} chats, {tcfg['max_steps']} steps, "
        f"loss {stats['train_loss']:.4f} in {stats['seconds']}s -> sha {sha[:12]}"
    )


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            config=sm.params.config,
            bred=sm.input.bred,
            out=sm.output[0],
            base=sm.input.base,
            transcripts=sm.input.get("transcripts"),
            votes=sm.input.get("votes"),
        ),
        sm.log[0],
        sm.threads,
        without_bitsandbytes=sm.params.config["training"]["quantization"] == "none",
    )
elif __name__ == "__main__":
    from evoswarm.config import load_config, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--bred", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", default="results/base")
    ap.add_argument("--transcripts", default=None, help="distill: the parents' train-split debate")
    ap.add_argument("--votes", default=None)
    ap.add_argument("--seed", type=int, default=None, help="the replicate (default: the config's first seed)")
    a = ap.parse_args()
    cfg = stage_config(load_config(a.config), "lamarck", a.seed)
    stage.run(
        main,
        dict(
            config=cfg,
            bred=a.bred,
            out=a.out,
            base=a.base,
            transcripts=a.transcripts,
            votes=a.votes,
        ),
        without_bitsandbytes=cfg["training"]["quantization"] == "none",
    )
