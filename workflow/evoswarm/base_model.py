"""The base model: build the embedded tiny Qwen3 (tokenizer + pretraining), resolve a hub id or a
local folder offline, and load whichever it is for the later stages.

`results/base/manifest.json` always says where the weights are, so every later stage loads the base
the same way whatever its source.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch

from evoswarm.io import InputError, atomic_path, read_text, sha256_file
from evoswarm.training import load_chats

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Qwen3-4B's published sizes (config.json of Qwen/Qwen3-4B-Instruct-2507): for shaped random models in
# tests and benchmarks, since no weights can be downloaded here.
QWEN3_4B_SHAPE = dict(
    vocab_size=151936,
    hidden_size=2560,
    intermediate_size=9728,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=32768,
    tie_word_embeddings=True,
)

# Qwen-style chat template; the {% generation %} markers let TRL compute loss on assistant turns only.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


def build_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts`, wrapped for transformers with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Digits one token each, as Qwen's tokenizers split them: sums of unseen operands stay learnable.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def build_model(tokenizer, cfg: dict):
    """A small Qwen3ForCausalLM sized by the config's `base.embedded` section."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_layers"],
        num_attention_heads=cfg["num_heads"],
        num_key_value_heads=cfg["num_kv_heads"],
        head_dim=cfg["hidden_size"] // cfg["num_heads"],
        max_position_embeddings=cfg["max_position"],
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    return Qwen3ForCausalLM(config)


def pretraining_texts(corpus: list[str], format_chats: list[dict], tokenizer, rng: random.Random) -> list[str]:
    """Documents: corpus lines packed a few at a time, and the format chats rendered by the template."""
    lines = corpus[:]
    rng.shuffle(lines)
    # The knowledge is repeated so the base learns it; the format chats are seen less often.
    docs = [" ".join(lines[i : i + 4]) + tokenizer.eos_token for i in range(0, len(lines), 4)] * 8
    docs += [tokenizer.apply_chat_template(c["messages"], tokenize=False) for c in format_chats]
    return docs


def pretrain(model, tokenizer, docs: list[str], cfg: dict, seed: int, log=print) -> list[float]:
    """Causal-LM pretraining for a fixed number of steps (fp32, AdamW, cosine schedule). Returns losses."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    enc = [tokenizer(d, add_special_tokens=False)["input_ids"][: cfg["max_position"]] for d in docs]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], weight_decay=0.01)
    steps, warmup = cfg["pretrain_steps"], max(1, cfg["pretrain_steps"] // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * s / max(1, steps))))
    )
    model.train()
    losses, t0, order = [], time.time(), []
    for step in range(steps):
        if len(order) < cfg["batch_size"]:
            order += torch.randperm(len(enc), generator=gen).tolist()
        batch = [enc[i] for i in order[: cfg["batch_size"]]]
        del order[: cfg["batch_size"]]
        width = max(len(b) for b in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            ids[i, : len(b)] = torch.tensor(b)
            mask[i, : len(b)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            log(f"pretrain step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f}s)")
    model.eval()
    return losses


def build_embedded(config: dict, corpus_path: str | Path, format_path: str | Path, out: str | Path, log=print) -> dict:
    """Build, pretrain and save the embedded base model and tokenizer into `out` (atomically)."""
    cfg = config["base"]["embedded"]
    seed = config["seed"]
    corpus_path = Path(corpus_path)
    if not corpus_path.is_file():
        raise InputError(f"{corpus_path}: corpus file not found")
    corpus = [ln for ln in read_text(corpus_path).splitlines() if ln.strip()]
    if not corpus:
        raise InputError(f"{corpus_path}: empty corpus")
    chats = load_chats(format_path)
    t0 = time.time()
    # The tokenizer sees the task and persona texts too, so both languages tokenize compactly.
    tok_texts = corpus + [m["content"] for c in chats for m in c["messages"]]
    for p in config["personas"]:
        tok_texts += [m["content"] for c in load_chats(p["data"]) for m in c["messages"]]
    tokenizer = build_tokenizer(tok_texts, cfg["vocab_size"])
    torch.manual_seed(seed)
    model = build_model(tokenizer, cfg)
    docs = pretraining_texts(corpus, chats, tokenizer, random.Random(seed))
    losses = pretrain(model, tokenizer, docs, cfg, seed, log)
    n_params = sum(p.numel() for p in model.parameters())
    manifest = {
        "source": "embedded",
        "params": n_params,
        "vocab_size": len(tokenizer),
        "pretrain_steps": cfg["pretrain_steps"],
        "final_loss": losses[-1] if losses else None,
        "build_seconds": round(time.time() - t0, 1),
    }
    with atomic_path(out, is_dir=True) as tmp:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        manifest["path"] = str(Path(out).resolve())
        manifest["sha256"] = sha256_file(tmp / "model.safetensors")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def resolve_external(config: dict, out: str | Path) -> dict:
    """For a hub id or local folder: find the weights offline and write a manifest naming them."""
    name, rev = config["base_model"], config["base"]["revision"]
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise InputError(f"base_model: folder {folder} has no config.json")
        path = folder.resolve()
    else:
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(name, revision=rev, local_files_only=True))
        except Exception as e:
            raise InputError(
                f"base_model: '{name}' is neither a local folder nor in the local Hugging Face cache "
                f"({type(e).__name__}). Download it where the hub is reachable "
                f"(`hf download {name}`) and copy the cache here, or set base_model to a local folder."
            ) from None
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise InputError(f"base_model: {path} has no *.safetensors weights (only safetensors are loaded)")
    manifest = {
        "source": name,
        "revision": rev or path.name,
        "path": str(path),
        "config_sha256": sha256_file(path / "config.json"),
        "weights": {w.name: w.stat().st_size for w in weights},
    }
    with atomic_path(Path(out), is_dir=True) as tmp:
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(base_dir: str | Path) -> dict:
    path = Path(base_dir) / "manifest.json"
    if not path.is_file():
        raise InputError(f"{path}: base model manifest not found (run the build_base stage)")
    return json.loads(path.read_text())


def pick_device(pref: str = "auto") -> str:
    if pref == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return pref


def pick_dtype(pref: str, device: str) -> torch.dtype:
    # fp32 is 5-10x faster than bf16 on AVX2-only CPUs; bf16 on GPUs.
    if pref == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, pref)


def load_tokenizer(base_dir: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    path = read_manifest(base_dir)["path"]
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(base_dir: str | Path, config: dict, quantization: str = "none"):
    """Load (model, tokenizer) of the base named by `base_dir`'s manifest, offline, safetensors only.

    quantization 'nf4' loads 4-bit NF4 weights with double quantisation (bitsandbytes).
    """
    from transformers import AutoModelForCausalLM

    bcfg = config["base"]
    device = pick_device(bcfg["device"])
    dtype = pick_dtype(bcfg["dtype"], device)
    kwargs = {}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    path = read_manifest(base_dir)["path"]
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        use_safetensors=True,
        trust_remote_code=bcfg["trust_remote_code"],
        device_map={"": device} if quantization == "nf4" else None,
        **kwargs,
    )
    if quantization != "nf4":
        model.to(device)
    model.eval()
    return model, load_tokenizer(base_dir, bcfg["trust_remote_code"])
