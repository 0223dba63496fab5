"""The report over all replicate seeds: verdicts of the paired comparisons first, then accuracy, the
generations, dev vs test, lineage, example debates, raw fitness parts and timings.

Everything shown is read from the run's files (eval JSONs, fitness CSVs, debate files, lineage,
benchmarks); nothing is recomputed from models. The sections are built once and written twice: one
offline HTML file (plots embedded as base64 PNGs) and Markdown with the same tables.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from evoswarm.config import control_steps, derive_seed, evolution_sft_steps, gen0_members, gen0_training_steps
from evoswarm.evolve.fitness import read_fitness_rows
from evoswarm.io import InputError, read_jsonl
from evoswarm.layout import benchmark_files, eval_failure, job_seed
from evoswarm.model.adapters import read_lineage
from evoswarm.protocol.scoring import metric_name, vote_key
from evoswarm.report.stats import Estimate, Scored, accuracy, paired_difference, scored_from_per_item, verdict
from evoswarm.targets import (
    BASE,
    BASE_SC,
    CONTROLS,
    MULTITASK,
    ORACLE,
    PROMPT_VOTE,
    SPECIALIST_LONG,
    TEAM_VOTE,
    TRAINED_CONTROLS,
    Target,
    best,
    persona,
    team,
)


@dataclass
class Section:
    """One part of the report: a heading, an optional note, verdict lines, a table and a plot."""

    title: str
    note: str = ""
    lines: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    image: str = ""  # base64 PNG


# --- loading -------------------------------------------------------------------------------------


def load_evals(paths: dict[int, dict[str, str]]) -> dict[str, dict[int, dict]]:
    """target -> seed -> eval JSON, from {seed: {target: path}}; for a target whose evaluation failed, its
    failure record (layout.eval_failure). A seed with neither is left out: built by hand after a failed job
    (Snakemake deletes its outputs), the report shows what exists (under Snakemake every result exists)."""
    seeds = sorted(paths)
    targets = list(paths[seeds[0]])
    for s in seeds:
        if list(paths[s]) != targets:
            raise InputError(f"report: seed {s} has targets {list(paths[s])}, seed {seeds[0]} has {targets}")
    out: dict[str, dict[int, dict]] = {t: {} for t in targets}
    for s in seeds:
        for t, p in paths[s].items():
            if not Path(p).is_file() and Path(eval_failure(p)).is_file():
                p = eval_failure(p)
            if not Path(p).is_file():
                continue
            try:
                out[t][s] = json.loads(Path(p).read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise InputError(f"{p}: invalid JSON ({e.msg})") from None
    return out


def scored_targets(evals: dict[str, dict[int, dict]], paths: dict[int, dict[str, str]]) -> dict[str, Scored | str]:
    """target -> its Scored over seeds, or a line naming the file of the first seed missing or failed."""
    out: dict[str, Scored | str] = {}
    for t, by_seed in evals.items():
        missing = [s for s in sorted(paths) if s not in by_seed]
        if missing:
            s = missing[0]
            out[t] = f"missing in seed {s} ({paths[s][t]}): neither a result nor a failure record"
            continue
        failed = [s for s, e in by_seed.items() if e.get("failed")]
        if failed:
            s = failed[0]
            out[t] = f"failed in seed {s} ({paths[s][t]}): {by_seed[s].get('error', 'no error recorded')}"
            continue
        out[t] = scored_from_per_item(
            t, {s: e["evoswarm"]["per_item"] for s, e in by_seed.items()}, {s: paths[s][t] for s in by_seed}
        )
    return out


# --- verdicts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """A vs B (target names) on the test split (optionally on one skill's items), with what a sign means."""

    what: str
    a: str
    b: str
    better: str
    worse: str
    skill: str | None = None

    def label(self) -> str:
        on = f" on {self.skill}" if self.skill else ""
        return f"{self.what}{on} ({self.a} vs {self.b})"


def control_comparisons(last: int) -> list[Comparison]:
    """Each control paired against the last generation's best agent and team (and multitask, the oracle
    against generation 0's too): A is the loop's target, B the control."""
    out: list[Comparison] = []
    for c, name in [(MULTITASK, "multitask SFT"), (SPECIALIST_LONG, "the specialist trained longer")]:
        for a, who in [(best(last), f"gen-{last} best"), (team(last), f"team gen-{last}")]:
            out.append(Comparison(f"{who} vs {c}", str(a), str(c), f"{who} beats {name}", f"{name} beats {who}"))
    out += [
        Comparison(
            "gen-0 best vs multitask",
            str(best(0)),
            str(MULTITASK),
            "gen-0 best beats multitask SFT",
            "multitask SFT beats gen-0 best",
        ),
        Comparison(
            "team gen-0 vs multitask",
            str(team(0)),
            str(MULTITASK),
            "team gen-0 beats multitask SFT",
            "multitask SFT beats team gen-0",
        ),
        Comparison(
            f"gen-{last} best vs oracle",
            str(best(last)),
            str(ORACLE),
            f"gen-{last} best beats the oracle",
            f"gen-{last} best is below the oracle ceiling",
        ),
        Comparison(
            f"team gen-{last} vs oracle",
            str(team(last)),
            str(ORACLE),
            f"team gen-{last} beats the oracle",
            f"team gen-{last} is below the oracle ceiling",
        ),
        Comparison(
            "oracle vs gen-0 best",
            str(ORACLE),
            str(best(0)),
            "routing by skill beats the best member: a team has room to add",
            "routing by skill is worse than the best member",
        ),
    ]
    unique: dict[tuple[str, str], Comparison] = {}
    for comp in out:  # with G = 0 the last generation is generation 0
        unique.setdefault((comp.a, comp.b), comp)
    return list(unique.values())


def comparisons(config: dict, targets: list[str]) -> list[Comparison]:
    """The report's comparisons, those whose two targets this run evaluates: the controls first."""
    last = config["generations"]
    team0, vote, sc = str(team(0)), str(TEAM_VOTE), str(BASE_SC)
    wanted = [
        *control_comparisons(last),
        Comparison("debate vs vote", team0, vote, "the debate helps", "the debate hurts"),
        Comparison(
            "vote vs self-consistency",
            vote,
            sc,
            "the persona vote beats self-consistency",
            "self-consistency beats the persona vote",
        ),
        Comparison(
            "debate vs self-consistency",
            team0,
            sc,
            "the debate beats self-consistency",
            "self-consistency beats the debate",
        ),
        Comparison(
            "vote vs prompt-only vote",
            vote,
            str(PROMPT_VOTE),
            "the adapters help beyond the prompts",
            "the adapters hurt compared with the prompts alone",
        ),
    ]
    for slot, member in gen0_members(config).items():
        skill = member.get("skill")
        wanted.append(
            Comparison(
                f"persona {slot} vs base",
                str(persona(slot)),
                str(BASE),
                f"{slot} beats the base",
                f"{slot} is worse than the base",
                skill,
            )
        )
    if last > 0:
        wanted += [
            Comparison(
                f"gen-{last} best vs gen-0 best",
                str(best(last)),
                str(best(0)),
                "evolution improved the best agent",
                "evolution made the best agent worse",
            ),
            Comparison(
                f"team gen-{last} vs team gen-0",
                str(team(last)),
                team0,
                "evolution improved the team",
                "evolution made the team worse",
            ),
        ]
    return [c for c in wanted if c.a in targets and c.b in targets]


@dataclass(frozen=True)
class Verdict:
    """A comparison's paired difference (None when it could not be compared) and its line."""

    comparison: Comparison
    diff: Estimate | None
    line: str


def verdicts(comps: list[Comparison], scored: dict[str, Scored | str], iters: int, seed: int) -> list[Verdict]:
    """Per comparison: the paired difference, its interval and what it means (or why it is missing)."""
    out = []
    for c in comps:
        a, b = scored[c.a], scored[c.b]
        if isinstance(a, str) or isinstance(b, str):
            failed = c.a if isinstance(a, str) else c.b
            out.append(Verdict(c, None, f"{c.label()}: not compared, {failed} {scored[failed]}"))
            continue
        if c.skill:
            a, b = a.only_skill(c.skill), b.only_skill(c.skill)
            if not a.n_items() or not b.n_items():
                out.append(Verdict(c, None, f"{c.label()}: not compared, no test items of skill {c.skill}"))
                continue
        diff = paired_difference(a, b, iters, derive_seed(seed, "report", c.label()))
        out.append(Verdict(c, diff, verdict(c.label(), diff, c.better, c.worse)))
    return out


def controls_section(config: dict, est: dict[str, Estimate], evals: dict[str, dict[int, dict]]) -> Section:
    """What each control is, what it spent (training steps, test-split model calls) and its test accuracy,
    beside the loop's own training budget."""
    rows = []
    for c in CONTROLS:
        name = str(c)
        if name not in evals:
            why = "not in controls.targets"
            if c == SPECIALIST_LONG and name in config["controls"]["targets"]:
                step = config["evolution"]["lamarck"]["step"]
                why = f"not run: evolution spends no SFT steps (evolution.lamarck.step: {step})"
            rows.append([name, c.describe(), "", "", "", "", why])
            continue
        steps = str(control_steps(config, c)) if c in TRAINED_CONTROLS else "0 (routes gen-0 results)"
        calls = [(e["evoswarm"].get("budget") or {}).get("model_calls") for e in evals[name].values()]
        calls = [x for x in calls if x is not None]
        e = est.get(name)
        rows.append(
            [
                name,
                c.describe(),
                steps,
                f"{sum(calls) / len(calls):.0f}" if calls else "",
                *_est_cells(e),
                "ok" if e else "failed" if any(x.get("failed") for x in evals[name].values()) else "missing",
            ]
        )
    return Section(
        "Controls",
        note=f"The loop's training compute: generation 0 trains {gen0_training_steps(config)} steps in all; "
        f"evolution's Lamarckian steps {evolution_sft_steps(config)}. Each control runs once per seed and is "
        "paired in the verdicts against the last generation's best agent and team. The oracle is a ceiling, "
        "not a method: it knows each test item's skill.",
        head=["control", "what", "training steps", "model calls (test)", "accuracy", "95% CI", "status"],
        rows=rows,
    )


def aggregated(evals: dict[str, dict[int, dict]], paths: dict[int, dict[str, str]], t: str) -> dict[str, Scored]:
    """A team target's per-item scores under each aggregator its result records (evaluate.teams.team_debate:
    `evoswarm.aggregators`, aligned with `per_item`); {} where a seed's result is missing, records none or failed."""
    by_seed = evals.get(t, {})
    if set(by_seed) != set(paths) or any(
        e.get("failed") or "aggregators" not in e["evoswarm"] for e in by_seed.values()
    ):
        return {}
    names = list(next(iter(by_seed.values()))["evoswarm"]["aggregators"])
    out = {}
    for name in names:
        rows = {
            s: [{**r, "correct": c} for r, c in zip(e["evoswarm"]["per_item"], e["evoswarm"]["aggregators"][name])]
            for s, e in by_seed.items()
        }
        out[name] = scored_from_per_item(f"{t} [{name}]", rows, {s: paths[s][t] for s in by_seed})
    return out


def aggregation_section(
    config: dict, evals: dict[str, dict[int, dict]], paths: dict[int, dict[str, str]], iters: int, seed: int
) -> Section | None:
    """Every aggregator's team of each generation on test (each fitted on that generation's dev debate),
    paired against the generation's best agent alone (its best member by dev fitness)."""
    rows = []
    for g in range(config["generations"] + 1):
        t, member = str(team(g)), str(best(g))
        teams = aggregated(evals, paths, t)
        alone = evals.get(member, {})
        if not teams or set(alone) != set(paths) or any(e.get("failed") for e in alone.values()):
            continue
        solo = scored_from_per_item(
            member, {s: e["evoswarm"]["per_item"] for s, e in alone.items()}, {s: paths[s][member] for s in alone}
        )
        for name, sc in teams.items():
            e = accuracy(sc, iters, derive_seed(seed, "report", sc.target))
            d = paired_difference(sc, solo, iters, derive_seed(seed, "report", f"{sc.target} vs {member}"))
            line = verdict("", d, "the team beats its best member", "its best member beats the team")
            runs = {e["evoswarm"].get("aggregator") for e in evals[t].values()}
            chosen = " (the run's)" if runs == {name} else ""
            diff = f"{d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}]"
            rows.append([str(g), name + chosen, _fmt(e.mean), _ci(e), diff, line.rsplit("], ", 1)[1]])
    if not rows:
        return None
    return Section(
        "Team aggregation",
        note="Each generation's test debate, its final answers aggregated every way (debate.aggregate), each fitted on "
        "that generation's dev debate only: the confidence vote, a weighted vote with per-agent x per-skill weights, "
        "a router by skill, the vote of temperature-scaled confidences. The run's aggregator is the team-gen<g> row "
        "above. Paired against the generation's best agent alone (lm-eval), same seeds and items, 95% interval as in "
        "the verdicts.",
        head=["gen", "aggregator", "accuracy", "95% CI", "team - best agent [95% CI]", "meaning"],
        rows=rows,
    )


def calibration_section(evals: dict[str, dict[int, dict]]) -> Section | None:
    """Each generation-0 agent's confidence calibration (team-gen0's record, evaluate.teams.calibration_table):
    the temperature fitted on dev, the expected calibration error on dev and test before and after it."""
    by_seed = evals.get(str(team(0)), {})
    rows = [
        [
            str(s),
            agent,
            f"{c['temperature']:.3f}",
            *(f"{c[k]:.3f}" for k in ("dev_ece", "dev_ece_scaled", "test_ece", "test_ece_scaled")),
            f"{c['dev_turns']} / {c['test_turns']}",
        ]
        for s, e in sorted(by_seed.items())
        if not e.get("failed")
        for agent, c in sorted((e["evoswarm"].get("calibration") or {}).items())
    ]
    if not rows:
        return None
    return Section(
        "Calibration of the generation-0 agents",
        note="Confidence = the softmax over the choices of each agent's final answer. Temperature scaling "
        "(debate.calibration) is fitted per agent on the dev debate; ECE = expected calibration error over 10 "
        "equal-width bins (0 is calibrated). Test is read only to show the result; the `calibrated` aggregator "
        "votes with the scaled confidences.",
        head=["seed", "agent", "temperature", "dev ECE", "dev ECE scaled", "test ECE", "test ECE scaled", "turns"],
        rows=rows,
    )


def forest_plot(found: list[Verdict]) -> str:
    """Every paired comparison's difference with its 95% interval, zero marked, in the verdicts' order."""
    rows = [v for v in found if v.diff is not None]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.0))
    ys = list(range(len(rows)))[::-1]
    controls = {str(c) for c in CONTROLS}
    for y, v in zip(ys, rows):
        d = v.diff
        colour = "tab:red" if d.hi < 0 else "tab:green" if d.lo > 0 else "tab:gray"
        marker = "D" if {v.comparison.a, v.comparison.b} & controls else "o"
        ax.errorbar([d.mean], [y], xerr=[[d.mean - d.lo], [d.hi - d.mean]], fmt=marker, color=colour, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ys)
    on = [f" on {v.comparison.skill}" if v.comparison.skill else "" for v in rows]
    ax.set_yticklabels([f"{v.comparison.a} - {v.comparison.b}{o}" for v, o in zip(rows, on)], fontsize=7)
    ax.set_xlabel("paired difference A - B in test accuracy (95% CI)")
    ax.set_title("Every verdict: controls first (diamonds); green above 0, red below, grey spans 0", fontsize=9)
    return _png(fig)


# --- accuracy and generations --------------------------------------------------------------------


def _fmt(x) -> str:
    if x is None or x == "":
        return ""
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _ci(e: Estimate) -> str:
    return f"[{e.lo:.3f}, {e.hi:.3f}]"


def estimates(scored: dict[str, Scored | str], iters: int, seed: int) -> dict[str, Estimate]:
    """Each scored target's mean accuracy over seeds and items with its interval (failed targets left out)."""
    return {t: accuracy(s, iters, derive_seed(seed, "report", t)) for t, s in scored.items() if not isinstance(s, str)}


def item_accuracy(items: dict[str, bool]) -> float:
    return sum(items.values()) / len(items)


def mean_accuracy(s: Scored) -> float:
    """Mean over seeds of the per-seed accuracy (no interval)."""
    return sum(item_accuracy(v) for v in s.by_seed.values()) / len(s.by_seed)


def budget_keys(evals: dict[str, dict[int, dict]]) -> list[str]:
    keys: dict[str, None] = {}
    for by_seed in evals.values():
        for e in by_seed.values():
            keys.update(dict.fromkeys((e.get("evoswarm") or {}).get("budget") or {}))
    return list(keys)


def accuracy_section(evals, scored, est, metric: str = "accuracy") -> Section:
    """Each target: mean accuracy (or the free-text scorer's `metric`, scoring.metric_name) and interval over
    seeds and items, per seed, per skill, budget, status."""
    skills = sorted({k for s in scored.values() if not isinstance(s, str) for k in s.skills.values()})
    budget = budget_keys(evals)
    rows = []
    for t, s in scored.items():
        if isinstance(s, str):
            rows.append([t, Target.parse(t).describe(), "", "", "", "", *[""] * len(skills), *[""] * len(budget), s])
            continue
        by_seed = evals[t]
        agents = sorted({e["evoswarm"].get("agent", "") for e in by_seed.values()} - {""})
        per_seed = " / ".join(_fmt(item_accuracy(s.by_seed[k])) for k in sorted(s.by_seed))
        per_skill = []
        for k in skills:
            sub = s.only_skill(k)
            per_skill.append(_fmt(mean_accuracy(sub)) if sub.n_items() else "")
        spent = []
        for k in budget:
            vals = [(e["evoswarm"].get("budget") or {}).get(k) for e in by_seed.values()]
            vals = [v for v in vals if v is not None]
            spent.append(f"{sum(vals) / len(vals):.0f}" if vals else "")
        e = est[t]
        what = Target.parse(t).describe() + (f" [{', '.join(agents)}]" if agents else "")
        rows.append([t, what, _fmt(e.mean), _ci(e), per_seed, str(e.n_items), *per_skill, *spent, "ok"])
    return Section(
        f"{metric[0].upper()}{metric[1:]} on the test split",
        note=f"Mean over seeds of each seed's {metric}; 95% interval from a bootstrap over seeds, then over the test "
        f"items (drawn once for all seeds: every seed scores the same items). Per-seed {metric} in seed order; "
        "budget columns are means over seeds (when the target records them).",
        head=["target", "what", metric, "95% CI", "per seed", "items", *skills, *budget, "status"],
        rows=rows,
    )


def dev_solo(fitness_rows: list[dict], agent: str) -> float | None:
    row = next((r for r in fitness_rows if r.get("agent") == agent), None)
    return float(row["solo_acc"]) if row and row.get("solo_acc") not in (None, "") else None


def dev_vs_test(config, evals, fitness) -> list[dict]:
    """Per generation and seed: the selected (best) agent, its dev solo accuracy and its test accuracy."""
    out = []
    for g in range(config["generations"] + 1):
        by_seed = evals.get(str(best(g)), {})
        for s in sorted(by_seed):
            e = by_seed[s]
            if e.get("failed"):
                continue
            agent = e["evoswarm"].get("agent", "")
            out.append(
                {
                    "gen": g,
                    "seed": s,
                    "agent": agent,
                    "dev": dev_solo(fitness[s][g], agent),
                    "test": item_accuracy({r["id"]: r["correct"] for r in e["evoswarm"]["per_item"]}),
                }
            )
    return out


def generation_rows(config, est: dict[str, Estimate], dev_test: list[dict]) -> list[dict]:
    """Per generation: best agent, team vote (generation 0 only), team debate on test; best agent's dev solo."""
    rows = []
    for g in range(config["generations"] + 1):
        devs = [d["dev"] for d in dev_test if d["gen"] == g and d["dev"] is not None]
        rows.append(
            {
                "gen": g,
                "best": est.get(str(best(g))),
                "vote": est.get(str(TEAM_VOTE)) if g == 0 else None,
                "debate": est.get(str(team(g))),
                "dev": sum(devs) / len(devs) if devs else None,
            }
        )
    return rows


def _est_cells(e: Estimate | None) -> list[str]:
    return [_fmt(e.mean), _ci(e)] if e else ["", ""]


# --- plots ---------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def generations_plot(rows: list[dict]) -> str:
    """Test accuracy per generation with 95% intervals, and the best agent's dev solo accuracy (dashed)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for key, label, marker, shift in [
        ("best", "best agent (test)", "o", -0.06),
        ("debate", "team debate (test)", "s", 0.0),
        ("vote", "team vote, gen 0 (test)", "^", 0.06),
    ]:
        pts = [(r["gen"] + shift, r[key]) for r in rows if r[key]]
        if pts:
            ax.errorbar(
                [x for x, _ in pts],
                [e.mean for _, e in pts],
                yerr=[[e.mean - e.lo for _, e in pts], [e.hi - e.mean for _, e in pts]],
                marker=marker,
                capsize=3,
                label=label,
            )
    devs = [(r["gen"], r["dev"]) for r in rows if r["dev"] is not None]
    if devs:
        ax.plot([g for g, _ in devs], [d for _, d in devs], "k--", marker="x", label="best agent (dev, solo)")
    ax.set_xticks([r["gen"] for r in rows])
    ax.set_xlabel("generation")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)
    ax.set_title("Accuracy per generation (95% CI over seeds and items)")
    return _png(fig)


def lineage_plot(lineage: dict[int, list[dict]], selected: dict[tuple[int, int], str]) -> str:
    """One panel per seed: agents by generation (x) and slot (y), edges from parents (width = blend
    weight, dashed = elite copy), the generation's selected best agent ringed."""
    plt = _pyplot()
    seeds = sorted(lineage)
    fig, axes = plt.subplots(len(seeds), 1, figsize=(7, 2.6 * len(seeds)), squeeze=False)
    personas = sorted({n.get("persona") or "" for nodes in lineage.values() for n in nodes})
    colours = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(personas)}
    for ax, s in zip(axes[:, 0], seeds):
        nodes = lineage[s]
        slots: dict[int, list[str]] = {}
        for n in nodes:
            slots.setdefault(n["generation"], []).append(n["slot"])
        pos = {(g, name): (g, -i) for g, names in slots.items() for i, name in enumerate(names)}
        for n in nodes:
            g, x = n["generation"], pos[(n["generation"], n["slot"])]
            weights = (n.get("params") or {}).get("weights") or [1.0] * len(n.get("parents", []))
            for p, w in zip(n.get("parents", []), weights):
                src = pos.get((n.get("parent_generation", g - 1), p))
                if src:
                    style = "--" if n.get("operator") == "elite" else "-"
                    ax.plot([src[0], x[0]], [src[1], x[1]], style, color="grey", lw=0.5 + 2.5 * float(w), zorder=1)
        for n in nodes:
            g, (x, y) = n["generation"], pos[(n["generation"], n["slot"])]
            ring = selected.get((s, g)) == n["slot"]
            ax.scatter(
                [x],
                [y],
                s=260,
                color=colours[n.get("persona") or ""],
                edgecolors="black" if ring else "none",
                linewidths=2.5 if ring else 0,
                zorder=2,
            )
            ax.annotate(n["slot"], (x, y), xytext=(0, -16), textcoords="offset points", ha="center", fontsize=7)
        ax.set_title(f"seed {s}", fontsize=9)
        ax.set_xticks(sorted(slots))
        ax.set_xticklabels([f"gen {g}" for g in sorted(slots)])
        ax.set_yticks([])
        ax.set_xlim(-0.5, max(slots) + 0.5)
        ax.set_ylim(-max(len(v) for v in slots.values()), 0.7)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=colours[p], label=f"persona line: {p or '?'}") for p in personas
    ]
    handles.append(plt.Line2D([], [], marker="o", ls="", mfc="white", mec="black", mew=2, label="selected best"))
    axes[0, 0].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return _png(fig)


# --- debates, fitness, timings -------------------------------------------------------------------


def example_debates(
    tasks: list[dict], transcripts: list[dict], votes: list[dict], where: str, n: int = 3
) -> list[Section]:
    """n debates, preferring questions where the agents disagreed in round 1 (the debate had work to do);
    `where` (seed, generation, split) goes into each title."""
    questions = {t["id"]: t for t in tasks}
    turns: dict[str, list[dict]] = {}
    for t in transcripts:
        turns.setdefault(t["question_id"], []).append(t)

    def disagreed(v):
        first = {t["answer"] for t in turns.get(v["question_id"], []) if t["round"] == 1}
        return len(first) > 1

    chosen = ([v for v in votes if disagreed(v)] + [v for v in votes if not disagreed(v)])[:n]
    out = []
    for k, v in enumerate(chosen, 1):
        q = questions.get(v["question_id"], {})
        choices = v.get("choices") or q.get("choices")
        scores = ", ".join(f"{a}: {x:.2f}" for a, x in (v.get("vote_scores") or {}).items())
        lines = [f"vote: {v.get('vote_answer', v['team_answer'])} ({scores})"]
        if "judge" in v:
            lines.append(f"judge: {v['judge']['answer']}")
        lines.append(f"team answer: {v['team_answer']}, gold: {v['gold']}, {'correct' if v['correct'] else 'wrong'}")
        out.append(
            Section(
                f"Example debate {k}: {v['question_id']} ({v.get('skill', '')}), {where}",
                note=q.get("question", "(question text not in the dev file)")
                + (f" Choices: {', '.join(choices)}." if choices else ""),
                lines=lines,
                head=["round", "agent", "answer", "confidence", "summary"],
                rows=[
                    [str(t["round"]), t["agent"], str(t["answer"]), f"{t['confidence']:.2f}", t.get("summary") or ""]
                    for t in sorted(turns.get(v["question_id"], []), key=lambda t: t["round"])
                ],
            )
        )
    return out


@dataclass(frozen=True)
class Efficiency:
    """One debate's efficiency over its questions (from the per-question fields of votes.jsonl)."""

    questions: int
    rounds: int
    agreed: int  # questions on which the agents agreed after some round
    agreed_in_round_1: int
    mean_agreed_round: float | None  # over the agreed questions
    changed: int  # the team's answer differs from the round-1 vote
    right_to_wrong: int
    wrong_to_right: int
    tokens_per_question: float
    seconds_per_question: float | None  # None: not timed (a debate run outside the debate stage)


def debate_efficiency(votes: list[dict], scorer: str = "choice") -> Efficiency | None:
    """The efficiency of one debate from its vote rows; None for rows without the efficiency fields (a
    debate recorded before they existed). Answers compare as the scorer's vote groups them; an answer is
    right with full marks (a free-text score below 1 is not)."""
    if not votes or "agreed_round" not in votes[0]:
        return None
    key = vote_key(scorer)
    agreed = [v["agreed_round"] for v in votes if v["agreed_round"] is not None]
    seconds = [v["seconds"] for v in votes if "seconds" in v]
    return Efficiency(
        questions=len(votes),
        rounds=max(v["rounds"] for v in votes),
        agreed=len(agreed),
        agreed_in_round_1=agreed.count(1),
        mean_agreed_round=sum(agreed) / len(agreed) if agreed else None,
        changed=sum(key(v["team_answer"]) != key(v["round1_answer"]) for v in votes),
        right_to_wrong=sum(v["round1_correct"] >= 1 and v["correct"] < 1 for v in votes),
        wrong_to_right=sum(v["round1_correct"] < 1 and v["correct"] >= 1 for v in votes),
        tokens_per_question=sum(v["generated_tokens"] for v in votes) / len(votes),
        seconds_per_question=sum(seconds) / len(seconds) if seconds else None,
    )


def _share(n: int, total: int) -> str:
    return f"{n} ({n / total:.0%})"


def efficiency_section(votes: dict[int, list[str]], scorer: str) -> Section:
    """A row per seed and generation from each generation's dev debate (votes[seed][gen]: its votes.jsonl)."""
    rows = []
    for s in sorted(votes):
        for g, path in enumerate(votes[s]):
            e = debate_efficiency(read_jsonl(path), scorer)
            if e is None:
                rows.append([str(s), str(g), "not recorded (votes.jsonl from before the efficiency fields)"])
                continue
            n = e.questions
            rows.append(
                [
                    str(s),
                    str(g),
                    str(n),
                    str(e.rounds),
                    _share(e.agreed, n),
                    _share(e.agreed_in_round_1, n),
                    _fmt(e.mean_agreed_round),
                    _share(e.changed, n),
                    _share(e.right_to_wrong, n),
                    _share(e.wrong_to_right, n),
                    f"{e.tokens_per_question:.0f}",
                    f"{e.seconds_per_question:.2f}" if e.seconds_per_question is not None else "",
                ]
            )
    return Section(
        "Debate efficiency per generation (dev debates)",
        note="From each generation's dev debate (gen<g>/debate/votes.jsonl), the debate every generation runs in "
        "full and whose answers its fitness reads; the test-split team debates keep only per-item correctness. "
        "The debate always runs all its rounds (no early stop). Agreed: questions where, after some round, every "
        "agent's answer parsed and the vote counted them as one answer; agreed round: the mean first such round "
        "over those questions (where the debate could have stopped). Changed: the team's final answer differs from "
        "the round-1 vote (with a judge, the judge's pick is the final answer); right->wrong and wrong->right "
        "count the changes that flipped correctness. Tokens: generated per question by all agents' turns and the "
        "judge's, re-encoded with the base tokenizer. Seconds: the debate's wall time divided by its questions "
        "(each round runs all questions in one batched call, so one question's own time cannot be told apart; "
        "model loading excluded).",
        head=[
            "seed",
            "gen",
            "questions",
            "rounds",
            "agreed",
            "agreed in round 1",
            "agreed round",
            "changed",
            "right->wrong",
            "wrong->right",
            "tokens / question",
            "seconds / question",
        ],
        rows=rows,
    )


def raw_fitness_columns(tables: list[list[dict]]) -> list[str]:
    """fitness.csv's raw columns: everything but the weights' hash and the normalised parts."""
    cols: dict[str, None] = {}
    for rows in tables:
        for r in rows:
            cols.update(dict.fromkeys(c for c in r if c != "agent" and c != "adapter_sha" and not c.endswith("_norm")))
    return list(cols)


def benchmark_rows(folder: str) -> list[dict]:
    """Seconds and peak memory per job from Snakemake's benchmark files (layout.benchmark_files)."""
    rows = []
    for rule, job, p in benchmark_files(folder):
        with p.open(newline="") as f:
            recs = list(csv.DictReader(f, delimiter="\t"))
        if recs:
            rows.append({"rule": rule, "job": job, "s": float(recs[-1]["s"]), "max_rss_mb": recs[-1].get("max_rss")})
    return rows


def cost_split(bench: list[dict]) -> tuple[float, dict[int, float]]:
    """Job seconds of the shared jobs (base, base evaluation) and of each replicate (layout.job_seed)."""
    shared, per_seed = 0.0, {}
    for b in bench:
        seed = job_seed(b["job"])
        if seed is None:
            shared += b["s"]
        else:
            per_seed[seed] = per_seed.get(seed, 0.0) + b["s"]
    return shared, per_seed


def timing_sections(bench: list[dict]) -> list[Section]:
    by_rule: dict[str, list[dict]] = {}
    for b in bench:
        by_rule.setdefault(b["rule"], []).append(b)
    shared, per_seed = cost_split(bench)
    replicates = ", ".join(f"seed {k} {v:.0f} s" for k, v in sorted(per_seed.items()))
    return [
        Section(
            "Stage timings by rule (Snakemake benchmarks)",
            note=f"Job time: shared jobs (base, base evaluation) {shared:.0f} s; per replicate: {replicates or '-'}.",
            head=["rule", "jobs", "seconds", "seconds per job"],
            rows=[
                [r, str(len(bs)), f"{sum(b['s'] for b in bs):.1f}", f"{sum(b['s'] for b in bs) / len(bs):.1f}"]
                for r, bs in by_rule.items()
            ],
        ),
        Section(
            "Stage timings by job",
            head=["rule", "job", "seconds", "max RSS (MB)"],
            rows=[[b["rule"], b["job"], f"{b['s']:.1f}", str(b["max_rss_mb"] or "")] for b in bench],
        ),
    ]


# --- the whole report ----------------------------------------------------------------------------


def build(config: dict, files: dict, benchmarks: str) -> tuple[str, str, list[Section]]:
    """(title, intro, sections) from the run's files (layout.report_files' map)."""
    seeds = sorted(files["evals"])
    if sorted(config["seeds"]) != seeds:
        raise InputError(f"report: the config's seeds {config['seeds']} are not the files' seeds {seeds}")
    iters, seed = config["evaluation"]["bootstrap"], config["seed"]
    evals = load_evals(files["evals"])
    scored = scored_targets(evals, files["evals"])
    est = estimates(scored, iters, seed)
    fitness = {s: [read_fitness_rows(p) for p in files["fitness"][s]] for s in seeds}
    dev_test = dev_vs_test(config, evals, fitness)
    gen_rows = generation_rows(config, est, dev_test)
    lineage = {s: [read_lineage(d) for d in files["adapters"][s]] for s in seeds}
    selected = {(d["seed"], d["gen"]): d["agent"] for d in dev_test}
    last = config["generations"]

    found = verdicts(comparisons(config, list(evals)), scored, iters, seed)
    sections = [
        Section(
            "Verdicts",
            note="Paired differences A - B in test accuracy (same seeds, same items), with 95% intervals from a "
            "bootstrap over seeds, then over the test items (drawn once for all seeds: every seed scores the same "
            "items). The controls come first.",
            lines=[v.line for v in found],
            image=forest_plot(found) if any(v.diff for v in found) else "",
        ),
        controls_section(config, est, evals),
        accuracy_section(evals, scored, est, metric_name(config["tasks"]["scorer"])),
        *filter(None, [aggregation_section(config, evals, files["evals"], iters, seed), calibration_section(evals)]),
        Section(
            "Accuracy per generation",
            note="Test accuracy of each generation's best agent (the one selection ranks first on dev), the "
            "generation-0 vote and each generation's team debate; dev = the best agent's dev solo accuracy.",
            head=["gen", "best agent", "95% CI", "team vote", "95% CI", "team debate", "95% CI", "best agent (dev)"],
            rows=[
                [
                    str(r["gen"]),
                    *_est_cells(r["best"]),
                    *_est_cells(r["vote"]),
                    *_est_cells(r["debate"]),
                    _fmt(r["dev"]),
                ]
                for r in gen_rows
            ],
            image=generations_plot(gen_rows),
        ),
        Section(
            "Dev vs test for the selected agents",
            note="Selection reads dev only; a dev accuracy well above test is overfitting to dev.",
            head=["gen", "seed", "agent", "dev (solo)", "test", "dev - test"],
            rows=[
                [
                    str(d["gen"]),
                    str(d["seed"]),
                    d["agent"],
                    _fmt(d["dev"]),
                    _fmt(d["test"]),
                    f"{d['dev'] - d['test']:+.3f}" if d["dev"] is not None else "",
                ]
                for d in dev_test
            ],
        ),
        Section(
            "Lineage",
            note="Node colour: the persona line an agent descends from (its first parent's); edge width: blend "
            "weight; dashed: elite copy; ringed: the generation's selected best.",
            head=["seed", "agent", "operator", "parents (weights)", "persona", "sha256"],
            rows=[[str(s), *lineage_cells(n)] for s in seeds for n in lineage[s]],
            image=lineage_plot(lineage, selected),
        ),
    ]
    dev_items = read_jsonl(files["dev"], required=["id"])
    sections += example_debates(
        dev_items,
        read_jsonl(files["transcripts"][seeds[0]][last]),
        read_jsonl(files["votes"][seeds[0]][last]),
        f"seed {seeds[0]}, generation {last}, dev split",
    )
    cols = raw_fitness_columns([rows for s in seeds for rows in fitness[s]])
    sections.append(
        Section(
            "Raw fitness parts per generation",
            note="fitness.csv's raw columns (before any normalisation), per seed and generation.",
            head=["seed", "gen", "agent", *cols],
            rows=[
                [str(s), str(g), r["agent"], *[r.get(c, "") for c in cols]]
                for s in seeds
                for g, rows in enumerate(fitness[s])
                for r in rows
            ],
        )
    )
    parse_rows = []
    for s in seeds:
        for g, p in enumerate(files["transcripts"][s]):
            turns = read_jsonl(p)
            fails = sum(not t["parsed"] for t in turns)
            parse_rows.append([str(s), str(g), str(len(turns)), str(fails), f"{fails / len(turns):.1%}"])
    sections.append(
        Section(
            "Parse-failure rate of debate turns", head=["seed", "gen", "turns", "failures", "rate"], rows=parse_rows
        )
    )
    sections.append(efficiency_section(files["votes"], config["tasks"]["scorer"]))
    sections += timing_sections(benchmark_rows(benchmarks))
    title = f"evoswarm report: P={config['population']}, G={last}, seeds {', '.join(map(str, seeds))}"
    w = config["fitness"]["weights"]
    intro = (
        f"{len(seeds)} replicate(s): each seed reruns persona training, debate, evolution and evaluation on the "
        f"same base and test items. Fitness = {w['task']} task + {w['cooperation']} cooperation "
        f"({config['fitness']['cooperation']}) + {w['novelty']} novelty ({config['fitness']['novelty']}). "
        "A verdict is about this world and these seeds; an interval spanning 0 is not evidence of no effect. "
        "Selection reads the dev split only; the test split is read only by evaluation."
    )
    return title, intro, sections


def lineage_cells(n: dict) -> list[str]:
    w = (n.get("params") or {}).get("weights")
    parents = ", ".join(
        f"gen{n.get('parent_generation', '')}/{p}" + (f" ({x:.2f})" if w else "")
        for p, x in zip(n["parents"], w or [None] * len(n["parents"]))
    )
    return [
        f"gen{n['generation']}/{n['slot']}",
        n["operator"],
        parents or "-",
        n.get("persona") or "",
        n.get("sha256", "")[:12],
    ]


def to_markdown(title: str, intro: str, sections: list[Section]) -> str:
    out = [f"# {title}", "", intro, ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.note:
            out += [s.note, ""]
        if s.lines:
            out += [f"- {line}" for line in s.lines] + [""]
        if s.head:
            out += ["| " + " | ".join(s.head) + " |", "|" + "---|" * len(s.head)]
            out += ["| " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in r) + " |" for r in s.rows]
            out.append("")
        if s.image:
            out += ["(plot in index.html)", ""]
    return "\n".join(out)


def to_html(title: str, intro: str, sections: list[Section]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
        "margin-bottom:1.5em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}th{background:#eee}"
        "td{vertical-align:top}td:first-child{white-space:nowrap}td:nth-child(2){min-width:16em}"
        "li{margin:.2em 0}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(intro)}</p>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.note:
            parts.append(f"<p>{html.escape(s.note)}</p>")
        if s.image:  # the picture first: the verdicts' forest plot is what a reader takes in at a glance
            parts.append(f"<img alt='{html.escape(s.title)} plot' src='data:image/png;base64,{s.image}'>")
        if s.lines:
            parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in s.lines) + "</ul>")
        if s.head:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in s.head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in s.rows]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
