"""Greedy decoding with a static KV cache whose decode step is one CUDA graph, replayed.

transformers' generate() with a static cache compiles the decode step, but every step still pays the
host: dynamo's guards and the CUDA-graph input checks over every weight and buffer (about 500 more with
the stacked adapters), logits processors and stopping criteria, and a sync to ask whether all rows have
ended. At batch 24 on an H100 that host time was a third of the step (14.2 ms wall, 9.7 ms on the GPU).
Here the prefill is one plain forward; then the first decode step runs eagerly (which also warms up
every kernel) and the second is captured into a CUDA graph that later steps replay: the argmax, the
end-of-turn bookkeeping, the attention mask and every position advance on the device, so a step costs
one graph launch. Whether every row has ended is read once every `check_every` steps.

Uncompiled, attention for the one new token attends the key/value heads directly (transformers packs the
query heads of a group, instead of copying keys and values once per query head as its compiled path
does). On a CPU the same steps run without the graph (the tests check the tokens against generate()).
Greedy only: a sampled batch goes through generate().
"""

from __future__ import annotations

import torch


@torch.no_grad()
def greedy_decode(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: int | None,
    pad_token_id: int,
    check_every: int = 8,
) -> torch.Tensor:
    """(batch, max_new_tokens) new tokens of left-padded prompts, as generate(do_sample=False) gives them:
    a row's end-of-turn token is kept and pads follow it. eos_token_id None: every row runs to the end."""
    from transformers import StaticCache

    batch, width = input_ids.shape
    device = input_ids.device
    total = width + max_new_tokens
    cache = StaticCache(config=model.config, max_cache_len=total)
    # Positions as generate() numbers them: a row's pads do not count.
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, cache=cache, logits_to_keep=1
    ).logits
    out = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    token = logits[:, -1].argmax(-1, keepdim=True)
    out[:, :1] = token
    if max_new_tokens == 1:
        return out
    ended = token[:, 0] == (-1 if eos_token_id is None else eos_token_id)  # ids are >= 0: no row ends
    position = positions[:, -1:] + 1
    slot = torch.tensor([width], device=device)  # the cache slot of the token fed next
    keep = torch.cat([attention_mask.bool(), attention_mask.new_ones(batch, max_new_tokens, dtype=torch.bool)], 1)
    columns = torch.arange(total, device=device)
    dtype, blocked = logits.dtype, torch.finfo(logits.dtype).min
    del logits

    def step() -> None:
        visible = keep & (columns <= slot)
        mask = torch.where(visible, 0.0, blocked).to(dtype)[:, None, None, :]
        nxt = model(input_ids=token, attention_mask=mask, position_ids=position, cache=cache).logits[:, -1].argmax(-1)
        if eos_token_id is not None:
            nxt = torch.where(ended, pad_token_id, nxt)
            ended.logical_or_(nxt == eos_token_id)
        out.scatter_(1, (slot - width + 1).expand(batch, 1), nxt[:, None])
        token.copy_(nxt[:, None])
        position.add_(1)
        slot.add_(1)

    graph = None
    for k in range(1, max_new_tokens):
        if eos_token_id is not None and k % check_every == 0 and bool(ended.all()):
            break  # the rest of `out` stays pads, as generate() would leave it
        if graph is not None:
            graph.replay()
        elif device.type != "cuda":
            step()
        elif k == 1:  # eager, on a side stream: it warms up every kernel the capture records
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                step()
            torch.cuda.current_stream().wait_stream(side)
        else:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()  # recorded, not run
            graph.replay()
    return out
