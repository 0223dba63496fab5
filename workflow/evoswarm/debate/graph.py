"""The interactive debate as a LangGraph StateGraph (`evoswarm debate --engine langgraph`): agent turns
-> vote -> judge. Needs the optional `langgraph` extra; the workflow's stages never import this module.

The protocol is debate.py's: the same prompts (turn_messages), turn function (ask), transcript and vote
rows and judge. The difference is the schedule: here every agent turn is one graph step (one backend
call), so each turn streams as soon as it is produced, where the built-in loop sends a whole round to the
backend as one batch. With greedy decoding both give the same transcript; sampled turns differ, since a
seed then draws for a different batch.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph

from evoswarm.backends import Backend
from evoswarm.debate.agents import Agent
from evoswarm.debate.loop import (
    DebateSettings,
    add_judge,
    ask,
    judge_answers,
    round_seed,
    seen_turn,
    transcript_row,
    turn_messages,
    vote_row,
)


class DebateState(TypedDict):
    round: int  # the round of the next turn (rounds + 1 once all are done)
    agent: int  # index of the agent whose turn is next
    last: dict  # {(question id, agent): turn} of the previous round: what this round's prompts show
    current: dict  # this round's turns so far
    transcripts: Annotated[list[dict], operator.add]  # each turn appends its transcript row
    vote: dict  # the vote row (the judge's pick added by the judge node)


def debate_graph(backend: Backend, agents: list[Agent], item: dict, s: DebateSettings, judge: Agent | None):
    """The compiled graph of one debate on `item`."""
    names = [a.name for a in agents]

    def turn(state: DebateState) -> dict:
        rnd, k = state["round"], state["agent"]
        agent = agents[k]
        msgs = turn_messages(agent, item, names, state["last"], s, rnd)
        t = ask(backend, [(agent.adapter, msgs, item)], s, round_seed(s, rnd))[0]
        current = {**state["current"], (item["id"], agent.name): t}
        update = {"transcripts": [transcript_row(item, agent, msgs, t, rnd, s)]}
        if k + 1 < len(agents):
            return {**update, "agent": k + 1, "current": current}
        return {**update, "round": rnd + 1, "agent": 0, "last": current, "current": {}}

    def next_step(state: DebateState) -> str:
        return "turn" if state["round"] <= s.rounds else "vote"

    def vote(state: DebateState) -> dict:
        return {"vote": vote_row(item, names, state["last"], state["transcripts"], s)}

    def judge_pick(state: DebateState) -> dict:
        finals = {item["id"]: {n: seen_turn(state["last"], item, n) for n in names}}
        row = dict(state["vote"])
        add_judge(row, judge_answers(backend, judge, [item], finals, s)[item["id"]], item, s)
        return {"vote": row}

    g = StateGraph(DebateState)
    g.add_node("turn", turn)
    g.add_node("vote", vote)
    g.add_edge(START, "turn")
    g.add_conditional_edges("turn", next_step, ["turn", "vote"])
    if judge:
        g.add_node("judge", judge_pick)
        g.add_edge("vote", "judge")
        g.add_edge("judge", END)
    else:
        g.add_edge("vote", END)
    return g.compile()


def stream_debate(
    backend: Backend, agents: list[Agent], item: dict, s: DebateSettings, judge: Agent | None = None
) -> Iterator[tuple[str, dict]]:
    """Runs the debate on `item`, yielding ("turn", transcript row) as each turn is produced, then
    ("vote", the vote row) once, after the judge's pick when there is a judge."""
    start: DebateState = {"round": 1, "agent": 0, "last": {}, "current": {}, "transcripts": [], "vote": {}}
    steps = len(agents) * s.rounds + 2  # every turn, the vote and the judge: one step each
    final_vote = None
    for update in debate_graph(backend, agents, item, s, judge).stream(
        start, {"recursion_limit": steps + 1}, stream_mode="updates"
    ):
        for node, changes in update.items():
            if node == "turn":
                yield "turn", changes["transcripts"][0]
            else:
                final_vote = changes["vote"]
    yield "vote", final_vote
