"""vLLM in process: `LLM(enable_lora=True)`, one LoRARequest per adapter, every request of a call in
one `generate` (vLLM batches across adapters itself). GPU only; vllm is the optional `vllm` extra.

The engine starts lazily on the first call, once the adapters (and so the largest rank) are known.
"""

from __future__ import annotations

from evoswarm.backends import GenRequest, ScoreRequest
from evoswarm.io import InputError
from evoswarm.prompts import render


class VLLMBackend:
    def __init__(self, base_dir: str, config: dict):
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise InputError(
                "debate.backend: 'vllm' needs the vllm package (pip install 'evoswarm[vllm]' on a "
                "CUDA machine); use 'hf' or 'openai' otherwise"
            ) from None
        from evoswarm.base_model import load_tokenizer, read_manifest

        self.path = read_manifest(base_dir)["path"]
        self.config = config
        self.tok = load_tokenizer(base_dir, config["base"]["trust_remote_code"])
        self.adapters: dict[str, tuple[int, str, int]] = {}  # name -> (id, path, rank)
        self.llm = None
        self.generated_tokens = 0  # what generate() produced, for evaluation budgets

    def add_adapter(self, name: str, path: str) -> None:
        import json
        from pathlib import Path

        rank = json.loads((Path(path) / "adapter_config.json").read_text())["r"]
        self.adapters[name] = (len(self.adapters) + 1, path, rank)

    def _engine(self):
        if self.llm is None:
            from vllm import LLM

            b = self.config["base"]
            self.llm = LLM(
                model=self.path,
                enable_lora=bool(self.adapters),
                max_loras=max(1, len(self.adapters)),
                max_lora_rank=max([r for _, _, r in self.adapters.values()] or [8]),
                dtype="auto" if b["dtype"] == "auto" else b["dtype"],
                seed=self.config["seed"],
                trust_remote_code=b["trust_remote_code"],
            )
        return self.llm

    def _lora(self, adapter: str | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        lid, path, _ = self.adapters[adapter]
        return LoRARequest(adapter, lid, path)

    def generate(self, requests: list[GenRequest]) -> list[str]:
        from vllm import SamplingParams

        params = [
            SamplingParams(max_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p, seed=r.seed)
            for r in requests
        ]
        outs = self._engine().generate(
            [render(self.tok, r.messages, r.prefix) for r in requests],
            params,
            lora_request=[self._lora(r.adapter) for r in requests],
            use_tqdm=False,
        )
        self.generated_tokens += sum(len(o.outputs[0].token_ids) for o in outs)
        return [r.prefix + o.outputs[0].text for r, o in zip(requests, outs)]

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        from vllm import SamplingParams

        rows, texts, loras = [], [], []
        for i, r in enumerate(requests):
            context = render(self.tok, r.messages, r.prefix)
            n_ctx = len(self.tok(context, add_special_tokens=False)["input_ids"])
            for j, cont in enumerate(r.continuations):
                rows.append((i, j, n_ctx))
                texts.append(context + cont)
                loras.append(self._lora(r.adapter))
        outs = self._engine().generate(
            texts, SamplingParams(max_tokens=1, prompt_logprobs=0), lora_request=loras, use_tqdm=False
        )
        result = [[0.0] * len(r.continuations) for r in requests]
        for (i, j, n_ctx), o in zip(rows, outs):
            ids = o.prompt_token_ids
            result[i][j] = sum(o.prompt_logprobs[k][ids[k]].logprob for k in range(n_ctx, len(ids)))
        return result
