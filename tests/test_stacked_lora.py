"""The stacked LoRA product (backends.stacked_lora) computes what PEFT's mixed batches compute: logits
within fp32 rounding (support/tolerance.py) and the same greedy tokens, for mixed ranks, adapters that
target different modules, base rows in the same batch (a batch of base rows alone is the base exactly),
a static cache, a graph dynamo traces whole, and adapters added or removed after the first batch."""

import pytest
import torch
from conftest import REPO
from evoswarm.backends import GenRequest
from evoswarm.backends.hf import HFBackend
from evoswarm.io import read_jsonl
from evoswarm.protocol.chat import chat, render
from evoswarm.protocol.prompts import ANSWER_PREFIX, turn_prompt
from support.tolerance import FP32_RTOL, scaled_max_diff


def _random_adapter(base_dir, out, seed, **lora):
    """A PEFT adapter with random (non-zero) factors, saved as PEFT saves it."""
    from evoswarm.config import load_config
    from evoswarm.model.base import load_base
    from peft import LoraConfig, get_peft_model

    model, _ = load_base(base_dir, load_config(REPO / "configs/smoke.yaml"))
    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))
    g = torch.Generator().manual_seed(seed)
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            p.data.copy_(torch.randn(p.shape, generator=g) * 0.2)  # strong enough to change greedy text
    peft_model.save_pretrained(out, safe_serialization=True)
    return str(out)


@pytest.fixture(scope="module")
def adapter_set(tiny_base, tiny_adapters, tmp_path_factory):
    """Trained adapters of ranks 8 and 4 on every projection, plus a random rank-3 rsLoRA adapter with a
    per-module rank on attention only: ranks and target modules differ."""
    root = tmp_path_factory.mktemp("odd")
    odd = _random_adapter(
        tiny_base,
        root / "odd",
        seed=3,
        r=3,
        lora_alpha=5,
        use_rslora=True,
        target_modules=["q_proj", "v_proj", "o_proj"],
        rank_pattern={"o_proj": 2},
    )
    return {**{n: str(p) for n, p in tiny_adapters.items()}, "odd": odd}


def _backend(tiny_base, smoke_config, adapters, stacked, **kw):
    be = HFBackend.from_base(str(tiny_base), smoke_config)
    be.stacked_lora = stacked
    for key, value in kw.items():
        setattr(be, key, value)
    for name, path in adapters.items():
        be.add_adapter(name, path)
    return be


@pytest.fixture(scope="module")
def pair(tiny_base, smoke_config, adapter_set):
    """(stacked, PEFT) backends over the same base and adapters."""
    stacked = _backend(tiny_base, smoke_config, adapter_set, True)
    peft = _backend(tiny_base, smoke_config, adapter_set, False)
    assert stacked.stacked is not None and peft.stacked is None
    return stacked, peft


NAMES = [None, "critic", "ideator", "odd"]


def _rows(backend, n=3):
    """Each of n dev questions, prompted up to the answer, once per agent and once for the base."""
    items = read_jsonl(REPO / "data/tasks/dev.jsonl")[:n]
    prompts = [render(backend.tok, chat("", turn_prompt(it["question"], it["choices"])), ANSWER_PREFIX) for it in items]
    return [(name, p) for p in prompts for name in NAMES]


def _logits(backend, rows):
    ids = [backend.tok(p, add_special_tokens=False)["input_ids"] for _, p in rows]
    width = max(map(len, ids))
    pad = backend.tok.pad_token_id
    x = torch.tensor([i + [pad] * (width - len(i)) for i in ids])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
    kw = backend._adapter_kw([a for a, _ in rows])
    with torch.no_grad():
        return backend.model(input_ids=x, attention_mask=mask, **kw).logits, mask


def test_logits_match_peft_for_mixed_ranks_targets_and_base_rows(pair):
    stacked, peft = pair
    rows = _rows(stacked)
    got, mask = _logits(stacked, rows)
    want, _ = _logits(peft, rows)
    keep = mask.bool()
    # The product and PEFT's per-adapter matmuls round differently: fp32 rounding at the logits' scale.
    assert scaled_max_diff(got[keep], want[keep]) < FP32_RTOL
    # The adapters really act: each one moves its rows' logits away from the base's.
    base, _ = _logits(stacked, [(None, p) for _, p in rows])
    moved = (got - base).abs().amax(dim=(1, 2))
    for i, (name, _) in enumerate(rows):
        assert (moved[i] > 1e-3) == (name is not None), name


class _CountLinear(torch.overrides.TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += func is torch.nn.functional.linear
        return func(*args, **(kwargs or {}))


def test_a_batch_of_base_rows_is_the_base_model_at_its_cost(pair, tiny_base, smoke_config):
    """base-sc and prompt-vote run on the backend that holds the team's adapters: their batches give the
    base's logits exactly, through the base's linear layers alone; the next mixed batch routes again."""
    stacked, _ = pair
    plain = HFBackend.from_base(str(tiny_base), smoke_config)
    rows = [(None, p) for _, p in _rows(stacked)]
    with _CountLinear() as on_stacked:
        got, _ = _logits(stacked, rows)
    with _CountLinear() as on_plain:
        want, _ = _logits(plain, rows)
    assert torch.equal(got, want) and on_stacked.calls == on_plain.calls
    mixed = _rows(stacked)
    assert not torch.equal(_logits(stacked, mixed)[0], _logits(plain, [(None, p) for _, p in mixed])[0])


@pytest.mark.parametrize("static_cache", [False, True])
def test_greedy_tokens_match_peft(pair, static_cache):
    stacked, peft = pair
    rows = _rows(stacked)
    settings = [(20, 0.0, 1.0, 0)] * len(rows)
    for be in pair:
        be.static_cache = static_cache
    try:
        got = stacked.generate_raw(rows, settings)
        want = peft.generate_raw(rows, settings)
    finally:
        for be in pair:
            be.static_cache = False
    assert got == want
    # The agents answer differently from the base: the routing is not a no-op.
    assert any(len(set(got[i : i + len(NAMES)])) > 1 for i in range(0, len(got), len(NAMES)))


def test_dynamo_traces_the_stacked_forward_whole(pair):
    """No graph break: what transformers compiles for the decode step (fullgraph) can include the product."""
    stacked, _ = pair
    rows = _rows(stacked, n=2)
    want, _ = _logits(stacked, rows)
    compiled = torch.compile(stacked.model, fullgraph=True, backend="eager")
    ids = [stacked.tok(p, add_special_tokens=False)["input_ids"] for _, p in rows]
    width = max(map(len, ids))
    x = torch.tensor([i + [stacked.tok.pad_token_id] * (width - len(i)) for i in ids])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
    stacked._adapter_kw([a for a, _ in rows])
    with torch.no_grad():
        got = compiled(input_ids=x, attention_mask=mask).logits
    keep = mask.bool()
    assert torch.equal(got[keep], want[keep])


def test_adapters_added_and_removed_after_use_restack(tiny_base, smoke_config, adapter_set):
    be = _backend(tiny_base, smoke_config, {"critic": adapter_set["critic"]}, True)
    ref = _backend(tiny_base, smoke_config, {"critic": adapter_set["critic"]}, False)
    req = [GenRequest("critic", chat("", "2 + 3 = ?"), max_new_tokens=8)]
    first = be.generate(req)
    be.add_adapter("odd", adapter_set["odd"])
    ref.add_adapter("odd", adapter_set["odd"])
    assert be.stacked is not None and set(be.stacked.names) == {"critic", "odd"}
    rows = [("odd", "12 + 5"), ("critic", "12 + 5"), (None, "12 + 5")]
    got, want = _logits(be, rows)[0], _logits(ref, rows)[0]
    assert scaled_max_diff(got, want) < FP32_RTOL
    be.remove_adapter("odd")
    assert be.stacked.names == ["critic"] and be.generate(req) == first
    with pytest.raises(KeyError, match="odd"):
        be._adapter_kw(["odd"])


def test_adapters_it_cannot_stack_fall_back_to_peft(tiny_base, smoke_config, tmp_path, capsys):
    """A LoRA that trains a bias is one PEFT mixes but the stacked product does not hold."""
    biased = _random_adapter(tiny_base, tmp_path / "biased", seed=4, r=4, lora_bias=True, target_modules=["q_proj"])
    be = _backend(tiny_base, smoke_config, {"biased": biased}, True)
    ref = _backend(tiny_base, smoke_config, {"biased": biased}, False)
    assert be.stacked is None and "trains a bias" in capsys.readouterr().err
    rows = [("biased", "7 + 1"), (None, "7 + 1")]
    assert torch.equal(_logits(be, rows)[0], _logits(ref, rows)[0])


def test_a_batch_too_large_for_memory_is_split_not_fatal(pair, monkeypatch, capsys):
    """The GPU's out-of-memory error cannot happen on this CPU, so the batch call raises it above 3 rows."""
    stacked, _ = pair
    rows = _rows(stacked)
    settings = [(6, 0.0, 1.0, 0)] * len(rows)
    want = stacked.generate_raw(rows, settings)
    real = stacked._generate_batch

    def small_memory(prompts, setting):
        if len(prompts) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(prompts, setting)

    monkeypatch.setattr(stacked, "_generate_batch", small_memory)
    monkeypatch.setattr(stacked, "batch_size", 32)
    assert stacked.generate_raw(rows, settings) == want
    assert stacked.batch_size == 3
    assert "going on in batches of 6" in capsys.readouterr().err


def test_the_base_gemm_carries_the_a_factors_and_stores_the_base_once(tiny_base, smoke_config, adapter_set, pair):
    """Over a plain Linear the module keeps [W; A_all]; the base weight is a view of it, and the
    two-GEMM form (what a quantized base gets) computes the same logits."""
    stacked, _ = pair
    module = next(iter(stacked.stacked.modules.values()))
    assert module.fused
    assert module.base_layer.weight.untyped_storage().data_ptr() == module.weight_and_a.untyped_storage().data_ptr()
    rows = _rows(stacked, n=2)
    fused, mask = _logits(stacked, rows)
    stacked._unstack()
    from evoswarm.backends.stacked_lora import StackedAdapters

    stacked.stacked = StackedAdapters(stacked.peft, fuse_base=False)
    stacked.stacked.install()
    try:
        assert not next(iter(stacked.stacked.modules.values())).fused
        two_gemm, _ = _logits(stacked, rows)
    finally:
        stacked._unstack()
        stacked._stack()
    keep = mask.bool()
    assert scaled_max_diff(fused[keep], two_gemm[keep]) < FP32_RTOL  # one GEMM or two: fp32 rounding


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 on a GPU: run on a CUDA machine")
def test_bf16_on_a_gpu_errs_no_more_than_peft():
    """Qwen3-4B widths (2 layers), 3 random adapters of ranks 32/16/8 plus base rows, bf16 on the GPU:
    the stacked product's logits stay as close to an fp32 reference as PEFT's own bf16 mixed batch, and
    its greedy tokens agree with PEFT's."""
    import copy

    from evoswarm.backends.stacked_lora import StackedAdapters
    from evoswarm.model.base import QWEN3_4B_SHAPE
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    with torch.device("cuda"):
        base = Qwen3ForCausalLM(Qwen3Config(**{**QWEN3_4B_SHAPE, "num_hidden_layers": 2}))
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    names = ["a32", "b16", "c8"]
    model = get_peft_model(base, LoraConfig(r=32, lora_alpha=64, target_modules=targets), adapter_name="a32")
    model.add_adapter("b16", LoraConfig(r=16, lora_alpha=32, target_modules=targets))
    model.add_adapter("c8", LoraConfig(r=8, lora_alpha=8, target_modules=targets[:4]))
    g = torch.Generator().manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.copy_(torch.randn(p.shape, generator=g) * 0.02)
    model.eval()
    reference = copy.deepcopy(model)  # fp32
    model.to(torch.bfloat16)
    rows = [None, *names] * 4
    ids = torch.randint(0, 150_000, (len(rows), 48), generator=g).cuda()
    with torch.no_grad():
        want = reference(input_ids=ids, adapter_names=[r or "__base__" for r in rows]).logits
        peft_bf16 = model(input_ids=ids, adapter_names=[r or "__base__" for r in rows]).logits.float()
        peft_tokens = model.generate(
            input_ids=ids, adapter_names=[r or "__base__" for r in rows], max_new_tokens=16, do_sample=False
        )
        stack = StackedAdapters(model)
        stack.install()
        stack.route(rows)
        got = stack.model(input_ids=ids).logits.float()
        tokens = stack.model.generate(input_ids=ids, max_new_tokens=16, do_sample=False)
    peft_err, err = (peft_bf16 - want).abs(), (got - want).abs()
    print(
        f"bf16 vs fp32 logits: stacked max {err.max():.4f} mean {err.mean():.5f}; "
        f"PEFT max {peft_err.max():.4f} mean {peft_err.mean():.5f}; "
        f"greedy tokens equal to PEFT's: {(tokens == peft_tokens).float().mean():.3f}"
    )
    assert err.mean() <= 1.25 * peft_err.mean() and err.max() <= 2 * peft_err.max()
    assert (tokens == peft_tokens).float().mean() >= 0.9
