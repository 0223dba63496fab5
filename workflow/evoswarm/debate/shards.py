"""Sharding one debate over questions: contiguous slices debated apart, then merged in order."""

from __future__ import annotations

from evoswarm.io import InputError


def shard_bounds(n_questions: int, shards: int) -> list[tuple[int, int]]:
    """The [start, stop) of each of `shards` contiguous slices of a debate's `n_questions` questions, in
    order, their sizes differing by at most one. A question's prompts, tie-breaks and agent order depend on
    its id alone (seeded_order, weighted_vote), so the slices debated apart give the whole debate's rows."""
    if shards > n_questions:
        raise InputError(f"debate.shards is {shards} but the debate has {n_questions} questions: at most {n_questions}")
    return [(i * n_questions // shards, (i + 1) * n_questions // shards) for i in range(shards)]


def merge_shards(shards: list[tuple[list[dict], list[dict]]]) -> tuple[list[dict], list[dict]]:
    """One debate's (transcript rows, vote rows) from its shards' in shard order, as run_debate orders
    them: transcripts round by round (each round's rows question by question), votes question by question."""
    transcripts = [row for rows, _ in shards for row in rows]
    transcripts.sort(key=lambda row: row["round"])  # stable: within a round, the shards' order stays
    return transcripts, [row for _, votes in shards for row in votes]
