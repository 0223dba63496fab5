"""Stage build_base: build the embedded base model, or resolve a hub id / local folder offline.

By hand: python workflow/scripts/build_base.py --config config.yaml --out results/base
"""

from evoswarm import layout, stage
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


if __name__ == "__main__":
    stage.entry(
        main,
        stage="build_base",
        threads=stage.MODEL_THREADS,
        corpus=stage.Arg("input.corpus", "--corpus", default=lambda run: run.config["world"]["corpus"]),
        format_chats=stage.Arg(
            "input.format_chats", "--format-chats", default=lambda run: run.config["world"]["format_chats"]
        ),
        out=stage.Arg(
            "output[0]",
            "--out",
            default=lambda run: layout.base_dir(run.config["results"]),
            help="default: <results>/base of --config",
        ),
    )
