"""Chat rendering shared by training, every backend and the evaluator: the prompt text a model continues."""

from __future__ import annotations

_SENTINEL = "\u2063EVOSWARM_REPLY\u2063"


_OPENERS: dict[str, str] = {}  # per template text: rendering is the slow part of a prompt


class TemplateError(ValueError):
    """A chat template whose generation prompt is not how it renders the start of an assistant turn."""


def assistant_opener(tokenizer) -> str:
    """What the chat template writes between its generation prompt and an assistant message's content.

    Qwen3's thinking templates open a finished assistant turn with an empty `<think>` block that the
    generation prompt lacks; most templates add nothing. Raises TemplateError when the generation
    prompt is not a prefix of the rendered turn (such a template cannot isolate the reply for training).
    """
    template = str(tokenizer.chat_template)
    if template in _OPENERS:
        return _OPENERS[template]
    ask = [{"role": "user", "content": "Q"}]
    prompt = tokenizer.apply_chat_template(ask, tokenize=False, add_generation_prompt=True)
    turn = tokenizer.apply_chat_template(ask + [{"role": "assistant", "content": _SENTINEL}], tokenize=False)
    if not turn.startswith(prompt) or _SENTINEL not in turn[len(prompt) :]:
        raise TemplateError(
            f"its generation prompt {prompt[-40:]!r} does not begin the rendered assistant turn "
            f"{turn[len(prompt) - 40 : turn.find(_SENTINEL)]!r}"
        )
    _OPENERS[template] = turn[len(prompt) : turn.index(_SENTINEL)]
    return _OPENERS[template]


def render(tokenizer, messages: list[dict], prefix: str = "") -> str:
    """The prompt text a backend continues: the chat template up to the assistant turn's content (the
    generation prompt and whatever the template opens a reply with), plus `prefix`. Training isolates
    the reply at the same point, so an agent continues exactly the text it was trained to continue."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    try:
        opener = assistant_opener(tokenizer)
    except TemplateError:  # such a model cannot be trained here; the base alone is still served as-is
        opener = ""
    return prompt + opener + prefix


def chat(system: str, user: str) -> list[dict]:
    """A chat for apply_chat_template; the system turn is left out when empty."""
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": user}]
