"""One agent as a standalone model: its LoRA adapter merged into the base (PEFT merge_and_unload), saved as
safetensors with the base's tokenizer and a model card (README.md) naming the agent's lineage.

The folder loads with `AutoModelForCausalLM.from_pretrained(folder)` offline, without PEFT or remote code.
The agent's system prompt is not part of the weights: the card quotes it, as the debate used it.
"""

from __future__ import annotations

import json
from pathlib import Path

from evoswarm.io import InputError, atomic_path
from evoswarm.model.adapters import WEIGHTS, base_identity, verify_adapter
from evoswarm.model.base import read_manifest

CARD = "README.md"


def export_merged(base_dir: str | Path, adapter_dir: str | Path, out: str | Path) -> dict:
    """Merge the adapter folder `adapter_dir` into the base of `base_dir` (a build_base folder) and write the
    model to `out` atomically. The adapter is checked as every stage checks one (safetensors only, finite,
    weights and config hashing to lineage.json's sha256 and config_sha256, trained on this base): a pickle
    or another base's adapter raises InputError naming the folder, as does an `out` that exists and is not
    empty. Returns the adapter's lineage."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    # Writing replaces the folder whole: never a folder that holds something else.
    if Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())):
        raise InputError(f"{out}: already exists and is not an empty folder; remove it or choose another --out")
    manifest = read_manifest(base_dir)
    _, _, lineage = verify_adapter(adapter_dir, manifest)
    path = manifest["path"]
    stored = AutoConfig.from_pretrained(path).dtype or torch.float32
    stored = getattr(torch, stored) if isinstance(stored, str) else stored
    # Merged in fp32 and rounded once to the base's own dtype: W + s·B·A summed in bf16 would round twice.
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload().to(stored)
    with atomic_path(out, is_dir=True) as tmp:
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(path).save_pretrained(tmp)
        (tmp / CARD).write_text(
            model_card(lineage, manifest, Path(adapter_dir).name, str(stored).removeprefix("torch.")), encoding="utf-8"
        )
    return lineage


def model_card(lineage: dict, manifest: dict, agent: str, dtype: str) -> str:
    """The README.md of an exported agent: where it came from (generation, parents, operator, seed, the
    adapter's sha256, the base) and how to load it; the full lineage.json at the end."""
    parents = ", ".join(lineage.get("parents") or []) or "none (trained from the base)"
    if lineage.get("parent_generation") is not None and lineage.get("parents"):
        parents += f" (generation {lineage['parent_generation']})"
    front = ["---", "library_name: transformers", "tags: [evoswarm, lora, merged]"]
    if manifest["source_type"] == "hub":
        front.append(f"base_model: {manifest['source']}")
    system = lineage.get("system", "")
    return "\n".join(
        [
            *front,
            "---",
            "",
            f"# evoswarm agent {agent}, generation {lineage.get('generation')}",
            "",
            f"A LoRA adapter evolved by evoswarm, merged into its base ({dtype}).",
            "",
            "| | |",
            "| --- | --- |",
            f"| generation | {lineage.get('generation')} |",
            f"| slot | {lineage.get('slot', agent)} |",
            f"| persona | {lineage.get('persona')} |",
            f"| parents | {parents} |",
            f"| operator | {lineage.get('operator')} |",
            f"| seed | {lineage.get('seed')} |",
            f"| adapter sha256 | `{lineage['sha256']}` ({WEIGHTS}) |",
            f"| base | `{base_identity(manifest)}` ({manifest['source_type']}) |",
            "",
            "System prompt it was trained and evaluated with:",
            "",
            "\n".join(f"> {line}" for line in system.splitlines()) or "> (none)",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            'model = AutoModelForCausalLM.from_pretrained("<this folder>")',
            'tokenizer = AutoTokenizer.from_pretrained("<this folder>")',
            "```",
            "",
            "Lineage (lineage.json of the adapter):",
            "",
            "```json",
            json.dumps(lineage, indent=2, ensure_ascii=False),
            "```",
            "",
        ]
    )
