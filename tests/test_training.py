"""Persona training with TRL: real adapters, deterministic bytes, QLoRA on CPU, clear bad-input errors."""

import json

import pytest
from conftest import REPO, train
from evoswarm.io import InputError, sha256_file
from evoswarm.world.chats import load_chats


def test_same_seed_same_adapter_bytes(tiny_base, tiny_adapters, smoke_config, tmp_path):
    again = train(tiny_base, "critic", tmp_path / "critic", smoke_config)
    assert sha256_file(again / "adapter_model.safetensors") == sha256_file(
        tiny_adapters["critic"] / "adapter_model.safetensors"
    )
    other = train(tiny_base, "critic", tmp_path / "critic2", smoke_config, seed=2)
    assert sha256_file(other / "adapter_model.safetensors") != sha256_file(again / "adapter_model.safetensors")


def test_adapter_is_a_plain_peft_adapter(tiny_base, tiny_adapters):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = json.loads((tiny_adapters["ideator"] / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4 and cfg["lora_alpha"] == 8  # the persona's override
    assert not list(tiny_adapters["ideator"].glob("*.bin"))  # safetensors only
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), str(tiny_adapters["ideator"]))
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert model.peft_config["default"].r == 4
    log = [json.loads(x) for x in (tiny_adapters["ideator"] / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6] and all(r["loss"] > 0 for r in log)


def test_an_adapter_names_its_base_without_an_absolute_path(tiny_base, tiny_adapters):
    """PEFT would record the absolute folder the weights were loaded from; a copied project's adapters would
    keep naming the original's. The embedded base is named by its folder relative to the working directory."""
    import os

    cfg = json.loads((tiny_adapters["critic"] / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == os.path.relpath(tiny_base)


def test_qlora_nf4_trains_on_cpu(tiny_base, smoke_config, tmp_path):
    out = train(tiny_base, "critic", tmp_path / "q", smoke_config, quantization="nf4", max_steps=2)
    assert (out / "adapter_model.safetensors").stat().st_size > 0


@pytest.mark.parametrize(
    "lines, match",
    [
        (
            ['{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}', "{oops"],
            r"bad\.jsonl:2: invalid JSON",
        ),
        ([], "empty file"),
        (['{"messages": [{"role": "user", "content": "hi"}]}'], "no assistant turn"),
        (['{"messages": [{"role": "robot", "content": "hi"}]}'], "role"),
    ],
)
def test_bad_sft_files_name_file_and_line(tmp_path, lines, match):
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines))
    with pytest.raises(InputError, match=match):
        load_chats(p)


def test_unknown_target_module_lists_the_models_modules(tiny_base, smoke_config, tmp_path):
    with pytest.raises(InputError, match=r"not in the model; its linear modules are \[.*q_proj"):
        train(tiny_base, "critic", tmp_path / "x", smoke_config, target_modules=["qkv_proj"])


def test_too_long_chats_are_truncated_counted_and_warned(tiny_base, smoke_config, tmp_path, capsys):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    lengths = sorted(
        len(tok.apply_chat_template(c["messages"], return_dict=False))
        for c in load_chats(REPO / "data/personas/critic.jsonl")
    )
    median = lengths[len(lengths) // 2]
    out = train(tiny_base, "critic", tmp_path / "short", smoke_config, max_length=median, max_steps=1)
    assert f"exceed max_length {median}" in capsys.readouterr().out
    assert (out / "adapter_model.safetensors").exists()
    with pytest.raises(InputError, match="training.max_length 16"):
        train(tiny_base, "critic", tmp_path / "none", smoke_config, max_length=16, max_steps=1)


def test_progress_line_gives_the_eta_at_the_pace_so_far():
    from evoswarm.progress import Progress, clock

    p = Progress("train step", 400)
    p.t0 -= 30  # 30 s spent on the first 100 steps: 300 left at the same pace take 90 s
    assert p.line(100, "loss 1.2345") == "train step 100/400 (25%), loss 1.2345; 30s spent, ETA 1m30s"
    assert p.line(0).endswith("ETA ?")
    assert [clock(s) for s in (0.4, 59.6, 187, 3725)] == ["0s", "1m00s", "3m07s", "1h02m"]


def test_a_stage_without_quantization_never_imports_bitsandbytes():
    """PEFT imports bitsandbytes whenever it is installed (seconds per process); a stage that quantizes
    nothing keeps it out, and PEFT and transformers then take it as absent, not as broken."""
    import subprocess
    import sys

    code = (
        "import sys; from evoswarm import stage; stage.keep_out_bitsandbytes(); import peft, transformers; "
        "from peft.import_utils import is_bnb_available; from transformers.utils import is_bitsandbytes_available; "
        "print(is_bnb_available(), is_bitsandbytes_available(), sys.modules['bitsandbytes'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.split() == ["False", "False", "None"]


def test_stages_that_touch_no_weights_never_import_torch():
    """lamarck's copies, select and the report read and write lineage only: torch's import (seconds a
    job) stays out, and the threads they are given still reach torch if something imports it later."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from evoswarm import stage; from evoswarm.model import adapters; "
        "from evoswarm.evolve import lamarck, selection, fitness; "
        "from evoswarm.report import build; "
        "stage.set_threads(1); print('torch' in sys.modules); import torch; print(torch.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # torch alone would take every core
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, env=env)
    assert done.stdout.split() == ["False", "1"]
