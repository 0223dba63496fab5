"""Client for any OpenAI-compatible server that serves LoRAs by model name (`vllm serve --enable-lora`
with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or this project's `evoswarm serve`).

Prompts are rendered and tokenized here, with the base model's own chat template and tokenizer, and sent
as token ids to /v1/completions, so the server's tokenization never matters and a prompt too long for the
server's context is cut as the hf backend cuts it: generation with `prompt`, scoring with `echo` +
`logprobs` + `max_tokens: 0` (a continuation's log-probability sums the tokens past its context's).

Adapters are served under names derived from their content, `<agent>-<first 12 hex of the weights'
sha256>`: vLLM keys its prefix cache by adapter name, so a name reused for other weights could serve stale
KV blocks. Callers keep using agent names; the mapping lives here. The base is served under its model
name: the GET /v1/models entry without a `parent` (vLLM's and `evoswarm serve`'s layout) unless given.
Stages leave their adapters loaded: concurrent jobs share the content-derived names, and vLLM's unload
only forgets a name (its engine keeps at most --max-cpu-loras adapters, dropping the least recently used).

Completions and GET /v1/models are idempotent: retried with backoff. A load or unload is sent once; after
a lost connection (or a refusal as a repeat) GET /v1/models tells whether it took effect before it is sent
again. Every failure ends in one ServerError line naming the server, the call and the cause.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from evoswarm.backends import GenRequest, ScoreRequest, encode_pair, fit_prompt
from evoswarm.io import InputError, sha256_file
from evoswarm.model.adapters import CONFIG, LINEAGE, WEIGHTS
from evoswarm.protocol.chat import render


class ServerError(RuntimeError):
    pass


class _NoAnswer(Exception):
    """The server was not reached, or the connection broke before its answer."""


class _Refused(Exception):
    """The server answered an HTTP error."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


def _error_detail(raw: bytes) -> str:
    """The message of an error answer ({"error": {"message": ...}} on vLLM), on one line."""
    text = raw.decode(errors="replace")
    try:
        text = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        pass
    return " ".join(str(text).split())[:300]


def content_id(path: str | Path) -> str:
    """The first 12 hex of the sha256 of an adapter folder's weights (lineage.json's record, else hashed)."""
    path = Path(path)
    if not (path / WEIGHTS).is_file():
        raise InputError(f"{path}: adapter folder has no {WEIGHTS}")
    lineage = path / LINEAGE
    sha = json.loads(lineage.read_text()).get("sha256") if lineage.is_file() else None
    return (sha or sha256_file(path / WEIGHTS))[:12]


def lora_rank(path: str | Path) -> int:
    """The largest LoRA rank of an adapter folder (`r`, or a larger one in `rank_pattern`)."""
    config = json.loads((Path(path) / CONFIG).read_text())
    return max([config["r"], *(config.get("rank_pattern") or {}).values()])


class OpenAIBackend:
    def __init__(
        self,
        base_url: str,
        tokenizer,
        base_name: str | None = None,
        api_key: str | None = None,
        timeout: float = 120,
        retries: int = 3,
        backoff: float = 0.5,
    ):
        self.url = base_url.rstrip("/")
        self.tok = tokenizer
        self.base_name = base_name  # None: discovered from GET /v1/models
        self.api_key = api_key
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.adapters: dict[str, str] = {}  # agent name -> adapter folder
        self.served: dict[str, str] = {}  # agent name -> the name the server serves it under
        self._base: tuple[str, int | None] | None = None  # (served name, context length) of the base
        self.truncated = 0  # prompts cut to fit the server's context, counted for the transcript summary

    @classmethod
    def from_config(cls, base_dir: str, config: dict) -> OpenAIBackend:
        from evoswarm.model.base import load_tokenizer

        ocfg = config["debate"]["openai"]
        return cls(
            ocfg["base_url"],
            load_tokenizer(base_dir, config["base"]["trust_remote_code"]),
            base_name=ocfg["base_name"],
            api_key=os.environ.get(ocfg["api_key_env"]),
            timeout=ocfg["timeout"],
            retries=ocfg["retries"],
        )

    def _send(self, method: str, path: str, body: dict | None = None) -> str:
        """One request; the text of its 2xx answer (JSON, or vLLM's plain text for load and unload)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise _Refused(e.code, _error_detail(e.read())) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # refused, reset, timed out
            raise _NoAnswer(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None

    def _idempotent(self, method: str, path: str, body: dict | None = None) -> dict:
        """The JSON answer of a call that is safe to repeat: retried with backoff after no answer, a 5xx,
        a 429 (a full queue) or a reply that is not JSON; another 4xx (our request is wrong) fails at once."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                raw = self._send(method, path, body)
            except _Refused as e:
                if e.status < 500 and e.status != 429:  # 429: the server's queue is full for now
                    raise ServerError(f"{self.url}{path}: {e}") from None
                last = str(e)
                continue
            except _NoAnswer as e:
                last = str(e)
                continue
            try:
                answer = json.loads(raw)
            except json.JSONDecodeError:
                answer = None
            if isinstance(answer, dict):
                return answer
            last = f"not a JSON object: {raw[:80]!r}"
        raise ServerError(f"{self.url}{path}: no valid answer after {self.retries + 1} tries ({last})")

    def models(self) -> list[dict]:
        """GET /v1/models: the base (no `parent`) and the adapters the server serves."""
        data = self._idempotent("GET", "/models").get("data")
        if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m for m in data):
            raise ServerError(f"{self.url}/models: expected a list of models, got {str(data)[:80]}")
        return data

    def _base_model(self) -> tuple[str, int | None]:
        """(served name, context length or None) of the base model, asked once."""
        if self._base is None:
            models = self.models()
            if self.base_name is None:
                card = next((m for m in models if not m.get("parent")), None)
                if card is None:
                    raise ServerError(f"{self.url}/models: no base model (an entry without a parent) is listed")
            else:
                card = next((m for m in models if m["id"] == self.base_name), None)
                if card is None:
                    served = [m["id"] for m in models]
                    raise ServerError(f"{self.url}/models: base_name {self.base_name!r} is not served ({served})")
            self._base = (card["id"], card.get("max_model_len"))
        return self._base

    def _change(self, path: str, body: dict, served: str, loaded: bool, what: str) -> None:
        """Load (loaded=True) or unload `served` with one POST, sent again only when GET /v1/models shows
        it did not take effect. vLLM refuses a name already loaded (400) and an unload of one it does not
        serve (404): the server is then already as wanted."""
        where = f"{self.url}{path}: {what}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                self._send("POST", path, body)  # any 2xx is success: vLLM answers plain text
                return
            except _Refused as e:
                if e.status in (400, 404) and self._serves(served, f"{where}: {e}") == loaded:
                    return
                raise ServerError(f"{where}: {e}") from None
            except _NoAnswer as e:
                last = str(e)
            if self._serves(served, f"{where}: no answer ({last})") == loaded:  # the lost request went through
                return
        raise ServerError(f"{where}: no answer after {self.retries + 1} tries ({last})")

    def _serves(self, served: str, context: str) -> bool:
        try:
            return any(m["id"] == served for m in self.models())
        except ServerError as e:
            raise ServerError(f"{context}; then {e}") from None

    def add_adapter(self, name: str, path: str) -> None:
        """Serve the adapter folder `path` as agent `name`. Adding the same content again does nothing;
        other weights under an agent name in use are a clash (remove_adapter first)."""
        served = f"{name}-{content_id(path)}"
        if name in self.served:
            if self.served[name] == served:
                return
            raise ServerError(
                f"adapter name clash: {name!r} is served as {self.served[name]!r} from {self.adapters[name]}, "
                f"and {path} holds other weights (remove_adapter({name!r}) first)"
            )
        what = f"loading adapter {path} (rank {lora_rank(path)}) as {served!r}"
        self._change("/load_lora_adapter", {"lora_name": served, "lora_path": path}, served, True, what)
        self.adapters[name], self.served[name] = path, served

    def remove_adapter(self, name: str) -> None:
        """Unload agent `name`'s adapter from the server. Only when no other job uses the same content:
        the served name is shared by every client that loads those weights under that agent name."""
        if name not in self.served:
            raise KeyError(f"unknown adapter {name!r}")
        served = self.served[name]
        self._change("/unload_lora_adapter", {"lora_name": served}, served, False, f"unloading adapter {served!r}")
        del self.adapters[name], self.served[name]

    def _model(self, adapter: str | None) -> str:
        if adapter is None:
            return self._base_model()[0]
        return self.served.get(adapter, adapter)  # a name not added here: a LoRA the server was started with

    def _fit(self, text: str, ids: list[int], room: int) -> list[int]:
        """The prompt `text` (encoded as `ids`) cut to leave `room` in the server's context, as the hf
        backend cuts it."""
        max_len = self._base_model()[1]
        if max_len is None or len(ids) + room <= max_len:
            return ids
        self.truncated += 1
        return fit_prompt(self.tok, text, ids, max_len - room)

    def _completions(self, body: dict, n: int) -> list[dict]:
        """The choices of one /v1/completions call with `n` prompts, in prompt order."""
        choices = self._idempotent("POST", "/completions", body).get("choices")
        if not isinstance(choices, list) or sorted(c.get("index") for c in choices) != list(range(n)):
            raise ServerError(f"{self.url}/completions: expected {n} choices, got {str(choices)[:80]}")
        return sorted(choices, key=lambda c: c["index"])

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
        for (model, max_new, temperature, top_p, seed), idx in self._by_model(requests).items():
            texts = [render(self.tok, requests[i].messages, requests[i].prefix) for i in idx]
            prompts = [self._fit(t, self.tok(t, add_special_tokens=False)["input_ids"], max_new) for t in texts]
            body = {
                "model": model,
                "prompt": prompts,
                "max_tokens": max_new,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
                "stop_token_ids": [self.tok.eos_token_id],  # where the hf backend stops
            }
            for i, c in zip(idx, self._completions(body, len(idx))):
                out[i] = requests[i].prefix + c["text"]
        return out

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        out = [[0.0] * len(r.continuations) for r in requests]
        for (model,), idx in self._by_model(requests).items():
            rows = []  # (request index, continuation index, context ids, continuation ids)
            for i in idx:
                context = render(self.tok, requests[i].messages, requests[i].prefix)
                for j, cont in enumerate(requests[i].continuations):
                    ctx, cont_ids = encode_pair(self.tok, context, cont)
                    # +1: vLLM keeps room for one generated token even when only scoring the prompt
                    rows.append((i, j, self._fit(context.rstrip(), ctx, len(cont_ids) + 1), cont_ids))
            body = {
                "model": model,
                "prompt": [ctx + cont for _, _, ctx, cont in rows],
                "max_tokens": 0,
                "echo": True,
                "logprobs": 0,
                "temperature": 0,
            }
            for (i, j, ctx, cont), c in zip(rows, self._completions(body, len(rows))):
                logprobs = (c.get("logprobs") or {}).get("token_logprobs")
                if not isinstance(logprobs, list) or len(logprobs) != len(ctx) + len(cont):
                    raise ServerError(
                        f"{self.url}/completions: expected {len(ctx) + len(cont)} prompt log-probabilities, "
                        f"got {str(logprobs)[:80]}"
                    )
                out[i][j] = sum(logprobs[len(ctx) :])
        return out
