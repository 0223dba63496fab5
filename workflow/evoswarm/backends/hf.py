"""transformers + PEFT in process: PEFT loads every agent's adapter into one PeftModel, and batches
that mix agents run each targeted module's adapters as one batched product (backends.stacked_lora);
adapters it cannot stack (DoRA, embeddings, LoRA biases) fall back to PEFT's `adapter_names=`
(rows of the base model use "__base__")."""

from __future__ import annotations

import sys
from itertools import accumulate

import torch

from evoswarm.backends import GenRequest, ScoreRequest, encode_pair, fit_prompt
from evoswarm.backends.decode import greedy_decode
from evoswarm.protocol.chat import render

BASE = "__base__"


class HFBackend:
    def __init__(
        self,
        model,
        tokenizer,
        batch_size: int = 32,
        max_length: int | None = None,
        static_cache: bool = False,
        stacked_lora: bool = True,
    ):
        self.base = model
        self.peft = None  # the PeftModel holding every adapter, once one is added
        self.tok = tokenizer
        self.batch_size = batch_size
        # Greedy batches decode with a static KV cache in backends.decode (one CUDA graph replayed a
        # step, nothing compiled: a new batch shape costs one capture, not a compile); sampled ones
        # keep generate()'s dynamic cache (its static path compiles once per batch shape, in every job).
        self.static_cache = static_cache
        # False: PEFT's own mixed batches (the reference the stacked product is tested against).
        self.stacked_lora = stacked_lora
        self.stacked = None  # stacked_lora.StackedAdapters, installed while it holds every adapter
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", 4096)
        self.adapters: dict[str, str] = {}
        self.truncated = 0  # prompts cut to fit the context, counted for the transcript summary
        self.generated_tokens = 0  # tokens generate() produced (up to each row's end of turn), for budgets

    @classmethod
    def from_base(cls, base_dir: str, config: dict) -> HFBackend:
        from evoswarm.model.base import load_base

        model, tok = load_base(base_dir, config)
        return cls(model, tok, config["debate"]["batch_size"], static_cache=config["debate"]["static_cache"])

    @property
    def model(self):
        """What a forward or generate() call runs: the PeftModel on PEFT's path, else the transformers
        model itself (with the stacked adapters in its module tree)."""
        return self.base if self.peft is None or self.stacked is not None else self.peft

    @property
    def device(self):
        return next(self.base.parameters()).device

    def add_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        if "." in name:
            raise ValueError(f"adapter name {name!r} may not contain '.' (PEFT module names)")
        self._unstack()
        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.base, path, adapter_name=name, is_trainable=False)
        else:
            self.peft.load_adapter(path, adapter_name=name, is_trainable=False)
        self.peft.eval()
        self.adapters[name] = path
        self._stack()

    def remove_adapter(self, name: str) -> None:
        self._unstack()
        self.peft.delete_adapter(name)
        del self.adapters[name]
        self._stack()

    def _unstack(self) -> None:
        """Give PEFT its own layers back before it loads or deletes an adapter."""
        if self.stacked is not None:
            self.stacked.uninstall()
            self.stacked = None

    def _stack(self) -> None:
        from evoswarm.backends.stacked_lora import StackedAdapters, unsupported

        if not self.stacked_lora or not self.adapters:
            return
        why = unsupported(self.peft)
        if why:
            print(f"note: PEFT's mixed batches serve these adapters ({why})", file=sys.stderr, flush=True)
            self.stacked_lora = False
            return
        self.stacked = StackedAdapters(self.peft)
        self.stacked.install()

    def _adapter_kw(self, names: list[str | None]) -> dict:
        """Route each row of the next forward to its adapter; returns the keyword arguments that call takes."""
        if not self.adapters:
            if any(n is not None for n in names):
                raise KeyError(f"unknown adapter(s) {sorted({n for n in names if n})}")
            return {}
        unknown = {n for n in names if n is not None and n not in self.adapters}
        if unknown:
            raise KeyError(f"unknown adapter(s) {sorted(unknown)}")
        if self.stacked is not None:
            self.stacked.route(names)
            return {}
        return {"adapter_names": [BASE if n is None else n for n in names]}

    def _encode_prompt(self, prompt: str | list[int], room: int) -> list[int]:
        ids = self.tok(prompt, add_special_tokens=False)["input_ids"] if isinstance(prompt, str) else prompt
        limit = self.max_length - room
        if len(ids) > limit:
            self.truncated += 1
            ids = fit_prompt(self.tok, prompt if isinstance(prompt, str) else None, ids, limit)
        return ids

    def generate(self, requests: list[GenRequest]) -> list[str]:
        texts = self.generate_raw(
            [(r.adapter, render(self.tok, r.messages, r.prefix)) for r in requests],
            [(r.max_new_tokens, r.temperature, r.top_p, r.seed) for r in requests],
        )
        return [r.prefix + t for r, t in zip(requests, texts)]

    @torch.no_grad()
    def generate_raw(self, prompts: list[tuple[str | None, str | list[int]]], settings: list[tuple]) -> list[str]:
        """Continue raw prompts, each (adapter, text or token ids) with (max_new_tokens, temperature, top_p, seed)."""
        out: list[str] = [""] * len(prompts)
        # Same settings share a batch; long prompts together waste less padding.
        order = sorted(range(len(prompts)), key=lambda i: (settings[i], len(prompts[i][1])))

        def run(start: int, stop: int) -> None:
            groups: dict[tuple, list[int]] = {}
            for i in order[start:stop]:
                groups.setdefault(settings[i], []).append(i)
            for setting, idx in groups.items():
                for i, text in zip(idx, self._generate_batch([prompts[i] for i in idx], setting)):
                    out[i] = text

        self._in_batches(len(order), run)
        return out

    def _in_batches(self, n: int, run) -> None:
        """run(start, stop) over [0, n) in chunks of batch_size. A chunk that runs out of GPU memory is
        retried in halves, and the rest of the run keeps the smaller size, with a log line: a batch size
        too large for the card costs speed, not the stage."""
        start = 0
        while start < n:
            stop = min(start + self.batch_size, n)
            try:
                run(start, stop)
            except torch.OutOfMemoryError:
                if stop - start == 1:
                    raise
                self.batch_size = (stop - start) // 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                print(
                    f"warning: out of memory on a batch of {stop - start}; going on in batches of {self.batch_size}",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            start = stop

    def _generate_batch(self, prompts: list[tuple[str | None, str | list[int]]], settings: tuple) -> list[str]:
        max_new, temperature, top_p, seed = settings
        enc = [self._encode_prompt(prompt, max_new) for _, prompt in prompts]
        width = max(len(e) for e in enc)
        pad = self.tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], device=self.device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=self.device)
        sample = temperature > 0
        torch.manual_seed(seed)
        kw = self._adapter_kw([a for a, _ in prompts])
        if self.static_cache and not sample and not kw:  # PEFT's own mixed batch cannot be captured
            new = greedy_decode(self.model, ids, mask, max_new, self.tok.eos_token_id, pad)
        else:
            new = self._generate(ids, mask, max_new, sample, temperature, top_p, kw)
        ended = (new == self.tok.eos_token_id).int()
        # A row ends at its first end-of-turn token (counted); after it come only pads.
        self.generated_tokens += int(torch.where(ended.any(1), ended.argmax(1) + 1, new.shape[1]).sum())
        return self.tok.batch_decode(new, skip_special_tokens=True)

    def _generate(self, ids, mask, max_new: int, sample: bool, temperature: float, top_p: float, kw: dict):
        """transformers' generate(): the new tokens of each row."""
        pad = self.tok.pad_token_id
        gen = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=None,
            pad_token_id=pad,
            eos_token_id=self.tok.eos_token_id,
            cache_implementation="static" if self.static_cache and not sample else None,
            **kw,
        )
        return gen[:, ids.shape[1] :]

    @torch.no_grad()
    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        # The choices of a request share one row that reads their context once (_score_rows), when their
        # context ids are equal: lm-eval's split (encode_pair) may move a boundary token into the
        # continuation, and a cut context depends on the room its choice needs.
        groups: dict[tuple[int, tuple[int, ...]], list[tuple[int, list[int]]]] = {}
        for i, r in enumerate(requests):
            context = render(self.tok, r.messages, r.prefix)
            for j, cont in enumerate(r.continuations):
                ctx, cont_ids = encode_pair(self.tok, context, cont)
                room = len(cont_ids)
                if len(ctx) + room > self.max_length:
                    self.truncated += 1
                    ctx = fit_prompt(self.tok, context.rstrip(), ctx, self.max_length - room)
                if cont_ids:  # an empty continuation scores 0
                    groups.setdefault((i, tuple(ctx)), []).append((j, cont_ids))
        rows = sorted(groups.items(), key=lambda g: -len(g[0][1]) - sum(len(c) - 1 for _, c in g[1]))
        out = [[0.0] * len(r.continuations) for r in requests]

        def run(start: int, stop: int) -> None:
            batch = rows[start:stop]
            values = self._score_rows(
                [(list(ctx), [c for _, c in conts]) for (_, ctx), conts in batch],
                [requests[i].adapter for (i, _), _ in batch],
            )
            for ((i, _), conts), row_values in zip(batch, values):
                for (j, _), value in zip(conts, row_values):
                    out[i][j] = value

        self._in_batches(len(rows), run)
        return out

    def _score_rows(
        self, rows: list[tuple[list[int], list[list[int]]]], adapters: list[str | None]
    ) -> list[list[float]]:
        """Summed log-probabilities of the continuations of each (context, continuations) row, in one forward.

        A row holds the context, then each continuation but its last token; a 4D mask lets each
        continuation see the context and itself only, at the positions it has right after the context,
        so each score is the one of context + continuation alone. Rows are padded on the left, so every
        scored position lies in the last `tail` columns, the only ones the head computes logits for."""
        seqs, segments, positions = [], [], []
        picks = []  # (row, column, target token, continuation's index in the batch, token's index in it)
        n_conts = 0
        for r, (ctx, conts) in enumerate(rows):
            seq, seg, pos = list(ctx), [0] * len(ctx), list(range(len(ctx)))
            for k, cont in enumerate(conts, start=1):
                # The context's last token predicts the continuation's first, each of its tokens the next.
                cols = [len(ctx) - 1, *range(len(seq), len(seq) + len(cont) - 1)]
                picks += [(r, col, tok, n_conts, t) for t, (col, tok) in enumerate(zip(cols, cont))]
                n_conts += 1
                seq += cont[:-1]
                seg += [k] * (len(cont) - 1)
                pos += range(len(ctx), len(ctx) + len(cont) - 1)
            seqs.append(seq)
            segments.append(seg)
            positions.append(pos)
        width = max(len(s) for s in seqs)
        tail = max(len(s) - len(context) + 1 for s, (context, _) in zip(seqs, rows))
        pads = [width - len(s) for s in seqs]
        dev = self.device
        ids = torch.tensor([[self.tok.pad_token_id] * p + s for p, s in zip(pads, seqs)], device=dev)
        pos_ids = torch.tensor([[0] * p + s for p, s in zip(pads, positions)], device=dev)
        seg = torch.tensor([[-1] * p + s for p, s in zip(pads, segments)], device=dev)
        # A query sees the earlier keys of its own segment and of the context (0); pads (-1) see pads only.
        allowed = torch.ones(width, width, dtype=torch.bool, device=dev).tril() & (
            (seg[:, :, None] == seg[:, None, :]) | (seg[:, None, :] == 0)
        )
        # Additive (0 or the dtype's min): eager attention adds the mask to the scores, sdpa takes it as is.
        dtype = self.model.get_input_embeddings().weight.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=dev).masked_fill_(~allowed, torch.finfo(dtype).min)
        logits = self.model(
            input_ids=ids,
            attention_mask=mask[:, None],
            position_ids=pos_ids,
            logits_to_keep=tail,
            **self._adapter_kw(adapters),
        ).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        row, col, tok, slot, t = (torch.tensor(x, device=dev) for x in zip(*picks))
        col += torch.tensor(pads, device=dev)[row] - (width - tail)
        # One line per continuation, summed along it: the same order each run (index_add_ is not, on CUDA).
        per_token = torch.zeros(n_conts, int(t.max()) + 1, device=dev)
        per_token[slot, t] = logp[row, col, tok]
        flat = iter(per_token.sum(1).tolist())
        return [[next(flat) for _ in conts] for _, conts in rows]

    @torch.no_grad()
    def token_logprobs(self, adapter: str | None, prompts: list[str | list[int]]) -> list[dict]:
        """Per-token log-probabilities of raw prompts (texts or token ids; the first token has None), as an
        OpenAI-style /v1/completions answers echo=True, max_tokens=0, logprobs=0. As vLLM does, each
        token's text_offset is the summed length of the decoded tokens before it."""
        out = []
        for prompt in prompts:
            ids = self.tok(prompt, add_special_tokens=False)["input_ids"] if isinstance(prompt, str) else prompt
            ids = ids[-self.max_length :]
            x = torch.tensor([ids], device=self.device)
            logits = self.model(input_ids=x, **self._adapter_kw([adapter])).logits[0]
            logp = torch.log_softmax(logits.float(), dim=-1)
            lps = [None] + [logp[i - 1, ids[i]].item() for i in range(1, len(ids))]
            tokens = [self.tok.decode([i]) for i in ids]
            offsets = list(accumulate((len(t) for t in tokens[:-1]), initial=0))
            out.append({"tokens": tokens, "token_logprobs": lps, "text_offset": offsets})
        return out

    @torch.no_grad()
    def embed(self, texts: list[str]) -> list[list[float]]:
        """Mean-pooled last hidden state of each text under the base model (adapters off)."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            chunk = [
                self.tok(t, add_special_tokens=False)["input_ids"][: self.max_length] or [self.tok.pad_token_id]
                for t in texts[start : start + self.batch_size]
            ]
            width = max(len(c) for c in chunk)
            ids = torch.tensor([c + [self.tok.pad_token_id] * (width - len(c)) for c in chunk], device=self.device)
            mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in chunk], device=self.device)
            kw = self._adapter_kw([None] * len(chunk))
            hidden = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, **kw).hidden_states[-1]
            pooled = (hidden.float() * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            out += pooled.cpu().tolist()
        return out
