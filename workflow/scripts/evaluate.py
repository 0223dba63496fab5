"""Stage evaluate: one job per generation of a replicate -> eval/<target>.json per target (lm-eval's JSON shape).

A generation's job (config.generation_eval_targets) runs its test-split debate once and its single-model
targets on the base loaded once; `base` (shared by all seeds) and gen0-best (its agent's gen0-<agent>
result, picked by the fitness of the run that asks) are jobs of their own. What each target is and how
the job computes it: evoswarm.evaluate.job; target names: evoswarm.targets.

By hand (the targets of a generation, or --targets any of them):
  python workflow/scripts/evaluate.py --config config.yaml --gen 0 \
      --adapters results/seed0/gen0/adapters/* --out-dir results/seed0/eval
  python workflow/scripts/evaluate.py --config config.yaml --gen 1 --adapters results/seed0/gen1/adapters/* \
      --fitness results/seed0/gen1/fitness.csv --out-dir results/seed0/eval
  python workflow/scripts/evaluate.py --config config.yaml --targets base --out-dir results/eval
  python workflow/scripts/evaluate.py --config config.yaml --targets gen0-best \
      --fitness results/seed0/gen0/fitness.csv --agent-evals results/seed0/eval/gen0-*.json --out-dir results/seed0/eval
"""

import argparse
from pathlib import Path

from evoswarm import stage
from evoswarm.evaluate.job import evaluate as main

sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            config=sm.params.config,
            base=sm.input.get("base"),
            tasks=sm.input.get("tasks"),
            outs={Path(p).name.removesuffix(".json"): p for p in sm.output},
            adapters=list(sm.input.get("adapters", [])),
            fitness=sm.input.get("fitness"),
            population=sm.params.population,
            systems=sm.params.systems,
            agent_evals=list(sm.input.get("agent_evals", [])),
        ),
        sm.log[0],
        sm.threads,
        without_bitsandbytes=sm.params.config["debate"]["backend"] == "hf",  # loads no quantized model
    )
elif __name__ == "__main__":
    from evoswarm.config import gen0_systems, generation_eval_targets, load_config, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--gen", type=int, default=None, help="evaluate this generation's targets")
    ap.add_argument("--targets", nargs="*", default=None, help="these targets instead (e.g. base, gen0-best)")
    ap.add_argument("--base", default="results/base")
    ap.add_argument("--tasks", default=None, help="default: the config's test split")
    ap.add_argument("--adapters", nargs="*", default=[])
    ap.add_argument("--fitness", default=None)
    ap.add_argument("--agent-evals", nargs="*", default=[], help="gen0-<agent>.json results (for gen0-best)")
    ap.add_argument("--out-dir", required=True, help="writes <out-dir>/<target>.json")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    cfg = load_config(a.config)
    if a.targets is None and a.gen is None:
        ap.error("give --gen or --targets")
    targets = a.targets if a.targets is not None else generation_eval_targets(cfg, a.gen)
    stage.run(
        main,
        dict(
            config=stage_config(cfg, "evaluate"),
            base=a.base,
            tasks=a.tasks or cfg["tasks"]["test"],
            outs={t: f"{a.out_dir}/{t}.json" for t in targets},
            adapters=a.adapters,
            fitness=a.fitness,
            population=cfg["population"],
            systems=gen0_systems(cfg),
            agent_evals=a.agent_evals,
        ),
        threads=a.threads,
    )
