"""Workflow config: schema validation with defaults, checks the schema cannot express, and the
helpers every stage shares (population slots, seeds, per-persona training settings).

Imports nothing heavy: the Snakefile and the cheap stages load it in milliseconds.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from evoswarm.io import InputError, read_text
from evoswarm.protocol.scoring import FREE_TEXT
from evoswarm.targets import (
    CONTROLS,
    MULTITASK,
    ORACLE,
    SPECIALIST_LONG,
    Target,
    every_target,
    generation_job,
    parses_back,
    persona,
)

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"

# The evolution.child_rank that a crossover operator (crossover.CROSSOVER) requires, and why; the others
# take any. Declared here, not in crossover.py, so validation checks it without importing torch or
# evolve (a higher layer); crossover.child_rank asks the same at breed time.
CHILD_RANK = {
    "cat": ("sum", "cat keeps every component"),
    "naive_ab": ("max", "naive_ab keeps its parents' one rank"),
}


def child_rank_mismatch(operator: str, requested: int | str) -> str | None:
    """Why evolution.child_rank `requested` does not fit crossover `operator` (CHILD_RANK), or None."""
    need = CHILD_RANK.get(operator)
    if need is None or requested == need[0]:
        return None
    return f"evolution.child_rank: {need[1]}; use {need[0]!r} (got {requested!r})"


def _validator_with_defaults():
    """A Draft 2020-12 validator class that fills in `default` values while it validates (as Snakemake's
    validate does). jsonschema is imported here: derive_seed, which the debate uses, runs without it."""
    import jsonschema

    validator_cls = jsonschema.Draft202012Validator
    validate_props = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    # Integers are strict: JSON Schema counts 1.0 as an integer, and Python counts True as one, but a seed
    # of 1.0 names its outputs seed1.0/ and a population of 3.0 is no count.
    def is_integer(checker, instance):
        return isinstance(instance, int) and not isinstance(instance, bool)

    # Numbers are finite: NaN fails no minimum or maximum (every comparison is false), so `top_p: .nan` passed.
    def is_finite_number(checker, instance):
        if isinstance(instance, bool):
            return False
        return isinstance(instance, int) or (isinstance(instance, float) and math.isfinite(instance))

    strict = validator_cls.TYPE_CHECKER.redefine_many({"integer": is_integer, "number": is_finite_number})
    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults}, type_checker=strict)


def validate(config: dict, source: str = "config", locate: Callable[[list], str] | None = None) -> dict:
    """Validate `config` against the schema, fill defaults, and run cross-key checks.

    Raises InputError naming the offending key, after `source` or, for a schema error, after
    `locate(key path)`: where that key is set (see key_locator).
    """
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    if "seed" in config:
        raise InputError(f"{source}: 'seed' is now 'seeds', a list of replicate seeds (e.g. seeds: [0])")
    config = copy.deepcopy(config)
    # `snakemake --config 'seeds=[0,1]'` reads list items as strings (YAML's BaseLoader).
    if isinstance(config.get("seeds"), list):
        config["seeds"] = [int(s) if isinstance(s, str) and s.lstrip("-").isdigit() else s for s in config["seeds"]]
    validator = _validator_with_defaults()(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        key = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        path = list(e.absolute_path)
        if e.validator == "additionalProperties":  # where the unexpected key itself is set
            path += [k for k in e.instance if k not in e.schema.get("properties", {})][:1]
        raise InputError(f"{locate(path) if locate else source}: invalid value at '{key}': {e.message}")
    _check(config, source)
    return config


def _check(config: dict, source: str) -> None:
    names = [p["name"] for p in config["personas"]]
    if len(set(names)) != len(names):
        raise InputError(f"{source}: 'personas' has duplicate names: {names}")
    if config["population"] < len(names):
        raise InputError(
            f"{source}: 'population' ({config['population']}) is smaller than the number of personas ({len(names)})"
        )
    for i, name in enumerate(names):
        if not parses_back(persona(name)):
            raise InputError(
                f"{source}: personas[{i}].name {name!r}: its target gen0-{name} would read as gen<g>-best; rename it"
            )
        copied = _copied_persona(name, names, config["population"])
        if copied:
            raise InputError(
                f"{source}: personas[{i}].name {name!r} is also the slot of persona {copied}'s copy "
                f"(population {config['population']} repeats personas as '<name>-<k>'); rename it"
            )
    evo = config["evolution"]
    if config["population"] < evo["elites"] + 1:
        raise InputError(
            f"{source}: 'population' ({config['population']}) must be at least "
            f"'evolution.elites' + 1 ({evo['elites'] + 1})"
        )
    if sum(config["fitness"]["weights"].values()) <= 0:
        raise InputError(f"{source}: 'fitness.weights' sum to zero")
    study = config["study"]
    if study["arms"]:
        if study["baseline"] not in study["arms"]:
            raise InputError(f"{source}: 'study.baseline' {study['baseline']!r} is not one of 'study.arms'")
        if config["generations"] < 1:
            raise InputError(f"{source}: a study compares generations: 'generations' must be at least 1")
    if evo["blend"]["low"] > evo["blend"]["high"]:
        raise InputError(f"{source}: 'evolution.blend.low' is above 'evolution.blend.high'")
    if evo["blend"]["scale_low"] > evo["blend"]["scale_high"]:
        raise InputError(f"{source}: 'evolution.blend.scale_low' is above 'evolution.blend.scale_high'")
    rank, op = evo["child_rank"], evo["crossover"]
    mismatch = child_rank_mismatch(op, rank)
    if mismatch:
        raise InputError(f"{source}: {mismatch}")
    scorer = config["tasks"]["scorer"]
    if scorer in FREE_TEXT and config["debate"]["answer_mode"] != "generate":
        raise InputError(
            f"{source}: tasks.scorer {scorer} scores free text: set debate.answer_mode: generate (loglik picks choices)"
        )
    if config["debate"]["judge"] and config["debate"]["aggregator"] != "confidence":
        raise InputError(
            f"{source}: debate.aggregator {config['debate']['aggregator']}: with debate.judge the judge picks the "
            "team's answer; set one of the two"
        )
    _check_controls(config, source)
    # Generation 1's parents' ranks sum to at most parents × the largest persona rank; crossover.child_rank
    # checks each child's own parents at breed time.
    largest = max(persona_training(config, p)["r"] for p in config["personas"])
    if op == "svd" and isinstance(rank, int) and rank > evo["parents"] * largest:
        raise InputError(
            f"{source}: evolution.child_rank: {rank} is above evolution.parents × the largest persona rank "
            f"({evo['parents']} × {largest}): svd has no more components to keep"
        )


def _check_controls(config: dict, source: str) -> None:
    """Unset, controls.targets is every control the personas allow; a named control they cannot give fails
    now, naming controls.targets."""
    allowed = {str(SPECIALIST_LONG)}
    if len(config["personas"]) >= 2:
        allowed.add(str(MULTITASK))
    if any(p.get("skill") for p in config["personas"]):
        allowed.add(str(ORACLE))
    controls = config["controls"]
    if "targets" not in controls:
        controls["targets"] = [str(c) for c in CONTROLS if str(c) in allowed]
        return
    if str(MULTITASK) in controls["targets"] and str(MULTITASK) not in allowed:
        raise InputError(
            f"{source}: controls.targets: multitask needs at least 2 personas (a union of one persona's data is "
            "that persona trained longer); remove it"
        )
    if str(ORACLE) in controls["targets"] and str(ORACLE) not in allowed:
        raise InputError(
            f"{source}: controls.targets: oracle routes each item to the persona of its skill, and no persona has "
            "a 'skill'; give personas skills or remove it"
        )


def read_yaml_config(path: str | Path) -> dict:
    """A YAML config file's mapping; a syntax error raises InputError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        config = yaml.safe_load(read_text(path))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise InputError(f"{path}:{mark.line + 1}: invalid YAML ({e.problem or e.context})") from None
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: a date such as 2024-02-30
        raise InputError(f"{path}: invalid YAML ({e})") from None
    if not isinstance(config, dict | None):
        raise InputError(f"{path}: a config file maps keys to values (found a {type(config).__name__})")
    return config or {}


def _yaml_key_line(node, path: list) -> int | None:
    """The line (1-based) of `path` (mapping keys, list indices) in a composed YAML document, or None."""
    line = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            # The last of duplicate keys, the one PyYAML keeps.
            entry = next(((k, v) for k, v in reversed(node.value) if k.value == str(part)), None)
            if entry is None:
                return None
            line, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return None
    return line


def _sets(value, path: list) -> bool:
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return False
    return True


def key_locator(files: list[str | Path], overrides: dict | None = None) -> Callable[[list], str]:
    """For a config merged from YAML `files` (a later one wins, as Snakemake merges its config files) and
    then `overrides` (Snakemake's --config): a function naming where a key path is set: '--config', or
    'file:line' of the last file that sets it; all the files when none does (a missing key)."""
    documents = [(str(f), yaml.compose(Path(f).read_text(encoding="utf-8"))) for f in files]

    def locate(path: list) -> str:
        if path and overrides and _sets(overrides, path):
            return "--config"
        for name, document in reversed(documents):
            line = _yaml_key_line(document, path) if path else None
            if line:
                return f"{name}:{line}"
        return " + ".join(name for name, _ in documents) or "config"

    return locate


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a YAML config file, apply overrides, validate. Relative data paths stay relative to the cwd."""
    config = read_yaml_config(path)
    config.update(overrides or {})
    return validate(config, str(path), key_locator([path], overrides))


def derive_seed(run_seed: int, *parts) -> int:
    """A 31-bit seed from (run seed, generation, slot, ...): stable across machines, never the clock."""
    key = "/".join(str(p) for p in (run_seed, *parts))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _copied_persona(name: str, names: list[str], population: int) -> str | None:
    """The persona whose generation-0 copy has the slot name `name` ('<persona>-<k>', slot k × personas + the
    persona's index), or None. Worked out, not listed: the schema sets no upper bound on `population`, and
    listing 10**30 slots never ends."""
    head, _, k = name.rpartition("-")
    # More digits than the population has: k alone is past the last slot (and int() of 5000 digits fails).
    if head not in names or not re.fullmatch(r"[1-9][0-9]*", k) or len(k) > len(str(population)):
        return None
    return head if int(k) * len(names) + names.index(head) < population else None


def _gen0_slot_names(names: list[str], population: int) -> list[str]:
    """Generation 0's slot names: slot i is persona i mod n, named '<name>-<k>' from its k-th copy on."""
    n = len(names)
    return [names[i % n] if i < n else f"{names[i % n]}-{i // n}" for i in range(population)]


def gen0_members(config: dict) -> dict[str, dict]:
    """Generation 0's slots -> persona. With P > personas, persona k repeats as '<name>-<k>' (another seed)."""
    personas = config["personas"]
    slots = _gen0_slot_names([p["name"] for p in personas], config["population"])
    return {slot: personas[i % len(personas)] for i, slot in enumerate(slots)}


def members(config: dict, gen: int) -> list[str]:
    """The agent (slot) names of one generation."""
    if gen == 0:
        return list(gen0_members(config))
    return bred_slots(config["population"])


def bred_slots(population: int) -> list[str]:
    """Slot names of every bred generation (g >= 1)."""
    return [f"s{i:02d}" for i in range(population)]


def evaluation_targets(config: dict) -> list[str]:
    """The name of every evaluation target, in the report's order (targets.every_target)."""
    return [str(t) for t in every_target(config["generations"], gen0_members(config), control_targets(config))]


def gen0_training_steps(config: dict) -> int:
    """Generation 0's training compute: every slot's persona training steps."""
    return sum(persona_training(config, p)["max_steps"] for p in gen0_members(config).values())


def evolution_sft_steps(config: dict) -> int:
    """The SFT steps evolution spends: each bred child's Lamarckian steps (elites are copied untouched)."""
    lamarck = config["evolution"]["lamarck"]
    if lamarck["step"] == "none":
        return 0
    return config["generations"] * (config["population"] - config["evolution"]["elites"]) * lamarck["max_steps"]


def control_steps(config: dict, control: Target) -> int:
    """The training steps a trained control spends (its budget): multitask generation 0's, specialist-long
    evolution's."""
    return gen0_training_steps(config) if control == MULTITASK else evolution_sft_steps(config)


def control_targets(config: dict) -> list[Target]:
    """The controls this run evaluates (controls.targets, in CONTROLS' order); specialist-long only when
    evolution trains (with no SFT steps it would be generation 0's best itself)."""
    wanted = config["controls"]["targets"]
    return [c for c in CONTROLS if str(c) in wanted and (c != SPECIALIST_LONG or evolution_sft_steps(config) > 0)]


def gen0_skills(config: dict) -> dict[str, str]:
    """Generation 0's slots -> their persona's skill (slots whose persona names none left out)."""
    return {slot: p["skill"] for slot, p in gen0_members(config).items() if p.get("skill")}


def generation_eval_targets(config: dict, gen: int | str) -> list[str]:
    """The names of the targets one evaluation job computes for generation `gen` of a replicate
    (targets.generation_job); `gen` may be a pattern ("{gen}": the rule of every generation >= 1)."""
    return [str(t) for t in generation_job(gen, gen0_members(config))]


# What a study arm may change: the keys that act from generation 0's fitness on. Everything before
# (base, personas, debate, evaluation) is the main run's, so every arm shares its generation 0.
ARM_KEYS = ("fitness", "evolution")


def study_arms(config: dict, source: str = "config") -> dict[str, dict]:
    """The study's arms (`study.arms`: name -> {dotted key: value}) as validated configs.

    An arm without overrides is the main run itself. Errors name the arm and key, before any job runs."""
    arms = {}
    for name, overrides in config["study"]["arms"].items():
        where = f"{source}: study.arms.{name}"
        arm = copy.deepcopy(config)
        for key, value in overrides.items():
            head = key.split(".")[0]
            if head not in ARM_KEYS:
                raise InputError(f"{where}: key {key!r} cannot vary between arms (only {', '.join(ARM_KEYS)}.*)")
            node, parts = arm, key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise InputError(f"{where}: unknown key {key!r}")
                node = node[part]
            if parts[-1] not in node:
                raise InputError(f"{where}: unknown key {key!r}")
            node[parts[-1]] = value
        arms[name] = validate({k: v for k, v in arm.items() if k != "study"}, where)
        arms[name]["study"] = config["study"]
    return arms


def gen0_systems(config: dict) -> dict[str, str]:
    """Generation 0's slots -> their persona's system prompt (prompt-vote runs them without adapters)."""
    return {slot: p["system"] for slot, p in gen0_members(config).items()}


def persona_training(config: dict, persona: dict) -> dict:
    """The run's training settings with the persona's overrides applied."""
    return {**config["training"], **persona.get("training", {})}


# The config keys each stage reads. Rules pass exactly this as `params`, so editing a key reruns the
# stages that read it and their downstream, nothing else. Every stage also gets its replicate's `seed`.
STAGE_KEYS = {
    "build_base": ["base_model", "base", "personas"],
    "train_persona": ["base", "training"],
    "train_control": ["base", "training", "personas", "population", "generations", "evolution", "controls"],
    "debate": ["base", "debate", "tasks"],
    "fitness": ["base", "debate", "tasks", "fitness"],
    "select": ["population", "evolution"],
    "debate_train": ["base", "debate", "tasks"],
    "breed": ["evolution"],
    "lamarck": ["base", "evolution", "training", "personas"],
    "evaluate": ["base", "debate", "tasks", "evaluation"],
    "report": [
        "seeds",
        "population",
        "generations",
        "personas",
        "tasks",
        "training",
        "fitness",
        "evolution",
        "controls",
        "evaluation",
    ],
}


def stage_config(config: dict, stage: str, seed: int | None = None) -> dict:
    """The part of the validated config that `stage` reads, plus `seed`: the replicate's seed (default:
    the first of `seeds`, which also builds the shared base)."""
    picked = {k: config[k] for k in STAGE_KEYS[stage]}
    if "debate" in picked:  # how the debate is split into jobs changes no result: no stage reruns for it
        # nor does the aggregator change a debate's turns: its votes record the confidence vote (fitted after)
        unread = {"shards", "aggregator"} if stage in ("debate", "debate_train") else {"shards"}
        picked["debate"] = {k: v for k, v in picked["debate"].items() if k not in unread}
    return {"seed": config["seeds"][0] if seed is None else seed, **picked}
