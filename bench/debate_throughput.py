"""Tokens per second of one debate round (P agents, a batch of their prompts), strategies side by side in
one run, at each batch size of --batches:

  seed           switch adapter, generate one prompt at a time (the seed's loop; batch-independent)
  peft+static    one batch mixing every agent through PEFT's `adapter_names=`, static KV cache
  stacked+static the same batch through the stacked LoRA product (evoswarm.backends.stacked_lora)
  stacked-2gemm+static  with --two-gemm: the stacked product without the A factors in the base's GEMM
  no-lora+static the bare base model on the same batch (PEFT's layers swapped out)
  stacked+graph  the stacked product in the hf backend's own decode loop (evoswarm.backends.decode: one
                 CUDA graph replayed a step, attention on the key/value heads): what the backend runs
  no-lora+graph  the bare base model in that loop: the ceiling for it

"+static": transformers' generate() with a static cache, which compiles the decode step (CUDA graphs) on
a GPU; on a CPU it runs eager. Each row is printed as tokens/s and as a ratio to no-lora+static and to the
bandwidth floor: the batch's tokens per step over the time to read the model's weights once at the
card's bandwidth (--bandwidth GB/s; known cards are looked up). Every strategy generates exactly
--new-tokens per prompt (EOS ignored), greedy.

CPU, embedded model:  python bench/debate_throughput.py --base results/base --batches 6 24
GPU, Qwen3-4B-shaped random weights:
  python bench/debate_throughput.py --qwen3-4b --prompt-len 256 --new-tokens 128 --r 32 --seed-prompts 3
"""

import argparse
import contextlib
import time

import torch
from common import TARGETS, qwen3_4b_config, randomise_lora, sync
from evoswarm.backends.decode import greedy_decode
from evoswarm.backends.stacked_lora import StackedAdapters

# GB/s of HBM by card name (a prefix of torch.cuda.get_device_name()).
BANDWIDTH = {"NVIDIA H100 80GB HBM3": 3350, "NVIDIA H100 PCIe": 2000, "NVIDIA H200": 4800, "NVIDIA A100": 2039}


def build(a, device, dtype):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen3ForCausalLM

    torch.manual_seed(0)
    if a.qwen3_4b:
        with torch.device(device):
            base = Qwen3ForCausalLM(qwen3_4b_config()).to(dtype)
    else:
        from evoswarm.model.base import read_manifest

        base = AutoModelForCausalLM.from_pretrained(read_manifest(a.base)["path"], dtype=dtype).to(device)
    base.eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in base.parameters())  # tied weights once
    names = [f"agent{i}" for i in range(a.agents)]
    cfg = LoraConfig(r=a.r, lora_alpha=2 * a.r, target_modules=TARGETS, task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg, adapter_name=names[0])
    for n in names[1:]:
        model.add_adapter(n, cfg)
    randomise_lora(model, 1)
    model.eval()
    return model, names, weight_bytes


@contextlib.contextmanager
def bare(model):
    """The base model without PEFT's layers in its module tree (what no-LoRA costs)."""
    from peft.tuners.lora import LoraLayer

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    for name, layer in layers:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer.get_base_layer())
    try:
        yield model.base_model.model
    finally:
        for name, layer in layers:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, layer)


@contextlib.contextmanager
def routed(stack, rows):
    """The model with the stacked product installed and routed to `rows`' adapters."""
    stack.install()
    stack.route(rows)
    try:
        yield stack.model
    finally:
        stack.uninstall()


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    n = fn()
    sync(device)
    return n, time.perf_counter() - t


def profile_step(fn, device, rows: int = 12) -> None:
    """Where a generate() call's time goes: the top kernels (GPU) or operators (CPU)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        sync(device)
    key = "cuda_time_total" if device == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=rows), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="results/base")
    ap.add_argument("--qwen3-4b", action="store_true", help="a Qwen3-4B-shaped model with random weights")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[24, 96, 264], help="prompts per batch (all agents)")
    ap.add_argument("--prompt-len", type=int, default=96)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--bandwidth", type=float, default=0, help="GB/s of the card's memory (0: look it up)")
    ap.add_argument("--seed-prompts", type=int, default=3, help="prompts the seed's loop is timed on")
    ap.add_argument("--skip", nargs="*", default=[], help="strategies not to run (e.g. seed peft+static)")
    ap.add_argument("--profile", nargs="*", default=[], help="strategies to profile at the first batch")
    ap.add_argument("--two-gemm", action="store_true", help="also time the stacked product's two-GEMM form")
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.set_grad_enabled(False)
    torch._dynamo.config.cache_size_limit = 64  # one compiled decode step per strategy and batch shape
    model, names, weight_bytes = build(a, device, dtype)
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    bandwidth = a.bandwidth or next((v for k, v in BANDWIDTH.items() if card.startswith(k)), 0)
    step_floor = weight_bytes / (bandwidth * 1e9) if bandwidth else 0  # seconds to read the weights once
    print(
        f"{card}: weights {weight_bytes / 1e9:.2f} GB, bandwidth {bandwidth} GB/s, floor {step_floor * 1e3:.2f} ms/step"
    )
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(10, vocab, (max(a.batches), a.prompt_len), generator=g).to(device)
    kw = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False, pad_token_id=0)

    def gen(m, ids, **extra):
        out = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw, **extra)
        return (out.shape[1] - ids.shape[1]) * out.shape[0]

    stacked = StackedAdapters(model)
    two_gemm = StackedAdapters(model, fuse_base=False) if a.two_gemm else None

    def seed_loop():
        n = 0
        for i in range(a.seed_prompts):
            model.set_adapter(names[i % len(names)])
            n += gen(model, prompts[i : i + 1])
        return n

    def strategies(batch):
        ids, rows = prompts[:batch], [names[i % len(names)] for i in range(batch)]

        def peft_static():
            return gen(model, ids, adapter_names=rows, cache_implementation="static")

        def stacked_static(stack=stacked):
            with routed(stack, rows) as m:
                return gen(m, ids, cache_implementation="static")

        def no_lora_static():
            with bare(model) as m:
                return gen(m, ids, cache_implementation="static")

        def graph(m):
            return greedy_decode(m, ids, torch.ones_like(ids), a.new_tokens, None, 0).numel()

        def stacked_graph():
            with routed(stacked, rows) as m:
                return graph(m)

        def no_lora_graph():
            with bare(model) as m:
                return graph(m)

        runs = {"no-lora+graph": no_lora_graph, "stacked+graph": stacked_graph}
        runs |= {"no-lora+static": no_lora_static, "stacked+static": stacked_static}
        if two_gemm is not None:
            runs["stacked-2gemm+static"] = lambda: stacked_static(two_gemm)
        return {**runs, "peft+static": peft_static}

    rates = {}
    if "seed" not in a.skip:
        gen(model, prompts[:1, :8])  # warm-up
        n, s = timed(seed_loop, device)
        rates["seed"] = n / s
        print(f"seed            {n:7d} tokens in {s:8.2f}s = {n / s:9.1f} tok/s", flush=True)
    table = []
    for batch in a.batches:
        got = {}
        for name, fn in strategies(batch).items():
            if name in a.skip:
                continue
            timed(fn, device)  # the first call compiles this shape; time the second
            n, s = timed(fn, device)
            got[name] = n / s
            print(f"batch {batch:4d} {name:15s} {n:7d} tokens in {s:8.2f}s = {n / s:9.1f} tok/s", flush=True)
            if a.profile and batch == a.batches[0] and name in a.profile:
                profile_step(fn, device)
        table.append((batch, got))
    print(f"\nRESULT {card} P={a.agents} prompt={a.prompt_len} new={a.new_tokens} r={a.r} (tok/s; x no-lora; x floor)")
    if "seed" in rates:
        print(f"  seed loop: {rates['seed']:.1f} tok/s")
    for batch, got in table:
        ref, floor = got.get("no-lora+static"), batch / step_floor if step_floor else 0
        cells = [
            f"{k} {v:.0f}" + (f" ({v / ref:.2f}x" if ref else " (") + (f", {v / floor:.1%} floor)" if floor else ")")
            for k, v in got.items()
        ]
        print(f"  batch {batch}: " + "; ".join(cells))
        ours, peft = got.get("stacked+graph"), got.get("peft+static")
        if ours and got.get("no-lora+graph"):
            print(f"    ours (stacked+graph) / no-lora+graph {ours / got['no-lora+graph']:.2f} (goal >= 0.90)")
        if ours and ref:
            print(f"    ours / no-lora+static {ours / ref:.2f}")
        if ours and peft:
            print(f"    ours / peft+static {ours / peft:.2f}x (goal >= 2)")


if __name__ == "__main__":
    main()
