"""Tokens per second of one debate round (P agents x Q questions), strategies side by side in one run:

  seed       switch adapter, generate one prompt at a time (the seed's loop)
  per-adapter  switch adapter, one batch of Q prompts per agent
  mixed      one batch of all P x Q prompts, PEFT mixed-adapter batch (adapter_names=)
  mixed+static  the same with a static KV cache (lets transformers compile the decode step; GPU)
  no-lora    the base model on the same batch (the ceiling LoRA is measured against)

Every strategy generates exactly --new-tokens per prompt (EOS ignored), greedy.
CPU, embedded model:  python bench/debate_throughput.py --base results/base
GPU, Qwen3-4B-shaped random weights:  python bench/debate_throughput.py --qwen3-4b --prompt-len 256 --new-tokens 128
"""

import argparse
import time

import torch
from common import TARGETS, qwen3_4b_config, randomise_lora, sync


def build(a, device, dtype):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen3ForCausalLM

    torch.manual_seed(0)
    if a.qwen3_4b:
        with torch.device(device):
            base = Qwen3ForCausalLM(qwen3_4b_config()).to(dtype)
        vocab = base.config.vocab_size
    else:
        from evoswarm.base_model import read_manifest

        base = AutoModelForCausalLM.from_pretrained(read_manifest(a.base)["path"], dtype=dtype).to(device)
        vocab = base.config.vocab_size
    base.eval()
    names = [f"agent{i}" for i in range(a.agents)]
    cfg = LoraConfig(r=a.r, lora_alpha=2 * a.r, target_modules=TARGETS, task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg, adapter_name=names[0])
    for n in names[1:]:
        model.add_adapter(n, cfg)
    randomise_lora(model, 1)
    model.eval()
    return model, names, vocab


def run(model, fn, device):
    sync(device)
    t = time.perf_counter()
    n = fn()
    sync(device)
    return n, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="results/base")
    ap.add_argument("--qwen3-4b", action="store_true", help="a Qwen3-4B-shaped model with random weights")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=96)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument(
        "--seed-prompts",
        type=int,
        default=0,
        help="time the seed's loop on this many prompts only (0 = all); its rate is per prompt anyway",
    )
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.set_grad_enabled(False)
    model, names, vocab = build(a, device, dtype)
    g = torch.Generator().manual_seed(0)
    prompts = {n: torch.randint(10, vocab, (a.questions, a.prompt_len), generator=g).to(device) for n in names}
    kw = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False, pad_token_id=0)

    def gen(ids, **extra):
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw, **extra)
        return (out.shape[1] - ids.shape[1]) * out.shape[0]

    def seed_loop():
        n, todo = 0, [(name, i) for i in range(a.questions) for name in names]
        for name, i in todo[: a.seed_prompts or None]:
            model.set_adapter(name)
            n += gen(prompts[name][i : i + 1])
        return n

    def per_adapter():
        n = 0
        for name in names:
            model.set_adapter(name)
            n += gen(prompts[name])
        return n

    everything = torch.cat([prompts[n] for n in names])
    adapter_names = [n for n in names for _ in range(a.questions)]

    def mixed(**extra):
        return gen(everything, adapter_names=adapter_names, **extra)

    def no_lora():
        with model.disable_adapter():
            return gen(everything)

    strategies = {"seed": seed_loop, "per-adapter": per_adapter, "mixed": mixed, "no-lora": no_lora}
    if device == "cuda":
        strategies["mixed+static"] = lambda: mixed(cache_implementation="static")
        strategies["no-lora+static"] = lambda: no_lora_static()

        def no_lora_static():
            with model.disable_adapter():
                return gen(everything, cache_implementation="static")

    gen(prompts[names[0]][:1, :8])  # warm-up
    results = {}
    for name, fn in strategies.items():
        if "static" in name:
            run(model, fn, device)  # the first call compiles; time the second
        n, s = run(model, fn, device)
        results[name] = n / s
        print(f"{name:15s} {n:6d} tokens in {s:7.2f}s = {n / s:9.1f} tokens/s", flush=True)
    ref = results["seed"]
    dev = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(
        f"RESULT {dev} P={a.agents} Q={a.questions} prompt={a.prompt_len} new={a.new_tokens} r={a.r}: "
        + ", ".join(f"{k} {v:.1f} tok/s ({v / ref:.1f}x seed)" for k, v in results.items())
    )


if __name__ == "__main__":
    main()
