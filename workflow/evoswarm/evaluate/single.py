"""The single-model evaluators: lm-eval on the base or the base with one adapter (base, gen0-<agent>,
gen<g>-best, the trained controls), gen0-best's copy of the persona result its fitness picks, and the
oracle control routed from the persona results."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from evoswarm.evaluate.harness import lm_eval_docs, result_json, run_lm_eval, use_adapter
from evoswarm.evolve.selection import best_agent
from evoswarm.io import InputError
from evoswarm.model.adapters import verify_adapter
from evoswarm.model.base import load_tokenizer, read_manifest
from evoswarm.targets import Target, best, persona


def lineage_system(target: Target, base: str, adapter: str) -> str:
    """The adapter's persona system prompt, after checking it exists and is what the stages check
    (verify_adapter: this base, finite safetensors, weights and config as its lineage hashed them)."""
    if not Path(adapter).is_dir():
        raise InputError(f"target {target}: adapter {adapter} is missing")
    _, _, lineage = verify_adapter(adapter, read_manifest(base))
    return lineage.get("system", "")


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


def oracle(target: Target, skills: dict[str, str], agent_evals: list[str], scorer: str = "choice") -> dict:
    """The oracle router, a ceiling: each item answered as generation 0's persona of its skill answered it
    alone (the first slot of that skill in `skills`, slot -> skill), an item of a skill no persona has as
    generation 0's best agent answered it. It reads each item's skill, never its answer."""
    results = {Path(p).name.removesuffix(".json"): json.loads(Path(p).read_text(encoding="utf-8")) for p in agent_evals}
    fallback = results.get(str(best(0)))
    if fallback is None:
        raise InputError(f"target {target}: needs {best(0)}.json among the agent results ({', '.join(results)})")
    router: dict[str, str] = {}
    for slot, skill in skills.items():
        if str(persona(slot)) not in results:
            raise InputError(f"target {target}: no {persona(slot)}.json among the agent results ({', '.join(results)})")
        router.setdefault(skill, slot)
    by_slot = {
        slot: {r["id"]: r for r in results[str(persona(slot))]["evoswarm"]["per_item"]} for slot in router.values()
    }
    per_item, calls = [], {}
    for item in fallback["evoswarm"]["per_item"]:
        slot = router.get(item["skill"])
        source, agent = (str(persona(slot)), slot) if slot else (str(best(0)), fallback["evoswarm"]["agent"])
        row = by_slot[slot][item["id"]] if slot else item
        per_item.append({**row, "agent": agent})
        calls[source] = calls.get(source, 0) + 1
    # One single-model call per item: each source's budget, in proportion to the items routed to it.
    spent = {}
    for source, n in calls.items():
        ev = results[source]["evoswarm"]
        for k, v in ev["budget"].items():
            spent[k] = spent.get(k, 0) + round(v * n / len(ev["per_item"]))
    return result_json(per_item, "oracle", {"target": str(target), "router": router, "budget": spent}, scorer)
