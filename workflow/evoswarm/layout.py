"""Where every file of a run lives: one definition for the rules (called with wildcard placeholders
such as "{seed}") and for the stage scripts run by hand (called with values).

    <results>/base/                      the base model, built once from the first seed
    <results>/eval/<target>.json         shared evaluation targets (SHARED_TARGETS)
    <results>/seed<k>/gen<g>/...         one replicate: adapters, debate, fitness.csv, selection.json
    <results>/seed<k>/eval/<target>.json every other evaluation target, per replicate
    <results>/report/                    one report over all seeds
"""

from __future__ import annotations

from evoswarm.config import evaluation_targets, members

# Evaluated once, not per seed: the base is shared and scoring it alone is deterministic (log-likelihoods).
SHARED_TARGETS = ("base",)


def base_dir(results: str) -> str:
    return f"{results}/base"


def replicate_dir(results: str, seed) -> str:
    return f"{results}/seed{seed}"


def adapter_dir(results: str, seed, gen, agent) -> str:
    return f"{replicate_dir(results, seed)}/gen{gen}/adapters/{agent}"


def debate_out(results: str, seed, gen, name: str) -> str:
    """`name`: transcripts or votes."""
    return f"{replicate_dir(results, seed)}/gen{gen}/debate/{name}.jsonl"


def fitness_csv(results: str, seed, gen) -> str:
    return f"{replicate_dir(results, seed)}/gen{gen}/fitness.csv"


def selection_json(results: str, seed, gen) -> str:
    return f"{replicate_dir(results, seed)}/gen{gen}/selection.json"


def shared_eval_json(results: str, target) -> str:
    return f"{results}/eval/{target}.json"


def eval_json(results: str, seed, target: str) -> str:
    """The eval file a replicate reads for `target`: shared targets live outside the seed folders."""
    if target in SHARED_TARGETS:
        return shared_eval_json(results, target)
    return f"{replicate_dir(results, seed)}/eval/{target}.json"


def report_dir(results: str) -> str:
    return f"{results}/report"


def report_files(config: dict) -> dict:
    """Every file the report reads, by seed (and generation): the report's inputs and its map of them."""
    r, gens = config["results"], range(config["generations"] + 1)
    seeds = config["seeds"]
    return {
        "evals": {s: {t: eval_json(r, s, t) for t in evaluation_targets(config)} for s in seeds},
        "fitness": {s: [fitness_csv(r, s, g) for g in gens] for s in seeds},
        "votes": {s: [debate_out(r, s, g, "votes") for g in gens] for s in seeds},
        "transcripts": {s: [debate_out(r, s, g, "transcripts") for g in gens] for s in seeds},
        "adapters": {s: [adapter_dir(r, s, g, a) for g in gens for a in members(config, g)] for s in seeds},
        "dev": config["tasks"]["dev"],
    }


def flatten(files: dict) -> dict[str, list[str]]:
    """report_files as Snakemake input lists (each path once)."""

    def paths(x):
        if isinstance(x, str):
            return [x]
        values = x.values() if isinstance(x, dict) else x
        return [p for v in values for p in paths(v)]

    return {k: list(dict.fromkeys(paths(v))) for k, v in files.items()}
