"""Stage evaluate: one job per generation of a replicate -> eval/<target>.json per target (lm-eval's JSON shape).

A generation's job (config.generation_eval_targets) runs its test-split debate once and its single-model
targets on the base loaded once; `base` (shared by all seeds) and gen0-best (its agent's gen0-<agent>
result, picked by the fitness of the run that asks) are jobs of their own. What each target is and how
the job computes it: evoswarm.evaluate.job; target names: evoswarm.targets.

By hand (the targets of a generation, or --targets any of them):
  python workflow/scripts/evaluate.py --config config.yaml --gen 0 --adapters results/seed0/gen0/adapters/* \
      --dev-votes results/seed0/gen0/debate/votes.jsonl --out-dir results/seed0/eval
  python workflow/scripts/evaluate.py --config config.yaml --gen 1 --adapters results/seed0/gen1/adapters/* \
      --fitness results/seed0/gen1/fitness.csv --dev-votes results/seed0/gen1/debate/votes.jsonl \
      --out-dir results/seed0/eval
  python workflow/scripts/evaluate.py --config config.yaml --targets base --out-dir results/eval
  python workflow/scripts/evaluate.py --config config.yaml --targets gen0-best \
      --fitness results/seed0/gen0/fitness.csv --agent-evals results/seed0/eval/gen0-*.json --out-dir results/seed0/eval
  python workflow/scripts/evaluate.py --config config.yaml --targets multitask oracle \
      --adapters results/seed0/controls/multitask --agent-evals results/seed0/eval/gen0-*.json \
      --out-dir results/seed0/eval
"""

from pathlib import Path

from evoswarm import stage
from evoswarm.config import gen0_skills, gen0_systems, generation_eval_targets
from evoswarm.evaluate.job import evaluate
from evoswarm.io import InputError


def outs_of_job(sm) -> dict[str, str]:
    return {Path(p).name.removesuffix(".json"): p for p in sm.output}


def outs_by_hand(run: stage.Hand) -> dict[str, str]:
    """<out-dir>/<target>.json for --targets, or for the targets of generation --gen."""
    if run.flags.targets is None and run.flags.gen is None:
        raise InputError("give --gen or --targets")
    targets = run.flags.targets if run.flags.targets is not None else generation_eval_targets(run.config, run.flags.gen)
    return {t: f"{run.flags.out_dir}/{t}.json" for t in targets}


if __name__ == "__main__":
    stage.entry(
        evaluate,
        stage="evaluate",
        threads=stage.MODEL_THREADS,
        base=stage.BASE,
        tasks=stage.Arg("input.tasks", "--tasks", default=lambda run: run.config["tasks"]["test"]),
        outs=stage.Arg(outs_of_job, hand=outs_by_hand),
        adapters=stage.Arg("input.adapters", "--adapters", nargs="*", default=[]),
        fitness=stage.Arg("input.fitness", "--fitness"),
        population=stage.Arg("params.population", hand=lambda run: run.config["population"]),
        systems=stage.Arg("params.systems", hand=lambda run: gen0_systems(run.config)),
        agent_evals=stage.Arg(
            "input.agent_evals", "--agent-evals", nargs="*", default=[], help="gen0-<agent>.json (gen0-best, oracle)"
        ),
        skills=stage.Arg("params.skills", hand=lambda run: gen0_skills(run.config)),
        dev_votes=stage.Arg(
            "input.dev_votes", "--dev-votes", help="the generation's dev votes.jsonl (the aggregators fit on it)"
        ),
        flags={
            "--gen": dict(type=int, default=None, help="evaluate this generation's targets"),
            "--targets": dict(nargs="*", default=None, help="these targets instead (e.g. base, gen0-best)"),
            "--out-dir": dict(required=True, help="writes <out-dir>/<target>.json"),
        },
    )
