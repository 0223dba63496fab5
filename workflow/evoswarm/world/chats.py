"""Persona SFT chat files: the reader and the contract each chat line must meet."""

from __future__ import annotations

from pathlib import Path

from evoswarm.io import read_jsonl

ROLES = {"system", "user", "assistant"}


def chat_problem(row: dict) -> str | None:
    """What is wrong with one chat line ({"messages": [...]}), or None."""
    msgs = row["messages"]
    if not isinstance(msgs, list) or not msgs:
        return "'messages' must be a non-empty list"
    for m in msgs:
        # A role of another type (a list is unhashable) must not reach the set lookup.
        role = m.get("role") if isinstance(m, dict) else None
        if not isinstance(role, str) or role not in ROLES or not isinstance(m.get("content"), str):
            return f"each message needs a role in {sorted(ROLES)} and string content"
    if not any(m["role"] == "assistant" for m in msgs):
        return "conversation has no assistant turn"
    return None


def load_chats(path: str | Path) -> list[dict]:
    """Persona SFT chats; a line without a valid assistant turn raises InputError naming file:line."""
    rows = read_jsonl(path, required=["messages"], check=chat_problem)
    return [{"messages": r["messages"]} for r in rows]
