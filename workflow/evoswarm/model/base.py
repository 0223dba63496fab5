"""The base model: build the embedded tiny Qwen3 (tokenizer + pretraining), resolve a hub id or a
local folder offline, and load whichever it is for the later stages.

`results/base/manifest.json` names the weights by what they are, never by an absolute path, so a copied
or moved project loads its own base: `source_type` names its entry in SOURCES, `embedded` (the weights
are the base folder itself), `folder` (`source`, as the config gave it) or `hub` (`source` found in the
local Hugging Face cache at `revision`). Its `fingerprint` is checked whenever a stage reads the
manifest, and so are whole-file sha256s: the embedded base's `sha256` always (a few MB), an external base's
`weights_sha256` when `base.hash_weights` asked build_base to record them; a base that changed since
build_base is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from evoswarm.io import InputError, atomic_path, read_text, sha256_file
from evoswarm.progress import Progress
from evoswarm.world.chats import load_chats

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


def build_tokenizer(
    texts: list[str],
    vocab_size: int,
    special_tokens: list[str] = SPECIAL_TOKENS,
    chat_template: str = CHAT_TEMPLATE,
    model_max_length: int = 4096,
):
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
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=chat_template,
        model_max_length=model_max_length,
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
    losses, order, progress = [], [], Progress("pretrain step", steps)
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
        if step % 25 == 0 or step == steps - 1:
            log(progress.line(step + 1, f"loss {loss.item():.3f}"))
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
        "source_type": "embedded",
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
        manifest["sha256"] = sha256_file(tmp / "model.safetensors")
        manifest["fingerprint"] = fingerprint(tmp)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {**manifest, "path": str(Path(out).resolve())}


# What loading a base reads besides the weights: config, generation config, tokenizer, chat template,
# the safetensors index. Hashed whole; they are small (Qwen3's tokenizer.json is 11 MB).
FINGERPRINT_SUFFIXES = (".json", ".jinja", ".txt", ".model")


def fingerprint(folder: Path) -> str:
    """A sha256 over a model folder's config and tokenizer files and each *.safetensors file's name, size
    and header (tensor names, dtypes, shapes, offsets). Not over the tensor data: a 4B model's 8 GB take
    about 5 s a load here, more from a cold disk (docs/design.md, "Base models"); a changed size, header or
    config is what a swapped or re-downloaded model shows. read_manifest hashes whole what the manifest
    records: the embedded base always, an external one with `base.hash_weights`."""
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name == "manifest.json":
            continue
        if f.suffix == ".safetensors":
            with f.open("rb") as weights:
                head = weights.read(8)
                header = weights.read(min(int.from_bytes(head, "little"), 100 << 20)) if len(head) == 8 else b""
            h.update(f"{f.name}\0{f.stat().st_size}\0".encode() + head + header)
        elif f.suffix in FINGERPRINT_SUFFIXES:
            h.update(f"{f.name}\0".encode() + f.read_bytes())
    return h.hexdigest()


# Whole-file hashes this process computed, by (path, size, mtime, inode): a stage reads the manifest several
# times (the model, the tokenizer, the adapters' base checks), and a rewritten file gets another mtime.
_HASHED: dict[tuple, str] = {}


def weights_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]


def find_in_hub_cache(name: str, revision: str | None) -> Path | None:
    """The snapshot folder of hub id `name` at `revision` in the local Hugging Face cache, or None."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, revision=revision, local_files_only=True))
    except Exception:  # not a repo id, not cached, revision unknown: all mean "not here"
        return None


@dataclass(frozen=True)
class BaseSource:
    """A kind of base model, as the manifest's `source_type` names it: the config keys it reads, what it
    needs on this machine, and `locate`, which finds its weights folder from (manifest, base folder), or
    None when they are gone. Stages find the weights this way, never by a stored absolute path."""

    name: str
    parameters: tuple[str, ...]
    needs: str
    locate: Callable[[dict, Path], Path | None]


SOURCES: dict[str, BaseSource] = {
    s.name: s
    for s in (
        BaseSource(
            "embedded",
            ("base.embedded", "personas", "seed"),
            "nothing: build_base pretrains it on the corpus",
            lambda manifest, base_dir: base_dir.resolve(),
        ),
        BaseSource(
            "folder",
            ("base_model", "base.hash_weights"),
            "the folder, with config.json and *.safetensors",
            lambda manifest, base_dir: Path(manifest["source"]).expanduser().resolve(),
        ),
        BaseSource(
            "hub",
            ("base_model", "base.revision", "base.hash_weights"),
            "the hub id's snapshot in the local Hugging Face cache (nothing is downloaded)",
            lambda manifest, base_dir: find_in_hub_cache(manifest["source"], manifest["revision"]),
        ),
    )
}


def resolve_external(config: dict, out: str | Path) -> dict:
    """For a hub id or local folder: find the weights offline and write a manifest naming them by source,
    revision and fingerprint (and with `base.hash_weights`, each weights file's sha256). Returns the manifest
    with `path`, the folder found."""
    name, rev = config["base_model"], config["base"]["revision"]
    # A local folder as the config names it (relative to the working directory), else a hub id.
    source = SOURCES["folder" if Path(name).expanduser().is_dir() else "hub"]
    path = source.locate({"source": name, "revision": rev}, Path(out))
    if path is None:
        raise InputError(
            f"base_model: '{name}' is neither a local folder nor in the local Hugging Face cache. Download it "
            f"where the hub is reachable (`hf download {name}`) and copy the cache here, or set base_model to a "
            f"local folder."
        )
    if not (path / "config.json").is_file():
        raise InputError(f"base_model: folder {path} has no config.json")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise InputError(f"base_model: {path} has no *.safetensors weights (only safetensors are loaded)")
    manifest = {
        "source": name,
        "source_type": source.name,
        # A hub snapshot's folder is named by its commit: the copy found now, whatever `main` points to later.
        "revision": path.name if source.name == "hub" else None,
        "config_sha256": sha256_file(path / "config.json"),
        "weights": {w.name: w.stat().st_size for w in weights},
        "fingerprint": fingerprint(path),
    }
    if config["base"]["hash_weights"]:
        manifest["weights_sha256"] = {w.name: weights_sha256(w) for w in weights}
    with atomic_path(Path(out), is_dir=True) as tmp:
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {**manifest, "path": str(path)}


def read_manifest(base_dir: str | Path) -> dict:
    """The manifest build_base wrote into `base_dir`, with `path`: the folder holding the weights, found
    from the manifest's source and checked against its fingerprint. Raises InputError naming the manifest
    when the weights are gone or changed (rerun build_base)."""
    base_dir = Path(base_dir)
    path = base_dir / "manifest.json"
    if not path.is_file():
        raise InputError(f"{path}: base model manifest not found (run the build_base stage)")
    rerun = "rerun build_base (snakemake --forcerun build_base)"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not a JSON manifest; {rerun}") from None
    if not isinstance(manifest, dict) or "fingerprint" not in manifest:
        raise InputError(f"{path}: written by an older evoswarm (an absolute weights path, no fingerprint); {rerun}")
    if manifest.get("source_type") not in SOURCES:
        raise InputError(f"{path}: unknown source_type {manifest.get('source_type')!r} ({', '.join(SOURCES)}); {rerun}")
    folder = SOURCES[manifest["source_type"]].locate(manifest, base_dir)
    if folder is None or not folder.is_dir():
        raise InputError(f"{path}: base {manifest['source']} is no longer there; {rerun}")
    if fingerprint(folder) != manifest["fingerprint"]:
        raise InputError(
            f"{path}: base {manifest['source']} at {folder} differs from what build_base recorded; {rerun}"
        )
    # The fingerprint reads no tensor data: same-sized weights under the same header pass it.
    hashed = manifest.get("weights_sha256", {})
    if manifest["source_type"] == "embedded":
        hashed = {"model.safetensors": manifest.get("sha256")}
    for name, want in hashed.items():
        got = weights_sha256(folder / name)
        if got != want:
            raise InputError(
                f"{path}: base {manifest['source']}'s {name} has sha256 {got[:12]}, but build_base recorded "
                f"{str(want)[:12]}; {rerun}"
            )
    return {**manifest, "path": str(folder)}


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
