"""Structured fuzz of every reader of user input (issue 26): valid task files, persona chats, adapter folders,
configs and server request bodies, each mutated a few times (a field dropped, set to another kind, ids
repeated, unicode, empty strings, lines cut short). test_fuzz_inputs.py throws random bytes at the same
readers; starting from valid input reaches the checks past "is it JSON".

Properties: (a) a reader returns or raises InputError, nothing else; (b) its message is one line naming the
file (or, for the server, the field); (c) an adapter_config.json edited after its lineage was written, in a
field that changes the delta, is refused. Counts of accepted and refused inputs print at the module's end
(`pytest -s`, or the teardown section of `-rA`)."""

import copy
import io
import json
import math
import re
import shutil
import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml
from evoswarm.config import load_config
from evoswarm.io import InputError
from evoswarm.model.adapters import (
    CONFIG,
    LINEAGE,
    UNHASHED_CONFIG,
    WEIGHTS,
    base_identity,
    check_config,
    read_adapter,
    verify_adapter,
    write_adapter,
)
from evoswarm.world.chats import ROLES, load_chats
from evoswarm.world.items import load_items
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent

# derandomize: CI and a rerun try the same inputs; no database, so an earlier local run changes nothing.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

COUNTS: dict[str, Counter] = defaultdict(Counter)


@pytest.fixture(scope="module", autouse=True)
def _print_counts(pytestconfig):
    yield
    # With capture off (what capsys.disabled() does): CI runs `pytest -q`, which shows no captured output.
    with pytestconfig.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print("\ninputs per reader (accepted / refused):")
        for reader, n in sorted(COUNTS.items()):
            print(f"  {reader:<22} {n['accepted']:>4} accepted  {n['refused']:>4} refused")


def attempt(reader: str, call, names: list[str], shown):
    """call()'s result, or None when it raised InputError: one line naming one of `names`. Any other
    exception fails the test with the input that caused it."""
    try:
        result = call()
    except InputError as e:
        message = str(e)
        assert "\n" not in message, f"{reader}: a message of several lines: {message!r}\ninput: {shown!r}"
        assert any(n in message for n in names), f"{reader}: names none of {names}: {message!r}\ninput: {shown!r}"
        COUNTS[reader]["refused"] += 1
        return None
    except Exception as e:  # noqa: BLE001 - any other exception is what this file looks for
        pytest.fail(f"{reader}: {type(e).__name__}: {e}\ninput: {shown!r}")
    COUNTS[reader]["accepted"] += 1
    return result


# --- mutations ------------------------------------------------------------------------------------

ODD_TEXT = ["", " ", "\t\n", "\x00", "é", "e\u0301", "\u202eevil", "🙂", "日本語", "\ud800", "NaN", "null", "0"]
NAN, INF = float("nan"), float("inf")
# Values of every kind, the ones that break readers most often (an int past float's range, NaN, a bool where
# a number goes, an empty or odd text) drawn as often as the rest together.
SPECIAL = [10**400, -(10**400), 2**64 + 1, NAN, INF, -INF, True, False, None, 0, -1, 0.5, *ODD_TEXT]
odd_values = st.booleans().flatmap(
    lambda special: (
        st.sampled_from(SPECIAL)
        if special
        else st.one_of(
            st.integers(-(2**70), 2**70),
            st.floats(),
            st.text(max_size=8),
            st.lists(st.sampled_from(SPECIAL) | st.integers(-2, 9), max_size=3),
            st.dictionaries(
                st.sampled_from(["a", "q_proj", "role", ""]), st.sampled_from(SPECIAL) | st.integers(-2, 9), max_size=2
            ),
        )
    )
)


def paths_of(node, prefix=()):
    """Every key path into a JSON value (mapping keys and list indices)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from paths_of(v, (*prefix, k))


def mutate(data, node, extra_keys=()):
    """`node` (a dict, changed in place) with one field dropped, set to another value or added; returns the
    top-level key it touched. Half the time the field is one of `extra_keys`: the ones the reader acts on,
    which a uniform pick among a dozen fields and their items would seldom reach."""
    if extra_keys and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(extra_keys))
        if key in node and data.draw(st.integers(0, 3)) == 0:
            del node[key]
        else:
            node[key] = data.draw(odd_values)
        return key
    paths = list(paths_of(node))
    op = data.draw(st.sampled_from(["drop", "set", "set", "add"]) if paths else st.just("add"))
    if op == "add":
        key = data.draw(st.sampled_from([*extra_keys, "extra", "é", ""]))
        node[key] = data.draw(odd_values)
        return key
    *parents, last = data.draw(st.sampled_from(paths))
    holder = node
    for p in parents:
        holder = holder[p]
    if op == "drop":
        del holder[last]
    else:
        holder[last] = data.draw(odd_values)
    return (*parents, last)[0]


def dumps(row, data) -> str:
    return json.dumps(row, ensure_ascii=data.draw(st.booleans()))


def jsonl_bytes(data, rows: list[dict], fields: list[str], unique: str | None = None) -> bytes:
    """`rows` as JSONL after 1-3 mutations: of a field, a repeated `unique` value, a line cut short, a
    blank line or a line that is JSON but not an object."""
    lines: list = copy.deepcopy(rows)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["field", "field", "field", "repeat", "cut", "blank", "not an object"]))
        if op == "field" and isinstance(lines[i], dict):
            mutate(data, lines[i], fields)
        elif op == "repeat" and unique and isinstance(lines[i], dict) and len(lines) > 1:
            j = data.draw(st.integers(0, len(lines) - 2))
            j += j >= i  # another line than i
            if isinstance(lines[j], dict) and unique in lines[j]:
                lines[i][unique] = lines[j][unique]
        elif op == "cut":
            text = lines[i] if isinstance(lines[i], str) else dumps(lines[i], data)
            lines[i] = text[: data.draw(st.integers(0, max(0, len(text) - 1)))]
        elif op == "blank":
            lines.insert(i, data.draw(st.sampled_from(["", " ", "\t"])))
        elif op == "not an object":
            lines[i] = json.dumps(data.draw(odd_values))
    text = "\n".join(x if isinstance(x, str) else dumps(x, data) for x in lines)
    # A lone surrogate (ensure_ascii off) becomes bytes that are not UTF-8: the reader must say so.
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-readers")


def read_rows(path: Path, n: int) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:n]]


# --- task files -----------------------------------------------------------------------------------

TASK_FIELDS = ["id", "question", "answer", "choices", "skill"]
TASK_ROWS = read_rows(REPO / "data/tasks/dev.jsonl", 4)


@FUZZ
@given(data=st.data())
def test_task_reader(workdir, data):
    path = workdir / "tasks.jsonl"
    raw = jsonl_bytes(data, TASK_ROWS, TASK_FIELDS, unique="id")
    path.write_bytes(raw)
    scorer = data.draw(st.sampled_from([None, "choice", "exact", "numeric", "rouge_l", "f1"]))
    mode = data.draw(st.sampled_from([None, "generate", "loglik"]))
    items = attempt("tasks", lambda: load_items(str(path), scorer=scorer, answer_mode=mode), [str(path)], raw)
    if items is None:
        return
    # What the debate and the evaluation rely on once the reader has said yes.
    ids = [it["id"] for it in items]
    assert len(set(ids)) == len(ids), raw
    for it in items:
        assert all(isinstance(it[k], str) and it[k].strip() for k in ("id", "question", "answer")), raw
        if "choices" in it or scorer == "choice" or mode == "loglik":
            assert isinstance(it["choices"], list) and it["answer"] in it["choices"], raw
            assert len(it["choices"]) >= 2 and all(isinstance(c, str) for c in it["choices"]), raw


# --- persona chat files ---------------------------------------------------------------------------

CHAT_ROWS = read_rows(REPO / "data/personas/critic.jsonl", 3)


@FUZZ
@given(data=st.data())
def test_chat_reader(workdir, data):
    path = workdir / "persona.jsonl"
    raw = jsonl_bytes(data, CHAT_ROWS, ["messages", "role", "content"])
    path.write_bytes(raw)
    chats = attempt("persona chats", lambda: load_chats(path), [str(path)], raw)
    for chat in chats or []:  # what training relies on
        msgs = chat["messages"]
        assert isinstance(msgs, list) and msgs, raw
        assert all(isinstance(m, dict) and m["role"] in ROLES and isinstance(m["content"], str) for m in msgs), raw
        assert any(m["role"] == "assistant" for m in msgs), raw


# --- adapter folders ------------------------------------------------------------------------------

# The fields adapter_config.json holds as PEFT writes it for a LoRA of the embedded base.
PEFT_CONFIG = {
    "alpha_pattern": {},
    "auto_mapping": None,
    "base_model_name_or_path": "results/base",
    "bias": "none",
    "fan_in_fan_out": False,
    "inference_mode": True,
    "init_lora_weights": True,
    "layers_pattern": None,
    "layers_to_transform": None,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "modules_to_save": None,
    "peft_type": "LORA",
    "r": 4,
    "rank_pattern": {},
    "revision": None,
    "target_modules": ["v_proj", "q_proj"],
    "task_type": "CAUSAL_LM",
    "use_dora": False,
    "use_rslora": False,
}
DELTA = ("r", "lora_alpha", "use_rslora", "alpha_pattern", "rank_pattern", "target_modules")
MANIFEST = {"source": "embedded", "source_type": "embedded", "sha256": "ab" * 32}


@pytest.fixture(scope="module")
def adapter_src(workdir):
    """One valid adapter folder with its lineage, written as the stages write one (no model needed)."""
    import torch

    g = torch.Generator().manual_seed(0)
    tensors = {}
    for m in ("q_proj", "v_proj"):
        tensors[f"base_model.model.model.layers.0.self_attn.{m}.lora_A.weight"] = torch.randn(4, 16, generator=g)
        tensors[f"base_model.model.model.layers.0.self_attn.{m}.lora_B.weight"] = torch.randn(16, 4, generator=g)
    lineage = {"generation": 0, "slot": "critic", "persona": "critic", "parents": [], "base": base_identity(MANIFEST)}
    folder = workdir / "adapter-src"
    write_adapter(folder, PEFT_CONFIG, tensors, lineage)
    verify_adapter(folder, MANIFEST)  # valid before any mutation
    return folder


def canonical(config: dict, field: str) -> str:
    """A field's value as a type-aware text (1 and 1.0 and true differ); target_modules as the set PEFT reads."""
    if field not in config:
        return "<absent>"
    value = config[field]
    if field == "target_modules" and isinstance(value, list):
        value = sorted(value, key=lambda v: json.dumps(v))
    return json.dumps(value, sort_keys=True)


@FUZZ
@given(data=st.data())
def test_adapter_readers(workdir, adapter_src, data):
    folder = workdir / "adapter"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(adapter_src, folder)
    config = json.loads((folder / CONFIG).read_text())
    lineage = json.loads((folder / LINEAGE).read_text())
    part = data.draw(st.sampled_from(["config", "config", "config", "lineage", "weights"]))
    if part == "weights":
        weights = (folder / WEIGHTS).read_bytes()
        at = data.draw(st.integers(0, len(weights) - 1))
        cut = data.draw(st.booleans())
        (folder / WEIGHTS).write_bytes(
            weights[:at] if cut else weights[:at] + bytes([weights[at] ^ 1]) + weights[at + 1 :]
        )
        shown = f"weights {'cut at' if cut else 'bit flipped at'} byte {at}"
    else:
        original, file = (config, CONFIG) if part == "config" else (lineage, LINEAGE)
        edited = copy.deepcopy(original)
        focus = DELTA if part == "config" else ("sha256", "config_sha256", "base")
        touched = {mutate(data, edited, focus) for _ in range(data.draw(st.integers(1, 2)))}
        text = json.dumps(edited, ensure_ascii=data.draw(st.booleans()))
        cut = data.draw(st.integers(0, 9)) == 0  # a file cut short
        if cut:
            text = text[: data.draw(st.integers(0, len(text) - 1))]
        raw = text.encode("utf-8", "surrogatepass")
        (folder / file).write_bytes(raw)
        readable = not cut and raw == text.encode("utf-8", "replace")  # whole, and UTF-8
        shown = f"{file}: {text}"
    names = [str(folder)]
    if part == "config":
        attempt("check_config", lambda: check_config(folder / CONFIG), names, shown)
    attempt("read_adapter", lambda: read_adapter(folder), names, shown)
    verified = attempt("verify_adapter", lambda: verify_adapter(folder, MANIFEST), names, shown)

    if part == "weights":
        assert verified is None, f"weights changed after lineage was written, accepted: {shown}"
    elif part == "lineage" and touched & {"sha256", "config_sha256", "base"}:
        changed = any(canonical(edited, k) != canonical(lineage, k) for k in ("sha256", "config_sha256", "base"))
        assert verified is None or not changed, f"a lineage whose hashes or base changed, accepted: {shown}"
    elif part == "config":
        # (c) with lineage.json's hashes intact, a field that changes the delta must not change unnoticed;
        # neither may any other hashed field. Only the fields left out of the hash may change freely.
        changed = {k for k in {*config, *edited} if canonical(edited, k) != canonical(config, k)}
        delta = changed & set(DELTA)
        if delta:
            COUNTS["(c) delta fields"]["refused" if verified is None else "accepted"] += 1
        assert verified is None or not (changed - set(UNHASHED_CONFIG)), f"{sorted(changed)} changed, accepted: {shown}"
        # ...and those may: a copied project or another PEFT version keeps its adapters.
        if readable and changed <= set(UNHASHED_CONFIG):
            assert verified is not None, f"only {sorted(changed)} changed, refused: {shown}"


# --- configs --------------------------------------------------------------------------------------

SMOKE = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())


@FUZZ
@given(data=st.data())
def test_config_reader(workdir, data):
    path = workdir / "config.yaml"
    config = copy.deepcopy(SMOKE)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["field", "field", "field", "repeat persona"]))
        if op == "field":
            mutate(data, config, ["seeds", "population", "personas", "training", "debate"])
        elif isinstance(config.get("personas"), list) and config["personas"]:
            config["personas"].append(copy.deepcopy(config["personas"][0]))
    text = yaml.safe_dump(config, allow_unicode=data.draw(st.booleans()), default_flow_style=data.draw(st.booleans()))
    if data.draw(st.integers(0, 9)) == 0:  # a file cut short
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    attempt("config", lambda: load_config(path), [str(path)], text)


# --- the server's request bodies ------------------------------------------------------------------

VOCAB, MAX_LENGTH = 512, 384


class StubTokenizer:
    """A word a token, and the embedded base's chat template (model/base.py) written out in Python."""

    chat_template = "stub"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(range(len(text.split())))}

    def decode(self, ids):
        return "x" * len(ids)

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


class StubBackend:
    """What the server's handlers call, without a model; records anything unchecked that reaches it."""

    def __init__(self):
        self.adapters = {"critic": "/adapters/critic"}
        self.max_length = MAX_LENGTH
        self.unchecked: list[str] = []
        embeddings = type("E", (), {"num_embeddings": VOCAB})()
        self.model = type("M", (), {"get_input_embeddings": lambda _: embeddings})()
        self.tok = StubTokenizer()

    def _setting(self, max_tokens, temperature, top_p, seed, min_tokens):
        if not (isinstance(max_tokens, int) and min_tokens <= max_tokens < MAX_LENGTH):
            self.unchecked.append(f"max_tokens {max_tokens!r}")
        if not (isinstance(temperature, float) and math.isfinite(temperature) and 0 <= temperature <= 100):
            self.unchecked.append(f"temperature {temperature!r}")
        if not (isinstance(top_p, float) and 0 < top_p <= 1):
            self.unchecked.append(f"top_p {top_p!r}")
        if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63):
            self.unchecked.append(f"seed {seed!r}")

    def _prompt(self, p):
        ids = isinstance(p, list) and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < VOCAB for t in p)
        if not (p and (isinstance(p, str) or ids)):
            self.unchecked.append(f"prompt {p!r}")

    def generate(self, requests):
        for r in requests:
            if not all(isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in r.messages):
                self.unchecked.append(f"messages {r.messages!r}")
            self._setting(r.max_new_tokens, r.temperature, r.top_p, r.seed, 1)
        return ["ok"] * len(requests)

    def generate_raw(self, pairs, settings_):
        for (_, p), s in zip(pairs, settings_, strict=True):
            self._prompt(p)
            self._setting(*s, 0)
        return ["ok\nmore"] * len(pairs)

    def token_logprobs(self, adapter, prompts):
        for p in prompts:
            self._prompt(p)
        return [{"tokens": [], "token_logprobs": []} for _ in prompts]

    def add_adapter(self, name, path):
        self.adapters[name] = path

    def remove_adapter(self, name):
        del self.adapters[name]


@pytest.fixture(scope="module")
def served(workdir, adapter_src):
    """The server's request handler over a stub backend, with `adapter_src` in its allowed folder."""
    from evoswarm.backends.server import ServeState, make_handler

    state = ServeState.__new__(ServeState)  # its __init__ reads a base's manifest from disk
    state.backend = StubBackend()
    state.manifest = MANIFEST
    state.allowed = [adapter_src.parent.resolve()]
    state.base_name = "base"
    state.max_queue = 4
    state.max_prompts = 2  # the completions body holds 2: a mutation adding one reaches the cap
    state.queued = 0
    state.lock, state._queue_lock = threading.Lock(), threading.Lock()
    return state, make_handler(state)


def post(handler_cls, route: str, body: bytes, length: str) -> tuple[int, str]:
    """(status, body) of one POST through the real handler, with in-memory streams for the socket."""
    h = handler_cls.__new__(handler_cls)
    h.rfile, h.wfile = io.BytesIO(body), io.BytesIO()
    h.headers = {"Content-Length": length}
    h.path, h.command, h.requestline, h.request_version = route, "POST", f"POST {route}", "HTTP/1.1"
    h.do_POST()
    head, _, payload = h.wfile.getvalue().partition(b"\r\n\r\n")
    return int(head.split()[1]), payload.decode()


BODIES = {
    "/v1/chat/completions": {
        "model": "critic",
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
        "max_tokens": 8,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 1,
    },
    "/v1/completions": {
        "model": "base",
        "prompt": ["Q: 2 + 2?", [1, 2, 3]],
        "max_tokens": 4,
        "temperature": 0.0,
        "logprobs": 1,
        "echo": False,
        "stop": ["\n"],
    },
    "/v1/load_lora_adapter": {"lora_name": "ideator", "lora_path": "<adapter>"},
    "/v1/unload_lora_adapter": {"lora_name": "critic"},
}
# A client's error is a 400 from the checks (a ValueError: the JSON decoder's, or one naming the field; a
# KeyError naming a missing field), or a 403/404; a TypeError got past them, and a 500 says the model failed,
# which the stub never does.
CLIENT_ERRORS = ("ValueError", "InputError", "JSONDecodeError", "UnicodeDecodeError", "KeyError")


@FUZZ
@given(data=st.data())
def test_server_request_bodies(served, adapter_src, data):
    state, handler = served
    route = data.draw(st.sampled_from(list(BODIES)))
    body = copy.deepcopy(BODIES[route])
    fields = list(BODIES[route])
    if "lora_path" in body:
        body["lora_path"] = str(adapter_src)
    for _ in range(data.draw(st.integers(0, 2))):
        mutate(data, body, [*fields, "model", "max_tokens", "temperature", "top_p", "seed", "logprobs", "stop"])
    if data.draw(st.booleans()) and route == "/v1/completions":
        body["echo"], body["max_tokens"] = True, 0  # the prompt log-probabilities path
    raw = json.dumps(body, ensure_ascii=data.draw(st.booleans())).encode("utf-8", "surrogatepass")
    if data.draw(st.integers(0, 9)) == 0:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    length = data.draw(st.sampled_from([str(len(raw))] * 6 + ["", "-1", "abc", "1e3", str(2**70)]))
    adapters = dict(state.backend.adapters)
    state.backend.unchecked.clear()
    status, answer = post(handler, route, raw, length)
    state.backend.adapters = adapters  # each example starts from the same served adapters
    shown = f"POST {route} Content-Length {length!r}: {raw!r}"
    assert not state.backend.unchecked, f"unchecked values reached the model: {state.backend.unchecked}; {shown}"
    assert status in (200, 400, 403, 404), f"{status} {answer}; {shown}"
    reader = f"server {route.removeprefix('/v1/')}"
    if status == 200:
        COUNTS[reader]["accepted"] += 1
        return
    COUNTS[reader]["refused"] += 1
    message = json.loads(answer)["error"]["message"]
    assert "\n" not in message, f"{message!r}; {shown}"
    if status == 400:
        assert message.split(":")[0] in CLIENT_ERRORS, f"{message!r}; {shown}"
        named = message.startswith(("JSONDecodeError", "UnicodeDecodeError")) or re.search(
            r"'[\w-]+'|Content-Length|request body|adapter", message
        )
        assert named, f"names no field: {message!r}; {shown}"


# --- what this fuzz found, pinned (derandomized draws move whenever a test's code changes) ---------------


def test_a_population_past_any_list_is_checked_at_once(workdir):
    """The copy-slot check listed every generation-0 slot: a population of 10**30 never finished."""
    path = workdir / "big.yaml"
    path.write_text(yaml.safe_dump({**SMOKE, "population": 10**30}))
    assert load_config(path)["population"] == 10**30


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"lora_alpha": 10**400}, "lora_alpha must be a finite positive number"),
        ({"alpha_pattern": {"q_proj": -(10**400)}}, "alpha_pattern must be a mapping"),
        ({"target_modules": ["q_proj", "\ud800"]}, f"{CONFIG} has sha256"),  # was UnicodeEncodeError hashing it
    ],
    ids=["huge lora_alpha", "huge alpha_pattern", "lone surrogate"],
)
def test_an_adapter_config_found_by_the_fuzz_is_refused_in_one_line(workdir, adapter_src, fields, message):
    folder = workdir / "adapter-pinned"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(adapter_src, folder)
    (folder / CONFIG).write_text(json.dumps({**PEFT_CONFIG, **fields}))  # ensure_ascii: the surrogate as \ud800
    with pytest.raises(InputError, match=f"^{re.escape(str(folder))}.*{re.escape(message)}"):
        verify_adapter(folder, MANIFEST)


@pytest.mark.parametrize(
    "route, body, message",
    [
        ("/v1/chat/completions", {**BODIES["/v1/chat/completions"], "temperature": 10**400}, "'temperature' must be"),
        ("/v1/chat/completions", {**BODIES["/v1/chat/completions"], "model": ["critic"]}, "'model' must be"),
        ("/v1/load_lora_adapter", {"lora_name": "ideator", "lora_path": None}, "'lora_path' must be"),
        ("/v1/unload_lora_adapter", {"lora_name": []}, "'lora_name' must be"),
    ],
    ids=["huge temperature", "model a list", "lora_path null", "lora_name a list"],
)
def test_a_request_body_found_by_the_fuzz_is_a_400_naming_the_field(served, route, body, message):
    """Each was a 500 (OverflowError) or a 400 'TypeError: ...' naming no field."""
    raw = json.dumps(body).encode()
    status, answer = post(served[1], route, raw, str(len(raw)))
    assert status == 400, answer
    assert json.loads(answer)["error"]["message"].startswith(f"ValueError: {message}"), answer
