"""A generation's agents: adapter folders loaded into a backend, checked against the base."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evoswarm.io import InputError
from evoswarm.model.adapters import verify_adapter
from evoswarm.model.base import read_manifest


@dataclass(frozen=True)
class Agent:
    name: str
    system: str
    adapter: str | None  # the backend's adapter name; None runs the base model
    sha: str = ""


def load_agents(backend, base_dir: str, adapter_dirs: list[str]) -> list[Agent]:
    """Register each adapter folder with the backend under its folder name; returns the agents in order.
    Two folders of one name (gen1/adapters/s01 and gen2/adapters/s01) are refused before anything loads: the
    agents, their transcripts and their adapters are all keyed by that name."""
    first: dict[str, str] = {}
    for d in adapter_dirs:
        name = Path(d).name
        if name in first:
            raise InputError(
                f"{d}: agent name {name!r} is also {first[name]}'s (agents are named by their adapter folder; "
                "give each a folder of its own name)"
            )
        first[name] = d
    manifest = read_manifest(base_dir)
    agents = []
    for d in adapter_dirs:
        _, _, lineage = verify_adapter(d, manifest)  # before the backend sees it
        name = Path(d).name
        backend.add_adapter(name, str(Path(d).resolve()))
        agents.append(Agent(name=name, system=lineage.get("system", ""), adapter=name, sha=lineage["sha256"]))
    return agents
