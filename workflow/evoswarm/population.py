"""Loading a generation's agents (adapter folders) into a backend, checked against the base."""

from __future__ import annotations

from pathlib import Path

from evoswarm.adapters import check_base, read_adapter, read_lineage
from evoswarm.base_model import read_manifest
from evoswarm.debate import Agent
from evoswarm.io import InputError, read_jsonl


def load_agents(backend, base_dir: str, adapter_dirs: list[str]) -> list[Agent]:
    """Register each adapter folder with the backend under its folder name; returns the agents in order."""
    manifest = read_manifest(base_dir)
    agents = []
    for d in adapter_dirs:
        read_adapter(d)  # rejects missing files and NaN/Inf before the backend sees them
        check_base(d, manifest)
        lineage = read_lineage(d)
        name = Path(d).name
        backend.add_adapter(name, str(Path(d).resolve()))
        agents.append(Agent(name=name, system=lineage.get("system", ""), adapter=name, sha=lineage["sha256"]))
    return agents


def load_items(path: str, limit: int | None = None) -> list[dict]:
    """Task items; fields required by the task contract are checked with file:line errors."""
    items = read_jsonl(path, required=["id", "question", "answer"])
    for i, it in enumerate(items, 1):
        ch = it.get("choices")
        if ch is not None and (not isinstance(ch, list) or len(ch) < 2 or it["answer"] not in ch):
            raise InputError(f"{path}:{i}: 'choices' must be a list of 2+ texts containing the answer")
    return items[:limit] if limit else items
