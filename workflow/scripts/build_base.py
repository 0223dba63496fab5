"""Stage build_base: build the embedded base model, or resolve a hub id / local folder offline.

By hand: python workflow/scripts/build_base.py --config config.yaml --out results/base
"""

import argparse

from evoswarm import stage
from evoswarm.model.base import build_embedded, resolve_external


def main(config: dict, corpus: str, format_chats: str, out: str) -> None:
    if config["base_model"] == "embedded":
        m = build_embedded(config, corpus, format_chats, out)
        print(
            f"embedded base: {m['params']:,} parameters, vocab {m['vocab_size']}, "
            f"final loss {m['final_loss']:.3f}, built in {m['build_seconds']}s -> {out}"
        )
    else:
        m = resolve_external(config, out)
        print(f"base {m['source']} at {m['path']} -> {out}/manifest.json")


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(config=sm.params.config, corpus=sm.input.corpus, format_chats=sm.input.format_chats, out=sm.output[0]),
        sm.log[0],
        sm.threads,
    )
elif __name__ == "__main__":
    from evoswarm.config import load_config, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--corpus", default="data/corpus/corpus.txt")
    ap.add_argument("--format-chats", default="data/corpus/format.jsonl")
    ap.add_argument("--out", default="results/base")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    stage.run(
        main,
        dict(
            config=stage_config(load_config(a.config), "build_base"),
            corpus=a.corpus,
            format_chats=a.format_chats,
            out=a.out,
        ),
        threads=a.threads,
    )
