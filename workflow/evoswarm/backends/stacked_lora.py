"""Every agent's LoRA in one batched product per module, for batches that mix agents.

PEFT's mixed batch (`adapter_names=`) loops over the adapters inside every LoRA layer (gather the
adapter's rows, two small matmuls, scatter back) at every decode step. Here each targeted Linear gets
all adapters' factors stacked once, A_all (n*R, in) and B_all (out, n*R) with each adapter's scaling
folded into its B block, and computes

    y = base(x) + ((x @ A_all^T) * mask) @ B_all^T

where `mask` (batch, 1, n*R) keeps each row's own adapter block (all zero for a base row). That is two
matmuls of static shape for any mix of agents, so a static KV cache and a compiled (CUDA-graph) decode
step work unchanged; a batch of base rows alone skips them. Over a plain Linear the first of them rides
in the base's own GEMM: the module keeps [W; A_all] as one matrix (the base weight becomes a view of its
top rows, so nothing is stored twice) and `x @ [W; A_all]^T` gives base(x) and x @ A_all^T at once; a
decode step at small batch is a chain of kernel launches, and this takes one of the three per module
away. Ranks that differ are zero-padded to the largest (R); a module an adapter does not target holds a
zero block for it.

Adapters are still loaded, saved and interpreted by PEFT (rank/alpha patterns, rsLoRA scaling): the
stacks are read from the loaded PeftModel's LoRA layers, which `install` swaps out of the module tree
and `uninstall` puts back before PEFT loads or deletes another adapter.
"""

from __future__ import annotations

import torch
from torch import nn


def unsupported(peft_model) -> str | None:
    """Why the stacked product cannot stand in for PEFT on this model's adapters (None: it can)."""
    from peft.tuners.lora import LoraLayer

    for name, layer in peft_model.named_modules():
        if not isinstance(layer, LoraLayer):
            continue
        if layer.lora_embedding_A:
            return f"{name}: LoRA on an embedding"
        for adapter, a in layer.lora_A.items():
            if not isinstance(a, nn.Linear):
                return f"{name}: adapter {adapter!r} is not a linear LoRA"
            if adapter in layer.lora_variant:
                return f"{name}: adapter {adapter!r} is a LoRA variant (DoRA, aLoRA, ...)"
            if layer.lora_bias.get(adapter):
                return f"{name}: adapter {adapter!r} trains a bias"
    return None


class AdapterRouter:
    """Which adapter block each row of the next forward passes through: one mask shared by every
    stacked module, updated in place when the batch shape repeats (a CUDA graph keeps its address)."""

    def __init__(self, names: list[str], rank: int):
        self.slots = {n: k for k, n in enumerate(names)}
        self.rank = rank
        self.mask: torch.Tensor | None = None
        self.any_adapter = True  # False: every row is the base's, so the modules skip the product

    def route(self, rows: list[str | None], device, dtype) -> None:
        self.any_adapter = any(name is not None for name in rows)
        width = len(self.slots) * self.rank
        mask = torch.zeros(len(rows), 1, width, dtype=dtype)
        for i, name in enumerate(rows):
            if name is not None:
                k = self.slots[name]
                mask[i, 0, k * self.rank : (k + 1) * self.rank] = 1
        if self.mask is not None and self.mask.shape == mask.shape and self.mask.dtype == dtype:
            self.mask.copy_(mask)
        else:
            self.mask = mask.to(device)


class StackedLoraLinear(nn.Module):
    """A Linear plus every adapter's LoRA as one product; replaces one PEFT LoRA layer while installed."""

    def __init__(self, peft_layer, names: list[str], rank: int, router: AdapterRouter, fuse_base: bool = True):
        super().__init__()
        self.peft_layer = [peft_layer]  # in a list: not a submodule, so its weights are not counted twice
        self.base_layer = peft_layer.get_base_layer()
        self.router = router
        ref = next(iter(peft_layer.lora_A.values())).weight
        # The base's dtype (bf16 on a GPU), not PEFT's fp32 copy of the factors: fp32 GEMMs and casts
        # at every module cost more than the product itself. A quantized base keeps PEFT's dtype.
        base_dtype = getattr(self.base_layer, "weight", ref).dtype
        dtype = base_dtype if base_dtype.is_floating_point else ref.dtype
        out_features = next(iter(peft_layer.lora_B.values())).weight.shape[0]
        stacked_a = torch.zeros(len(names) * rank, ref.shape[1], dtype=dtype, device=ref.device)
        stacked_b = torch.zeros(out_features, len(names) * rank, dtype=dtype, device=ref.device)
        for k, name in enumerate(names):
            if name not in peft_layer.lora_A:
                continue  # this adapter leaves the module alone: its block stays zero
            a, b = peft_layer.lora_A[name].weight, peft_layer.lora_B[name].weight
            r = a.shape[0]
            stacked_a[k * rank : k * rank + r] = a
            stacked_b[:, k * rank : k * rank + r] = b * peft_layer.scaling[name]
        self.register_buffer("lora_b", stacked_b, persistent=False)
        base = self.base_layer
        self.fused = fuse_base and type(base) is nn.Linear and base.weight.dtype == dtype
        if self.fused:
            weight_and_a = torch.cat([base.weight.detach(), stacked_a])
            bias = None if base.bias is None else torch.cat([base.bias.detach(), stacked_a.new_zeros(len(stacked_a))])
            # The base (and PEFT, once uninstalled) reads its weight from the top rows: stored once.
            base.weight.data = weight_and_a[: base.out_features]
            if bias is not None:
                base.bias.data = bias[: base.out_features]
            self.register_buffer("weight_and_a", weight_and_a, persistent=False)
            self.register_buffer("bias_and_zero", bias, persistent=False)
            self.split = [base.out_features, len(stacked_a)]
        else:
            self.register_buffer("lora_a", stacked_a, persistent=False)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if not self.router.any_adapter:
            # A batch of base rows only (base-sc, prompt-vote) is the base model itself: the masked
            # product would add zeros at about half the cost of the base's own linear layers on CPU.
            return self.base_layer(x, *args, **kwargs)
        if self.fused:
            y, h = nn.functional.linear(x, self.weight_and_a, self.bias_and_zero).split(self.split, dim=-1)
            # B's product is added into y where it lies (y is rows of the GEMM's output with a leading
            # dimension; the GEMM takes it as its C): no separate add kernel. At batch 24 on a GPU a
            # decode step is a chain of ~5 us kernels, so the count is the cost.
            rows = (h * self.router.mask).reshape(-1, h.shape[-1])
            y.view(-1, y.shape[-1]).addmm_(rows, self.lora_b.t())  # view: an error, never a silent copy
            return y
        y = self.base_layer(x, *args, **kwargs)
        h = nn.functional.linear(x.to(self.lora_a.dtype), self.lora_a) * self.router.mask
        return y + nn.functional.linear(h, self.lora_b).to(y.dtype)


class StackedAdapters:
    """The stacked product installed into (and removed from) a PeftModel's module tree."""

    def __init__(self, peft_model, fuse_base: bool = True):
        from peft.tuners.lora import LoraLayer

        self.peft_model = peft_model
        self.names = list(peft_model.peft_config)
        layers = [(n, m) for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)]
        rank = max(a.weight.shape[0] for _, m in layers for a in m.lora_A.values())
        self.router = AdapterRouter(self.names, rank)
        self.modules = {n: StackedLoraLinear(m, self.names, rank, self.router, fuse_base) for n, m in layers}
        self.installed = False

    @property
    def model(self):
        """The transformers model under the PeftModel (call it directly while installed)."""
        return self.peft_model.base_model.model

    def _swap(self, stacked: bool) -> None:
        for name, module in self.modules.items():
            parent, _, child = name.rpartition(".")
            new = module if stacked else module.peft_layer[0]
            setattr(self.peft_model.get_submodule(parent), child, new)
        self.installed = stacked

    def install(self) -> None:
        if not self.installed:
            self._swap(True)

    def uninstall(self) -> None:
        if self.installed:
            self._swap(False)

    def route(self, rows: list[str | None]) -> None:
        ref = next(iter(self.modules.values())).lora_b
        self.router.route(rows, ref.device, ref.dtype)
