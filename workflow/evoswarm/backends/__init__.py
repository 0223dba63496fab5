"""Inference backends behind one small interface: "generate these prompts, each with this adapter",
and "score these continuations of these prompts, each with this adapter".

A request's `adapter` is an agent name registered with `add_adapter`, or None for the base model.
Backends are chosen by name in the config (`debate.backend`) through `make_backend`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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
    (hf, vllm); evaluation budgets otherwise count the returned text with the base tokenizer."""

    def add_adapter(self, name: str, path: str) -> None: ...

    def generate(self, requests: list[GenRequest]) -> list[str]: ...

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        """Sum of log-probabilities of each continuation, one list per request."""
        ...


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) of a scored continuation, as lm-eval splits them: trailing spaces
    move to the continuation, and the whole text is encoded once and split, so BPE merges across the
    boundary count for the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx_len = len(tokenizer(context, add_special_tokens=False)["input_ids"])
    return whole[:ctx_len], whole[ctx_len:]


def make_backend(name: str, base_dir: str, config: dict) -> Backend:
    """The backend named `name` over the base model in `base_dir`."""
    if name == "hf":
        from evoswarm.backends.hf import HFBackend

        return HFBackend.from_base(base_dir, config)
    if name == "vllm":
        from evoswarm.backends.vllm import VLLMBackend

        return VLLMBackend(base_dir, config)
    if name == "openai":
        from evoswarm.backends.openai import OpenAIBackend

        return OpenAIBackend.from_config(base_dir, config)
    raise ValueError(f"debate.backend: unknown backend {name!r} (hf, vllm, openai)")
