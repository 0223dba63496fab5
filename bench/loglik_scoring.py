"""Seconds of the hf backend's loglik scoring on the debate's own requests: one row per choice holding
its context (the scorer before contexts were shared, kept here as the baseline) against HFBackend.score
(one row per agent and question), side by side, with the largest score difference and the answers
(argmax over the choices) that differ.

The requests are those of a real debate (every round) of --agents agents on --split, run once through
HFBackend (untimed); adapters are --adapters, or random LoRA adapters made here.
CPU, the default config's embedded base:  python bench/loglik_scoring.py --base results/base
GPU, a Qwen3-4B-shaped model with random weights (bf16; the base's tokenizer):
  python bench/loglik_scoring.py --base results/base --device cuda --qwen3-4b
"""

import argparse
import tempfile
import time

import torch
from common import TARGETS, qwen3_4b_config, randomise_lora, sync


@torch.no_grad()
def score_per_choice(be, requests) -> list[list[float]]:
    """The scorer before contexts were shared: one right-padded row per choice, context + continuation."""
    from evoswarm.backends import encode_pair, fit_prompt
    from evoswarm.protocol.chat import render

    rows = []
    for i, r in enumerate(requests):
        context = render(be.tok, r.messages, r.prefix)
        for j, cont in enumerate(r.continuations):
            ctx, cont_ids = encode_pair(be.tok, context, cont)
            if len(ctx) + len(cont_ids) > be.max_length:
                be.truncated += 1
                ctx = fit_prompt(be.tok, context.rstrip(), ctx, be.max_length - len(cont_ids))
            rows.append((i, j, r.adapter, ctx, cont_ids))
    out = [[0.0] * len(r.continuations) for r in requests]
    order = sorted(range(len(rows)), key=lambda k: -len(rows[k][3]) - len(rows[k][4]))
    for start in range(0, len(order), be.batch_size):
        batch = [rows[k] for k in order[start : start + be.batch_size]]
        seqs = [ctx + cont for _, _, _, ctx, cont in batch]
        width = max(len(s) for s in seqs) - 1
        ids = torch.tensor([s[:-1] + [be.tok.pad_token_id] * (width - len(s) + 1) for s in seqs], device=be.device)
        mask = torch.tensor([[1] * (len(s) - 1) + [0] * (width - len(s) + 1) for s in seqs], device=be.device)
        logits = be.model(input_ids=ids, attention_mask=mask, **be._adapter_kw([b[2] for b in batch])).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for row, (i, j, _, ctx, cont) in enumerate(batch):
            pos = torch.arange(len(ctx) - 1, len(ctx) - 1 + len(cont), device=be.device)
            out[i][j] = logp[row, pos, torch.tensor(cont, device=be.device)].sum().item()
    return out


def random_adapters(model, n: int, rank: int, out: str) -> tuple[list[str], object]:
    """Folders of `n` random LoRA adapters (rank `rank` on the 7 projections) of `model`, and the model
    back without PEFT's layers."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS, task_type="CAUSAL_LM")
    peft = get_peft_model(model, cfg)
    paths = []
    for i in range(n):
        randomise_lora(peft, seed=i + 1)  # a new B each: the adapters differ
        peft.save_pretrained(f"{out}/agent{i}")
        paths.append(f"{out}/agent{i}")
    return paths, peft.unload()


class Recorder:
    """A backend that passes everything on and keeps each score() call's requests."""

    def __init__(self, backend):
        self.backend = backend
        self.tok = backend.tok
        self.calls = []

    def generate(self, requests):
        return self.backend.generate(requests)

    def score(self, requests):
        self.calls.append(requests)
        return self.backend.score(requests)


def timed(fn, requests, device: str, repeats: int):
    """(result, fewest seconds of `repeats` runs) of fn(requests)."""
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        result = fn(requests)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return result, best


def main():
    from evoswarm.backends.hf import HFBackend
    from evoswarm.config import load_config
    from evoswarm.debate.agents import Agent
    from evoswarm.debate.loop import DebateSettings, run_debate
    from evoswarm.io import read_jsonl

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="results/base", help="a base folder (with its manifest)")
    ap.add_argument("--config", default="config.yaml", help="debate settings, batch size and dtype come from here")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--split", default="data/tasks/dev.jsonl")
    ap.add_argument("--items", type=int, default=0, help="the first N items of the split (0 = all)")
    ap.add_argument("--adapters", nargs="*", default=[], help="adapter folders (default: --agents random ones)")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=0, help="rows per forward (0 = the config's debate.batch_size)")
    ap.add_argument("--repeats", type=int, default=1, help="time each scorer this many times, keep the fastest")
    ap.add_argument("--qwen3-4b", action="store_true", help="a Qwen3-4B-shaped model with random weights")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    config = load_config(a.config)
    config["base"]["device"] = a.device
    be = HFBackend.from_base(a.base, config)
    if a.qwen3_4b:
        from transformers import Qwen3ForCausalLM

        torch.manual_seed(0)
        with torch.device(a.device):
            model = Qwen3ForCausalLM(qwen3_4b_config()).to(be.model.dtype).eval()
        be = HFBackend(model, be.tok, be.batch_size)
    if a.batch_size:
        be.batch_size = a.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        paths = a.adapters
        if not paths:
            paths, be.base = random_adapters(be.base, a.agents, a.rank, tmp)
        agents = []
        for i, path in enumerate(paths):
            be.add_adapter(f"agent{i}", path)
            persona = config["personas"][i % len(config["personas"])]
            agents.append(Agent(f"agent{i}", persona["system"], f"agent{i}"))
    items = read_jsonl(a.split)[: a.items or None]
    settings = DebateSettings.from_config({**config["debate"], "answer_mode": "loglik"}, "choice", 0)
    recorder = Recorder(be)
    run_debate(recorder, agents, items, settings)

    score_per_choice(be, recorder.calls[0][:2])  # warm-up
    be.score(recorder.calls[0][:2])
    print(f"device {be.device}, {be.model.dtype}, batch_size {be.batch_size}, {len(items)} items, {len(agents)} agents")
    line = "{:>5} {:>8} {:>7} {:>8} {:>8} {:>7} {:>10} {:>14}"
    print(line.format("round", "requests", "choices", "old s", "new s", "old/new", "max |diff|", "argmax changed"))
    total_old = total_new = worst = 0.0
    changed = n_requests = n_choices = 0
    for rnd, requests in enumerate(recorder.calls, start=1):
        old, old_s = timed(lambda r: score_per_choice(be, r), requests, a.device, a.repeats)
        new, new_s = timed(be.score, requests, a.device, a.repeats)
        diff = max(abs(x - y) for o, n in zip(old, new) for x, y in zip(o, n))
        flips = sum(o.index(max(o)) != n.index(max(n)) for o, n in zip(old, new))
        choices = sum(len(r.continuations) for r in requests)
        print(
            line.format(
                rnd,
                len(requests),
                choices,
                f"{old_s:.2f}",
                f"{new_s:.2f}",
                f"{old_s / new_s:.2f}",
                f"{diff:.2e}",
                flips,
            )
        )
        total_old, total_new, worst = total_old + old_s, total_new + new_s, max(worst, diff)
        changed, n_requests, n_choices = changed + flips, n_requests + len(requests), n_choices + choices
    ratio = total_old / total_new
    print(
        line.format(
            "all",
            n_requests,
            n_choices,
            f"{total_old:.2f}",
            f"{total_new:.2f}",
            f"{ratio:.2f}",
            f"{worst:.2e}",
            changed,
        )
    )


if __name__ == "__main__":
    main()
