"""Crossover of two Qwen3-4B-shaped rank-32 adapters (36 layers x 7 projections, random factors) on CPU:
our factored QR-SVD against PEFT's svd combination (which forms each ΔW and SVDs it), side by side.

Prints both times, their ratio, and the max relative error of our child's delta against PEFT's.
PEFT's path is timed on --peft-layers layers (each full SVD of a 2560x9728 ΔW is slow) and scaled to 36.

  python bench/crossover_vs_peft.py --peft-layers 2
"""

import argparse
import time

import torch
from common import QWEN3_4B
from evoswarm.evolve.crossover import crossover_svd


def shapes():
    h, i = QWEN3_4B["hidden_size"], QWEN3_4B["intermediate_size"]
    q = QWEN3_4B["num_attention_heads"] * QWEN3_4B["head_dim"]
    kv = QWEN3_4B["num_key_value_heads"] * QWEN3_4B["head_dim"]
    return {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }  # (d_in, d_out)


def peft_svd_module(parents, weights, scalings, rank):
    """What PEFT's add_weighted_adapter(combination_type='svd') does per module: form ΔW, full SVD, truncate."""
    delta = sum(w * s * (b @ a) for (a, b), w, s in zip(parents, weights, scalings))
    u, sv, vh = torch.linalg.svd(delta, full_matrices=True)
    return vh[:rank], u[:, :rank] @ torch.diag(sv[:rank])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--r", type=int, default=32)
    ap.add_argument("--layers", type=int, default=QWEN3_4B["num_hidden_layers"])
    ap.add_argument("--peft-layers", type=int, default=2)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    mods = [(layer, name, din, dout) for layer in range(a.layers) for name, (din, dout) in shapes().items()]
    parents = {
        m: [
            (torch.randn(a.r, m[2], generator=g) / m[2] ** 0.5, torch.randn(m[3], a.r, generator=g) * 0.01)
            for _ in range(2)
        ]
        for m in mods
    }
    w, s = [0.6, 0.4], [2.0, 2.0]
    t = time.perf_counter()
    ours = {m: crossover_svd(parents[m], w, s, a.r) for m in mods}
    t_ours = time.perf_counter() - t
    peft_mods = [m for m in mods if m[0] < a.peft_layers]
    t = time.perf_counter()
    theirs = {m: peft_svd_module(parents[m], w, s, a.r) for m in peft_mods}
    t_peft = (time.perf_counter() - t) * a.layers / a.peft_layers
    err = max(
        ((ours[m][1] @ ours[m][0] - theirs[m][1] @ theirs[m][0]).norm() / (theirs[m][1] @ theirs[m][0]).norm()).item()
        for m in peft_mods
    )
    print(
        f"RESULT crossover of 2 rank-{a.r} adapters, {a.layers} layers x 7 projections (fp32, CPU, "
        f"{torch.get_num_threads()} threads): factored QR-SVD {t_ours:.2f}s, PEFT svd (form ΔW + SVD) "
        f"{t_peft:.1f}s (timed on {a.peft_layers} layers, scaled), ratio {t_peft / t_ours:.0f}x; "
        f"max relative error of the child's delta {err:.1e}"
    )


if __name__ == "__main__":
    main()
