"""The report: tables and plots from the eval JSONs, fitness CSVs, debate files, lineage and benchmarks.

Everything shown is read from those files; nothing is recomputed from models.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

from evoswarm.evaluation import TASK, bootstrap_ci
from evoswarm.parsing import normalize_answer

TARGET_NOTES = {
    "base": "base model alone (lm-eval)",
    "base-sc": "base model self-consistency, k samples + majority (same generation budget as the debate)",
    "team-vote": "generation-0 personas, one round, confidence-weighted vote (no debate)",
}


def describe(target: str) -> str:
    if target in TARGET_NOTES:
        return TARGET_NOTES[target]
    if target.endswith("-best"):
        return f"generation {target[3:-5]}'s fittest agent alone (lm-eval)"
    if target.startswith("gen0-"):
        return f"persona {target[5:]} alone (lm-eval)"
    if target.startswith("team-gen"):
        return f"generation {target[8:]}'s team, full debate"
    return target


def accuracy_rows(evals: dict[str, dict | None], iters: int, seed: int) -> tuple[list[str], list[dict]]:
    """One row per target: accuracy, 95% bootstrap CI, per-skill accuracy; failed targets stay in."""
    skills = sorted(
        {r["skill"] for e in evals.values() if e and not e.get("failed") for r in e["evoswarm"]["per_item"]}
    )
    rows = []
    for target, e in evals.items():
        row = {"target": target, "what": describe(target)}
        if e is None or e.get("failed"):
            row["status"] = "failed: " + (e.get("error", "") if e else "result missing")
            rows.append(row)
            continue
        items = e["evoswarm"]["per_item"]
        correct = [bool(r["correct"]) for r in items]
        lo, hi = bootstrap_ci(correct, iters, seed)
        row.update(
            status="ok",
            acc=e["results"][TASK]["acc,none"],
            lo=lo,
            hi=hi,
            n=len(items),
            evaluator=e["evoswarm"]["evaluator"],
            agent=e["evoswarm"].get("agent", ""),
        )
        for s in skills:
            sk = [r["correct"] for r in items if r["skill"] == s]
            row[s] = sum(sk) / len(sk) if sk else None
        rows.append(row)
    return skills, rows


def read_fitness(paths: list[str]) -> list[list[dict]]:
    out = []
    for p in paths:
        with open(p, newline="", encoding="utf-8") as f:
            out.append(list(csv.DictReader(f)))
    return out


def answer_diversity(votes: list[dict]) -> float:
    """Mean pairwise disagreement of the agents' final answers (0 = all agree on every question)."""
    total, pairs = 0.0, 0
    for v in votes:
        ans = [normalize_answer(f["answer"]) for f in v["finals"].values()]
        for i in range(len(ans)):
            for j in range(i + 1, len(ans)):
                total += ans[i] != ans[j]
                pairs += 1
    return total / pairs if pairs else 0.0


def benchmark_rows(folder: str) -> list[dict]:
    """Seconds and peak memory per job from Snakemake's benchmark files."""
    rows = []
    for p in sorted(Path(folder).glob("*/*.tsv")):
        with p.open(newline="") as f:
            recs = list(csv.DictReader(f, delimiter="\t"))
        if recs:
            rows.append(
                {
                    "rule": p.parent.name,
                    "job": p.stem,
                    "s": float(recs[-1]["s"]),
                    "max_rss_mb": recs[-1].get("max_rss", ""),
                }
            )
    return rows


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(fitness: list[list[dict]], diversity: list[float]) -> dict[str, str]:
    """Base64 PNGs: fitness parts over generations, population diversity over generations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens = list(range(len(fitness)))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for col, label in [
        ("solo_acc", "task (solo accuracy)"),
        ("shapley", "cooperation (Shapley)"),
        ("novelty", "novelty"),
        ("fitness", "fitness"),
    ]:
        ax.plot(gens, [sum(float(r[col]) for r in g) / len(g) for g in fitness], marker="o", label=f"mean {label}")
    ax.plot(gens, [max(float(r["fitness"]) for r in g) for g in fitness], "k--", marker="x", label="max fitness")
    ax.set_xlabel("generation")
    ax.set_xticks(gens)
    ax.legend(fontsize=7)
    ax.set_title("Fitness parts over generations")
    out = {"fitness": _png(fig)}
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(gens, diversity, marker="o", label="answer disagreement (pairwise)")
    ax.plot(gens, [sum(float(r["novelty"]) for r in g) / len(g) for g in fitness], marker="s", label="mean novelty")
    ax.set_xlabel("generation")
    ax.set_xticks(gens)
    ax.legend(fontsize=7)
    ax.set_title("Population diversity over generations")
    out["diversity"] = _png(fig)
    plt.close(fig)
    return out


def lineage_rows(adapter_dirs: list[str]) -> list[dict]:
    rows = []
    for d in adapter_dirs:
        lin = json.loads((Path(d) / "lineage.json").read_text())
        w = lin.get("params", {}).get("weights")
        parents = ", ".join(
            f"gen{lin.get('parent_generation', '')}/{p}" + (f" ({x:.2f})" if w else "")
            for p, x in zip(lin["parents"], w or [None] * len(lin["parents"]))
        )
        rows.append(
            {
                "agent": f"gen{lin['generation']}/{lin['slot']}",
                "operator": lin["operator"],
                "parents": parents or "-",
                "persona": lin.get("persona") or "",
                "sha": lin["sha256"][:12],
            }
        )
    return rows


def _fmt(x) -> str:
    if x is None or x == "":
        return ""
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def tables(skills, acc_rows, fitness, lineage, parse_rates, bench) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Every table of the report as (header, rows of strings), shared by the HTML and Markdown writers."""
    t = {}
    t["Accuracy on the test split"] = (
        ["target", "what", "accuracy", "95% CI", "n", *skills, "status"],
        [
            [
                r["target"],
                r["what"] + (f" [{r['agent']}]" if r.get("agent") else ""),
                _fmt(r.get("acc")),
                f"[{r['lo']:.3f}, {r['hi']:.3f}]" if "lo" in r else "",
                str(r.get("n", "")),
                *[_fmt(r.get(s)) for s in skills],
                r["status"],
            ]
            for r in acc_rows
        ],
    )
    t["Fitness by generation"] = (
        ["gen", "agent", "solo", "team", "LOO", "Shapley", "novelty", "fitness"],
        [
            [
                str(g),
                r["agent"],
                r["solo_acc"][:5],
                r["team_acc"][:5],
                r["loo"][:6],
                r["shapley"][:6],
                r["novelty"][:6],
                r["fitness"][:5],
            ]
            for g, rows in enumerate(fitness)
            for r in rows
        ],
    )
    t["Lineage"] = (
        ["agent", "operator", "parents (weights)", "persona", "sha256"],
        [[r["agent"], r["operator"], r["parents"], r["persona"], r["sha"]] for r in lineage],
    )
    t["Parse-failure rate of debate turns"] = (
        ["generation", "turns", "parse failures", "rate"],
        [[str(g), str(n), str(f), f"{f / n:.1%}" if n else ""] for g, (n, f) in enumerate(parse_rates)],
    )
    t["Stage timings (Snakemake benchmarks)"] = (
        ["rule", "job", "seconds", "max RSS (MB)"],
        [[b["rule"], b["job"], f"{b['s']:.1f}", str(b["max_rss_mb"])] for b in bench],
    )
    return t


def to_markdown(title: str, tabs: dict) -> str:
    out = [f"# {title}", ""]
    for name, (head, rows) in tabs.items():
        out += [f"## {name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
        out.append("")
    return "\n".join(out)


def to_html(title: str, intro: str, tabs: dict, images: dict[str, str]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
        "margin-bottom:1.5em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}th{background:#eee}"
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{intro}</p>",
    ]
    for name, (head, rows) in tabs.items():
        parts.append(
            f"<h2>{html.escape(name)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
        if name == "Fitness by generation":
            for key in ("fitness", "diversity"):
                parts.append(f"<img alt='{key} plot' src='data:image/png;base64,{images[key]}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
