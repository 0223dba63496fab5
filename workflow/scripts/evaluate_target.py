"""Stage evaluate: one evaluation target on the test split -> eval/<target>.json (lm-eval's JSON shape).

Targets: base | gen0-<agent> | gen<g>-best (lm-eval, model `hf`, `peft=` for adapters);
team-vote (generation 0, one round: persona vote without debate) | team-gen<g> (full debate) |
base-sc (base-model self-consistency at the debate's budget, k = agents x rounds).

By hand: python workflow/scripts/evaluate_target.py --config config.yaml --target gen0-critic \
             --adapters results/gen0/adapters/critic --out results/eval/gen0-critic.json
"""

import argparse
import dataclasses
import tempfile
from pathlib import Path

from evoswarm import stage
from evoswarm.adapters import check_base, read_lineage
from evoswarm.base_model import load_tokenizer, read_manifest
from evoswarm.config import derive_seed
from evoswarm.evaluation import accuracy, lm_eval_docs, majority, result_json, run_lm_eval, self_consistency_loglik
from evoswarm.fitness import read_fitness_csv
from evoswarm.io import InputError, write_json
from evoswarm.population import load_items
from evoswarm.selection import ranked


def single(config, target, base, adapter, items, seed):
    system = ""
    if adapter:
        if not Path(adapter).is_dir():
            raise InputError(f"target {target}: adapter {adapter} is missing")
        check_base(adapter, read_manifest(base))
        system = read_lineage(adapter).get("system", "")
    docs = lm_eval_docs(items, load_tokenizer(base, config["base"]["trust_remote_code"]), system)
    with tempfile.TemporaryDirectory() as work:
        out = run_lm_eval(
            read_manifest(base)["path"], adapter, docs, Path(work), config, seed, config["evaluation"]["batch_size"]
        )
    out["evoswarm"].update(target=target, adapter=adapter, system=system)
    return out


def team(config, target, base, adapters, items, seed, rounds):
    from evoswarm.backends import make_backend
    from evoswarm.debate import DebateSettings, run_debate
    from evoswarm.population import load_agents

    backend = make_backend(config["debate"]["backend"], base, config)
    agents = load_agents(backend, base, adapters)
    s = dataclasses.replace(
        DebateSettings.from_config(config["debate"], config["tasks"]["scorer"], seed), rounds=rounds
    )
    transcripts, votes = run_debate(backend, agents, items, s)
    skills = {it["id"]: it.get("skill", "") for it in items}
    per_item = [
        {"id": v["question_id"], "skill": skills[v["question_id"]], "correct": bool(v["correct"])} for v in votes
    ]
    fails = sum(not t["parsed"] for t in transcripts)
    return result_json(
        per_item,
        "debate",
        {
            "target": target,
            "agents": [a.name for a in agents],
            "rounds": rounds,
            "parse_failure_rate": fails / len(transcripts),
        },
    )


def self_consistency(config, target, base, items, seed, k):
    from evoswarm.backends import GenRequest, ScoreRequest, make_backend
    from evoswarm.parsing import match_choice, parse_turn
    from evoswarm.prompts import ANSWER_PREFIX, ANSWER_SUFFIX, chat, turn_prompt
    from evoswarm.scoring import SCORERS

    dcfg = config["debate"]
    backend = make_backend(dcfg["backend"], base, config)
    msgs = [chat("", turn_prompt(it["question"], it.get("choices"))) for it in items]
    if dcfg["answer_mode"] == "loglik" and all(it.get("choices") for it in items):
        scores = backend.score(
            [
                ScoreRequest(None, m, [c + ANSWER_SUFFIX for c in it["choices"]], ANSWER_PREFIX)
                for m, it in zip(msgs, items)
            ]
        )
        answers = self_consistency_loglik(scores, items, k, seed)
    else:
        temperature = dcfg["temperature"] or 0.7  # sampling is the point of self-consistency
        texts = backend.generate(
            [
                GenRequest(None, m, dcfg["max_new_tokens"], temperature, dcfg["top_p"], seed + j)
                for j in range(k)
                for m in msgs
            ]
        )
        answers = []
        for i, it in enumerate(items):
            parsed = [parse_turn(texts[j * len(items) + i]).answer for j in range(k)]
            answers.append(majority([match_choice(a, it["choices"]) or a if it.get("choices") else a for a in parsed]))
    score = SCORERS[config["tasks"]["scorer"]]
    per_item = [
        {"id": it["id"], "skill": it.get("skill", ""), "correct": bool(score(a, it["answer"], it.get("choices")))}
        for a, it in zip(answers, items)
    ]
    return result_json(per_item, "self-consistency", {"target": target, "k": k})


def main(
    config: dict,
    target: str,
    base: str,
    tasks: str,
    out: str,
    adapters: list[str] | None = None,
    fitness: str | None = None,
    population: int = 3,
) -> None:
    try:
        res = evaluate(config, target, base, tasks, adapters or [], fitness, population)
    except Exception as e:  # recorded, so a failed target shows as failed in the report, never drops out
        res = {"failed": True, "error": f"{type(e).__name__}: {e}", "evoswarm": {"target": target}}
        print(f"error: target {target} failed: {res['error']}", flush=True)
        write_json(out, res)
        return
    write_json(out, res)
    print(
        f"{target}: accuracy {accuracy(res):.3f} on {res['n-samples']['evoswarm_mc']['effective']} items "
        f"({res['evoswarm']['evaluator']})"
    )


def evaluate(config, target, base, tasks, adapters, fitness, population) -> dict:
    items = load_items(tasks, config["evaluation"]["limit"])
    seed = derive_seed(config["seed"], "evaluate", target)
    rounds = config["debate"]["rounds"]
    if target == "base":
        res = single(config, target, base, None, items, seed)
    elif target == "base-sc":
        k = config["evaluation"]["self_consistency_k"] or population * rounds
        res = self_consistency(config, target, base, items, seed, k)
    elif target == "team-vote":
        res = team(config, target, base, adapters, items, seed, rounds=1)
    elif target.startswith("team-gen"):
        res = team(config, target, base, adapters, items, seed, rounds=rounds)
    elif target.endswith("-best"):
        if not fitness:
            raise InputError(f"target {target}: needs the generation's fitness.csv")
        best = ranked(read_fitness_csv(fitness))[0]  # the agent selection ranks first
        res = single(config, target, base, next(a for a in adapters if Path(a).name == best), items, seed)
        res["evoswarm"]["agent"] = best
    elif target.startswith("gen0-"):
        res = single(config, target, base, adapters[0] if adapters else None, items, seed)
    else:
        raise InputError(f"unknown evaluation target {target!r}")
    return res


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            config=sm.params.config,
            target=sm.wildcards.target,
            base=sm.input.base,
            tasks=sm.input.tasks,
            out=sm.output[0],
            adapters=list(sm.input.get("adapters", [])),
            fitness=sm.input.get("fitness"),
            population=sm.params.population,
        ),
        sm.log[0],
        sm.threads,
    )
elif __name__ == "__main__":
    from evoswarm.config import load_config, stage_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--target", required=True)
    ap.add_argument("--base", default="results/base")
    ap.add_argument("--tasks", default=None, help="default: the config's test split")
    ap.add_argument("--adapters", nargs="*", default=[])
    ap.add_argument("--fitness", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    cfg = load_config(a.config)
    stage.run(
        main,
        dict(
            config=stage_config(cfg, "evaluate"),
            target=a.target,
            base=a.base,
            tasks=a.tasks or cfg["tasks"]["test"],
            out=a.out,
            adapters=a.adapters,
            fitness=a.fitness,
            population=cfg["population"],
        ),
        threads=a.threads,
    )
