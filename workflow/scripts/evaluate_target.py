"""Stage evaluate: one evaluation target on the test split -> eval/<target>.json (lm-eval's JSON shape).

Targets: base | gen0-<agent> | gen<g>-best (lm-eval, model `hf`, `peft=` for adapters);
base-sc (base-model self-consistency: k sampled round-1 turns, majority; k = agents x rounds by default);
prompt-vote (the base with each gen-0 persona's system prompt and no adapter, one round);
team-vote (generation 0's adapters, one round: persona vote without debate) | team-gen<g> (full debate).
Every result records its budget (model calls, generated tokens, scored continuations).

By hand: python workflow/scripts/evaluate_target.py --config config.yaml --target gen0-critic \
             --adapters results/seed0/gen0/adapters/critic --out results/seed0/eval/gen0-critic.json
"""

import argparse
import dataclasses
import tempfile
from pathlib import Path

from evoswarm import stage
from evoswarm.adapters import check_base, read_lineage
from evoswarm.backends import make_backend
from evoswarm.base_model import load_tokenizer, read_manifest
from evoswarm.config import derive_seed
from evoswarm.evaluation import (
    CountingBackend,
    accuracy,
    lm_eval_docs,
    result_json,
    run_lm_eval,
    sample_answer,
    seeded_majority,
)
from evoswarm.fitness import read_fitness_csv
from evoswarm.io import InputError, write_json
from evoswarm.layout import eval_failure
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


def counting_backend(config, base) -> CountingBackend:
    """The debate's backend over the base, counting what it generates and scores (for the budget)."""
    backend = make_backend(config["debate"]["backend"], base, config)
    return CountingBackend(backend, load_tokenizer(base, config["base"]["trust_remote_code"]))


def team(config, target, base, items, seed, rounds, adapters=(), systems=None):
    """A team through the debate evaluator: generation adapters, or (prompt-vote) the base under each
    persona's system prompt with no adapter. The judge takes part as in the debate stage."""
    from evoswarm.debate import Agent, DebateSettings, judge_agent, run_debate
    from evoswarm.population import load_agents

    backend = counting_backend(config, base)
    if adapters:
        agents = load_agents(backend, base, adapters)
    else:
        agents = [Agent(name, system, adapter=None) for name, system in (systems or {}).items()]
    if not agents:
        raise InputError(f"target {target}: no agents (needs adapters or persona system prompts)")
    dcfg = config["debate"]
    s = dataclasses.replace(DebateSettings.from_config(dcfg, config["tasks"]["scorer"], seed), rounds=rounds)
    judge = judge_agent(dcfg)
    transcripts, votes = run_debate(backend, agents, items, s, judge=judge)
    skills = {it["id"]: it.get("skill", "") for it in items}
    per_item = [
        {"id": v["question_id"], "skill": skills[v["question_id"]], "correct": bool(v["correct"])} for v in votes
    ]
    fails = sum(not t["parsed"] for t in transcripts)
    turns = len(transcripts) + (len(items) if judge else 0)  # one model call per agent turn and judge turn
    return result_json(
        per_item,
        "debate",
        {
            "target": target,
            "agents": [a.name for a in agents],
            "adapters": [a.adapter for a in agents],
            "systems": [a.system for a in agents],
            "rounds": rounds,
            "judge": bool(judge),
            "parse_failure_rate": fails / len(transcripts),
            "budget": backend.budget(turns),
        },
    )


def self_consistency(config, target, base, items, seed, k):
    """k full round-1 turns of the base (no system prompt) sampled per item, each seeded; the majority of
    the parsed answers, whatever the debate's answer mode. Unparsed samples abstain."""
    from evoswarm.backends import GenRequest
    from evoswarm.prompts import chat, turn_prompt
    from evoswarm.scoring import SCORERS

    dcfg, ecfg = config["debate"], config["evaluation"]
    temperature, top_p = ecfg["self_consistency_temperature"], ecfg["self_consistency_top_p"]
    backend = counting_backend(config, base)
    msgs = [chat("", turn_prompt(it["question"], it.get("choices"))) for it in items]  # a round-1 debate turn
    texts = backend.generate(
        [
            GenRequest(None, m, dcfg["max_new_tokens"], temperature, top_p, derive_seed(seed, "sample", j))
            for j in range(k)
            for m in msgs
        ]
    )
    score = SCORERS[config["tasks"]["scorer"]]
    per_item, abstained = [], 0
    for i, it in enumerate(items):
        answers = [sample_answer(texts[j * len(items) + i], it.get("choices")) for j in range(k)]
        abstained += answers.count("")
        answer, votes = seeded_majority(answers, seed, it["id"])
        correct = bool(answer) and bool(score(answer, it["answer"], it.get("choices")))
        per_item.append(
            {"id": it["id"], "skill": it.get("skill", ""), "correct": correct, "answer": answer, "votes": votes}
        )
    return result_json(
        per_item,
        "self-consistency",
        {
            "target": target,
            "k": k,
            "temperature": temperature,
            "top_p": top_p,
            "parse_failure_rate": abstained / (k * len(items)) if items else 0.0,
            "budget": backend.budget(k * len(items)),
        },
    )


def main(
    config: dict,
    target: str,
    base: str,
    tasks: str,
    out: str,
    adapters: list[str] | None = None,
    fitness: str | None = None,
    population: int = 3,
    systems: dict[str, str] | None = None,
) -> None:
    failure = Path(eval_failure(out))
    try:
        res = evaluate(config, target, base, tasks, adapters or [], fitness, population, systems or {})
    except Exception as e:
        # Recorded for the report, and raised: the job fails, so Snakemake reruns it next time (a
        # transient out-of-memory is retried), where a result JSON saying "failed" would count as done.
        write_json(failure, {"failed": True, "error": f"{type(e).__name__}: {e}", "evoswarm": {"target": target}})
        raise
    write_json(out, res)
    failure.unlink(missing_ok=True)
    print(
        f"{target}: accuracy {accuracy(res):.3f} on {res['n-samples']['evoswarm_mc']['effective']} items "
        f"({res['evoswarm']['evaluator']}); budget {res['evoswarm']['budget']}"
    )


def evaluate(config, target, base, tasks, adapters, fitness, population, systems) -> dict:
    """`systems`: gen-0 slot -> persona system prompt, read by prompt-vote only."""
    items = load_items(tasks, config["evaluation"]["limit"])
    seed = derive_seed(config["seed"], "evaluate", target)
    rounds = config["debate"]["rounds"]
    if target == "base":
        res = single(config, target, base, None, items, seed)
    elif target == "base-sc":
        k = config["evaluation"]["self_consistency_k"] or population * rounds
        res = self_consistency(config, target, base, items, seed, k)
    elif target == "prompt-vote":
        res = team(config, target, base, items, seed, rounds=1, systems=systems)
    elif target == "team-vote":
        res = team(config, target, base, items, seed, rounds=1, adapters=adapters)
    elif target.startswith("team-gen"):
        res = team(config, target, base, items, seed, rounds=rounds, adapters=adapters)
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
            systems=sm.params.systems,
        ),
        sm.log[0],
        sm.threads,
    )
elif __name__ == "__main__":
    from evoswarm.config import gen0_systems, load_config, stage_config

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
            systems=gen0_systems(cfg),
        ),
        threads=a.threads,
    )
