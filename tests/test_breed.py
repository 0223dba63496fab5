"""The breed stage refuses every elite or parent it could not stand behind: pickle, truncated or
NaN weights, weights that no longer hash to their lineage's sha256, another base, a missing lineage."""

import json
from pathlib import Path

import pytest
import torch
from evoswarm import stage
from evoswarm.evolve.offspring import breed as BREED
from evoswarm.io import InputError, sha256_file
from evoswarm.model.adapters import (
    LINEAGE,
    WEIGHTS,
    base_identity,
    lineage_record,
    read_lineage,
    write_adapter,
    write_lineage,
)
from evoswarm.model.base import read_manifest
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
MODULES = ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"]
CONFIG = {"evolution": {}}


def make_adapter(folder: Path, base_id: str, modules=MODULES, rank: int = 4, seed: int = 0) -> Path:
    """A small PEFT-layout adapter with its lineage, written as the stages write one (no model needed)."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for m in modules:
        tensors[f"base_model.model.{m}.lora_A.weight"] = torch.randn(rank, 16, generator=g)
        tensors[f"base_model.model.{m}.lora_B.weight"] = torch.randn(16, rank, generator=g)
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": ["q_proj", "down_proj"]}
    lineage = {"generation": 0, "slot": folder.name, "persona": folder.name, "parents": [], "base": base_id}
    write_adapter(folder, config, tensors, lineage)
    return folder


@pytest.fixture
def gen0(tmp_path, tiny_base):
    """Generation 0's adapters (critic, ideator) on tiny_base, and a selection plan: s00 elite critic,
    s01 a child of critic and ideator."""
    base_id = base_identity(read_manifest(tiny_base))
    adapters = tmp_path / "gen0/adapters"
    for k, name in enumerate(("critic", "ideator")):
        make_adapter(adapters / name, base_id, seed=k)
    plan = {
        "generation": 0,
        "elites": {"s00": "critic"},
        "children": {
            "s01": {
                "parents": ["critic", "ideator"],
                "weights": [0.5, 0.5],
                "operator": "svd",
                "rank": "max",
                "seed": 7,
                "mutation": {"noise_fraction": 0.0, "noise_scale": 0.0, "reinit_prob": 0.0, "reinit_k": 1},
            }
        },
    }
    selection = tmp_path / "gen0/selection.json"
    selection.write_text(json.dumps(plan))
    return {"adapters": adapters, "selection": selection, "base": tiny_base, "out": tmp_path / "gen1/bred"}


def breed(gen0, slot):
    out = gen0["out"] / slot
    BREED(CONFIG, str(gen0["selection"]), str(gen0["adapters"]), slot, str(out), str(gen0["base"]))
    return out


def test_a_sound_elite_is_copied_with_the_sha_of_its_copy(gen0):
    out = breed(gen0, "s00")
    lineage = read_lineage(out)
    assert lineage["operator"] == "elite" and lineage["parents"] == ["critic"]
    assert lineage["sha256"] == sha256_file(out / WEIGHTS) == sha256_file(gen0["adapters"] / "critic" / WEIGHTS)


def test_lineage_records_keep_one_field_order_and_an_ancestors_places():
    fresh = lineage_record(seed=3, operator="sft", generation=0, slot="critic", parents=[], base="b", params={})
    assert list(fresh) == ["generation", "slot", "parents", "operator", "params", "seed", "base"]
    parent = {"generation": 0, "slot": "critic", "operator": "sft", "sha256": "ab", "train": {}}
    elite = lineage_record(parent, generation=1, slot="s00", operator="elite", parent_generation=0)
    assert list(elite) == ["generation", "slot", "operator", "sha256", "train", "parent_generation"]
    assert (elite["generation"], elite["operator"]) == (1, "elite") and parent["operator"] == "sft"
    with pytest.raises(TypeError, match="unknown fields"):
        lineage_record(generaton=1)


def nan_weights(folder: Path):
    """NaN weights whose lineage is rewritten to match, so only the finiteness check can catch them."""
    save_file({"base_model.model.x.lora_A.weight": torch.full((4, 16), float("nan"))}, str(folder / WEIGHTS))
    write_lineage(folder, read_lineage(folder))


def truncated_weights(folder: Path):
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) // 2])


def pickle_weights(folder: Path):
    torch.save({"w": torch.zeros(2)}, folder / "adapter_model.bin")
    (folder / WEIGHTS).unlink()


def pickle_beside_safetensors(folder: Path):
    torch.save({"w": torch.zeros(2)}, folder / "adapter_model.bin")


def changed_weights(folder: Path):
    """Finite, well-formed weights that are not the ones lineage.json's sha256 names."""
    save_file({"base_model.model.x.lora_A.weight": torch.ones(4, 16)}, str(folder / WEIGHTS))


def other_base(folder: Path):
    lineage = json.loads((folder / LINEAGE).read_text())
    (folder / LINEAGE).write_text(json.dumps({**lineage, "base": "Qwen/Qwen3-4B@0123456789abcdef"}))


def no_lineage(folder: Path):
    (folder / LINEAGE).unlink()


def bad_utf8_lineage(folder: Path):
    (folder / LINEAGE).write_bytes(b'{"base": "\xff\xfe"}')


DEFECTS = {
    nan_weights: "NaN or Inf",
    truncated_weights: "not a readable safetensors file",
    pickle_weights: "pickle",
    pickle_beside_safetensors: "pickle",
    changed_weights: "sha256",
    other_base: "trained on base",
    no_lineage: "no lineage.json",
    bad_utf8_lineage: "not UTF-8",
}


@pytest.mark.parametrize("defect", DEFECTS, ids=lambda f: f.__name__)
def test_a_defective_elite_is_refused_naming_its_folder(gen0, defect):
    elite = gen0["adapters"] / "critic"
    defect(elite)
    with pytest.raises(InputError, match=DEFECTS[defect]) as e:
        breed(gen0, "s00")
    assert str(e.value).startswith(str(elite)), e.value
    assert not (gen0["out"] / "s00").exists()


@pytest.mark.parametrize("defect", [nan_weights, changed_weights, no_lineage], ids=lambda f: f.__name__)
def test_a_defective_second_parent_is_refused_naming_its_folder(gen0, defect):
    parent = gen0["adapters"] / "ideator"
    defect(parent)
    with pytest.raises(InputError, match=DEFECTS[defect]) as e:
        breed(gen0, "s01")
    assert str(e.value).startswith(str(parent)), e.value


def test_parents_from_another_base_are_refused_for_the_base_not_their_modules(gen0):
    """The other base's adapter targets other modules too: the base is the cause, and the message says so."""
    make_adapter(gen0["adapters"] / "ideator", "Qwen/Qwen3-4B@0123456789abcdef", modules=["model.layers.0.mlp.up_proj"])
    with pytest.raises(InputError, match="trained on base 'Qwen/Qwen3-4B@0123456789abcdef'"):
        breed(gen0, "s01")


def test_a_refused_elite_exits_1_with_one_line(gen0, capsys):
    nan_weights(gen0["adapters"] / "critic")
    kwargs = dict(config=CONFIG, selection=str(gen0["selection"]), parents_dir=str(gen0["adapters"]), slot="s00")
    with pytest.raises(SystemExit) as e:
        stage.run(BREED, {**kwargs, "out": str(gen0["out"] / "s00"), "base": str(gen0["base"])})
    assert e.value.code == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {gen0['adapters'] / 'critic'}: "), lines


def test_a_child_of_trained_parents_computes_in_peft_what_its_files_say(tiny_base, tiny_adapters, tmp_path):
    """The stage's svd child of the two trained personas (ranks 8 and 4), and a parent (lora_alpha / r = 2),
    loaded by PEFT: base + s·B·A from their own safetensors and adapter_config.json (the smoke run checks
    every adapter it breeds the same way, in test_workflow)."""
    from support.lora_reference import peft_and_reference_logits
    from support.tolerance import FP32_RTOL, scaled_max_diff

    plan = {
        "generation": 0,
        "elites": {},
        "children": {
            "s01": {
                "parents": ["critic", "ideator"],
                "weights": [0.6, 0.4],
                "operator": "svd",
                "rank": "max",
                "seed": 7,
                "mutation": {"noise_fraction": 0.0, "noise_scale": 0.0, "reinit_prob": 0.0, "reinit_k": 1},
            }
        },
    }
    selection = tmp_path / "selection.json"
    selection.write_text(json.dumps(plan))
    child = tmp_path / "s01"
    BREED(CONFIG, str(selection), str(tiny_adapters["critic"].parent), "s01", str(child), str(tiny_base))
    assert json.loads((child / "adapter_config.json").read_text())["r"] == 8
    for folder in (tiny_adapters["ideator"], child):
        got, want, plain = peft_and_reference_logits(tiny_base, folder)
        assert scaled_max_diff(got, want) < FP32_RTOL, folder  # fp32 rounding only (support/tolerance.py)
        assert scaled_max_diff(got, plain) > 100 * FP32_RTOL, folder  # the adapter acts: the test can tell
