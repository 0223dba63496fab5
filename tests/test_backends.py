"""The backends agree: each agent's greedy output is the same whatever the batch layout,
in process or through the OpenAI-compatible server."""

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from conftest import REPO
from evoswarm.backends import GenRequest, ScoreRequest
from evoswarm.backends.hf import HFBackend
from evoswarm.backends.openai import OpenAIBackend, ServerError
from evoswarm.backends.server import make_server
from evoswarm.debate.agents import load_agents
from evoswarm.io import read_jsonl
from evoswarm.protocol.chat import chat
from evoswarm.protocol.prompts import ANSWER_PREFIX, ANSWER_SUFFIX, turn_prompt
from support.tolerance import FP32_RTOL, flat


@pytest.fixture(scope="module")
def backend(tiny_base, tiny_adapters, smoke_config):
    be = HFBackend.from_base(str(tiny_base), smoke_config)
    load_agents(be, str(tiny_base), [str(p) for p in tiny_adapters.values()])
    return be


@pytest.fixture(scope="module")
def requests_():
    items = read_jsonl(REPO / "data/tasks/dev.jsonl")[:4]
    msgs = [chat("", turn_prompt(it["question"], it["choices"])) for it in items]
    return [GenRequest(a, m, max_new_tokens=12) for m in msgs for a in ("critic", "ideator", None)], items


@pytest.fixture(scope="module")
def served_dir(tmp_path_factory):
    """A folder the server may load adapters from, for the hostile adapters of the tests."""
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def server(backend, tiny_base, tiny_adapters, served_dir):
    allowed = [str(next(iter(tiny_adapters.values())).parent), str(served_dir)]
    srv = make_server(backend, str(tiny_base), allowed, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def _post(url: str, body: dict) -> tuple[int, str]:
    """(HTTP status, answer text) of one POST."""
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _served(url: str) -> list[str]:
    with urllib.request.urlopen(url + "/models", timeout=60) as r:
        return [m["id"] for m in json.loads(r.read())["data"]]


def test_greedy_outputs_identical_across_batch_layouts(backend, requests_, server):
    reqs, _ = requests_
    mixed = backend.generate(reqs)
    one_at_a_time = [backend.generate([r])[0] for r in reqs]
    per_adapter = [None] * len(reqs)
    for a in ("critic", "ideator", None):
        idx = [i for i, r in enumerate(reqs) if r.adapter == a]
        for i, t in zip(idx, backend.generate([reqs[i] for i in idx])):
            per_adapter[i] = t
    client = OpenAIBackend(server, backend.tok)
    client.adapters = dict(backend.adapters)
    through_server = client.generate(reqs)
    assert mixed == one_at_a_time == per_adapter == through_server
    # adapters change the output: otherwise this test could not fail
    assert [t for t, r in zip(mixed, reqs) if r.adapter == "critic"] != [
        t for t, r in zip(mixed, reqs) if r.adapter is None
    ]


def test_scores_agree_in_process_and_through_server(backend, requests_, server):
    _, items = requests_
    reqs = [
        ScoreRequest(
            a,
            chat("", turn_prompt(it["question"], it["choices"])),
            [c + ANSWER_SUFFIX for c in it["choices"]],
            ANSWER_PREFIX,
        )
        for it in items
        for a in ("critic", None)
    ]
    local = backend.score(reqs)
    remote = OpenAIBackend(server, backend.tok).score(reqs)
    # The same model on both sides, the client reading each choice as its own row and summing the token
    # log-probabilities the server sends (JSON keeps a float exactly): fp32 rounding only, relative to each
    # score (support/tolerance.py).
    assert flat(local) == pytest.approx(flat(remote), rel=FP32_RTOL, abs=0)


def test_server_confines_adapter_paths_and_reports_unknown_models(server, backend, tiny_adapters, tmp_path):
    client = OpenAIBackend(server, backend.tok, retries=0)
    shutil.copytree(tiny_adapters["critic"], tmp_path / "evil")
    with pytest.raises(ServerError, match="outside the allowed"):
        client.add_adapter("evil", str(tmp_path / "evil"))
    with pytest.raises(ServerError, match="not served"):
        client.generate([GenRequest("nobody", [{"role": "user", "content": "hi"}], 4)])


def test_client_gives_up_on_a_dead_server(backend):
    client = OpenAIBackend("http://127.0.0.1:9/v1", backend.tok, retries=2, backoff=0.01)
    with pytest.raises(ServerError, match="3 tries"):
        client.generate([GenRequest(None, [{"role": "user", "content": "hi"}], 4)])


def test_prompts_longer_than_the_context_are_truncated_and_counted(backend):
    before = backend.truncated
    long = [{"role": "user", "content": "1 + 1 " * 400}]
    out = backend.generate([GenRequest(None, long, 4)])
    assert isinstance(out[0], str) and backend.truncated == before + 1


@pytest.mark.slow  # a whole debate twice, once through HTTP (13 s); single requests through it stay fast
def test_smoke_debate_through_serve_and_openai_matches_hf(backend, server, tiny_base, tiny_adapters, smoke_config):
    from evoswarm.debate.loop import DebateSettings, run_debate

    items = read_jsonl(REPO / "data/tasks/dev.jsonl")[:6]
    s = DebateSettings.from_config(smoke_config["debate"], "choice", seed=3)
    agents = load_agents(backend, str(tiny_base), [str(p) for p in tiny_adapters.values()])
    local_t, local_v = run_debate(backend, agents, items, s)
    client = OpenAIBackend(server, backend.tok)
    remote_agents = load_agents(client, str(tiny_base), [str(p) for p in tiny_adapters.values()])  # loads via HTTP
    remote_t, remote_v = run_debate(client, remote_agents, items, s)
    assert [t["answer"] for t in local_t] == [t["answer"] for t in remote_t]
    assert [t["summary"] for t in local_t] == [t["summary"] for t in remote_t]
    assert [v["team_answer"] for v in local_v] == [v["team_answer"] for v in remote_v]


def test_adapter_from_another_base_is_refused(backend, tiny_base, tiny_adapters, tmp_path):
    from evoswarm.io import InputError

    alien = tmp_path / "alien"
    shutil.copytree(tiny_adapters["critic"], alien)
    lineage = json.loads((alien / "lineage.json").read_text())
    (alien / "lineage.json").write_text(json.dumps({**lineage, "base": "Qwen/Qwen3-4B@0123"}))
    with pytest.raises(InputError, match=r"trained on base 'Qwen/Qwen3-4B@0123', but this run's base is 'embedded@"):
        load_agents(backend, str(tiny_base), [str(alien)])


def test_open_topic_cli_prints_transcript_and_judge(tiny_base, tiny_adapters, capsys):
    from evoswarm.cli import main

    adapters = [str(p) for p in tiny_adapters.values()]
    main(
        [
            "debate",
            "--topic",
            "消費税減税は日本経済にプラスか？",
            "--adapters",
            *adapters,
            "--rounds",
            "2",
            "--base",
            str(tiny_base),
            "--config",
            str(REPO / "configs/smoke.yaml"),
            "--max-new-tokens",
            "12",
        ]
    )
    out = capsys.readouterr().out
    assert "[round 1] critic:" in out and "[round 2] ideator:" in out and "judge:" in out


def _hostile_copy(src, dest, kind: str):
    """A copy of adapter `src` at `dest` holding NaN, pickled weights, or another base's lineage."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dest)
    weights = dest / "adapter_model.safetensors"
    if kind == "nan":
        tensors = load_file(str(weights))
        key = sorted(tensors)[0]
        tensors[key][0, 0] = float("nan")
        save_file(tensors, str(weights))
    elif kind == "pickle":
        torch.save(load_file(str(weights)), dest / "adapter_model.bin")
        weights.unlink()
    elif kind == "alien":
        lineage = json.loads((dest / "lineage.json").read_text())
        (dest / "lineage.json").write_text(json.dumps({**lineage, "base": "Qwen/Qwen3-4B@0123"}))
    return dest


@pytest.mark.parametrize(
    "kind, message",
    [
        ("nan", "holds NaN or Inf"),
        ("pickle", "only adapter_model.safetensors is accepted"),
        ("alien", "trained on base"),
    ],
)
def test_server_checks_adapters_as_the_pipeline_does(server, tiny_adapters, served_dir, kind, message):
    bad = _hostile_copy(tiny_adapters["critic"], served_dir / f"bad-{kind}", kind)
    status, text = _post(server + "/load_lora_adapter", {"lora_name": f"bad-{kind}", "lora_path": str(bad)})
    assert status == 400 and message in text
    assert f"bad-{kind}" not in _served(server)


def test_failed_reload_keeps_the_served_adapter_and_base_names_are_reserved(server, tiny_adapters, served_dir):
    bad = _hostile_copy(tiny_adapters["critic"], served_dir / "nan-critic", "nan")

    def answer() -> tuple[int, list]:
        status, text = _post(server + "/completions", {"model": "critic", "prompt": "Q: 1 + 1?", "max_tokens": 6})
        return status, json.loads(text)["choices"]  # not "created": a timestamp

    before = answer()
    for name in ("critic", "base", "__base__"):
        status, text = _post(server + "/load_lora_adapter", {"lora_name": name, "lora_path": str(bad)})
        assert status == 400, text
    assert _served(server).count("base") == 1 and "__base__" not in _served(server)
    assert answer() == before


@pytest.mark.parametrize("name", ["", "  ", ["critic2"]])
def test_an_empty_or_non_string_adapter_name_is_a_400_naming_lora_name(server, tiny_adapters, name):
    body = {"lora_name": name, "lora_path": str(tiny_adapters["critic"])}
    status, text = _post(server + "/load_lora_adapter", body)
    assert status == 400 and "'lora_name'" in text and "non-empty name" in text, text
    assert "" not in _served(server)


def test_non_finite_numbers_are_never_sent_as_json(backend, server):
    """A model answering NaN log-probabilities gets a 500 naming the cause, not the invalid JSON `NaN`."""
    import torch

    lm_head = backend.model.get_output_embeddings()
    saved = lm_head.weight.detach().clone()
    with torch.no_grad():
        lm_head.weight[0, 0] = float("nan")
    try:
        status, text = _post(
            server + "/completions", {"prompt": "Q: 1 + 1?", "max_tokens": 0, "echo": True, "logprobs": 0}
        )
    finally:
        with torch.no_grad():
            lm_head.weight.copy_(saved)
    assert status == 500 and "NaN" in json.loads(text)["error"]["message"]


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/completions", {"prompt": "hi", "max_tokens": 1_000_000_000}, "max_tokens"),
        ("/completions", {"prompt": "hi", "max_tokens": "ten"}, "max_tokens"),
        ("/completions", {"prompt": "hi", "temperature": -1}, "temperature"),
        ("/completions", {"prompt": "hi", "top_p": 0}, "top_p"),
        ("/completions", {"prompt": "hi", "seed": -5}, "seed"),
        ("/completions", {"prompt": [1, 10**9]}, "prompt"),
        ("/completions", {"prompt": {"a": 1}}, "prompt"),
        ("/completions", {"prompt": "hi", "max_tokens": 0, "echo": True, "logprobs": 10**6}, "logprobs"),
        ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**9}, "max_tokens"),
        ("/chat/completions", {"messages": "hi"}, "messages"),
    ],
)
def test_out_of_range_fields_are_a_400_naming_the_field(server, path, body, field):
    status, text = _post(server + path, body)
    assert status == 400 and f"'{field}'" in json.loads(text)["error"]["message"]


def _cli_debate(tiny_base, tiny_adapters, topic: str) -> None:
    from evoswarm.cli import main

    adapters = [str(p) for p in tiny_adapters.values()]
    config = str(REPO / "configs/smoke.yaml")
    main(["debate", "--topic", topic, "--adapters", *adapters, "--base", str(tiny_base), "--config", config])


@pytest.mark.parametrize("topic, message", [("  ", "--topic is empty"), ("税" * 20000, "--topic is 20000 characters")])
def test_empty_or_overlong_topic_is_refused_in_one_line(tiny_base, tiny_adapters, topic, message):
    with pytest.raises(SystemExit, match=message) as e:
        _cli_debate(tiny_base, tiny_adapters, topic)
    assert "\n" not in str(e.value.code)


def test_debate_stage_refuses_an_empty_question(tmp_path, tiny_base, smoke_config):
    from evoswarm.debate.generation import debate_generation
    from evoswarm.io import InputError

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        json.dumps({"id": "q1", "question": "1 + 1?", "answer": "2", "choices": ["1", "2"]})
        + "\n"
        + json.dumps({"id": "q2", "question": " ", "answer": "2", "choices": ["1", "2"]})
        + "\n"
    )
    with pytest.raises(InputError, match=r"tasks.jsonl:2: 'question' must be a non-empty string"):
        debate_generation(
            smoke_config, str(tiny_base), [], str(tasks), str(tmp_path / "t.jsonl"), str(tmp_path / "v.jsonl")
        )


def test_truncation_keeps_the_system_prompt_and_question_and_cuts_the_peers(backend, server, capsys):
    from evoswarm.backends import fit_prompt
    from evoswarm.protocol.chat import render
    from evoswarm.protocol.prompts import DEBATE_RULES, PeerAnswer

    system, question = "You are the critic. Check every step.", "What is 17 + 25?"
    peers = [PeerAnswer(f"agent{i}", "42", 0.9, "because " + "numbers add up " * 60) for i in range(3)]
    own = PeerAnswer("you", "41", 0.5, "I think so")
    messages = chat(system, turn_prompt(question, None, peers, DEBATE_RULES["en"], own=own))
    text = render(backend.tok, messages)
    ids = backend.tok(text, add_special_tokens=False)["input_ids"]
    limit = backend.max_length - 12
    assert len(ids) > limit  # otherwise nothing is cut
    capsys.readouterr()
    kept_ids = fit_prompt(backend.tok, text, ids, limit)
    kept = backend.tok.decode(kept_ids)
    assert len(kept_ids) <= limit
    assert system in kept and f"Q: {question}\nYou: 41" in kept and DEBATE_RULES["en"] in kept
    assert text.endswith(kept[-60:])  # the answer format and the generation prompt
    assert f"{len(ids) - len(kept_ids)} tokens of the other agents' turns dropped" in capsys.readouterr().err
    # every backend cuts here: in process and through the server, the same prompt gives the same reply
    req = GenRequest("critic", messages, 12)
    assert backend.generate([req]) == OpenAIBackend(server, backend.tok).generate([req])


def test_a_full_queue_is_a_429_with_retry_after(backend, tiny_base):
    srv = make_server(backend, str(tiny_base), [], port=0, max_queue=1)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    body = {"prompt": "Q: 1 + 1?", "max_tokens": 2}
    first = []
    with srv.state.lock:  # the model is busy: the first request waits in the queue
        waiting = threading.Thread(target=lambda: first.append(_post(url + "/completions", body)))
        waiting.start()
        deadline = time.time() + 30
        while srv.state.queued < 1 and time.time() < deadline:
            time.sleep(0.01)
        req = urllib.request.Request(url + "/completions", json.dumps(body).encode())
        with pytest.raises(urllib.error.HTTPError) as full:
            urllib.request.urlopen(req, timeout=10)
        assert full.value.code == 429 and int(full.value.headers["Retry-After"]) >= 1
        # the openai client retries a 429 instead of failing the stage
        client = OpenAIBackend(url, backend.tok, retries=6, backoff=0.2)
        retried = []
        ask = [GenRequest(None, [{"role": "user", "content": "hi"}], 2)]
        retrying = threading.Thread(target=lambda: retried.append(client.generate(ask)))
        retrying.start()
        time.sleep(0.3)
    waiting.join(60)
    retrying.join(60)
    assert first[0][0] == 200 and len(retried) == 1
    srv.shutdown()
    srv.server_close()


def test_a_burst_is_answered_every_connection_a_200_or_a_429(backend, tiny_base):
    """300 requests at once while the model is busy: 4 admitted (answered once it is free), the others
    refused with a 429 at once; none reset or left unanswered (with the default listen backlog of 5, about a
    quarter of such a burst was reset here)."""
    srv = make_server(backend, str(tiny_base), [], port=0, max_queue=4)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1/completions"
    answers, errors = [], []

    def ask():
        try:
            answers.append(_post(url, {"prompt": "Q: 1 + 1?", "max_tokens": 1})[0])
        except OSError as e:  # a reset or a refused connection
            errors.append(repr(e))

    with srv.state.lock:  # the model is busy for the whole burst
        burst = [threading.Thread(target=ask) for _ in range(300)]
        for t in burst:
            t.start()
        deadline = time.time() + 30
        while len(answers) + len(errors) < 296 and time.time() < deadline:
            time.sleep(0.01)
    for t in burst:
        t.join(60)
    srv.shutdown()
    srv.server_close()
    assert errors == [] and sorted(answers) == [200] * 4 + [429] * 296


def test_prompts_beyond_the_cap_are_a_400_and_a_cut_prompt_says_so(backend, tiny_base):
    srv = make_server(backend, str(tiny_base), [], port=0, max_prompts=3)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    code, text = _post(url + "/completions", {"prompt": ["Q: 1 + 1?"] * 4, "max_tokens": 1})
    assert code == 400 and "holds 4 prompts; this server takes at most 3" in text
    assert _post(url + "/completions", {"prompt": ["Q: 1 + 1?"] * 3, "max_tokens": 1})[0] == 200
    long = "1 + 1 = 2. " * 20_000  # far beyond the tiny base's context
    code, text = _post(url + "/completions", {"prompt": ["Q: 1 + 1?", long], "max_tokens": 2})
    limit = backend.max_length - 2
    assert code == 200 and json.loads(text)["warnings"] == [
        f"prompt 1: {len(backend.tok(long, add_special_tokens=False)['input_ids'])} tokens cut to {limit} to fit "
        f"the model's {backend.max_length}-token context with 2 for the reply"
    ]
    chat = {"messages": [{"role": "user", "content": long}], "max_tokens": 2}
    code, text = _post(url + "/chat/completions", chat)
    assert code == 200 and "tokens cut to" in json.loads(text)["warnings"][0]
    assert "warnings" not in json.loads(_post(url + "/completions", {"prompt": "Q: 1 + 1?", "max_tokens": 1})[1])
    srv.shutdown()
    srv.server_close()


def test_a_negative_content_length_is_a_400_at_once(server):
    host, port = server.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        answer = s.makefile("rb").read()  # the server closes the connection after its answer
    assert answer.startswith(b"HTTP/1.0 400") and b"Content-Length must be a byte count" in answer


def test_binding_beyond_loopback_warns(backend, tiny_base, capsys):
    for host, warned in (("127.0.0.1", False), ("0.0.0.0", True)):
        make_server(backend, str(tiny_base), [], host=host, port=0).server_close()
        assert ("warning: serving on 0.0.0.0" in capsys.readouterr().err) == warned
