"""The single-model evaluators: lm-eval on the base or the base with one adapter (base, gen0-<agent>,
gen<g>-best), and gen0-best's copy of the persona result its fitness picks."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from evoswarm.evaluate.harness import lm_eval_docs, run_lm_eval, use_adapter
from evoswarm.evolve.selection import best_agent
from evoswarm.io import InputError
from evoswarm.model.adapters import check_base, read_lineage
from evoswarm.model.base import load_tokenizer, read_manifest
from evoswarm.targets import Target, persona


def lineage_system(target: Target, base: str, adapter: str) -> str:
    """The adapter's persona system prompt, after checking it exists and was trained on this base."""
    if not Path(adapter).is_dir():
        raise InputError(f"target {target}: adapter {adapter} is missing")
    check_base(adapter, read_manifest(base))
    return read_lineage(adapter).get("system", "")


def single(config: dict, target: Target, base: str, adapter: str | None, items: list[dict], seed: int, lm=None) -> dict:
    """lm-eval on the base (and one adapter): with `lm` (load_lm_eval_model) the adapter of that name is
    scored on the model already loaded, else lm-eval builds the model from model_args."""
    system = lineage_system(target, base, adapter) if adapter else ""
    tokenizer = load_tokenizer(base, config["base"]["trust_remote_code"])
    docs = lm_eval_docs(items, tokenizer, system, config["tasks"]["scorer"])
    if lm is not None and adapter:
        use_adapter(lm, Path(adapter).name)
    with tempfile.TemporaryDirectory() as work:
        out = run_lm_eval(
            read_manifest(base)["path"], adapter, docs, Path(work), config, seed, config["evaluation"]["batch_size"], lm
        )
    out["evoswarm"].update(target=str(target), adapter=adapter, system=system)
    return out


def copied_best(target: Target, fitness: str | None, agent_evals: list[str]) -> dict:
    """gen0-best: the result of the gen-0 agent the fitness ranks first, already scored as gen0-<agent>."""
    best = best_agent(fitness, f"target {target}")
    by_target = {Path(p).name.removesuffix(".json"): p for p in agent_evals}
    path = by_target.get(str(persona(best)))
    if path is None:
        raise InputError(
            f"target {target}: no {persona(best)}.json among the agent results given ({', '.join(by_target)})"
        )
    res = json.loads(Path(path).read_text(encoding="utf-8"))
    res["evoswarm"].update(target=str(target), agent=best)
    return res
