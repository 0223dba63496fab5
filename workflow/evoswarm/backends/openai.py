"""Client for any OpenAI-compatible server that serves LoRAs by model name (`vllm serve --enable-lora`,
or this project's `evoswarm serve`).

Prompts are rendered here with the base model's own chat template and sent as raw text to
/v1/completions: generation with `prompt`, scoring with `echo` + `logprobs` + `max_tokens: 0` (the
continuation's tokens are those whose text_offset lies past the context). New children are loaded at
run time through /v1/load_lora_adapter. Failures are retried with backoff, then raise a clear error.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

from evoswarm.backends import GenRequest, ScoreRequest
from evoswarm.prompts import render


class ServerError(RuntimeError):
    pass


class OpenAIBackend:
    def __init__(
        self,
        base_url: str,
        tokenizer,
        base_name: str = "base",
        api_key: str | None = None,
        timeout: float = 120,
        retries: int = 3,
        backoff: float = 0.5,
    ):
        self.url = base_url.rstrip("/")
        self.tok = tokenizer
        self.base_name = base_name
        self.api_key = api_key
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.adapters: dict[str, str] = {}

    @classmethod
    def from_config(cls, base_dir: str, config: dict) -> OpenAIBackend:
        from evoswarm.base_model import load_tokenizer

        ocfg = config["debate"]["openai"]
        return cls(
            ocfg["base_url"],
            load_tokenizer(base_dir, config["base"]["trust_remote_code"]),
            api_key=os.environ.get(ocfg["api_key_env"]),
            timeout=ocfg["timeout"],
            retries=ocfg["retries"],
        )

    def _post(self, path: str, body: dict | None = None, method: str = "POST") -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = None
        for attempt in range(self.retries + 1):
            try:
                req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    raw = r.read().decode()
                try:
                    return json.loads(raw) if raw.strip() else {}
                except json.JSONDecodeError:
                    last = f"garbage reply {raw[:80]!r}"
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:200]
                if 400 <= e.code < 500:  # our request is wrong: retrying will not help
                    raise ServerError(f"{self.url}{path}: HTTP {e.code}: {detail}") from None
                last = f"HTTP {e.code}: {detail}"
            except (urllib.error.URLError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise ServerError(f"{self.url}{path}: no valid answer after {self.retries + 1} tries ({last})")

    def add_adapter(self, name: str, path: str) -> None:
        self._post("/load_lora_adapter", {"lora_name": name, "lora_path": path})
        self.adapters[name] = path

    def remove_adapter(self, name: str) -> None:
        self._post("/unload_lora_adapter", {"lora_name": name})
        self.adapters.pop(name, None)

    def _model(self, adapter: str | None) -> str:
        return self.base_name if adapter is None else adapter

    def _by_model(self, requests) -> dict[tuple, list[int]]:
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            key = (self._model(r.adapter),) + (
                (r.max_new_tokens, r.temperature, r.top_p, r.seed) if isinstance(r, GenRequest) else ()
            )
            groups.setdefault(key, []).append(i)
        return groups

    def generate(self, requests: list[GenRequest]) -> list[str]:
        out = [""] * len(requests)
        for key, idx in self._by_model(requests).items():
            model, max_new, temperature, top_p, seed = key
            body = {
                "model": model,
                "prompt": [render(self.tok, requests[i].messages, requests[i].prefix) for i in idx],
                "max_tokens": max_new,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
                "stop": [self.tok.eos_token],
            }
            choices = self._post("/completions", body).get("choices")
            if not isinstance(choices, list) or len(choices) != len(idx):
                raise ServerError(f"{self.url}/completions: expected {len(idx)} choices, got {str(choices)[:80]}")
            for c in choices:
                out[idx[c["index"]]] = requests[idx[c["index"]]].prefix + c["text"]
        return out

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        out = [[0.0] * len(r.continuations) for r in requests]
        for (model,), idx in self._by_model(requests).items():
            pairs = [(i, j) for i in idx for j in range(len(requests[i].continuations))]
            contexts = {i: render(self.tok, requests[i].messages, requests[i].prefix) for i in idx}
            body = {
                "model": model,
                "prompt": [contexts[i] + requests[i].continuations[j] for i, j in pairs],
                "max_tokens": 0,
                "echo": True,
                "logprobs": 0,
                "temperature": 0,
            }
            choices = self._post("/completions", body).get("choices")
            if not isinstance(choices, list) or len(choices) != len(pairs):
                raise ServerError(f"{self.url}/completions: expected {len(pairs)} choices, got {str(choices)[:80]}")
            for c in choices:
                i, j = pairs[c["index"]]
                lp = c["logprobs"]
                start = len(contexts[i])
                out[i][j] = sum(
                    x for x, off in zip(lp["token_logprobs"], lp["text_offset"]) if off >= start and x is not None
                )
        return out
