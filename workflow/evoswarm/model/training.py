"""Persona LoRA training with TRL's SFTTrainer (LoRA in fp32 on CPU; QLoRA nf4 on CUDA or CPU).

Loss on assistant turns only, whatever the chat template: a template with {% generation %} markers
(the embedded one) trains on the conversations with TRL's assistant mask; any other (Qwen3's
published templates have none) trains on (prompt, reply) token pairs cut where `prompts.render` cuts
at inference, one pair per assistant turn. Deterministic from the seed on CPU.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from evoswarm.io import InputError
from evoswarm.model.adapters import base_name
from evoswarm.progress import Progress
from evoswarm.protocol.chat import TemplateError, assistant_opener, render
from evoswarm.world.chats import load_chats


def linear_module_names(model) -> list[str]:
    """Distinct short names of the model's linear layers (what LoRA can target)."""
    import torch

    names = set()
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) or type(mod).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(name.split(".")[-1])
    names.discard("lm_head")
    return sorted(names)


def check_targets(model, targets: list[str]) -> None:
    available = linear_module_names(model)
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise InputError(f"training.target_modules: {unknown} not in the model; its linear modules are {available}")


def count_truncated(chats: list[dict], tokenizer, max_length: int) -> tuple[int, int]:
    """(chats longer than max_length, chats whose whole assistant turn lies past it and so drop out)."""
    long = lost = 0
    for c in chats:
        if len(tokenizer.apply_chat_template(c["messages"], tokenize=True, return_dict=False)) > max_length:
            long += 1
            last = max(i for i, m in enumerate(c["messages"]) if m["role"] == "assistant")
            lost += (
                len(
                    tokenizer.apply_chat_template(
                        c["messages"][:last], tokenize=True, return_dict=False, add_generation_prompt=True
                    )
                )
                >= max_length
            )
    return long, lost


def reply_pairs(chats: list[dict], tokenizer, where: str) -> list[dict]:
    """One pre-tokenized example per assistant turn: the prompt up to the reply's content (as `render`
    gives it at inference) and the reply's tokens (its content and the template's end of turn), with
    `completion_mask` marking the reply. `where` names the base model in errors."""
    try:  # render() falls back to no opener for such a template; training must refuse it instead
        assistant_opener(tokenizer)
    except TemplateError as e:
        raise InputError(
            f"{where}: the chat template cannot be trained on assistant turns only: {e}; give it "
            "{% generation %} markers"
        ) from None
    examples = []
    for chat in chats:
        msgs = chat["messages"]
        for k, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            prompt = render(tokenizer, msgs[:k])
            full = tokenizer.apply_chat_template(msgs[: k + 1], tokenize=False)
            if not full.startswith(prompt):
                raise InputError(
                    f"{where}: the chat template renders the conversation before an assistant turn differently "
                    f"from its generation prompt ({full[len(prompt) - 40 : len(prompt)]!r} vs {prompt[-40:]!r}), "
                    "so the reply cannot be isolated for the loss; give it {% generation %} markers"
                )
            # Tokenised apart, as at inference: the prompt as a whole, then the tokens that follow it.
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            reply_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
            examples.append(
                {"input_ids": prompt_ids + reply_ids, "completion_mask": [0] * len(prompt_ids) + [1] * len(reply_ids)}
            )
    return examples


class _LossLog:
    """A TrainerCallback that writes loss per logging step as JSONL and prints a progress line with the ETA."""

    def __new__(cls, path: Path, total: int):
        from transformers import TrainerCallback

        class LossLog(TrainerCallback):
            def __init__(self):
                self.f = path.open("w", encoding="utf-8")
                self.t0 = time.time()
                self.progress = Progress("train step", total)

            def on_train_begin(self, args, state, control, **kw):
                self.progress.restart()  # the ETA counts training steps, not the trainer's setup

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "loss" in logs:
                    row = {
                        "step": state.global_step,
                        "loss": round(float(logs["loss"]), 6),
                        "lr": logs.get("learning_rate"),
                        "seconds": round(time.time() - self.t0, 2),
                    }
                    self.f.write(json.dumps(row) + "\n")
                    self.f.flush()
                    print(self.progress.line(state.global_step, f"loss {row['loss']:.4f}"), flush=True)

            def on_train_end(self, args, state, control, **kw):
                self.f.close()

        return LossLog()


def train_lora(
    base_dir: str,
    data: str | list[str],
    system: str | None,
    tcfg: dict,
    config: dict,
    seed: int,
    out_dir: Path,
    init_adapter: str | None = None,
) -> dict:
    """Train one LoRA adapter; save PEFT files and train_log.jsonl into `out_dir`. Returns stats.

    `data` is one SFT file or several (concatenated); `init_adapter` continues training an existing
    adapter (a bred child) instead of starting a new one from tcfg's r/alpha/targets.
    """
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer
    from trl.chat_template_utils import has_generation_markers

    from evoswarm.model.base import load_base, read_manifest

    chats = [c for path in ([data] if isinstance(data, str) else data) for c in load_chats(path)]
    if system is not None:  # the config's system prompt is the persona's voice at debate time too
        chats = [
            {"messages": [{"role": "system", "content": system}] + [m for m in c["messages"] if m["role"] != "system"]}
            for c in chats
        ]
    set_seed(seed)
    manifest = read_manifest(base_dir)
    model, tok = load_base(base_dir, config, quantization=tcfg["quantization"])
    if has_generation_markers(tok.chat_template):
        dataset, mask_by = Dataset.from_list(chats), {"assistant_only_loss": True}
    else:
        where = f"base model {manifest['path']}"
        dataset, mask_by = Dataset.from_list(reply_pairs(chats, tok, where)), {"completion_only_loss": True}
    check_targets(model, tcfg["target_modules"])
    cuda = next(model.parameters()).device.type == "cuda"
    truncated, lost = count_truncated(chats, tok, tcfg["max_length"])
    if lost == len(chats):
        raise InputError(
            f"training.max_length {tcfg['max_length']}: every chat in {data} loses its whole "
            "assistant turn to truncation; raise max_length"
        )
    if truncated:
        print(
            f"warning: {truncated} of {len(chats)} chats in {data} exceed max_length "
            f"{tcfg['max_length']} tokens and are truncated ({lost} lose the whole answer and are dropped)",
            flush=True,
        )
    if tcfg["quantization"] == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cuda)
    if init_adapter:
        from peft import PeftModel

        model, lora = PeftModel.from_pretrained(model, init_adapter, is_trainable=True), None
    else:
        lora = LoraConfig(
            r=tcfg["r"],
            lora_alpha=tcfg["lora_alpha"],
            lora_dropout=tcfg["dropout"],
            target_modules=tcfg["target_modules"],
            use_rslora=tcfg["use_rslora"],
            task_type="CAUSAL_LM",
        )
    with tempfile.TemporaryDirectory() as work:
        args = SFTConfig(
            output_dir=work,
            max_steps=tcfg["max_steps"],
            per_device_train_batch_size=tcfg["batch_size"],
            gradient_accumulation_steps=tcfg["grad_accum"],
            learning_rate=tcfg["learning_rate"],
            lr_scheduler_type="cosine",
            warmup_steps=max(1, tcfg["max_steps"] // 20),
            logging_steps=tcfg["logging_steps"],
            save_strategy="no",
            report_to=[],
            seed=seed,
            data_seed=seed,
            max_length=tcfg["max_length"],
            **mask_by,
            packing=False,
            # Checkpointing saves GPU memory; on CPU it only costs time.
            gradient_checkpointing=cuda,
            bf16=cuda,
            use_cpu=not cuda,
            optim="paged_adamw_8bit" if (cuda and tcfg["quantization"] == "nf4") else "adamw_torch",
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            peft_config=lora,
            callbacks=[_LossLog(out_dir / "train_log.jsonl", tcfg["max_steps"])],
        )
        t0 = time.time()
        result = trainer.train()
        for peft_config in trainer.model.peft_config.values():  # PEFT would write the weights' absolute folder
            peft_config.base_model_name_or_path = base_name(manifest, base_dir)
        trainer.model.save_pretrained(out_dir, safe_serialization=True)
    return {
        "train_loss": result.training_loss,
        "seconds": round(time.time() - t0, 1),
        "examples": len(chats),
        "truncated": truncated,
    }
