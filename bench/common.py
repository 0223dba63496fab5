"""Helpers for the benchmarks: Qwen3-4B-shaped configs and random LoRA adapters (nothing downloaded)."""

from __future__ import annotations

import torch
from evoswarm.model.base import QWEN3_4B_SHAPE

QWEN3_4B = {**QWEN3_4B_SHAPE, "rope_theta": 5_000_000.0}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def qwen3_4b_config(**overrides):
    from transformers import Qwen3Config

    return Qwen3Config(**{**QWEN3_4B, **overrides})


def randomise_lora(model, seed: int, scale: float = 0.02) -> None:
    """Give every LoRA B a random value (PEFT initialises B to zero, which would make the adapter a no-op)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.copy_((torch.randn(p.shape, generator=g) * scale).to(p.dtype))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
