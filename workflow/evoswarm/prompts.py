"""The debate protocol's texts and the one place where turn prompts are built.

The world generator (persona SFT data), the debate stage and the evaluator all build prompts here,
so an agent is asked at test time exactly what it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

# The seed's debate rules, in Japanese as the seed wrote them, with an English version selectable.
DEBATE_RULES = {
    "ja": (
        "討論ルール: 反論か支持を短く具体的に述べる。事実の主張には根拠を示す。"
        "論点のずれを指摘する。最終ラウンドでは最終回答と他者への重みを示す。"
    ),
    "en": (
        "Debate rules: give a short, concrete rebuttal or support. Back factual claims with evidence. "
        "Point out drift from the question. In the final round give your final answer and weights for the others."
    ),
}

JUDGE_PROMPT = {
    "ja": "あなたは審判です。討論を読み、最も根拠のある結論を一つ選び、JSONで答えてください。",
    "en": "You are the judge. Read the debate, pick the single best-supported conclusion, and answer in JSON.",
}

ANSWER_FORMAT = 'Reply with JSON: {"answer": ..., "confidence": 0-1, "summary": ...}'

# In log-likelihood mode every choice is scored as the continuation of this prefix.
ANSWER_PREFIX = '{"answer": "'
ANSWER_SUFFIX = '",'  # the JSON continues with ', "confidence"': BPE merges '",'


@dataclass(frozen=True)
class PeerAnswer:
    """What one agent sees of another agent's previous turn."""

    agent: str
    answer: str
    confidence: float
    summary: str


def question_block(question: str, choices: list[str] | None) -> str:
    """The question and, for multiple choice, its choices (texts, never letters)."""
    if not choices:
        return f"Q: {question}"
    return f"Q: {question}\nChoices: " + " | ".join(choices)


def _turn_line(p: PeerAnswer, label: str) -> str:
    return f"{label}: {p.answer} ({p.confidence:.2f}) {p.summary}".rstrip()


def turn_prompt(
    question: str,
    choices: list[str] | None,
    peers: list[PeerAnswer] | None = None,
    rules: str = "",
    final_round: bool = False,
    *,
    own: PeerAnswer | None = None,
) -> str:
    """The user message for one debate turn.

    Round 1 passes neither peers nor own; later rounds pass the agent's own previous turn (`own`,
    shown as "You: ...", as in Du et al., so it can keep or revise it) and the other agents' previous
    answers and summaries (`peers`, under "Others:").
    """
    parts = [question_block(question, choices)]
    if own:
        parts.append(_turn_line(own, "You"))
    if peers:
        parts.append("Others:\n" + "\n".join(_turn_line(p, f"- {p.agent}") for p in peers))
    if own or peers:
        if rules:
            parts.append(rules)
        if final_round:
            parts.append("Final round.")
    parts.append(ANSWER_FORMAT)
    return "\n".join(parts)


# Where the other agents' turns begin in a turn prompt ("You:" / "Others:") or a judge prompt ("Debate:").
_MIDDLE_STARTS = ("\nYou: ", "\nOthers:\n", "\nDebate:\n")


def middle_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the agents' turns in a rendered turn or judge prompt: the part a prompt too long for
    the context loses first, keeping the system prompt and the question before it and the rules, the
    answer format and the generation prompt after it. None when the prompt shows no turns (round 1)."""
    question = max(text.find("Q: "), 0)  # markers in the system prompt before it do not count
    starts = [i for i in (text.find(m, question) for m in _MIDDLE_STARTS) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    last_peer = text.rfind("\n- ")
    end = text.find("\n", max(start, last_peer) + 1)  # the end of the last peer's line (or of "You: ...")
    return (start, end) if end > start else None


def judge_prompt(question: str, choices: list[str] | None, finals: list[PeerAnswer], lang: str) -> str:
    """The user message for the optional judge agent: the question and every agent's final turn."""
    lines = [_turn_line(p, f"- {p.agent}") for p in finals]
    return "\n".join([JUDGE_PROMPT[lang], question_block(question, choices), "Debate:", *lines, ANSWER_FORMAT])


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
