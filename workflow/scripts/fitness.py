"""Stage fitness: score each agent of a generation from its debate -> fitness.csv.

task = solo accuracy (round 1); cooperation = Shapley value or leave-one-out gain of the team, with
v(S) the team accuracy of coalition S: re-voting the recorded final answers with the debate's
tie-break seed (with `debate.judge`, re-running the judge on S's final turns), or re-running the
debate; novelty = embedding distance from the others (base model hidden states over the agent's
turns) or answer divergence. fitness.csv keeps the raw parts, the normalised parts and the fitness.

By hand: python workflow/scripts/fitness.py --config config.yaml --gen 0
"""

from evoswarm import layout, stage
from evoswarm.config import members
from evoswarm.evolve.fitness import score_generation


def debate_of(name: str) -> stage.Arg:
    """The generation's dev debate's `name` file (by hand: the replicate's, in the config's results)."""
    return stage.Arg(
        f"input.{name}", hand=lambda run: layout.debate_out(run.config["results"], run.seed, run.flags.gen, name)
    )


def adapters(run: stage.Hand) -> list[str]:
    gen = run.flags.gen
    return [layout.adapter_dir(run.config["results"], run.seed, gen, m) for m in members(run.config, gen)]


if __name__ == "__main__":
    stage.entry(
        score_generation,
        stage="fitness",
        threads=stage.MODEL_THREADS,
        base=stage.Arg("input.base", hand=lambda run: layout.base_dir(run.config["results"])),
        adapters=stage.Arg("input.adapters", hand=adapters),
        transcripts=debate_of("transcripts"),
        votes=debate_of("votes"),
        tasks=stage.Arg("input.tasks", hand=lambda run: run.config["tasks"]["dev"]),
        out=stage.Arg("output[0]", hand=lambda run: layout.fitness_csv(run.config["results"], run.seed, run.flags.gen)),
        gen=stage.Arg("wildcards.gen", "--gen", type=int, required=True),
    )
