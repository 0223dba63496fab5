"""Every stage's input readers answer bad input in one line naming the file (and line): the issue's
repros first, then hypothesis on random bytes, random UTF-8 and random JSON/YAML shapes. Either the
reader returns, or it raises InputError starting with the file's path; never another exception."""

import copy
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from evoswarm.config import load_config, stage_config
from evoswarm.io import InputError, read_jsonl
from evoswarm.model.adapters import CONFIG, LINEAGE, WEIGHTS, read_adapter, read_lineage
from evoswarm.model.base import build_embedded
from evoswarm.world.chats import load_chats
from evoswarm.world.items import load_items
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
CHAT = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
ITEM = {"id": "t-1", "question": "Q: 2 + 2?", "choices": ["4", "5"], "answer": "4"}


# --- the repros ---------------------------------------------------------------------------


@pytest.mark.parametrize("reader, row", [(load_chats, CHAT), (load_items, ITEM)], ids=["persona", "task"])
def test_non_utf8_bytes_name_file_and_line(tmp_path, reader, row):
    p = tmp_path / "data.jsonl"
    good = json.dumps(row, ensure_ascii=False).encode()
    p.write_bytes(good + b"\n" + good.replace(b"Q", b"\xff\xfe") + b"\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(p))}:2: not UTF-8 \(byte 0xff\)$"):
        reader(str(p))


def test_a_truncated_safetensors_names_the_adapter_folder(tmp_path):
    folder = tmp_path / "critic"
    folder.mkdir()
    (folder / CONFIG).write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4}))
    save_file({"base_model.model.q_proj.lora_A.weight": torch.ones(2, 64)}, str(folder / WEIGHTS))
    weights = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(weights[: len(weights) // 2])
    with pytest.raises(InputError, match=rf"^{re.escape(str(folder))}: {WEIGHTS} is not a readable safetensors file"):
        read_adapter(folder)


def test_a_persona_message_without_content_names_file_and_line_in_build_base(smoke_config, tmp_path):
    """build_base reads every persona's data for its tokenizer: it refuses the bad line before any training."""
    persona = tmp_path / "critic.jsonl"
    persona.write_text(json.dumps(CHAT) + "\n" + json.dumps({"messages": [{"role": "user"}]}) + "\n")
    config = stage_config(smoke_config, "build_base")
    config["personas"] = [{**config["personas"][0], "data": str(persona)}]
    with pytest.raises(InputError, match=rf"^{re.escape(str(persona))}:2: each message needs a role"):
        build_embedded(config, REPO / "data/corpus/corpus.txt", REPO / "data/corpus/format.jsonl", tmp_path / "base")
    assert not (tmp_path / "base").exists()


# --- fuzz -----------------------------------------------------------------------------------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Shapes near the real ones, so the checks past "is it JSON" are reached too.
FIELDS = ["messages", "role", "content", "id", "question", "answer", "choices", "skill", "system", "user", "assistant"]
near_values = st.recursive(
    json_values | st.sampled_from(FIELDS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5),
    max_leaves=16,
)
json_lines = st.lists(json_values | near_values, min_size=1, max_size=4).map(
    lambda rows: "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
)
payloads = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode), json_lines)


def assert_clean_or_named(read, path: Path):
    """`read()` returns, or raises InputError naming `path` or a file in it (and an existing line of that
    file, where it names one)."""
    try:
        read()
    except InputError as e:
        message = str(e)
        named = re.match(rf"({re.escape(str(path))}(?:/[^:/]+)?):(?:(\d+):)?", message)
        assert named, message
        if named[2]:
            assert 1 <= int(named[2]) <= Path(named[1]).read_bytes().count(b"\n") + 1, message


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize(
    "read",
    [load_chats, load_items, lambda p: read_jsonl(p, required=["question_id", "agent"])],
    ids=["persona-chats", "tasks", "jsonl"],
)
@FUZZ
@given(data=payloads)
def test_jsonl_readers(workdir, read, data):
    path = workdir / "input.jsonl"
    path.write_bytes(data)
    assert_clean_or_named(lambda: read(str(path)), path)


@FUZZ
@given(data=payloads)
def test_lineage_reader(workdir, data):
    folder = workdir / "adapter"
    folder.mkdir(exist_ok=True)
    (folder / LINEAGE).write_bytes(data)
    assert_clean_or_named(lambda: read_lineage(folder), folder)


@pytest.fixture(scope="module")
def adapter_weights(workdir):
    """One small valid adapter_model.safetensors, to pair with fuzzed configs."""
    path = workdir / "weights.safetensors"
    save_file({"base_model.model.q_proj.lora_A.weight": torch.ones(2, 4)}, str(path))
    return path.read_bytes()


@FUZZ
@given(config=payloads, weights=st.none() | st.binary(max_size=200))
def test_adapter_reader(workdir, adapter_weights, config, weights):
    """Fuzzed adapter_config.json beside valid weights, or fuzzed weights."""
    folder = workdir / "adapter-files"
    folder.mkdir(exist_ok=True)
    (folder / CONFIG).write_bytes(config)
    (folder / WEIGHTS).write_bytes(adapter_weights if weights is None else weights)
    assert_clean_or_named(lambda: read_adapter(folder), folder)


@pytest.fixture(scope="module")
def smoke_yaml():
    return yaml.safe_load((REPO / "configs/smoke.yaml").read_text())


def config_keys(node, prefix=()):
    """Every key path of a config (nested mappings and list items)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from config_keys(v, (*prefix, k))


@FUZZ
@given(data=st.data())
def test_config_loader(workdir, smoke_yaml, data):
    """Random bytes or text, or the smoke config with one key set to a random JSON value."""
    path = workdir / "config.yaml"
    kind = data.draw(st.sampled_from(["bytes", "key"]))
    if kind == "bytes":
        path.write_bytes(data.draw(payloads))
    else:
        config = copy.deepcopy(smoke_yaml)
        *parents, key = data.draw(st.sampled_from(list(config_keys(config))))
        node = config
        for p in parents:
            node = node[p]
        node[key] = data.draw(near_values)
        path.write_text(yaml.safe_dump(config, allow_unicode=True))
    assert_clean_or_named(lambda: load_config(path), path)
