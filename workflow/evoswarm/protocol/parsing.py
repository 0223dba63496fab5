"""Lenient parsing of a debate turn: a JSON object {answer, confidence, summary} somewhere in the text.

`parse_turn` never raises: a string it cannot read gives ok=False (counted as a parse failure).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)
_ANSWER_FIELD = re.compile(r'["\']?answer["\']?\s*:\s*("(?:[^"\\]|\\.)*"|[^,}\n]+)', re.IGNORECASE)
_CONF_FIELD = re.compile(r'["\']?confidence["\']?\s*:\s*"?([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*(%?)', re.IGNORECASE)
_SUMMARY_FIELD = re.compile(r'["\']?summary["\']?\s*:\s*"((?:[^"\\]|\\.)*)', re.IGNORECASE)


@dataclass(frozen=True)
class Turn:
    answer: str
    confidence: float
    summary: str
    ok: bool  # False when no answer could be read


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def _confidence(value, default: float) -> float:
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        v = float(value)
    elif isinstance(value, str):
        m = re.search(r"[-+]?\d*\.?\d+", value)
        if not m:
            return default
        v = float(m.group()) / (100 if "%" in value else 1)
    else:
        return default
    if v != v:  # NaN
        return default
    return _clip(v / 100 if v > 1 and v <= 100 else v)


def _objects(text: str):
    """Every balanced {...} span, outermost first."""
    starts = [i for i, c in enumerate(text) if c == "{"]
    for s in starts:
        depth, in_str, esc = 0, False, False
        for j in range(s, len(text)):
            c = text[j]
            if in_str:
                esc = c == "\\" and not esc
                if c == '"' and not esc:
                    in_str = False
                continue
            if c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    yield text[s : j + 1]
                    break


def parse_turn(text: str, default_confidence: float = 0.5) -> Turn:
    """Read {answer, confidence, summary} leniently: code fences, text around the object, full-width
    characters, single quotes, a missing confidence (default), a confidence outside [0,1] (clipped,
    percentages scaled), a truncated object (fields read by pattern)."""
    try:
        return _parse(text, default_confidence)
    except Exception:  # never raise on model output
        return Turn("", default_confidence, "", False)


def _parse(text: str, default: float) -> Turn:
    if not isinstance(text, str):
        return Turn("", default, "", False)
    norm = unicodedata.normalize("NFKC", text)  # full-width braces, quotes, digits -> ASCII
    norm = _FENCE.sub("", norm).replace("“", '"').replace("”", '"')
    for span in _objects(norm):
        for candidate in (span, span.replace("'", '"')):
            try:
                obj = json.loads(candidate)
            except (json.JSONDecodeError, ValueError):
                continue
            if isinstance(obj, dict):
                lower = {str(k).lower(): v for k, v in obj.items()}
                if "answer" in lower and lower["answer"] is not None:
                    answer = str(lower["answer"]).strip()
                    return Turn(
                        answer,
                        _confidence(lower.get("confidence"), default),
                        str(lower.get("summary", "") or ""),
                        bool(answer),
                    )
    m = _ANSWER_FIELD.search(norm)
    if not m:
        return Turn("", default, "", False)
    answer = m.group(1).strip().strip('"').strip()
    c = _CONF_FIELD.search(norm)
    conf = _confidence(c.group(1) + c.group(2), default) if c else default
    s = _SUMMARY_FIELD.search(norm)
    return Turn(answer, conf, s.group(1) if s else "", bool(answer))


def normalize_answer(text: str) -> str:
    """Comparison form of an answer: NFKC, trimmed, case-folded, trailing punctuation dropped."""
    return unicodedata.normalize("NFKC", str(text)).strip().strip("。.").casefold()


def match_choice(answer: str, choices: list[str]) -> str | None:
    """The choice an answer names (exact after normalisation, else the unique choice it contains)."""
    norm = normalize_answer(answer)
    by_norm = {normalize_answer(c): c for c in choices}
    if norm in by_norm:
        return by_norm[norm]
    hits = [c for n, c in by_norm.items() if n and re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", norm)]
    return hits[0] if len(hits) == 1 else None
