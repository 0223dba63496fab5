"""Stage debate (and debate_train): the agents of one generation debate the task items; writes
transcripts and votes. `debate` runs the dev split (fitness); `debate_train` a seeded sample of the
train split (the data of debate distillation, `evolution.lamarck.step: distill`).

By hand (any task file, any adapters):
  python workflow/scripts/debate.py --config config.yaml --base results/base --tasks data/tasks/dev.jsonl \
      --adapters results/seed0/gen0/adapters/critic results/seed0/gen0/adapters/ideator --out results/my-debate
(`--shard INDEX COUNT` debates one slice of the questions; workflow/scripts/debate_merge.py joins them.)
"""

from evoswarm import layout, stage
from evoswarm.debate.generation import debate_generation


def config(run: stage.Hand) -> dict:
    """The debate's config, and the slice --shard names."""
    return {**run.stage_config, "shard": run.flags.shard} if run.flags.shard else run.stage_config


if __name__ == "__main__":
    stage.entry(
        debate_generation,
        stage="debate",
        threads=stage.MODEL_THREADS,
        config=stage.Arg("params.config", hand=config),
        base=stage.BASE,
        adapters=stage.Arg("input.adapters", "--adapters", nargs="+", required=True),
        tasks=stage.Arg("input.tasks", "--tasks", required=True),
        transcripts=stage.Arg("output.transcripts", hand=lambda run: layout.debate_file(run.flags.out, "transcripts")),
        votes=stage.Arg("output.votes", hand=lambda run: layout.debate_file(run.flags.out, "votes")),
        gen=stage.Arg("wildcards.gen", "--gen", type=int, default=0, help="the generation (seeds its debate)"),
        sample=stage.Arg("params.sample", "--sample", type=int, help="debate a seeded sample of this many items"),
        flags={
            "--out": dict(required=True, help="folder for transcripts.jsonl and votes.jsonl"),
            "--shard": dict(type=int, nargs=2, metavar=("INDEX", "COUNT"), help="debate only this slice (0-based)"),
        },
    )
