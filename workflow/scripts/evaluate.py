"""Stage evaluate: one job per generation of a replicate -> eval/<target>.json per target (lm-eval's JSON shape).

A generation's job (config.generation_eval_targets) runs its test-split debate once and its single-model
targets on the base loaded once:
  team-gen<g>  the generation's adapters, full debate (judge as configured);
  team-vote    (g = 0) that debate stopped after round 1: the confidence-weighted vote of the round-1
               turns with the debate's seeded tie-break (scoring.weighted_vote), or, with a judge, the
               judge over the round-1 turns; its budget is round 1's (and that judge's), what a one-round
               debate costs. The members' solo answers are that round 1;
  gen0-<agent> (g = 0) and gen<g>-best (g >= 1): lm-eval (model `hf`), every adapter in one PeftModel;
  prompt-vote  (g = 0) the base under each gen-0 persona's system prompt, no adapter, one round;
  base-sc      (g = 0) base-model self-consistency: k sampled round-1 turns, majority (k = agents x rounds
               by default). prompt-vote and base-sc read only the base, but share the job's imports and model.
Jobs of their own: `base` (lm-eval, shared by all seeds) and gen0-best (its agent's gen0-<agent> result,
the agent picked by the fitness of the run that asks, so a study arm with its own fitness gets its own).
Every result records its budget (model calls, generated tokens, scored continuations). The log has a
line per target and per batch of model calls, with elapsed time and an ETA.

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
import dataclasses
import gc
import json
import tempfile
from pathlib import Path

from evoswarm import stage
from evoswarm.backends import make_backend
from evoswarm.config import derive_seed
from evoswarm.evaluate.harness import (
    CountingBackend,
    accuracy,
    budget,
    lm_eval_docs,
    load_lm_eval_model,
    n_items,
    result_json,
    run_lm_eval,
    sample_answer,
    seeded_majority,
    use_adapter,
)
from evoswarm.evolve.selection import best_adapter, best_agent
from evoswarm.io import InputError, write_json
from evoswarm.layout import eval_failure
from evoswarm.model.adapters import check_base, read_lineage
from evoswarm.model.base import load_tokenizer, read_manifest
from evoswarm.progress import TargetsProgress
from evoswarm.protocol.scoring import metric_name
from evoswarm.world.items import load_items


def target_seed(config: dict, target: str) -> int:
    return derive_seed(config["seed"], "evaluate", target)


def lineage_system(target: str, base: str, adapter: str) -> str:
    """The adapter's persona system prompt, after checking it exists and was trained on this base."""
    if not Path(adapter).is_dir():
        raise InputError(f"target {target}: adapter {adapter} is missing")
    check_base(adapter, read_manifest(base))
    return read_lineage(adapter).get("system", "")


def single(config, target, base, adapter, items, seed, lm=None):
    """lm-eval on the base (and one adapter): with `lm` (load_lm_eval_model) the adapter of that name is
    scored on the model already loaded, else lm-eval builds the model from model_args."""
    system = lineage_system(target, base, adapter) if adapter else ""
    tokenizer = load_tokenizer(base, config["base"]["trust_remote_code"])
    docs = lm_eval_docs(items, tokenizer, system, config["tasks"]["scorer"])
    if lm is not None and adapter:
        use_adapter(lm, Path(adapter).name)
    with tempfile.TemporaryDirectory() as work:
        out = run_lm_eval(
            read_manifest(base)["path"], adapter, docs, Path(work), config, seed, config["evaluation"]["batch_size"], lm
        )
    out["evoswarm"].update(target=target, adapter=adapter, system=system)
    return out


def counting_backend(config, base, backend=None, on_call=None) -> CountingBackend:
    """The debate's backend over the base (or `backend`, already loaded), counting what it generates and
    scores (for the budget) from zero."""
    backend = backend or make_backend(config["debate"]["backend"], base, config)
    return CountingBackend(backend, load_tokenizer(base, config["base"]["trust_remote_code"]), on_call)


def debate_settings(config, seed, rounds):
    from evoswarm.debate.loop import DebateSettings

    return dataclasses.replace(
        DebateSettings.from_config(config["debate"], config["tasks"]["scorer"], seed), rounds=rounds
    )


def team_agents(backend, target, base, adapters=(), systems=None):
    """Generation adapters, or (prompt-vote) the base under each persona's system prompt with no adapter."""
    from evoswarm.debate.agents import Agent, load_agents

    if adapters:
        return load_agents(backend, base, adapters)
    agents = [Agent(name, system, adapter=None) for name, system in (systems or {}).items()]
    if not agents:
        raise InputError(f"target {target}: no agents (needs adapters or persona system prompts)")
    return agents


def team_result(target, agents, items, per_item, turns, s, judge, budget, extra=None):
    return result_json(
        per_item,
        "debate",
        {
            "target": target,
            "agents": [a.name for a in agents],
            "adapters": [a.adapter for a in agents],
            "systems": [a.system for a in agents],
            "rounds": s.rounds,
            "judge": bool(judge),
            "parse_failure_rate": sum(not t["parsed"] for t in turns) / len(turns),
            "budget": budget,
            **(extra or {}),
        },
        s.scorer,
    )


def team(config, target, backend, agents, items, seed, rounds):
    """A team through the debate evaluator; the judge takes part as in the debate stage.
    Returns (result, transcripts)."""
    from evoswarm.debate.loop import judge_agent, run_debate

    s = debate_settings(config, seed, rounds)
    judge = judge_agent(config["debate"])
    # The last round's summaries are read by no one here (a judge still gets them): not generated.
    transcripts, votes = run_debate(backend, agents, items, s, judge=judge, final_summaries=False)
    skills = {it["id"]: it.get("skill", "") for it in items}
    per_item = [{"id": v["question_id"], "skill": skills[v["question_id"]], "correct": v["correct"]} for v in votes]
    turns = len(transcripts) + (len(items) if judge else 0)  # one model call per agent turn and judge turn
    return team_result(target, agents, items, per_item, transcripts, s, judge, backend.budget(turns)), transcripts


def first_round_vote(config, target, backend, agents, items, transcripts, debate_seed, debated):
    """The team's answer had the debate (`transcripts`, seed `debate_seed`, run on `backend` from zero)
    stopped after round 1: the weighted vote of the round-1 turns with the debate's tie-break, or the
    judge's pick over them (asked now, with the debate's judge seed). Budget: round 1's model calls,
    tokens and continuations (CountingBackend.spent_on its prompts), plus this judge's: what a one-round
    debate costs."""
    from evoswarm.debate.loop import judge_agent, judge_answers
    from evoswarm.protocol.prompts import PeerAnswer
    from evoswarm.protocol.scoring import SCORERS, vote_key, weighted_vote

    s = debate_settings(config, debate_seed, rounds=1)
    judge = judge_agent(config["debate"])
    round1 = [t for t in transcripts if t["round"] == 1]
    turns = {it["id"]: {} for it in items}
    for t in round1:
        turns[t["question_id"]][t["agent"]] = PeerAnswer(t["agent"], t["answer"], t["confidence"], t["summary"])
    generated, scored = backend.spent_on({t["prompt_sha"] for t in round1})
    if not judge and s.answer_mode == "loglik" and all(it.get("choices") for it in items):
        generated = 0  # a one-round loglik debate without a judge generates no (unread) summaries
    if judge:
        before = (backend.generated_tokens, backend.scored_continuations)
        picks = {q: j["answer"] for q, j in judge_answers(backend, judge, items, turns, s).items()}
        generated += backend.generated_tokens - before[0]
        scored += backend.scored_continuations - before[1]
    else:
        picks = {
            q: weighted_vote([(a.answer, a.confidence) for a in by.values()], s.seed, q, vote_key(s.scorer))[0]
            for q, by in turns.items()
        }
    score = SCORERS[s.scorer]
    per_item = [
        {
            "id": it["id"],
            "skill": it.get("skill", ""),
            "correct": score(picks[it["id"]], it["answer"], it.get("choices")),
        }
        for it in items
    ]
    spent = budget(len(round1) + (len(items) if judge else 0), generated, scored)
    return team_result(target, agents, items, per_item, round1, s, judge, spent, {"round_1_of": debated})


def self_consistency(config, target, backend, items, seed, k):
    """k full round-1 turns of the base (no system prompt) sampled per item, each seeded; the majority of
    the parsed answers, whatever the debate's answer mode. Unparsed samples abstain."""
    from evoswarm.backends import GenRequest
    from evoswarm.protocol.chat import chat
    from evoswarm.protocol.prompts import turn_prompt
    from evoswarm.protocol.scoring import SCORERS

    dcfg, ecfg = config["debate"], config["evaluation"]
    temperature, top_p = ecfg["self_consistency_temperature"], ecfg["self_consistency_top_p"]
    msgs = [chat("", turn_prompt(it["question"], it.get("choices"))) for it in items]  # a round-1 debate turn
    texts = backend.generate(
        [
            GenRequest(None, m, dcfg["max_new_tokens"], temperature, top_p, derive_seed(seed, "sample", j))
            for j in range(k)
            for m in msgs
        ]
    )
    scorer = config["tasks"]["scorer"]
    score = SCORERS[scorer]
    per_item, abstained = [], 0
    for i, it in enumerate(items):
        answers = [sample_answer(texts[j * len(items) + i], it.get("choices")) for j in range(k)]
        abstained += answers.count("")
        answer, votes = seeded_majority(answers, seed, it["id"], scorer)
        correct = score(answer, it["answer"], it.get("choices"))  # an abstention ('') scores 0 by every scorer
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
        scorer,
    )


def copied_best(target, fitness, agent_evals) -> dict:
    """gen0-best: the result of the gen-0 agent the fitness ranks first, already scored as gen0-<agent>."""
    best = best_agent(fitness, f"target {target}")
    by_target = {Path(p).name.removesuffix(".json"): p for p in agent_evals}
    path = by_target.get(f"gen0-{best}")
    if path is None:
        raise InputError(f"target {target}: no gen0-{best}.json among the agent results given ({', '.join(by_target)})")
    res = json.loads(Path(path).read_text(encoding="utf-8"))
    res["evoswarm"].update(target=target, agent=best)
    return res


def work_estimate(config, targets, n_items, population) -> dict[str, int]:
    """Estimated backend requests per target (the ETA's unit): a loglik debate turn is one (its choices
    scored) plus one for its summary where a later round or the judge reads it, a generated turn one; a
    judge turn likewise; an lm-eval item one. The costs of a request differ, so the ETA is rough until the
    first targets are done."""
    dcfg = config["debate"]
    loglik, judged = dcfg["answer_mode"] == "loglik", bool(dcfg["judge"])

    def debate(agents: int, rounds: int) -> int:
        summarised = (rounds if judged else rounds - 1) if loglik else 0
        return n_items * (agents * (rounds + summarised) + (2 if loglik else 1) * judged)

    k = config["evaluation"]["self_consistency_k"] or population * dcfg["rounds"]
    work = {}
    for t in targets:
        if t.startswith("team-gen"):
            work[t] = debate(population, dcfg["rounds"])
        elif t == "team-vote":
            work[t] = n_items * (2 if loglik else 1) * judged
        elif t == "prompt-vote":
            work[t] = debate(population, 1)
        elif t == "base-sc":
            work[t] = n_items * k
        elif t == "gen0-best":
            work[t] = 0
        else:
            work[t] = n_items
    return work


def evaluations(config, targets, base, items, adapters, fitness, population, systems, agent_evals, progress):
    """Yields (target, result) for every target asked, each as soon as it is done: first what goes through
    the debate's backend (loaded once), then the lm-eval targets (the base loaded once more, lm-eval's way)."""
    singles = {}  # target -> (agent or None, adapter folder or None)
    for t in targets:
        progress.current = t  # a failure here is this target's
        if t == "base":
            singles[t] = (None, None)
        elif t.startswith("gen0-") and t != "gen0-best":
            agent = t.removeprefix("gen0-")
            found = [a for a in adapters if Path(a).name == agent]
            if not found:
                raise InputError(f"target {t}: no adapter folder named {agent} among {adapters}")
            singles[t] = (None, found[0])
        elif t.endswith("-best") and t != "gen0-best":
            singles[t] = best_adapter(adapters, fitness, f"target {t}")
        if singles.get(t, (None, None))[1]:
            lineage_system(t, base, singles[t][1])  # a missing or foreign adapter fails before any model loads
    rounds = config["debate"]["rounds"]
    debated = next((t for t in targets if t.startswith("team-gen")), None)
    if "team-vote" in targets and debated is None:
        debated = "team-gen0"  # team-vote is that debate's round 1
    on_debate_backend = [t for t in targets if t in ("team-vote", "prompt-vote", "base-sc")]
    if debated or on_debate_backend:
        loaded = make_backend(config["debate"]["backend"], base, config)
        if debated:
            progress.start(debated)
            backend = counting_backend(config, base, loaded, progress.advance)
            agents = team_agents(backend, debated, base, adapters)
            seed = target_seed(config, debated)
            res, transcripts = team(config, debated, backend, agents, items, seed, rounds)
            if debated in targets:
                yield debated, res
            if "team-vote" in targets:
                progress.start("team-vote")
                yield (
                    "team-vote",
                    first_round_vote(config, "team-vote", backend, agents, items, transcripts, seed, debated),
                )
        if "prompt-vote" in targets:
            progress.start("prompt-vote")
            backend = counting_backend(config, base, loaded, progress.advance)
            agents = team_agents(backend, "prompt-vote", base, systems=systems)
            yield (
                "prompt-vote",
                team(config, "prompt-vote", backend, agents, items, target_seed(config, "prompt-vote"), 1)[0],
            )
        if "base-sc" in targets:
            progress.start("base-sc")
            backend = counting_backend(config, base, loaded, progress.advance)
            k = config["evaluation"]["self_consistency_k"] or population * rounds
            yield "base-sc", self_consistency(config, "base-sc", backend, items, target_seed(config, "base-sc"), k)
        del loaded, backend  # free the debate's model before lm-eval loads the base
        gc.collect()
        free_gpu_cache()
    if singles:
        first = next(iter(singles))
        progress.start(first)  # loading the model is the first target's work
        named = {Path(a).name: a for _, a in singles.values() if a}
        lm = load_lm_eval_model(read_manifest(base)["path"], named, config, config["evaluation"]["batch_size"])
        for t, (agent, adapter) in singles.items():
            if t != first:
                progress.start(t)
            res = single(config, t, base, adapter, items, target_seed(config, t), lm)
            if agent:
                res["evoswarm"]["agent"] = agent
            yield t, res
    if "gen0-best" in targets:
        progress.start("gen0-best")
        yield "gen0-best", copied_best("gen0-best", fitness, agent_evals)


def free_gpu_cache() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


KNOWN = ("base", "base-sc", "prompt-vote", "team-vote")


def check_targets(targets) -> None:
    for t in targets:
        known = t in KNOWN or t.startswith("gen0-") or t.startswith("team-gen") or t.endswith("-best")
        if not known:
            raise InputError(f"unknown evaluation target {t!r}")


def main(
    config: dict,
    base: str | None,
    tasks: str | None,
    outs: dict[str, str],
    adapters: list[str] | None = None,
    fitness: str | None = None,
    population: int = 3,
    systems: dict[str, str] | None = None,
    agent_evals: list[str] | None = None,
) -> None:
    """Evaluate every target of `outs` (target -> result JSON path). A target that fails leaves
    `<target>.failed.json` (evoswarm.layout.eval_failure) saying why and fails the job (Snakemake then
    reruns the job, where a result JSON saying "failed" would count as done)."""
    check_targets(outs)
    copies_only = set(outs) == {"gen0-best"}  # reads results, not the test items
    items = [] if copies_only else load_items(tasks, config["evaluation"]["limit"], config["tasks"]["scorer"])
    progress = TargetsProgress(work_estimate(config, list(outs), len(items), population))
    results = evaluations(
        config, list(outs), base, items, adapters or [], fitness, population, systems or {}, agent_evals or [], progress
    )
    while True:
        try:
            target, res = next(results)
        except StopIteration:
            break
        except Exception as e:
            failed = progress.current or next(iter(outs))
            record = {"failed": True, "error": f"{type(e).__name__}: {e}", "evoswarm": {"target": failed}}
            write_json(eval_failure(outs[failed]), record)
            raise
        write_json(outs[target], res)
        Path(eval_failure(outs[target])).unlink(missing_ok=True)
        ev = res["evoswarm"]
        progress.finish(
            target,
            f"{metric_name(config['tasks']['scorer'])} {accuracy(res):.3f} on {n_items(res)} items "
            f"({ev['evaluator']}); budget {ev['budget']}",
        )


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
