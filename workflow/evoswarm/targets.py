"""Evaluation targets, named once: the Target type (kind, generation, agent) with its file name, the
registry of kinds, and which evaluation job computes which target. Config, the rules, the evaluate
stage, the report and the study all build and read target names here.

Pure data and string handling, below config: the evaluators a kind names live in the evaluate package
(evaluate.job.EVALUATORS), which this module never imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from evoswarm.io import InputError


@dataclass(frozen=True)
class Kind:
    """One kind of target. `name`: its file name, {generation} and {agent} filled in; `evaluator`: the
    evaluate package's evaluator of it, `gen0_evaluator` generation 0's where that differs; `note`: what
    it is, in the report."""

    name: str
    evaluator: str
    note: str
    gen0_evaluator: str | None = None


# In the report's order.
KINDS: dict[str, Kind] = {
    "base": Kind("base", "lm_eval", "base model alone (lm-eval)"),
    "base-sc": Kind(
        "base-sc",
        "self_consistency",
        "base model self-consistency: k sampled turns + majority (the debate's budget)",
    ),
    "prompt-vote": Kind(
        "prompt-vote", "prompt_vote", "base with the personas' system prompts, no adapters, one-round vote"
    ),
    "team-vote": Kind(
        "team-vote", "first_round_vote", "generation-0 personas, one round, confidence-weighted vote (no debate)"
    ),
    # Controls (config.control_targets): what the loop must beat at a stated budget, once per seed.
    "multitask": Kind(
        "multitask",
        "lm_eval",
        "control: one LoRA on the union of the personas' SFT data for generation 0's total steps (lm-eval)",
    ),
    "specialist-long": Kind(
        "specialist-long",
        "lm_eval",
        "control: generation 0's best agent trained on its data for the SFT steps evolution spends (lm-eval)",
    ),
    "oracle": Kind(
        "oracle",
        "oracle",
        "control, a ceiling: each item answered by the generation-0 persona of its skill (reads the skill, "
        "never the answer)",
    ),
    "persona": Kind("gen0-{agent}", "lm_eval", "persona {agent} alone (lm-eval)"),
    # Generation 0's best copies its agent's persona result, which generation 0's job has scored.
    "best": Kind(
        "gen{generation}-best",
        "lm_eval",
        "generation {generation}'s fittest agent alone (lm-eval)",
        gen0_evaluator="copy_best",
    ),
    "team": Kind("team-gen{generation}", "debate", "generation {generation}'s team, full debate"),
}

# An agent name as the schema allows it, except 'best' and '<x>-best': gen0-<that> would read as a best target.
AGENT = r"(?!(?:[A-Za-z0-9_-]*-)?best\Z)[A-Za-z][A-Za-z0-9_-]*"


def _pattern(name: str) -> re.Pattern:
    fields = {"{generation}": r"(?P<generation>\d+)", "{agent}": rf"(?P<agent>{AGENT})"}
    return re.compile("".join(fields.get(p, re.escape(p)) for p in re.split(r"(\{\w+\})", name)))


_PATTERNS = {kind: _pattern(k.name) for kind, k in KINDS.items()}


@dataclass(frozen=True)
class Target:
    """An evaluation target; str() is its name (eval/<name>.json), Target.parse reads one back.
    `generation` may be a rule's placeholder such as "{gen}" (a pattern over generations)."""

    kind: str
    generation: int | str | None = None
    agent: str | None = None

    def __str__(self) -> str:
        return KINDS[self.kind].name.format(generation=self.generation, agent=self.agent)

    @classmethod
    def parse(cls, name: str) -> Target:
        for kind, pattern in _PATTERNS.items():
            m = pattern.fullmatch(name)
            if m:
                generation = m.groupdict().get("generation")
                return cls(kind, None if generation is None else int(generation), m.groupdict().get("agent"))
        raise InputError(f"unknown evaluation target {name!r}")

    @property
    def evaluator(self) -> str:
        """The name of its evaluator in the evaluate package."""
        kind = KINDS[self.kind]
        return kind.gen0_evaluator if self.generation == 0 and kind.gen0_evaluator else kind.evaluator

    def describe(self) -> str:
        return KINDS[self.kind].note.format(generation=self.generation, agent=self.agent)


BASE = Target("base")
BASE_SC = Target("base-sc")
PROMPT_VOTE = Target("prompt-vote")
TEAM_VOTE = Target("team-vote")
MULTITASK = Target("multitask")
SPECIALIST_LONG = Target("specialist-long")
ORACLE = Target("oracle")
# The controls in the report's order; the first two are adapters the controls' training stage trains.
CONTROLS = (MULTITASK, SPECIALIST_LONG, ORACLE)
TRAINED_CONTROLS = (MULTITASK, SPECIALIST_LONG)


def persona(agent: str) -> Target:
    """Generation 0's agent `agent` alone."""
    return Target("persona", agent=agent)


def best(generation: int | str) -> Target:
    return Target("best", generation)


def team(generation: int | str) -> Target:
    return Target("team", generation)


def parses_back(target: Target) -> bool:
    """Whether the target's name reads back as the target (a persona named 'best' or '<x>-best' does not)."""
    try:
        return Target.parse(str(target)) == target
    except InputError:
        return False


# Scored once for all seeds: the base alone, deterministically (log-likelihoods).
SHARED = (BASE,)
# A job of its own, in the run that asks: a study arm ranks generation 0 by its own fitness.
GEN0_BEST = best(0)


def generation_job(generation: int | str, agents: Iterable[str]) -> list[Target]:
    """The targets of one generation's evaluation job of a replicate, in the order it computes them: its
    test debate (team-vote is that debate's round 1), with generation 0 the base-only per-seed
    baselines, then the single models. `agents`: generation 0's slots; `generation` may be "{gen}"."""
    if generation == 0:
        return [team(0), TEAM_VOTE, PROMPT_VOTE, BASE_SC, *map(persona, agents)]
    return [team(generation), best(generation)]


def every_target(generations: int, agents: Iterable[str], controls: Iterable[Target] = ()) -> list[Target]:
    """Every target of a replicate, each computed by one job (the shared ones, each generation's, gen0-best's,
    the controls'), in the report's order: by kind (KINDS), then generation."""
    agents = list(agents)
    jobs = [*SHARED, *(t for g in range(generations + 1) for t in generation_job(g, agents)), GEN0_BEST, *controls]
    order = list(KINDS)
    return sorted(jobs, key=lambda t: (order.index(t.kind), t.generation or 0))


def study_targets(generations: int) -> tuple[Target, Target, Target, Target]:
    """What the study compares per arm: the best agent and the team of generation 0 and of the last."""
    return best(0), best(generations), team(0), team(generations)
