"""QLoRA training steps on a Qwen3-4B-shaped model with random weights (GPU; no download).

Builds the model from Qwen3-4B's config, saves it, reloads it in 4-bit NF4 with double quantisation
(bf16 compute), adds LoRA r=32 / alpha=64 on all seven projections, gradient checkpointing and a paged
8-bit AdamW -- the training settings of configs/qwen3-4b.yaml -- and times optimizer steps of
batch 1 x grad-accum 16 at sequence 1024. Prints seconds per step and peak GPU memory.

  python bench/qlora_step.py --steps 3
"""

import argparse
import tempfile
import time

import torch
from common import TARGETS, qwen3_4b_config


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--grad-accum", type=int, default=16)
    ap.add_argument("--r", type=int, default=32)
    a = ap.parse_args()
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Qwen3ForCausalLM

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        with torch.device("cuda"):
            m = Qwen3ForCausalLM(qwen3_4b_config()).to(torch.bfloat16)
        n_params = sum(p.numel() for p in m.parameters())
        m.save_pretrained(d, safe_serialization=True)
        del m
        torch.cuda.empty_cache()
        q = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(
            d, quantization_config=q, dtype=torch.bfloat16, device_map={"": "cuda"}
        )
        print(
            f"built + saved + loaded nf4 ({n_params / 1e9:.2f}B params) in {time.time() - t0:.0f}s; "
            f"weights on GPU {torch.cuda.memory_allocated() / 2**30:.2f} GiB"
        )
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=a.r, lora_alpha=2 * a.r, target_modules=TARGETS, task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = bnb.optim.PagedAdamW8bit([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    model.train()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(a.steps):
        torch.cuda.synchronize()
        t = time.time()
        for _ in range(a.grad_accum):
            ids = torch.randint(0, 151936, (1, a.seq), device="cuda")
            loss = model(input_ids=ids, labels=ids).loss / a.grad_accum
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.time() - t)
        print(f"step {step + 1}: {times[-1]:.2f}s loss {loss.item() * a.grad_accum:.3f}", flush=True)
    steady = times[1:] or times
    print(
        f"RESULT qlora r={a.r} seq={a.seq} batch=1x{a.grad_accum}: {sum(steady) / len(steady):.2f} s/step "
        f"(first {times[0]:.2f}s), {a.seq * a.grad_accum * len(steady) / sum(steady):.0f} tokens/s, "
        f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, trainable {trainable / 1e6:.1f}M, "
        f"{torch.cuda.get_device_name()}"
    )


if __name__ == "__main__":
    main()
