"""One evaluation job (config.generation_eval_targets, or any targets by hand): its targets in an order
that loads each model once, a result JSON per target (lm-eval's shape, with its budget) or a failure
record for the one that failed, and a progress line per target and per batch of model calls with an ETA.

  team-gen<g>   the generation's adapters, full debate (judge as configured), the team's answer by
                `debate.aggregator` fitted on the generation's dev debate (`dev_votes`), every
                aggregator's per-item scores recorded beside it;
  team-vote     team-gen0's debate stopped after round 1: the aggregator's vote of the round-1
                turns with the debate's seeded tie-break, or, with a judge, the judge over them; its
                budget is round 1's (and that judge's), what a one-round debate costs;
  prompt-vote   the base under each gen-0 persona's system prompt, no adapter, one round;
  base-sc       base-model self-consistency: k sampled round-1 turns, majority (k = agents x rounds by
                default);
  base, gen0-<agent>, gen<g>-best (g >= 1)   lm-eval (model `hf`), every adapter in one PeftModel;
  gen0-best     its agent's gen0-<agent> result, the agent picked by the fitness of the run that asks;
  multitask, specialist-long   lm-eval on the control's adapter (evoswarm.controls);
  oracle        each item from the gen0-<agent> result of its skill's persona (single.oracle).
"""

from __future__ import annotations

import dataclasses
import gc
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from evoswarm.backends import check_reply_fits, make_backend
from evoswarm.config import derive_seed
from evoswarm.debate.aggregate import AGGREGATORS, Aggregator
from evoswarm.evaluate.harness import CountingBackend, accuracy, load_lm_eval_model, n_items
from evoswarm.evaluate.single import copied_best, lineage_system, oracle, single
from evoswarm.evaluate.teams import counting_backend, first_round_vote, self_consistency, team_agents, team_debate
from evoswarm.evolve.selection import best_adapter
from evoswarm.io import InputError, read_jsonl, write_json
from evoswarm.layout import eval_failure
from evoswarm.model.base import read_manifest
from evoswarm.progress import TargetsProgress
from evoswarm.protocol.scoring import metric_name
from evoswarm.targets import TEAM_VOTE, TRAINED_CONTROLS, Target, team
from evoswarm.world.items import load_items


def target_seed(config: dict, target: Target) -> int:
    return derive_seed(config["seed"], "evaluate", str(target))


def sc_samples(config: dict, population: int) -> int:
    """base-sc's samples per item: evaluation.self_consistency_k, by default as many as the debate's turns."""
    return config["evaluation"]["self_consistency_k"] or population * config["debate"]["rounds"]


@dataclass
class Job:
    """A job's inputs, and what its targets share: the debate's backend (`backend`), the debates run on
    it (team-vote reads team-gen0's round 1), and lm-eval's model (`lm`), each loaded once."""

    config: dict
    base: str
    items: list[dict]
    adapters: list[str]
    fitness: str | None
    population: int
    systems: dict[str, str]
    agent_evals: list[str]
    skills: dict[str, str]  # generation 0's slot -> skill (the oracle's router)
    dev_votes: str | None  # the generation's dev debate's votes.jsonl: what the aggregators fit on
    progress: TargetsProgress
    subjects: dict[Target, tuple[str | None, str | None]] = field(default_factory=dict)  # lm_eval_subject
    backend: object = None
    # team-gen<g> -> (backend, agents, seed, transcripts, the aggregator of its team answer)
    debates: dict[Target, tuple] = field(default_factory=dict)
    lm: object = None

    def counting_backend(self) -> CountingBackend:
        """The debate's backend counting from zero, each batch of calls a progress line."""
        return counting_backend(self.config, self.base, self.backend, self.progress.advance)

    def release_backend(self) -> None:
        """Free the debate's model before lm-eval loads the base."""
        if self.backend is not None:
            self.backend = None
            self.debates.clear()
            gc.collect()
            free_gpu_cache()


def free_gpu_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def lm_eval_subject(job: Job, target: Target) -> tuple[str | None, str | None]:
    """(agent, adapter folder) that an lm-eval target scores: the base alone, a persona's or a trained
    control's adapter (the folder of its name), or the generation's best agent's (by its fitness)."""
    if target.kind == "persona" or target in TRAINED_CONTROLS:
        name = target.agent if target.kind == "persona" else str(target)
        found = [a for a in job.adapters if Path(a).name == name]
        if not found:
            raise InputError(f"target {target}: no adapter folder named {name} among {job.adapters}")
        return None, found[0]
    if target.kind == "best":
        return best_adapter(job.adapters, job.fitness, f"target {target}")
    return None, None


def fitted_aggregators(job: Job, target: Target) -> dict[str, Aggregator] | None:
    """Every aggregator fitted on the generation's dev debate (job.dev_votes); None without dev votes
    (by hand), where the configured aggregator needs no fit (the confidence vote)."""
    chosen = job.config["debate"]["aggregator"]
    if not job.dev_votes:
        if chosen == "confidence":
            return None
        raise InputError(f"target {target}: debate.aggregator {chosen} fits on the dev votes (--dev-votes)")
    votes = read_jsonl(job.dev_votes, required=["question_id", "finals", "gold"])
    fitted = Aggregator.fit(chosen, votes, job.config["tasks"]["scorer"])  # one fit serves every entry
    return {name: dataclasses.replace(fitted, name=name) for name in AGGREGATORS}


def _debate(job: Job, target: Target) -> dict:
    backend = job.counting_backend()
    agents = team_agents(backend, target, job.base, job.adapters)
    seed = target_seed(job.config, target)
    aggregators = fitted_aggregators(job, target)
    rounds = job.config["debate"]["rounds"]
    res, transcripts = team_debate(job.config, target, backend, agents, job.items, seed, rounds, aggregators)
    chosen = aggregators[job.config["debate"]["aggregator"]] if aggregators else None
    job.debates[target] = (backend, agents, seed, transcripts, chosen)
    return res


def _first_round_vote(job: Job, target: Target) -> dict:
    backend, agents, seed, transcripts, aggregator = job.debates[team(0)]
    return first_round_vote(job.config, target, backend, agents, job.items, transcripts, seed, team(0), aggregator)


def _prompt_vote(job: Job, target: Target) -> dict:
    backend = job.counting_backend()
    agents = team_agents(backend, target, job.base, systems=job.systems)
    return team_debate(job.config, target, backend, agents, job.items, target_seed(job.config, target), 1)[0]


def _self_consistency(job: Job, target: Target) -> dict:
    backend = job.counting_backend()
    k = sc_samples(job.config, job.population)
    return self_consistency(job.config, target, backend, job.items, target_seed(job.config, target), k)


def _lm_eval(job: Job, target: Target) -> dict:
    if job.lm is None:  # loading the model is the first lm-eval target's work
        named = {Path(a).name: a for _, a in job.subjects.values() if a}
        batch = job.config["evaluation"]["batch_size"]
        job.lm = load_lm_eval_model(read_manifest(job.base)["path"], named, job.config, batch)
    agent, adapter = job.subjects[target]
    res = single(job.config, target, job.base, adapter, job.items, target_seed(job.config, target), job.lm)
    if agent:
        res["evoswarm"]["agent"] = agent
    return res


def _copy_best(job: Job, target: Target) -> dict:
    return copied_best(target, job.fitness, job.agent_evals)


def _oracle(job: Job, target: Target) -> dict:
    return oracle(target, job.skills, job.agent_evals, job.config["tasks"]["scorer"])


@dataclass(frozen=True)
class Work:
    """What the estimate of a target's backend requests (the ETA's unit) reads. A loglik debate turn is one
    request (its choices scored) plus one for its summary where a later round or the judge reads it, a
    generated turn one; a judge turn likewise; an lm-eval item one. The costs of a request differ, so the
    ETA is rough until the first targets are done."""

    items: int
    agents: int
    rounds: int
    loglik: bool
    judged: bool
    k: int

    def debate(self, rounds: int) -> int:
        summarised = (rounds if self.judged else rounds - 1) if self.loglik else 0
        return self.items * (self.agents * (rounds + summarised) + self.judge_turn())

    def judge_turn(self) -> int:
        """Per item: the judge's requests (none without one)."""
        return (2 if self.loglik else 1) * self.judged


DEBATE_BACKEND, LM_EVAL_MODEL = "debate backend", "lm-eval model"


@dataclass(frozen=True)
class Evaluator:
    """How a job computes the targets whose kind names it (targets.Kind.evaluator): `run`; the backend
    requests it is estimated to send; the model it runs on (None: it copies a result)."""

    run: Callable[[Job, Target], dict]
    requests: Callable[[Work], int]
    model: str | None


# In the order a job runs them: the debate's backend first (team-vote after the debate it reads), freed
# before lm-eval loads the base again.
EVALUATORS: dict[str, Evaluator] = {
    "debate": Evaluator(_debate, lambda w: w.debate(w.rounds), DEBATE_BACKEND),
    "first_round_vote": Evaluator(_first_round_vote, lambda w: w.items * w.judge_turn(), DEBATE_BACKEND),
    "prompt_vote": Evaluator(_prompt_vote, lambda w: w.debate(1), DEBATE_BACKEND),
    "self_consistency": Evaluator(_self_consistency, lambda w: w.items * w.k, DEBATE_BACKEND),
    "lm_eval": Evaluator(_lm_eval, lambda w: w.items, LM_EVAL_MODEL),
    "copy_best": Evaluator(_copy_best, lambda w: 0, None),
    "oracle": Evaluator(_oracle, lambda w: 0, None),
}


def work_estimate(config: dict, targets: list[Target], n_items: int, population: int) -> dict[str, int]:
    """Estimated backend requests per target name (Work)."""
    dcfg = config["debate"]
    work = Work(
        n_items,
        population,
        dcfg["rounds"],
        dcfg["answer_mode"] == "loglik",
        bool(dcfg["judge"]),
        sc_samples(config, population),
    )
    return {str(t): EVALUATORS[t.evaluator].requests(work) for t in targets}


def evaluations(job: Job, targets: list[Target]) -> Iterator[tuple[Target, dict]]:
    """Yields (target, result) for every target asked, each as soon as it is done, in EVALUATORS' order."""
    for t in targets:
        job.progress.current = str(t)  # a failure here is this target's
        if t.evaluator == "lm_eval":
            job.subjects[t] = lm_eval_subject(job, t)
            if job.subjects[t][1]:  # a missing, foreign or changed adapter fails before any load
                lineage_system(t, job.base, job.subjects[t][1])
    order = list(EVALUATORS)
    run = sorted(targets, key=lambda t: order.index(t.evaluator))
    if TEAM_VOTE in targets and team(0) not in targets:
        run.insert(0, team(0))  # team-vote is that debate's round 1
    if any(EVALUATORS[t.evaluator].model == DEBATE_BACKEND for t in run):
        job.backend = make_backend(job.config["debate"]["backend"], job.base, job.config)
        check_reply_fits(job.backend, job.config["debate"]["max_new_tokens"], "debate.max_new_tokens")
    for t in run:
        if EVALUATORS[t.evaluator].model != DEBATE_BACKEND:
            job.release_backend()
        job.progress.start(str(t))
        res = EVALUATORS[t.evaluator].run(job, t)
        if t in targets:
            yield t, res
    job.release_backend()


def evaluate(
    config: dict,
    base: str | None,
    tasks: str | None,
    outs: dict[str, str],
    adapters: list[str] | None = None,
    fitness: str | None = None,
    population: int = 3,
    systems: dict[str, str] | None = None,
    agent_evals: list[str] | None = None,
    skills: dict[str, str] | None = None,
    dev_votes: str | None = None,
) -> None:
    """Evaluate every target of `outs` (target name -> result JSON path). A target that fails leaves
    `<target>.failed.json` (layout.eval_failure) saying why and fails the job (Snakemake then reruns the
    job, where a result JSON saying "failed" would count as done)."""
    targets = [Target.parse(name) for name in outs]
    reads_items = any(EVALUATORS[t.evaluator].model for t in targets)  # a copy reads results only
    mode = config["debate"]["answer_mode"]
    items = load_items(tasks, config["evaluation"]["limit"], config["tasks"]["scorer"], mode) if reads_items else []
    progress = TargetsProgress(work_estimate(config, targets, len(items), population))
    job = Job(
        config,
        base,
        items,
        adapters or [],
        fitness,
        population,
        systems or {},
        agent_evals or [],
        skills or {},
        dev_votes,
        progress,
    )
    results = evaluations(job, targets)
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
        write_json(outs[str(target)], res)
        Path(eval_failure(outs[str(target)])).unlink(missing_ok=True)
        ev = res["evoswarm"]
        progress.finish(
            str(target),
            f"{metric_name(config['tasks']['scorer'])} {accuracy(res):.3f} on {n_items(res)} items "
            f"({ev['evaluator']}); budget {ev['budget']}",
        )
