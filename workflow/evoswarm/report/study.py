"""The study's comparison table: every arm's first and last generation on the held-out test split,
with paired intervals over seeds x items (stats.py), and the dev-split numbers a choice between arms
may use (the test columns are for reporting, never for choosing).

Per arm: gen0 best agent and team, gen G best agent and team, their paired differences (the goal: both
intervals above 0), and gen G's best agent and team minus the baseline arm's (same seeds, same items).
"""

from __future__ import annotations

import csv
import io

from evoswarm.evolve.fitness import read_fitness_csv, read_fitness_rows
from evoswarm.evolve.selection import ranked
from evoswarm.io import read_jsonl
from evoswarm.report.build import load_evals, scored_targets
from evoswarm.report.stats import Estimate, accuracy, paired_difference
from evoswarm.targets import study_targets


def _ci(e: Estimate) -> str:
    return f"{e.mean:+.3f} [{e.lo:+.3f}, {e.hi:+.3f}]"


def _acc(e: Estimate) -> str:
    return f"{e.mean:.3f} [{e.lo:.3f}, {e.hi:.3f}]"


def _dev(files: dict) -> tuple[float, float]:
    """Mean over seeds of the last generation's dev team accuracy and its fittest agent's dev solo accuracy."""
    team, best = [], []
    for f in files.values():
        votes = read_jsonl(f["votes"])
        team.append(sum(float(v["correct"]) for v in votes) / max(1, len(votes)))
        rows = {r["agent"]: r for r in read_fitness_rows(f["fitness"])}
        top = ranked(read_fitness_csv(f["fitness"]))[0]  # the agent the gen-G-best evaluation scores
        best.append(float(rows[top]["solo_acc"]))
    return sum(team) / len(team), sum(best) / len(best)


def study_rows(files: dict, arms: dict, baseline: str, generations: int, iters: int, seed: int) -> list[dict]:
    """files: arm -> seed -> {target: eval json, votes, fitness}; arms: arm -> its overrides."""
    G = generations
    best0, bestG, team0, teamG = map(str, study_targets(G))
    scored = {}
    for arm, by_seed in files.items():
        paths = {s: {t: p for t, p in f.items() if t not in ("votes", "fitness")} for s, f in by_seed.items()}
        scored[arm] = scored_targets(load_evals(paths), paths)
        failed = [v for v in scored[arm].values() if isinstance(v, str)]
        if failed:
            raise RuntimeError(f"study arm {arm}: {failed[0]}")
    rows = []
    for arm, sc in scored.items():
        base = scored[baseline]
        dev_team, dev_best = _dev(files[arm])
        d_best = paired_difference(sc[bestG], sc[best0], iters, seed)
        d_team = paired_difference(sc[teamG], sc[team0], iters, seed)
        rows.append(
            {
                "arm": arm,
                "overrides": ", ".join(f"{k}={v}" for k, v in arms[arm].items()) or "(the config as written)",
                "best_gen0": _acc(accuracy(sc[best0], iters, seed)),
                f"best_gen{G}": _acc(accuracy(sc[bestG], iters, seed)),
                "best_gain": _ci(d_best),
                "team_gen0": _acc(accuracy(sc[team0], iters, seed)),
                f"team_gen{G}": _acc(accuracy(sc[teamG], iters, seed)),
                "team_gain": _ci(d_team),
                "goal_met": "yes" if d_best.lo > 0 and d_team.lo > 0 else "no",
                "best_vs_baseline": ""
                if arm == baseline
                else _ci(paired_difference(sc[bestG], base[bestG], iters, seed)),
                "team_vs_baseline": ""
                if arm == baseline
                else _ci(paired_difference(sc[teamG], base[teamG], iters, seed)),
                f"dev_team_gen{G}": f"{dev_team:.3f}",
                f"dev_best_gen{G}": f"{dev_best:.3f}",
                "seeds": d_best.n_seeds,
                "items": d_best.n_items,
            }
        )
    return rows


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def to_markdown(rows: list[dict], command: str) -> str:
    cols = list(rows[0])
    lines = [
        "# Study: evolution operators on the held-out test split",
        "",
        f"Made by `{command}`. Accuracy: mean over seeds and test items [95% seed x item bootstrap];",
        "gains: paired differences (same seeds, same items). The goal: both gains' intervals above 0.",
        "dev_* columns are the dev split (what a choice between arms may use); test columns are for reporting.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
