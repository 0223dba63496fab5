"""Loading a generation's agents (adapter folders) into a backend, checked against the base."""

from __future__ import annotations

import functools
from pathlib import Path

from evoswarm.adapters import verify_adapter
from evoswarm.base_model import read_manifest
from evoswarm.debate import Agent
from evoswarm.io import read_jsonl
from evoswarm.scoring import FREE_TEXT, squad_normalize


def load_agents(backend, base_dir: str, adapter_dirs: list[str]) -> list[Agent]:
    """Register each adapter folder with the backend under its folder name; returns the agents in order."""
    manifest = read_manifest(base_dir)
    agents = []
    for d in adapter_dirs:
        _, _, lineage = verify_adapter(d, manifest)  # before the backend sees it
        name = Path(d).name
        backend.add_adapter(name, str(Path(d).resolve()))
        agents.append(Agent(name=name, system=lineage.get("system", ""), adapter=name, sha=lineage["sha256"]))
    return agents


def item_problem(item: dict, scorer: str | None = None) -> str | None:
    """What breaks the task contract (DESIGN.md section 3) in one item, or None. A free-text `scorer` also
    needs a gold answer with words left once normalised: no answer could score above 0 against it."""
    for key in ("id", "question", "answer"):
        if not isinstance(item[key], str) or not item[key].strip():
            return f"'{key}' must be a non-empty string"
    if scorer in FREE_TEXT and not squad_normalize(item["answer"]):
        return f"'answer' {item['answer']!r} is empty once normalised for {scorer} (no punctuation or articles)"
    ch = item.get("choices")
    if ch is not None and (
        not isinstance(ch, list) or len(ch) < 2 or not all(isinstance(c, str) for c in ch) or item["answer"] not in ch
    ):
        return "'choices' must be a list of 2+ texts containing the answer"
    if not isinstance(item.get("skill", ""), str):
        return "'skill' must be a string"
    return None


def load_items(path: str, limit: int | None = None, scorer: str | None = None) -> list[dict]:
    """Task items; fields required by the task contract (for `scorer`) are checked with file:line errors."""
    check = functools.partial(item_problem, scorer=scorer)
    items = read_jsonl(path, required=["id", "question", "answer"], check=check)
    return items[:limit] if limit else items
