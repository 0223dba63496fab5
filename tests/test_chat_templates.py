"""Training with chat templates that have no {% generation %} markers (Qwen3's as published): the loss
falls on the replies only, cut where inference continues, and a template that cannot isolate a reply
fails in one line naming the model."""

import json
import math

import pytest
from conftest import REPO

CHAT = {
    "messages": [
        {"role": "system", "content": "You are a rigorous critic."},
        {"role": "user", "content": "What is 41 + 7?"},
        {"role": "assistant", "content": '{"answer": "48", "confidence": 0.9, "summary": "41 + 7 = 48"}'},
    ]
}
# Swaps the role name in finished turns only: the generation prompt no longer begins a rendered reply.
MISMATCHED = (
    "{%- for m in messages %}{{- '<|im_start|>' + (m.role == 'assistant' and 'model' or m.role) + '\\n' "
    "+ m.content + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def qwen_folder(tmp_path, template: str):
    """A model folder given as `base_model`, built like a published Qwen3 checkpoint (random tiny weights,
    Qwen's special tokens incl. <think>, the chat template named or given), resolved as the base stage does."""
    from evoswarm.model.base import resolve_external
    from support.qwen_style_model import build

    folder = build(tmp_path / "qwen3-style", "tiny", template)
    base = tmp_path / "base"
    resolve_external({"base_model": str(folder), "base": {"revision": None, "hash_weights": False}}, base)
    return base


@pytest.mark.parametrize(
    "name, opener",
    [("instruct-2507", ""), ("thinking", "<think>\n\n</think>\n\n")],
)
def test_qwen3_templates_train_on_the_reply_the_model_continues(tmp_path, name, opener):
    from evoswarm.model.base import load_tokenizer
    from evoswarm.model.training import reply_pairs
    from evoswarm.protocol.chat import render
    from trl.chat_template_utils import get_training_chat_template

    tok = load_tokenizer(qwen_folder(tmp_path, name))
    with pytest.raises(ValueError, match="not training-compatible"):  # what TRL's assistant_only_loss meets
        get_training_chat_template(tok)
    prompt = render(tok, CHAT["messages"][:2])
    assert prompt.endswith("<|im_start|>assistant\n" + opener)  # inference continues after the opener
    (ex,) = reply_pairs([CHAT], tok, "base model X")
    mask = ex["completion_mask"]
    assert mask == sorted(mask) and 0 in mask  # prompt first, then the reply
    reply = tok.decode([t for t, m in zip(ex["input_ids"], mask) if m])
    context = tok.decode([t for t, m in zip(ex["input_ids"], mask) if not m])
    assert reply == CHAT["messages"][2]["content"] + "<|im_end|>\n"
    assert context == prompt  # exactly the text a backend continues at inference
    assert "You are a rigorous critic." in context and "<think>" not in reply


def test_several_assistant_turns_give_one_example_each(tmp_path):
    from evoswarm.model.base import load_tokenizer
    from evoswarm.model.training import reply_pairs

    tok = load_tokenizer(qwen_folder(tmp_path, "instruct-2507"))
    chat = {
        "messages": CHAT["messages"]
        + [{"role": "user", "content": "Sure?"}, {"role": "assistant", "content": '{"answer": "48"}'}]
    }
    first, second = reply_pairs([chat], tok, "base model X")
    replies = [tok.decode([t for t, m in zip(e["input_ids"], e["completion_mask"]) if m]) for e in (first, second)]
    assert replies == [CHAT["messages"][2]["content"] + "<|im_end|>\n", '{"answer": "48"}<|im_end|>\n']
    # the first reply is context, not loss, in the second example
    assert sum(second["completion_mask"]) < len(tok(replies[1], add_special_tokens=False)["input_ids"]) + 2


@pytest.mark.slow  # TRL training on a model with Qwen3's 151k vocabulary (10 s); reply_pairs stays fast
def test_lora_trains_on_a_qwen3_thinking_template(smoke_config, tmp_path):
    """The first train_persona job of the real-model path: TRL alone refuses this template."""
    from evoswarm.model.base import read_manifest
    from evoswarm.model.training import train_lora

    base = qwen_folder(tmp_path, "thinking")
    tcfg = {**smoke_config["training"], "max_steps": 3, "logging_steps": 1}
    stats = train_lora(
        str(base), str(REPO / "data/personas/critic.jsonl"), "Be rigorous.", tcfg, smoke_config, 0, tmp_path / "critic"
    )
    assert math.isfinite(stats["train_loss"]) and stats["train_loss"] > 0
    assert (tmp_path / "critic" / "adapter_model.safetensors").is_file()
    assert len((tmp_path / "critic" / "train_log.jsonl").read_text().splitlines()) == 3
    adapter_config = json.loads((tmp_path / "critic" / "adapter_config.json").read_text())
    assert adapter_config["r"] == tcfg["r"]
    # the base as the config names it (a folder here), not the folder its weights were found in
    assert adapter_config["base_model_name_or_path"] == read_manifest(base)["source"]


def test_a_template_that_cannot_isolate_the_reply_fails_in_one_line(smoke_config, tmp_path):
    from evoswarm.io import InputError
    from evoswarm.model.training import train_lora

    base = qwen_folder(tmp_path, MISMATCHED)
    tcfg = {**smoke_config["training"], "max_steps": 1}
    with pytest.raises(InputError) as e:
        train_lora(str(base), str(REPO / "data/personas/critic.jsonl"), None, tcfg, smoke_config, 0, tmp_path / "x")
    msg = str(e.value)
    assert "\n" not in msg and "qwen3-style" in msg and "generation" in msg
    assert not (tmp_path / "x" / "adapter_model.safetensors").exists()
