"""Task item files: the reader and the task contract each item must meet (for a scorer)."""

from __future__ import annotations

import functools

from evoswarm.io import InputError, read_jsonl
from evoswarm.protocol.scoring import FREE_TEXT, squad_normalize


def item_problem(item: dict, scorer: str | None = None, answer_mode: str | None = None) -> str | None:
    """What breaks the task contract (docs/design.md, "Task contract") in one item, or None. A free-text `scorer` also
    needs a gold answer with words left once normalised: no answer could score above 0 against it. The `choice`
    scorer and the loglik answer mode (`debate.answer_mode`) need `choices` on every item."""
    for key in ("id", "question", "answer"):
        if not isinstance(item[key], str) or not item[key].strip():
            return f"'{key}' must be a non-empty string"
    if scorer in FREE_TEXT and not squad_normalize(item["answer"]):
        return f"'answer' {item['answer']!r} is empty once normalised for {scorer} (no punctuation or articles)"
    ch = item.get("choices")
    if ch is None and scorer == "choice":
        return "'choices' is missing: tasks.scorer choice needs a list of choices on every item"
    if ch is None and answer_mode == "loglik":
        return "'choices' is missing: debate.answer_mode loglik scores choices and needs them on every item"
    if ch is not None and (
        not isinstance(ch, list) or len(ch) < 2 or not all(isinstance(c, str) for c in ch) or item["answer"] not in ch
    ):
        return "'choices' must be a list of 2+ texts containing the answer"
    if not isinstance(item.get("skill", ""), str):
        return "'skill' must be a string"
    return None


def load_items(
    path: str, limit: int | None = None, scorer: str | None = None, answer_mode: str | None = None
) -> list[dict]:
    """Task items; fields required by the task contract (for `scorer` and `answer_mode`) are checked with
    file:line errors, and so is an id that repeats another line's (the whole file, whatever `limit`)."""
    check = functools.partial(item_problem, scorer=scorer, answer_mode=answer_mode)
    items = read_jsonl(path, required=["id", "question", "answer"], check=check, unique="id")
    return items[:limit] if limit else items


def skills_without_items(personas: list[dict], path: str) -> list[str]:
    """The personas' skills that no item of the task file `path` has (the report could not score them)."""
    have = {item.get("skill") for item in read_jsonl(path)}
    return sorted({p["skill"] for p in personas if p.get("skill") and p["skill"] not in have})


def _question_answer(item: dict) -> tuple[str, str]:
    """An item's question and gold answer as a model memorises them: case and spacing aside."""
    return (" ".join(item["question"].split()).lower(), " ".join(item["answer"].split()).lower())


def shared_question_answer(splits: dict[str, list[dict]]) -> str | None:
    """The first (question, answer) pair that two of `splits` (name -> items) both hold, as a line naming
    both splits and items, or None. Such a held-out item is passed by memory (whatever its choices)."""
    seen: dict[tuple[str, str], str] = {}
    for name, items in splits.items():
        here: dict[tuple[str, str], str] = {}
        for it in items:
            here.setdefault(_question_answer(it), f"{name} (id {it['id']})")
        for pair, where in here.items():
            if pair in seen:
                return f"{seen[pair]} and {where} share the question {pair[0]!r} with the answer {pair[1]!r}"
        seen = here | seen
    return None


def check_disjoint_splits(paths: dict[str, str]) -> None:
    """Raise InputError (one line naming both files) when two task files (split -> path) share a
    (question, answer) pair."""
    shared = shared_question_answer(
        {path: read_jsonl(path, required=["id", "question", "answer"]) for path in paths.values()}
    )
    if shared:
        raise InputError(f"{shared}: held-out splits must not share a (question, answer) pair (world.disjoint_splits)")
