"""Lamarckian steps: a bounded SFT of a bred child on data its lineage earned, chosen by name
(`evolution.lamarck.step`). Each step maps (child's lineage, context) to the SFT chats, or None for no
training; the lamarck stage trains on them from the bred child's weights.

- `persona_sft`: the parents' persona data (the child relearns what each parent was trained on).
- `distill`: the parents' own turns of their generation's debate on TRAIN items, kept only where the
  team's final answer was right, each answered with that answer (Multiagent Finetuning, Subramaniam et
  al. 2025: agents fine-tuned on their own debate turns). An agent that was wrong in round 1 learns the
  revision; one that was right learns to hold it. Only the train-split debate is ever read.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from evoswarm.io import InputError, read_jsonl
from evoswarm.world.chats import load_chats

# Confidence written in distilled answers: what the persona SFT data states for a right answer.
DISTILL_CONFIDENCE = 0.9


def persona_sft(lineage: dict, ctx: dict) -> list[dict]:
    """Every chat of the parents' personas' SFT files."""
    by_name = {p["name"]: p for p in ctx["personas"]}
    files = sorted({by_name[p]["data"] for p in lineage.get("parent_personas", []) if p in by_name})
    if not files:
        raise InputError(
            f"evolution.lamarck: no persona data for the parents' personas {lineage.get('parent_personas')}"
        )
    return [c for f in files for c in load_chats(f)]


def distill_chats(transcripts: list[dict], votes: list[dict], agents: list[str]) -> list[dict]:
    """Chats from the turns of `agents` on questions the team got right, each answered with the team's
    answer and the summary of a right last-round turn (first by agent name)."""
    right = {v["question_id"]: v for v in votes if v["correct"] == 1}  # full marks (free text: exact match)
    last = max((r["round"] for r in transcripts), default=0)
    summary = {}
    for r in sorted(transcripts, key=lambda r: r["agent"]):
        if r["round"] == last and r["question_id"] in right and r["correct"] == 1:
            summary.setdefault(r["question_id"], r["summary"])
    chats = []
    for r in transcripts:
        v = right.get(r["question_id"])
        if v is None or r["agent"] not in agents:
            continue
        answer = {
            "answer": v["team_answer"],
            "confidence": DISTILL_CONFIDENCE,
            "summary": summary.get(r["question_id"], ""),
        }
        chats.append(
            {"messages": r["messages"] + [{"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)}]}
        )
    return chats


def distill(lineage: dict, ctx: dict) -> list[dict]:
    transcripts = read_jsonl(ctx["transcripts"], required=["question_id", "agent", "round", "messages", "correct"])
    votes = read_jsonl(ctx["votes"], required=["question_id", "team_answer", "correct"])
    chats = distill_chats(transcripts, votes, lineage["parents"])
    if not chats:
        print(f"distill: the team got no train item right in {ctx['votes']}; nothing to distill", flush=True)
    return chats


LAMARCK: dict[str, Callable[[dict, dict], list[dict]] | None] = {
    "none": None,
    "persona_sft": persona_sft,
    "distill": distill,
}
