# Path helpers, wildcard constraints and the validated config. Every rule takes its paths from here;
# the paths themselves are defined once in evoswarm.layout (shared with the stage scripts).
import sys

from evoswarm import layout
from evoswarm.config import (
    control_targets,
    gen0_members,
    gen0_skills,
    gen0_systems,
    generation_eval_targets,
    key_locator,
    members,
    stage_config,
    study_arms,
    validate,
)
from evoswarm.debate.shards import shard_bounds
from evoswarm.io import InputError, read_jsonl
from evoswarm.targets import (
    GEN0_BEST,
    SHARED,
    SPECIALIST_LONG,
    TRAINED_CONTROLS,
    persona,
    study_targets,
)
from evoswarm.world.items import check_disjoint_splits, skills_without_items

# Fails in the first second on an unknown or mistyped key or a bad value: one line naming the key and
# the file and line that set it (or --config), not this file, as Snakemake's traceback would.
# The config files in the order Snakemake merges them: the Snakefile's, then each --configfile.
_cli_files = workflow.overwrite_configfiles
_files = workflow.configfiles[len(_cli_files) :] + _cli_files
_overrides = dict(workflow.config_settings.config)
_source = " + ".join(map(str, _files)) + (" + --config" if _overrides else "")
_locate = key_locator(_files, _overrides)
try:
    _validated = validate(config, _source, _locate)
    _arm_cfgs = study_arms(_validated, _source)
except InputError as e:
    sys.exit(f"error: {e}")
config.clear()
config.update(_validated)

R = config["results"]
SEEDS = config["seeds"]


def _strip(c):
    """A config without its study block (what an arm's run reads)."""
    return {k: v for k, v in c.items() if k != "study"}


# Study arms (`study.arms`): name -> file prefix, and prefix -> validated config. An arm that changes
# nothing is the main run itself (prefix ""); every arm shares the main run's generation 0.
ARMS = {
    n: ("" if _strip(c) == _strip(config) else layout.arm_prefix(n))
    for n, c in _arm_cfgs.items()
}
ARM_CONFIGS = {"": config, **{ARMS[n]: c for n, c in _arm_cfgs.items()}}
GEN0 = gen0_members(config)
# `debate.shards` > 1: a debate job writes one contiguous slice of the questions (wildcard `shard`) and
# debate_merge joins the slices into the debate's files; with 1, the debate job writes them itself.
SHARDS = config["debate"]["shards"]
# A debate job's `shard` part of its log and benchmark names (layout.job_name).
SHARD = "{shard}" if SHARDS > 1 else None


def _check_debate_shards():
    """More shards than a debate has questions fails now, naming debate.shards, not in a job later."""
    dev = len(read_jsonl(config["tasks"]["dev"]))
    sizes = [min(dev, config["debate"]["max_questions"] or dev)]
    distill = [
        c
        for c in ARM_CONFIGS.values()
        if c["evolution"]["lamarck"]["step"] == "distill"
    ]
    if distill:
        train = len(read_jsonl(config["tasks"]["train"]))
        sizes += [min(train, c["evolution"]["lamarck"]["train_items"]) for c in distill]
    shard_bounds(min(sizes), SHARDS)


if SHARDS > 1:
    try:
        _check_debate_shards()
    except InputError as e:
        sys.exit(f"error: {_locate(['debate', 'shards'])}: {e}")

# A persona's skill the test split never asks could be neither compared with the base nor routed to.
try:
    _unasked = skills_without_items(config["personas"], config["tasks"]["test"])
except InputError as e:
    sys.exit(f"error: {e}")
if _unasked:
    sys.exit(
        f"error: {_locate(['personas'])}: personas' skill {', '.join(_unasked)} has no items in "
        f"{config['tasks']['test']} (tasks.test)"
    )

# world.disjoint_splits: a held-out item whose question and answer train (or the other held-out split) also
# holds is passed by memory; refuse such task files now, naming both.
if config["world"]["disjoint_splits"]:
    try:
        check_disjoint_splits({s: config["tasks"][s] for s in ("train", "dev", "test")})
    except InputError as e:
        sys.exit(f"error: {e}")

# The controls (controls.targets): what the loop must beat, trained and evaluated once per replicate.
CONTROLS = control_targets(config)
TRAINED = [c for c in CONTROLS if c in TRAINED_CONTROLS]

# Rules that run the model ask for a GPU when the config puts the model on one.
GPU = 1 if config["base"]["device"] == "cuda" else 0
# The conda env each rule runs in under `--sdm conda` (paths relative to rules/).
CONDA_ENV = "../envs/cuda.yaml" if GPU else "../envs/cpu.yaml"


wildcard_constraints:
    arm=layout.ARM_PATTERN,
    shard=r"\d+",
    seed=r"\d+",
    gen=r"\d+",
    bred=r"[1-9]\d*",
    agent=r"[A-Za-z][A-Za-z0-9_-]*",
    target=r"[A-Za-z0-9_-]+",


def base_dir():
    return layout.base_dir(R)


def arm_config(wildcards):
    return ARM_CONFIGS[wildcards.get("arm", "")]


def owner(arm, gen, stage):
    """The prefix whose files hold `stage` ('adapters', 'debate', 'debate_train', 'fitness') of
    generation `gen` for `arm`: the main run's ("") for generation 0 wherever the arm reads the same
    config there, else the arm's own."""
    if gen != 0 or arm == "":
        return arm
    main, mine = config, ARM_CONFIGS[arm]
    if stage == "fitness":
        return (
            ""
            if stage_config(main, "fitness") == stage_config(mine, "fitness")
            else arm
        )
    if stage == "debate_train":
        key = lambda c: c["evolution"]["lamarck"]["train_items"]
        return "" if key(main) == key(mine) else arm
    return ""  # adapters and the dev debate: arms cannot change what they read


def adapters_of(seed, gen, arm=""):
    gen = int(gen)
    return [
        layout.adapter_dir(R, seed, gen, a, owner(arm, gen, "adapters"))
        for a in members(config, gen)
    ]


def gen_adapters(wildcards):
    return adapters_of(wildcards.seed, wildcards.gen, wildcards.get("arm", ""))


def persona_data(wildcards):
    return GEN0[wildcards.agent]["data"]


def persona_of(wildcards):
    return GEN0[wildcards.agent]


def debate_job_out(name, split="dev"):
    """What one debate job writes: the debate's `name` file, or its shard's (`debate.shards` > 1)."""
    if SHARDS == 1:
        return layout.debate_out(R, "{seed}", "{gen}", name, "{arm}", split)
    return layout.debate_shard_out(
        R, "{seed}", "{gen}", name, "{shard}", SHARDS, "{arm}", split
    )


def debate_shards(name, split="dev"):
    """The shards' `name` files that a merge job joins, in shard order."""
    return [
        layout.debate_shard_out(R, "{seed}", "{gen}", name, k, SHARDS, "{arm}", split)
        for k in range(SHARDS)
    ]


def debate_of(seed, gen, arm, split="dev"):
    """{transcripts, votes} of generation `gen`'s debate on `split` (dev: fitness; train: distillation)."""
    where = owner(arm, int(gen), layout.DEBATE_SPLITS[split])
    return {
        n: layout.debate_out(R, seed, gen, n, where, split) for n in layout.DEBATE_FILES
    }


def fitness_inputs(wildcards):
    seed, gen, arm = wildcards.seed, int(wildcards.gen), wildcards.arm
    return {
        "base": base_dir(),
        "adapters": adapters_of(seed, gen, arm),
        "tasks": config["tasks"]["dev"],
        **debate_of(seed, gen, arm),
    }


def select_input(wildcards):
    gen = int(wildcards.gen)
    return layout.fitness_csv(
        R, wildcards.seed, gen, owner(wildcards.arm, gen, "fitness")
    )


def breed_inputs(wildcards):
    """A child of generation g takes all adapters of g-1 and its selection.json; it reads its parents from the JSON."""
    prev = int(wildcards.bred) - 1
    return {
        "adapters": adapters_of(wildcards.seed, prev, wildcards.arm),
        "selection": layout.selection_json(R, wildcards.seed, prev, wildcards.arm),
    }


def lamarck_inputs(wildcards):
    """The bred child, the base, and for distillation its parents' generation's train-split debate."""
    seed, gen, arm = wildcards.seed, int(wildcards.bred), wildcards.arm
    inputs = {
        "bred": layout.bred_dir(R, seed, gen, wildcards.agent, arm),
        "base": base_dir(),
    }
    if ARM_CONFIGS[arm]["evolution"]["lamarck"]["step"] == "distill":
        inputs.update(debate_of(seed, gen - 1, arm, split="train"))
    return inputs


def params_for(stage):
    """The config keys a stage reads (its arm's) and its replicate's seed, as `params`: editing a key
    reruns that stage and downstream only; adding a seed reruns only the new replicate (and the report).
    """

    def stage_params(wildcards):
        seed = wildcards.get("seed")
        params = stage_config(
            arm_config(wildcards), stage, SEEDS[0] if seed is None else int(seed)
        )
        if wildcards.get("shard") is not None:  # one slice of a sharded debate
            params["shard"] = [int(wildcards.shard), SHARDS]
        return params

    return stage_params


# Evaluation targets (docs/design.md, "Evaluation targets and baselines"): one job per generation (config.generation_eval_targets).
def gen_eval_outputs(gen, arm=""):
    """The eval jsons of a generation's evaluation job (patterns with gen="{gen}", arm="{arm}")."""
    return [
        layout.eval_json(R, "{seed}", t, arm)
        for t in generation_eval_targets(config, gen)
    ]


def gen_eval_inputs(wildcards):
    """The base, the test split, the generation's adapters, its dev votes (the team's aggregators fit on
    them) and (g >= 1, for its best agent) its fitness."""
    seed, gen, arm = (
        wildcards.seed,
        int(wildcards.get("gen", 0)),
        wildcards.get("arm", ""),
    )
    inputs = {
        "base": base_dir(),
        "tasks": config["tasks"]["test"],
        "adapters": adapters_of(seed, gen, arm),
        "dev_votes": debate_of(seed, gen, arm)["votes"],
    }
    if gen:
        inputs["fitness"] = layout.fitness_csv(R, seed, gen, owner(arm, gen, "fitness"))
    return inputs


def gen0_best_inputs(wildcards):
    """The fitness of generation 0 that the run asking reads, and the main run's gen0-<agent> results."""
    seed, arm = wildcards.seed, wildcards.arm
    return {
        "fitness": layout.fitness_csv(R, seed, 0, owner(arm, 0, "fitness")),
        "agent_evals": [layout.eval_json(R, seed, persona(a)) for a in GEN0],
    }


def train_control_inputs(wildcards):
    """multitask: the personas' SFT files; specialist-long: generation 0's adapters and the fitness that picks
    its best."""
    if wildcards.control == str(SPECIALIST_LONG):
        return {
            "base": base_dir(),
            "adapters": adapters_of(wildcards.seed, 0),
            "fitness": layout.fitness_csv(R, wildcards.seed, 0),
        }
    return {"base": base_dir(), "data": sorted({p["data"] for p in config["personas"]})}


def controls_eval_inputs(wildcards):
    """The trained controls' adapters, and generation 0's single-agent results the oracle routes among."""
    seed = wildcards.seed
    return {
        "base": base_dir(),
        "tasks": config["tasks"]["test"],
        "adapters": [layout.control_dir(R, seed, c) for c in TRAINED],
        "agent_evals": [layout.eval_json(R, seed, persona(a)) for a in GEN0]
        + [layout.eval_json(R, seed, GEN0_BEST)],
    }


def export_inputs(wildcards):
    """The base, the generation's adapters and the fitness.csv that ranks them (the best is picked from it)."""
    return {
        "base": base_dir(),
        "adapters": adapters_of(wildcards.seed, wildcards.gen),
        "fitness": layout.fitness_csv(R, wildcards.seed, wildcards.gen),
    }


def report_files():
    return layout.report_files(config)


def report_inputs(wildcards=None):
    return layout.flatten(report_files())


# The study (`study.arms`): each arm's first and last generation on the test split, and its dev debate.
STUDY_TARGETS = study_targets(config["generations"])


def study_files():
    """arm -> seed -> {target: eval json, 'votes': last generation's dev votes, 'fitness': its fitness.csv}."""
    G = config["generations"]
    out = {}
    for name, arm in ARMS.items():
        out[name] = {}
        for s in SEEDS:
            evals = {}
            for t in STUDY_TARGETS:  # a best agent is its generation's fitness's pick
                stage = "fitness" if t.kind == "best" else "adapters"
                evals[str(t)] = layout.eval_json(
                    R, s, t, owner(arm, t.generation, stage)
                )
            evals["votes"] = layout.debate_out(
                R, s, G, "votes", owner(arm, G, "debate")
            )
            evals["fitness"] = layout.fitness_csv(R, s, G, owner(arm, G, "fitness"))
            out[name][s] = evals
    return out
