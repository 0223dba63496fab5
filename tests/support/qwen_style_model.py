"""Build a model folder that looks to the workflow like a published Qwen3 checkpoint, with random weights:
Qwen3ForCausalLM of a given shape (the tiny test shape, or Qwen3-4B's), a byte-level BPE tokenizer with
Qwen's special tokens (<|endoftext|>, <|im_start|>, <|im_end|>, <think>, </think>), single-digit tokens,
and one of Qwen's published chat templates (tests/support/qwen3_*.jinja, no generation markers).
Nothing is downloaded: the tokenizer is trained on the repo's corpus, so its vocabulary is small, while the
model keeps the shape's vocabulary size (as Qwen's checkpoints keep spare embedding rows).

  python tests/support/qwen_style_model.py --shape qwen3-4b --out models/qwen3-4b-random --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

SUPPORT = Path(__file__).resolve().parent
REPO = SUPPORT.parent.parent
SHAPES = {
    "tiny": dict(
        vocab_size=2048,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    ),
}
TEMPLATES = {"instruct-2507": "qwen3_instruct_2507.jinja", "thinking": "qwen3_thinking.jinja"}
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def qwen_tokenizer(chat_template: str, vocab_size: int = 4096):
    from evoswarm.model.base import build_tokenizer

    texts = (REPO / "data/corpus/corpus.txt").read_text(encoding="utf-8").splitlines()
    return build_tokenizer(texts, vocab_size, QWEN_SPECIAL, chat_template, model_max_length=32768)


def build(
    out: str | Path,
    shape: str = "tiny",
    template: str = "instruct-2507",
    device: str = "cpu",
    dtype: str = "float32",
    seed: int = 0,
) -> Path:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    if shape == "qwen3-4b":
        from evoswarm.model.base import QWEN3_4B_SHAPE

        dims = {**QWEN3_4B_SHAPE, "rope_theta": 5_000_000.0}
    else:
        dims = SHAPES[shape]
    # a template's name, or the template's text itself
    tok = qwen_tokenizer((SUPPORT / TEMPLATES[template]).read_text() if template in TEMPLATES else template)
    torch.manual_seed(seed)
    config = Qwen3Config(**dims, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    with torch.device(device):
        model = Qwen3ForCausalLM(config).to(getattr(torch, dtype))
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shape", choices=["tiny", "qwen3-4b"], default="tiny")
    ap.add_argument("--template", choices=sorted(TEMPLATES), default="instruct-2507")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="bfloat16")
    a = ap.parse_args()
    print(build(a.out, a.shape, a.template, a.device, a.dtype))


if __name__ == "__main__":
    main()
