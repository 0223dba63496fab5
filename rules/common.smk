# Path helpers, wildcard constraints and the validated config. Every rule takes its paths from here.
import os

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
G = config["generations"]
GENS = list(range(G + 1))
GEN0 = gen0_members(config)
# Rules that run the model ask for a GPU when the config puts the model on one.
GPU = 1 if config["base"]["device"] == "cuda" else 0
# The conda env each rule runs in under `--sdm conda` (paths relative to rules/).
CONDA_ENV = "../envs/cuda.yaml" if GPU else "../envs/cpu.yaml"


wildcard_constraints:
    gen=r"\d+",
    bred=r"[1-9]\d*",
    agent=r"[A-Za-z][A-Za-z0-9_-]*",
    target=r"[A-Za-z0-9_-]+",


def base_dir():
    return f"{R}/base"


def adapter_dir(gen, agent):
    return f"{R}/gen{gen}/adapters/{agent}"


def adapters_of(gen):
    return [adapter_dir(gen, a) for a in members(config, int(gen))]


def gen_adapters(wildcards):
    return adapters_of(wildcards.gen)


def persona_data(wildcards):
    return GEN0[wildcards.agent]["data"]


def persona_of(wildcards):
    return GEN0[wildcards.agent]


def breed_inputs(wildcards):
    """A child of generation g takes all adapters of g-1 and its selection.json; it reads its parents from the JSON."""
    prev = int(wildcards.bred) - 1
    return {"adapters": adapters_of(prev), "selection": selection_json(prev)}


def debate_out(gen, name):
    return f"{R}/gen{gen}/debate/{name}.jsonl"


def fitness_csv(gen):
    return f"{R}/gen{gen}/fitness.csv"


def selection_json(gen):
    return f"{R}/gen{gen}/selection.json"


def params_for(stage):
    """The config keys a stage reads, as `params`: editing one reruns that stage and downstream only."""
    return stage_config(config, stage)


# Evaluation targets (DESIGN.md section 4, baselines): lm-eval on single models, the debate evaluator on teams.
def eval_targets():
    return evaluation_targets(config)


def eval_inputs(wildcards):
    """Inputs of one evaluation target: always the base and the test split, plus the adapters it uses."""
    t = wildcards.target
    inputs = {"base": base_dir(), "tasks": config["tasks"]["test"]}
    if t.startswith("gen0-") and t[5:] in GEN0:
        inputs["adapters"] = [adapter_dir(0, t[5:])]
    elif t.endswith("-best"):
        g = int(t[3:-5])
        inputs["adapters"] = adapters_of(g)
        inputs["fitness"] = fitness_csv(g)
    elif t == "team-vote":
        inputs["adapters"] = adapters_of(0)
    elif t.startswith("team-gen"):
        inputs["adapters"] = adapters_of(int(t[8:]))
    # base, base-sc and prompt-vote read the base alone (prompt-vote: + eval_systems)
    elif t not in ("base", "base-sc", "prompt-vote"):
        raise ValueError(f"unknown evaluation target {t!r}; known: {eval_targets()}")
    return inputs


def eval_systems(wildcards):
    """prompt-vote's persona system prompts (passed as params; the other targets read none)."""
    return gen0_systems(config) if wildcards.target == "prompt-vote" else {}


def report_inputs(wildcards=None):
    return {
        "evals": [f"{R}/eval/{t}.json" for t in eval_targets()],
        "fitness": [fitness_csv(g) for g in GENS],
        "votes": [debate_out(g, "votes") for g in GENS],
        "transcripts": [debate_out(g, "transcripts") for g in GENS],
        "adapters": [a for g in GENS for a in adapters_of(g)],
    }
