"""An adapter's logits as PEFT computes them, beside base + s·B·A computed from its files directly."""

import copy
from pathlib import Path

import torch


def peft_and_reference_logits(base_dir: Path, adapter_dir: Path, n_rows: int = 2, n_tokens: int = 24):
    """(PEFT's, reference, plain base) logits on random token ids. PEFT loads the adapter folder as any user
    would; the reference adds s·B·A to each targeted weight of the base, with B and A read from
    adapter_model.safetensors (evoswarm.model.adapters.lora_factors) and s from adapter_config.json as the
    workflow means it (module_scaling: lora_alpha / r, or sqrt(r) with rsLoRA, alpha_pattern per module,
    r the factors' own rank)."""
    from evoswarm.model.adapters import lora_factors, module_scaling, read_adapter
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    ids = torch.randint(0, base.config.vocab_size, (n_rows, n_tokens), generator=torch.Generator().manual_seed(0))
    reference = copy.deepcopy(base)
    config, tensors = read_adapter(adapter_dir)
    with torch.no_grad():
        plain = base(input_ids=ids).logits
        for key, (a, b) in lora_factors(tensors).items():
            module = key.removeprefix("base_model.model.")
            weight = reference.get_submodule(module).weight  # fails for a factor named after no module
            delta = module_scaling(config, module, a.shape[0]) * (b.double() @ a.double())
            weight += delta.to(weight.dtype)
        want = reference(input_ids=ids).logits
        got = PeftModel.from_pretrained(base, str(adapter_dir)).eval()(input_ids=ids).logits
    return got, want, plain
