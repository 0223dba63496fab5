# Path helpers, wildcard constraints and the validated config. Every rule takes its paths from here;
# the paths themselves are defined once in evoswarm.layout (shared with the stage scripts).
from evoswarm import layout
from evoswarm.config import (
    evaluation_targets,
    gen0_members,
    gen0_systems,
    members,
    stage_config,
    validate,
)

# Fails in the first second, naming the key, on an unknown or mistyped key or a bad value.
_validated = validate(config, "config")
config.clear()
config.update(_validated)

R = config["results"]
SEEDS = config["seeds"]
GEN0 = gen0_members(config)
# Rules that run the model ask for a GPU when the config puts the model on one.
GPU = 1 if config["base"]["device"] == "cuda" else 0
# The conda env each rule runs in under `--sdm conda` (paths relative to rules/).
CONDA_ENV = "../envs/cuda.yaml" if GPU else "../envs/cpu.yaml"


wildcard_constraints:
    seed=r"\d+",
    gen=r"\d+",
    bred=r"[1-9]\d*",
    agent=r"[A-Za-z][A-Za-z0-9_-]*",
    target=r"[A-Za-z0-9_-]+",


def base_dir():
    return layout.base_dir(R)


def adapters_of(seed, gen):
    return [layout.adapter_dir(R, seed, gen, a) for a in members(config, int(gen))]


def gen_adapters(wildcards):
    return adapters_of(wildcards.seed, wildcards.gen)


def persona_data(wildcards):
    return GEN0[wildcards.agent]["data"]


def persona_of(wildcards):
    return GEN0[wildcards.agent]


def breed_inputs(wildcards):
    """A child of generation g takes all adapters of g-1 and its selection.json; it reads its parents from the JSON."""
    prev = int(wildcards.bred) - 1
    return {
        "adapters": adapters_of(wildcards.seed, prev),
        "selection": layout.selection_json(R, wildcards.seed, prev),
    }


def params_for(stage):
    """The config keys a stage reads and its replicate's seed, as `params`: editing a key reruns that
    stage and downstream only; adding a seed reruns only the new replicate (and the report).
    """

    def stage_params(wildcards):
        seed = wildcards.get("seed")
        return stage_config(config, stage, SEEDS[0] if seed is None else int(seed))

    return stage_params


# Evaluation targets (DESIGN.md section 4, baselines): lm-eval on single models, the debate evaluator on teams.
def eval_targets():
    return evaluation_targets(config)


def eval_inputs(wildcards):
    """Inputs of one evaluation target: always the base and the test split, plus the adapters it uses."""
    t, seed = wildcards.target, wildcards.get("seed")
    inputs = {"base": base_dir(), "tasks": config["tasks"]["test"]}
    if t.startswith("gen0-") and t[5:] in GEN0:
        inputs["adapters"] = [layout.adapter_dir(R, seed, 0, t[5:])]
    elif t.endswith("-best"):
        g = int(t[3:-5])
        inputs["adapters"] = adapters_of(seed, g)
        inputs["fitness"] = layout.fitness_csv(R, seed, g)
    elif t == "team-vote":
        inputs["adapters"] = adapters_of(seed, 0)
    elif t.startswith("team-gen"):
        inputs["adapters"] = adapters_of(seed, int(t[8:]))
    # base, base-sc and prompt-vote read the base alone (prompt-vote: + eval_systems)
    elif t not in ("base", "base-sc", "prompt-vote"):
        raise ValueError(f"unknown evaluation target {t!r}; known: {eval_targets()}")
    return inputs


def eval_systems(wildcards):
    """prompt-vote's persona system prompts (passed as params; the other targets read none)."""
    return gen0_systems(config) if wildcards.target == "prompt-vote" else {}


def report_files():
    return layout.report_files(config)


def report_inputs(wildcards=None):
    return layout.flatten(report_files())
