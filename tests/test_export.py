"""`evoswarm export` and the `export` target: an adapter merged into the base, a standalone model that
computes what base + adapter computes; pickles and another base's adapters refused with one line."""

import importlib.util
import json
import re
import shutil

import pytest
import torch
from conftest import REPO, run_snakemake
from evoswarm.cli import main as cli
from evoswarm.model.adapters import LINEAGE, WEIGHTS
from support.tolerance import FP32_RTOL, scaled_max_diff

PROMPTS = ["What is 27 + 5? Answer with the number.", "Which word is a fruit: hammer, apple, red?"]


def run_cli(*args) -> None:
    cli(["export", *map(str, args)])


def refusal(*args) -> str:
    """The one line `evoswarm export` exits with."""
    with pytest.raises(SystemExit) as e:
        run_cli(*args)
    message = str(e.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def exported(tiny_base, tiny_adapters, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "critic-merged"
    run_cli("--base", tiny_base, "--adapter", tiny_adapters["critic"], "--out", out)
    return out


def logits(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


def test_the_merged_model_computes_what_base_plus_adapter_computes(exported, tiny_base, tiny_adapters):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(exported)
    tok.pad_token = tok.pad_token or tok.eos_token
    merged = AutoModelForCausalLM.from_pretrained(exported, trust_remote_code=False).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32).eval()
    plain = logits(base, tok)
    with_adapter = logits(PeftModel.from_pretrained(base, str(tiny_adapters["critic"])).eval(), tok)
    # W + s·B·A rounded into one fp32 weight against the adapter beside W: fp32 rounding at the logits' scale.
    assert scaled_max_diff(logits(merged, tok), with_adapter) < FP32_RTOL
    assert scaled_max_diff(with_adapter, plain) > 100 * FP32_RTOL  # the adapter moves the logits: the test can tell
    assert merged.dtype == torch.float32 and not hasattr(merged, "peft_config")
    files = {p.name for p in exported.iterdir()}
    assert "model.safetensors" in files and not files & {"pytorch_model.bin", WEIGHTS, "adapter_config.json"}
    assert tok("27 + 5")["input_ids"] == AutoTokenizer.from_pretrained(tiny_base)("27 + 5")["input_ids"]


def test_the_model_card_names_the_lineage(exported, tiny_adapters):
    lineage = json.loads((tiny_adapters["critic"] / LINEAGE).read_text())
    card = (exported / "README.md").read_text()
    for row in ("| generation | 0 |", "| persona | critic |", "| operator | sft |", f"`{lineage['sha256']}`"):
        assert row in card
    assert f"> {lineage['system']}" in card
    recorded = json.loads(re.search(r"```json\n(.*?)\n```", card, re.S).group(1))
    assert recorded == lineage


def test_pickle_weights_are_refused(tiny_base, tiny_adapters, tmp_path):
    from safetensors.torch import load_file

    adapter = tmp_path / "pickled"
    shutil.copytree(tiny_adapters["critic"], adapter)
    torch.save(load_file(str(adapter / WEIGHTS)), adapter / "adapter_model.bin")
    (adapter / WEIGHTS).unlink()
    message = refusal("--base", tiny_base, "--adapter", adapter, "--out", tmp_path / "out")
    assert f"{adapter}: holds adapter_model.bin (pickle)" in message
    assert not (tmp_path / "out").exists()


def test_a_folder_in_the_way_is_left_alone(tiny_base, tiny_adapters, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "other.txt").write_text("kept")
    message = refusal("--base", tiny_base, "--adapter", tiny_adapters["critic"], "--out", tmp_path / "models")
    assert f"{tmp_path / 'models'}: already exists and is not an empty folder" in message
    assert (tmp_path / "models" / "other.txt").read_text() == "kept"


def test_an_adapter_of_another_base_is_refused(tiny_base, tiny_adapters, tmp_path):
    """Another base (other weights and shapes): refused for its base, named, before any module is compared."""
    from evoswarm.model.base import build_model, resolve_external
    from transformers import AutoTokenizer

    weights = tmp_path / "other-model"
    tok = AutoTokenizer.from_pretrained(tiny_base)
    size = dict(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=1, max_position=64)
    build_model(tok, size).save_pretrained(weights)
    tok.save_pretrained(weights)
    other = tmp_path / "other-base"
    resolve_external({"base_model": str(weights), "base": {"revision": None, "hash_weights": False}}, other)
    message = refusal("--base", other, "--adapter", tiny_adapters["critic"], "--out", tmp_path / "out")
    trained_on = rf"{tiny_adapters['critic']}: adapter was trained on base 'embedded@\w+', but .*'{weights}@"
    assert re.search(trained_on, message)
    assert not (tmp_path / "out").exists()


def test_the_stage_exports_the_agent_the_fitness_ranks_first(tiny_base, tiny_adapters, tmp_path):
    spec = importlib.util.spec_from_file_location("export_best", REPO / "workflow/scripts/export_best.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    fitness = tmp_path / "fitness.csv"
    fitness.write_text("agent,fitness\ncritic,0.2\nideator,0.7\n")
    adapters = [str(a) for a in tiny_adapters.values()]
    stage.main(str(tiny_base), adapters, str(fitness), str(tmp_path / "best"))
    sha = json.loads((tiny_adapters["ideator"] / LINEAGE).read_text())["sha256"]
    card = (tmp_path / "best" / "README.md").read_text()
    assert "# evoswarm agent ideator, generation 0" in card and sha in card


def test_the_export_target_dry_runs_one_job_per_generation(tmp_path):
    out = run_snakemake(tmp_path, "-n", "export").stdout
    exports = re.findall(r"output: (\S+/best-merged)", out)
    assert exports and sorted(exports) == [f"results-smoke/seed0/gen{g}/best-merged" for g in range(3)]
