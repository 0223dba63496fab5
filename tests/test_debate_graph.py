"""The optional LangGraph engine of the interactive debate: the built-in loop's transcript, votes and
judge with greedy decoding, each turn streamed as it is produced, and one line when the extra is missing."""

import importlib
import sys

import pytest
from conftest import REPO
from evoswarm.debate.loop import DebateSettings, judge_agent, run_debate

TOPIC = "Is a shorter work week good for the economy?"
GRAPH = "evoswarm.debate.graph"  # the engine's module, which imports langgraph


class CallCounter:
    """The backend with a count of its generate calls."""

    def __init__(self, backend):
        self.backend, self.calls = backend, 0

    def generate(self, requests):
        self.calls += 1
        return self.backend.generate(requests)

    def __getattr__(self, name):
        return getattr(self.backend, name)


@pytest.fixture(scope="module")
def debate(tiny_base, tiny_adapters, smoke_config):
    from evoswarm.backends.hf import HFBackend
    from evoswarm.debate.agents import load_agents

    backend = HFBackend.from_base(str(tiny_base), smoke_config)
    agents = load_agents(backend, str(tiny_base), [str(p) for p in tiny_adapters.values()])
    dcfg = {**smoke_config["debate"], "answer_mode": "generate", "language": "en", "max_new_tokens": 16}
    s = DebateSettings.from_config({**dcfg, "rounds": 3, "judge": True}, "exact", seed=4)
    item = {"id": "topic", "question": TOPIC, "answer": "", "choices": None}
    return backend, agents, item, s


def test_langgraph_streams_each_turn_and_gives_the_builtin_transcript(debate):
    from evoswarm.debate.graph import stream_debate

    backend, agents, item, s = debate
    judge = judge_agent({"judge": True})
    transcripts, votes = run_debate(backend, agents, [item], s, judge=judge)
    counted = CallCounter(backend)
    streamed, calls_at = [], []
    for kind, row in stream_debate(counted, agents, item, s, judge=judge):
        streamed.append((kind, row))
        calls_at.append(counted.calls)
    assert [k for k, _ in streamed] == ["turn"] * len(transcripts) + ["vote"]
    assert [r for _, r in streamed[:-1]] == transcripts  # prompts, raw texts, answers: the same, in order
    assert streamed[-1][1] == votes[0]  # vote and judge included
    assert calls_at[:-1] == list(range(1, len(transcripts) + 1))  # each turn yielded right after its own call
    assert len({t["raw"] for t in transcripts}) > 1  # the agents said something (not an empty comparison)


def test_langgraph_without_a_judge_ends_at_the_vote(debate):
    from evoswarm.debate.graph import stream_debate

    backend, agents, item, s = debate
    _, votes = run_debate(backend, agents[:1], [item], s)
    streamed = list(stream_debate(backend, agents[:1], item, s))
    assert streamed[-1] == ("vote", votes[0]) and "judge" not in votes[0]
    assert len(streamed) == s.rounds + 1


def test_engine_langgraph_without_the_extra_is_one_line(tiny_base, tiny_adapters, monkeypatch):
    from evoswarm.cli import main

    importlib.import_module(GRAPH)  # so that the name below is the module's: a rename fails here
    for name in [m for m in sys.modules if m.split(".")[0] == "langgraph"] + ["langgraph"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: importing it fails
    monkeypatch.delitem(sys.modules, GRAPH)  # imported by the tests above: the CLI must import it afresh
    adapters = [str(p) for p in tiny_adapters.values()]
    args = ["debate", "--topic", TOPIC, "--adapters", *adapters, "--base", str(tiny_base), "--engine", "langgraph"]
    with pytest.raises(SystemExit) as e:
        main([*args, "--config", str(REPO / "configs/smoke.yaml")])
    assert e.value.code == "error: --engine langgraph needs LangGraph: pip install 'evoswarm[langgraph]'"


def test_cli_prints_the_same_debate_with_either_engine(tiny_base, tiny_adapters, capsys):
    from evoswarm.cli import main

    adapters = [str(p) for p in tiny_adapters.values()]
    args = ["debate", "--topic", TOPIC, "--adapters", *adapters, "--base", str(tiny_base), "--rounds", "2"]
    args += ["--config", str(REPO / "configs/smoke.yaml"), "--max-new-tokens", "12", "--lang", "en"]
    main(args)
    builtin = capsys.readouterr().out
    main([*args, "--engine", "langgraph"])
    assert capsys.readouterr().out == builtin
    assert builtin.count("[round ") == 2 * len(adapters) and "\njudge: " in builtin
