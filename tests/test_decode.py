"""The graph decode loop (backends.decode) gives generate()'s greedy tokens: left-padded prompts of
different lengths, base rows beside rows of stacked adapters of different ranks and targets, rows that
end at different steps (pads after their end of turn) and rows that run to the limit. On a CPU the steps
run eagerly; on a GPU the replayed CUDA graph is checked against eager generate()."""

import pytest
import torch
from evoswarm.backends.decode import greedy_decode

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _case(device, **shape):
    """A random Qwen3 with two stacked random adapters (ranks 16 and 8, the second on attention only),
    routed [base, a, b] x 4, and 12 left-padded random prompts of 40 down to 7 tokens."""
    from evoswarm.backends.stacked_lora import StackedAdapters
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        base = Qwen3ForCausalLM(Qwen3Config(**shape))
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS), adapter_name="a")
    model.add_adapter("b", LoraConfig(r=8, lora_alpha=8, target_modules=TARGETS[:4]))
    g = torch.Generator().manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.copy_(torch.randn(p.shape, generator=g) * 0.05)
    model.eval()
    stack = StackedAdapters(model)
    stack.install()
    rows = [None, "a", "b"] * 4
    stack.route(rows)
    x = torch.zeros(len(rows), 40, dtype=torch.long)
    mask = torch.zeros_like(x)
    for i in range(len(rows)):
        n = 40 - 3 * i
        x[i, 40 - n :] = torch.randint(1, shape["vocab_size"], (n,), generator=g)
        mask[i, 40 - n :] = 1
    return stack.model, x.to(device), mask.to(device)


def _generate(model, x, mask, new, eos, **kw):
    out = model.generate(
        input_ids=x, attention_mask=mask, max_new_tokens=new, do_sample=False, pad_token_id=0, eos_token_id=eos, **kw
    )[:, x.shape[1] :]
    return torch.nn.functional.pad(out, (0, new - out.shape[1]), value=0)


def _check(model, x, mask, new, **kw):
    with torch.no_grad():
        # Without an end token every row runs the whole length.
        free = greedy_decode(model, x, mask, new, None, 0)
        assert torch.equal(free, _generate(model, x, mask, new, None, **kw))
        # An end token that some rows emit early and others never: pads after an end, rows to the limit.
        rows = free.tolist()
        eos = next(t for t in free[:, 1:-2].flatten().tolist() if 0 < sum(t in r for r in rows) < len(rows) // 2)
        got = greedy_decode(model, x, mask, new, eos, 0, check_every=4)
        ended = (got == eos).any(1)
        assert ended.any() and not ended.all()
        assert torch.equal(got, _generate(model, x, mask, new, eos, **kw))
    return got


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_greedy_decode_gives_generates_tokens(cache):
    from support.qwen_style_model import SHAPES

    model, x, mask = _case("cpu", **SHAPES["tiny"])
    kw = {"cache_implementation": "static"} if cache == "static" else {}
    _check(model, x, mask, 24, **kw)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA graph: run on a CUDA machine")
def test_the_replayed_cuda_graph_gives_eager_generates_tokens():
    """Qwen3-4B widths (2 layers) in fp32 on the GPU (no TF32): the graph's tokens equal eager generate()'s."""
    from evoswarm.model.base import QWEN3_4B_SHAPE

    torch.backends.cuda.matmul.allow_tf32 = False
    model, x, mask = _case("cuda", **{**QWEN3_4B_SHAPE, "num_hidden_layers": 2})
    _check(model, x, mask, 32)
