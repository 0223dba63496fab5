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
