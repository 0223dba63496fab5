"""The embedded base: tokenizer, chat template, build, reload offline, generate; external bases."""

import json
import shutil

import pytest
from evoswarm.io import InputError
from evoswarm.model.base import load_base, read_manifest, resolve_external


def test_tokenizer_round_trip_and_chat_template(tiny_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    for text in ["What is 3 plus 4?", "消費税減税は日本経済にプラスか？", '{"answer": "りんご"}']:
        assert tok.decode(tok(text)["input_ids"]) == text
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    full = tok.apply_chat_template(
        msgs + [{"role": "assistant", "content": "A"}],
        tokenize=True,
        return_assistant_tokens_mask=True,
        return_dict=True,
    )
    masked = [t for t, m in zip(full["input_ids"], full["assistant_masks"]) if m]
    assert tok.decode(masked) == "A<|im_end|>"  # loss on the assistant turn only


def test_built_base_reloads_offline_and_generates(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = read_manifest(tiny_base)
    assert m["source"] == "embedded" and m["params"] > 10_000
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    tok = AutoTokenizer.from_pretrained(tiny_base)
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert (tiny_base / "model.safetensors").exists() and not list(tiny_base.glob("*.bin"))
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Q: 1 + 1"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    assert torch.isfinite(model(**ids).logits).all()


def test_unknown_hub_model_says_how_to_provide_it(smoke_config, tmp_path):
    cfg = {**smoke_config, "base_model": "nobody/no-such-model"}
    with pytest.raises(InputError, match=r"base_model: 'nobody/no-such-model'.*hf download"):
        resolve_external(cfg, tmp_path / "base")
    assert not (tmp_path / "base").exists()


def test_local_folder_base_gets_a_manifest(tiny_base, smoke_config, tmp_path):
    m = resolve_external({**smoke_config, "base_model": str(tiny_base)}, tmp_path / "base")
    assert m["path"] == str(tiny_base.resolve()) and "model.safetensors" in m["weights"]
    assert read_manifest(tmp_path / "base")["config_sha256"] == m["config_sha256"]


def test_a_copied_project_loads_its_own_embedded_base(tiny_base, smoke_config, tmp_path):
    """`cp -a project1 project2`, then project1 moves away: project2 loads the base it holds."""
    project1, project2 = tmp_path / "project1", tmp_path / "project2"
    shutil.copytree(tiny_base, project1 / "results" / "base")
    shutil.copytree(project1, project2)
    project1.rename(tmp_path / "elsewhere")
    assert read_manifest(project2 / "results" / "base")["path"] == str((project2 / "results" / "base").resolve())
    model, tok = load_base(project2 / "results" / "base", smoke_config)
    assert model.name_or_path == str((project2 / "results" / "base").resolve()) and len(tok) > 100


def test_a_base_folder_changed_after_build_base_is_refused(tiny_base, smoke_config, tmp_path):
    folder = tmp_path / "my-model"
    shutil.copytree(tiny_base, folder, ignore=shutil.ignore_patterns("manifest.json"))
    resolve_external({**smoke_config, "base_model": str(folder)}, tmp_path / "base")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "rope_theta": 1.0}))
    with pytest.raises(InputError, match=rf"{tmp_path / 'base' / 'manifest.json'}: .*{folder}.*build_base"):
        load_base(tmp_path / "base", smoke_config)


def test_a_hub_base_is_found_in_the_local_cache_and_checked(tiny_base, smoke_config, tmp_path, monkeypatch):
    """A hub id resolves through the local Hugging Face cache at load time (no path is stored), at the
    revision build_base found; a snapshot whose weights changed since is refused."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny"
    shutil.copytree(tiny_base, repo / "snapshots" / commit, ignore=shutil.ignore_patterns("manifest.json"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    resolve_external({**smoke_config, "base_model": "someone/tiny"}, tmp_path / "base")
    assert "path" not in json.loads((tmp_path / "base" / "manifest.json").read_text())
    assert read_manifest(tmp_path / "base")["path"] == str(repo / "snapshots" / commit)
    with open(repo / "snapshots" / commit / "model.safetensors", "ab") as f:
        f.write(b"\0")
    with pytest.raises(InputError, match=r"manifest.json: .*someone/tiny.*differs.*build_base"):
        read_manifest(tmp_path / "base")


@pytest.mark.slow  # a ~1 GB random model written and loaded back (18 s of 40 for this file)
def test_qwen3_4b_shaped_folder_loads_through_the_base_stage(tiny_base, smoke_config, tmp_path):
    """The real-model path on Qwen3-4B's widths and vocabulary (one layer, random bf16 weights, ~1 GB):
    resolve the folder offline, load it with the workflow's loader, find the LoRA target modules."""
    import shutil

    import torch
    from evoswarm.model.base import QWEN3_4B_SHAPE, load_base
    from evoswarm.model.training import check_targets
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = tmp_path / "qwen3-4b-shaped"
    model = Qwen3ForCausalLM(Qwen3Config(**{**QWEN3_4B_SHAPE, "num_hidden_layers": 1})).to(torch.bfloat16)
    model.save_pretrained(folder)
    del model
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_base / f, folder / f)
    cfg = {**smoke_config, "base_model": str(folder), "base": {**smoke_config["base"], "dtype": "bfloat16"}}
    resolve_external(cfg, tmp_path / "base")
    loaded, tok = load_base(tmp_path / "base", cfg)
    assert loaded.dtype == torch.bfloat16 and loaded.config.hidden_size == 2560
    assert loaded.model.layers[0].mlp.gate_proj.weight.shape == (9728, 2560)
    assert loaded.model.layers[0].self_attn.k_proj.weight.shape == (8 * 128, 2560)
    check_targets(loaded, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
