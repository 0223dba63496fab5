"""Where every file of a run lives: one definition for the rules (called with wildcard placeholders
such as "{seed}") and for the stage scripts run by hand (called with values).

    <results>/base/                      the base model, built once from the first seed
    <results>/eval/<target>.json         shared evaluation targets (targets.SHARED)
    <results>/seed<k>/gen<g>/...         one replicate: adapters, debate, fitness.csv, selection.json
    <results>/seed<k>/eval/<target>.json every other evaluation target, per replicate
    <results>/seed<k>/gen<g>/best-merged/ the generation's best agent as a merged model (`snakemake export`)
    <results>/report/                    one report over all seeds
    <results>/study/<arm>/seed<k>/...    a study arm's replicate from generation 1 on (its generation 0
                                         and the evaluations that depend on it alone are the main run's)
    <results>/study/table.md|csv         the study's comparison table
    logs/<rule>/<job>.log                a job's log, and benchmarks/<rule>/<job>.tsv its time and memory

`arm` is the prefix of a study arm's files ("" for the main run, `arm_prefix(name)` for an arm), so one
rule pattern ("{arm}seed{seed}") serves both.
"""

from __future__ import annotations

import re
from pathlib import Path

from evoswarm.config import evaluation_targets, members
from evoswarm.targets import SHARED, Target


def base_dir(results: str) -> str:
    return f"{results}/base"


STUDY = "study"
ARM_PATTERN = rf"({STUDY}/[A-Za-z][A-Za-z0-9_-]*/)?"  # the `arm` wildcard: "" or an arm's prefix


def arm_prefix(name: str) -> str:
    return f"{STUDY}/{name}/"


def replicate_dir(results: str, seed, arm: str = "") -> str:
    return f"{results}/{arm}seed{seed}"


def adapter_dir(results: str, seed, gen, agent, arm: str = "") -> str:
    return f"{replicate_dir(results, seed, arm)}/gen{gen}/adapters/{agent}"


def bred_dir(results: str, seed, gen, agent, arm: str = "") -> str:
    """A child straight from crossover + mutation, before its Lamarckian step (adapter_dir is after)."""
    return f"{replicate_dir(results, seed, arm)}/gen{gen}/bred/{agent}"


def control_dir(results: str, seed, control: Target | str) -> str:
    """A trained control's adapter (multitask, specialist-long): the main run's, once per replicate."""
    return f"{replicate_dir(results, seed)}/controls/{control}"


# The debate on dev items (fitness) and the one on train items (debate distillation's data).
DEBATE_SPLITS = {"dev": "debate", "train": "debate_train"}
DEBATE_FILES = ("transcripts", "votes")  # what a debate writes, each `<name>.jsonl`


def debate_file(folder: str, name: str) -> str:
    """`name` (transcripts or votes) in a debate's folder, a shard's or one given by hand."""
    return f"{folder}/{name}.jsonl"


def _debate_dir(results: str, seed, gen, arm: str, split: str) -> str:
    return f"{replicate_dir(results, seed, arm)}/gen{gen}/{DEBATE_SPLITS[split]}"


def debate_out(results: str, seed, gen, name: str, arm: str = "", split: str = "dev") -> str:
    """`name`: transcripts or votes."""
    return debate_file(_debate_dir(results, seed, gen, arm, split), name)


def debate_shard_out(results: str, seed, gen, name: str, shard, shards: int, arm: str = "", split: str = "dev") -> str:
    """Shard `shard` (0-based) of `shards` of a debate (`debate.shards`); debate_merge joins them into debate_out."""
    return debate_file(f"{_debate_dir(results, seed, gen, arm, split)}/shard{shard}of{shards}", name)


def fitness_csv(results: str, seed, gen, arm: str = "") -> str:
    return f"{replicate_dir(results, seed, arm)}/gen{gen}/fitness.csv"


def selection_json(results: str, seed, gen, arm: str = "") -> str:
    return f"{replicate_dir(results, seed, arm)}/gen{gen}/selection.json"


def export_dir(results: str, seed, gen) -> str:
    """The generation's best agent merged into the base (a transformers model folder); made on request."""
    return f"{replicate_dir(results, seed)}/gen{gen}/best-merged"


def shared_eval_json(results: str, target) -> str:
    return f"{results}/eval/{target}.json"


def eval_json(results: str, seed, target: Target | str, arm: str = "") -> str:
    """The eval file a replicate reads for `target` (or the target of that name): shared targets live
    outside the seed folders."""
    if str(target) in map(str, SHARED):
        return shared_eval_json(results, target)
    return f"{replicate_dir(results, seed, arm)}/eval/{target}.json"


def eval_failure(eval_json_path: str) -> str:
    """The record a failed evaluation leaves beside its missing result (`<target>.failed.json`): not a rule's
    output, so Snakemake keeps it and still reruns the target; the report shows it when built by hand."""
    return eval_json_path.removesuffix(".json") + ".failed.json"


def study_table(results: str, ext: str) -> str:
    """`ext`: md or csv."""
    return f"{results}/{STUDY}/table.{ext}"


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


LOGS, BENCHMARKS = "logs", "benchmarks"


def job_name(rule: str, *, seed=None, gen=None, target=None, agent=None, shard=None, arm: str = "") -> str:
    """A job's name in its log and benchmark paths: the parts it has, in this order, joined by '-'
    ('seed0-gen1', 'study/a/seed0-gen1-s02', 'seed0-gen0-best', 'seed0-gen1-shard2'); `rule` for a job
    with none ('build_base'). Called with values or with wildcard placeholders ("{seed}")."""
    parts = [
        None if seed is None else f"{arm}seed{seed}",
        None if gen is None else f"gen{gen}",
        target,
        agent,
        None if shard is None else f"shard{shard}",
    ]
    return "-".join(str(p) for p in parts if p is not None) or rule


def log(rule: str, **parts) -> str:
    """logs/<rule>/<job>.log (job_name's `parts`). `rule`: the rule's folder (the evaluate rules share
    'evaluate'). The README and users rely on these paths."""
    return f"{LOGS}/{rule}/{job_name(rule, **parts)}.log"


def benchmark(rule: str, **parts) -> str:
    """benchmarks/<rule>/<job>.tsv, named as `log`."""
    return f"{BENCHMARKS}/{rule}/{job_name(rule, **parts)}.tsv"


def benchmark_files(folder: str = BENCHMARKS) -> list[tuple[str, str, Path]]:
    """(rule, job name, file) of every benchmark under `folder`, as `benchmark` names them; a study arm's
    job name holds folders (study/<arm>/seed...), so its files are not among them."""
    return [(p.parent.name, p.stem, p) for p in sorted(Path(folder).glob("*/*.tsv"))]


def job_seed(job: str) -> int | None:
    """The replicate seed of a job named by job_name, or None for a job all replicates share."""
    m = re.match(r"seed(\d+)-", job)
    return int(m.group(1)) if m else None
