"""The hf backend's loglik scoring reads each (agent, question) context once for all its choices and
gives the scores of scoring each choice as its own context + continuation row (the scorer before
contexts were shared, which bench/loglik_scoring.py keeps as its baseline)."""

import sys

import pytest
from conftest import REPO
from evoswarm.backends import ScoreRequest
from evoswarm.backends.hf import HFBackend
from evoswarm.debate.agents import load_agents
from evoswarm.io import read_jsonl
from evoswarm.protocol.chat import chat, render
from evoswarm.protocol.prompts import ANSWER_PREFIX, ANSWER_SUFFIX, DEBATE_RULES, PeerAnswer, turn_prompt
from support.tolerance import FP32_RTOL, flat

sys.path.insert(0, str(REPO / "bench"))
from loglik_scoring import score_per_choice  # noqa: E402


@pytest.fixture(scope="module")
def backend(tiny_base, tiny_adapters, smoke_config):
    be = HFBackend.from_base(str(tiny_base), smoke_config)
    load_agents(be, str(tiny_base), [str(p) for p in tiny_adapters.values()])
    be.batch_size = 4  # several batches, each mixing agents, row lengths and the base
    return be


@pytest.fixture(scope="module")
def requests_():
    """Base and adapter rows, contexts of several lengths (with and without peers' turns), choices of
    different token lengths, and questions with a single choice."""
    items = read_jsonl(REPO / "data/tasks/dev.jsonl")[:6]
    peers = [PeerAnswer("agent1", "42", 0.9, "because " + "it adds up " * 8)]
    out = []
    for n, it in enumerate(items):
        choices = [c + ANSWER_SUFFIX for c in it["choices"]] + ["a much longer answer than the others" + ANSWER_SUFFIX]
        if n % 3 == 2:
            choices = choices[:1]
        user = turn_prompt(it["question"], it["choices"], peers if n % 2 else None, DEBATE_RULES["en"], own=None)
        for adapter in ("critic", "ideator", None):
            out.append(ScoreRequest(adapter, chat("You check each step.", user), choices, ANSWER_PREFIX))
    return out


def _rows_read(be: HFBackend, fn, requests) -> tuple[list[list[float]], int]:
    """(scores, rows the model read) of fn(be, requests)."""
    rows = []
    hook = be.model.get_input_embeddings().register_forward_hook(lambda _m, args, _o: rows.append(len(args[0])))
    try:
        return fn(be, requests), sum(rows)
    finally:
        hook.remove()


def test_shared_context_scores_equal_per_choice_scores_in_one_row_per_request(backend, requests_):
    assert len({len(r.continuations) for r in requests_}) > 1
    new, new_rows = _rows_read(backend, HFBackend.score, requests_)
    old, old_rows = _rows_read(backend, score_per_choice, requests_)
    assert new_rows == len(requests_) and old_rows == sum(len(r.continuations) for r in requests_)
    # Relative to each score (support/tolerance.py): a score sums log-probabilities of one sign, and the tiny
    # base is unsure of every token (scores of -13 to -125 nats), so the score is the scale of its rounding.
    assert flat(new) == pytest.approx(flat(old), rel=FP32_RTOL, abs=0)
    assert [len(a) for a in new] == [len(r.continuations) for r in requests_]


def test_cut_contexts_score_as_each_choice_alone(backend, requests_):
    """A context cut to fit leaves room for its own choice, so choices of different lengths get different
    contexts: they are scored apart, and every score and the truncation count stay as they were."""
    context = render(backend.tok, requests_[0].messages, requests_[0].prefix)
    full = len(backend.tok(context, add_special_tokens=False)["input_ids"])
    saved = backend.max_length
    backend.max_length = full - 10  # only the shorter contexts and choices fit whole
    try:
        before = backend.truncated
        new = backend.score(requests_)
        cut = backend.truncated - before
        old = score_per_choice(backend, requests_)
        assert cut > 0 and backend.truncated - before == 2 * cut
    finally:
        backend.max_length = saved
    assert flat(new) == pytest.approx(flat(old), rel=FP32_RTOL, abs=0)  # as in the test above
