"""Nothing wrong gets through, part two: an adapter_config.json changed after its adapter was written and
a config field of the wrong kind, wherever an adapter is read; an embedded base whose tensor data changed,
an external base hashed whole on request; `evoswarm serve` loading an adapter whose weights no longer
match its lineage."""

import json
import re
import shutil
from pathlib import Path

import pytest
from evoswarm.io import InputError
from evoswarm.model.adapters import (
    CONFIG,
    LINEAGE,
    WEIGHTS,
    base_identity,
    config_sha256,
    read_adapter,
    read_lineage,
    verify_adapter,
    write_adapter,
    write_lineage,
)
from evoswarm.model.base import read_manifest, resolve_external
from test_breed import make_adapter

# --- adapter_config.json is part of what lineage.json vouches for -----------------------------------


@pytest.fixture
def adapter(tmp_path, tiny_base):
    """A small adapter on tiny_base, written as the stages write one."""
    return make_adapter(tmp_path / "gen0/adapters/critic", base_identity(read_manifest(tiny_base)))


def edit_config(folder: Path, **fields) -> None:
    config = json.loads((folder / CONFIG).read_text())
    (folder / CONFIG).write_text(json.dumps({**config, **fields}))


# Each changes the delta the weights add to the base, and none is refused by the field checks.
CHANGED = {
    "lora_alpha x100": {"lora_alpha": 800},
    "alpha_pattern": {"alpha_pattern": {"q_proj": 64}},
    "use_rslora": {"use_rslora": True},
    "rank_pattern": {"rank_pattern": {"q_proj": 2}},
    "r": {"r": 2},
    "target_modules": {"target_modules": ["q_proj"]},
    "lora_dropout": {"lora_dropout": 0.5},
}


@pytest.mark.parametrize("fields", CHANGED.values(), ids=CHANGED)
def test_a_config_changed_after_it_was_written_is_refused(adapter, tiny_base, fields):
    edit_config(adapter, **fields)
    message = f"^{re.escape(str(adapter))}: {CONFIG} has sha256 [0-9a-f]{{12}}, but {LINEAGE} records [0-9a-f]{{12}}"
    with pytest.raises(InputError, match=message):
        verify_adapter(adapter, read_manifest(tiny_base))


UNHASHED = {
    "base_model_name_or_path": "/elsewhere/base",
    "revision": "main",
    "peft_version": "0.99.0",
    "auto_mapping": {"base_model_class": "Qwen3ForCausalLM"},
    "inference_mode": True,
}


def test_fields_that_do_not_change_the_delta_may_change(adapter, tiny_base):
    edit_config(adapter, **UNHASHED)
    verify_adapter(adapter, read_manifest(tiny_base))


def test_the_config_hash_ignores_the_order_peft_writes_a_set_in(adapter):
    """PEFT writes target_modules, a set, in the process's hash order: the same adapter must hash the same."""
    config = json.loads((adapter / CONFIG).read_text())
    reordered = {**config, "target_modules": config["target_modules"][::-1]}
    assert config_sha256(reordered) == config_sha256(config) == read_lineage(adapter)["config_sha256"]


def test_the_lineage_records_the_config_hash(adapter):
    lineage = read_lineage(adapter)
    assert list(lineage)[-2:] == ["sha256", "config_sha256"]
    assert lineage["config_sha256"] == config_sha256(json.loads((adapter / CONFIG).read_text()))


def test_a_lineage_without_a_config_hash_is_refused_saying_to_retrain(adapter, tiny_base):
    lineage = read_lineage(adapter)
    del lineage["config_sha256"]
    (adapter / LINEAGE).write_text(json.dumps(lineage))
    with pytest.raises(InputError, match=rf"^{re.escape(str(adapter))}: {LINEAGE} records no config_sha256 .*retrain"):
        verify_adapter(adapter, read_manifest(tiny_base))


# A field of the wrong kind is one line naming it (lora_alpha {} was a TypeError in module_scaling).
BAD_FIELDS = {
    "lora_alpha {}": ({"lora_alpha": {}}, "lora_alpha must be a finite positive number, not {}"),
    "lora_alpha string": ({"lora_alpha": "16"}, 'lora_alpha must be a finite positive number, not "16"'),
    "lora_alpha NaN": ({"lora_alpha": float("nan")}, "lora_alpha must be a finite positive number, not NaN"),
    "r zero": ({"r": 0}, "r must be a positive integer, not 0"),
    "r bool": ({"r": True}, "r must be a positive integer, not true"),
    "use_rslora": ({"use_rslora": "yes"}, 'use_rslora must be true or false, not "yes"'),
    "alpha_pattern": ({"alpha_pattern": {"q_proj": "x"}}, "alpha_pattern must be"),
    "rank_pattern": ({"rank_pattern": [2]}, "rank_pattern must be"),
    "target_modules": ({"target_modules": []}, "target_modules must be"),
    "modules_to_save": ({"modules_to_save": ["lm_head"]}, "modules_to_save must be empty"),
    "use_dora": ({"use_dora": True}, "use_dora must be false"),
    "peft_type": ({"peft_type": "IA3"}, 'peft_type must be "LORA", not "IA3"'),
}


@pytest.mark.parametrize("fields, message", BAD_FIELDS.values(), ids=BAD_FIELDS)
def test_a_config_field_of_the_wrong_kind_is_one_line_naming_it(adapter, fields, message):
    edit_config(adapter, **fields)
    with pytest.raises(InputError, match=f"^{re.escape(str(adapter / CONFIG))}: {re.escape(message)}") as e:
        read_adapter(adapter)
    assert "\n" not in str(e.value)


def test_a_missing_config_field_is_named(adapter):
    config = json.loads((adapter / CONFIG).read_text())
    del config["r"]
    (adapter / CONFIG).write_text(json.dumps(config))
    with pytest.raises(InputError, match=f"^{re.escape(str(adapter / CONFIG))}: no field r$"):
        read_adapter(adapter)


def test_writing_a_lineage_checks_the_config_it_vouches_for(adapter):
    from safetensors.torch import load_file

    tensors = load_file(str(adapter / WEIGHTS))
    edit_config(adapter, lora_alpha={})
    with pytest.raises(InputError, match="lora_alpha must be a finite positive number"):
        write_lineage(adapter, read_lineage(adapter))
    with pytest.raises(InputError, match="lora_alpha must be a finite positive number"):
        write_adapter(adapter.parent / "child", json.loads((adapter / CONFIG).read_text()), tensors, {})
    assert not (adapter.parent / "child").exists()


def test_export_and_the_debate_refuse_a_changed_config(adapter, tiny_base, tmp_path):
    from evoswarm.debate.agents import load_agents
    from evoswarm.model.export import export_merged

    class NoCalls:
        def __getattr__(self, name):
            raise AssertionError(f"backend.{name} called")

    edit_config(adapter, lora_alpha=800)
    with pytest.raises(InputError, match=f"{CONFIG} has sha256"):
        export_merged(tiny_base, adapter, tmp_path / "merged")
    with pytest.raises(InputError, match=f"{CONFIG} has sha256"):
        load_agents(NoCalls(), str(tiny_base), [str(adapter)])
    assert not (tmp_path / "merged").exists()


def as_lineage(folder: Path, **fields) -> Path:
    write_lineage(folder, {**read_lineage(folder), **fields})
    return folder


def test_lamarck_refuses_a_bred_child_changed_after_breed(adapter, tiny_base, tmp_path):
    """Its copy rewrites the lineage: without the check it would vouch for whatever the folder holds."""
    from evoswarm.evolve.offspring import lamarck_step

    bred = as_lineage(adapter, operator="svd", system="S", seed=1)
    edit_config(bred, lora_alpha=800)
    config = {"evolution": {"lamarck": {"step": "none"}}}
    with pytest.raises(InputError, match=f"^{re.escape(str(bred))}: {CONFIG} has sha256"):
        lamarck_step(config, str(bred), str(tmp_path / "out"), str(tiny_base))
    assert not (tmp_path / "out").exists()


def test_an_evaluated_adapter_is_checked_as_the_stages_check_one(adapter, tiny_base):
    from evoswarm.evaluate.single import lineage_system
    from evoswarm.targets import Target
    from test_breed import changed_weights

    changed_weights(adapter)
    with pytest.raises(InputError, match=f"^{re.escape(str(adapter))}: {WEIGHTS} has sha256"):
        lineage_system(Target.parse("gen0-critic"), str(tiny_base), str(adapter))


def test_specialist_long_refuses_a_changed_best_agent_before_training(tmp_path, tiny_base, smoke_config):
    import copy

    from conftest import REPO
    from evoswarm.controls import train_control

    best = as_lineage(
        make_adapter(tmp_path / "gen0/adapters/ideator", base_identity(read_manifest(tiny_base))), system="S"
    )
    edit_config(best, use_rslora=True)
    (tmp_path / "fitness.csv").write_text("agent,fitness\nideator,0.9\n")
    config = copy.deepcopy(smoke_config)
    config["seed"] = 0
    config["personas"] = [{**p, "data": str(REPO / p["data"]), "training": {}} for p in config["personas"]]
    config["evolution"]["lamarck"] = {**config["evolution"]["lamarck"], "step": "persona_sft", "max_steps": 1}
    with pytest.raises(InputError, match=f"^{re.escape(str(best))}: {CONFIG} has sha256"):
        train_control(
            config,
            "specialist-long",
            str(tiny_base),
            str(tmp_path / "long"),
            [str(best)],
            str(tmp_path / "fitness.csv"),
        )


# --- the base's weights -----------------------------------------------------------------------------


def flip_a_weight(folder: Path) -> None:
    """Change one byte of tensor data: the size, the header and every other file stay as they were."""
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))


def test_an_embedded_base_whose_tensor_data_changed_is_refused(tiny_base, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_base, base)
    flip_a_weight(base)
    with pytest.raises(InputError, match=rf"^{re.escape(str(base / 'manifest.json'))}: .*model.safetensors.*sha256"):
        read_manifest(base)


@pytest.mark.parametrize("hash_weights", [False, True])
def test_an_external_base_is_hashed_whole_only_on_request(tiny_base, smoke_config, tmp_path, hash_weights):
    folder = tmp_path / "my-model"
    shutil.copytree(tiny_base, folder, ignore=shutil.ignore_patterns("manifest.json"))
    config = {**smoke_config, "base_model": str(folder), "base": {**smoke_config["base"], "hash_weights": hash_weights}}
    resolve_external(config, tmp_path / "base")
    flip_a_weight(folder)
    if not hash_weights:  # the header fingerprint alone: the same size and header pass
        assert read_manifest(tmp_path / "base")["path"] == str(folder.resolve())
        return
    with pytest.raises(InputError, match=r"manifest.json: .*model.safetensors.*sha256.*build_base"):
        read_manifest(tmp_path / "base")


# --- `evoswarm serve` checks what it loads as the stages do ---------------------------------------


def test_serve_refuses_an_adapter_whose_weights_no_longer_match_its_lineage(adapter, tiny_base, tmp_path):
    from evoswarm.backends.server import ServeState
    from test_breed import changed_weights

    class Backend:
        adapters: dict = {}

        def add_adapter(self, name, path):
            raise AssertionError("the backend was asked to load a changed adapter")

    state = ServeState(Backend(), str(tiny_base), [str(tmp_path)], base_name="/models/base", max_queue=1)
    changed_weights(adapter)
    with pytest.raises(InputError, match=f"^{re.escape(str(adapter))}: {WEIGHTS} has sha256"):
        state.load("critic", str(adapter))
