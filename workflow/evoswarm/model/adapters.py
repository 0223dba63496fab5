"""Adapter folders: PEFT's adapter_config.json + adapter_model.safetensors, plus our lineage.json.

Reads and writes the LoRA factors directly (no model needed), checks them, and records lineage.
Imports torch and safetensors only where weights are read or written: the stages that only read
or write lineage (lamarck's copies, select, the report) do not pay torch's import (seconds).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from evoswarm.io import InputError, atomic_path, read_json, sha256_file

WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"
CONFIG = "adapter_config.json"
LINEAGE = "lineage.json"

if TYPE_CHECKING:
    import torch


def base_identity(manifest: dict) -> str:
    """A short string naming a base model's weights, recorded in every adapter's lineage."""
    digest = manifest.get("sha256") or manifest.get("config_sha256", "")
    return f"{manifest['source']}@{digest[:16]}"


def base_name(manifest: dict, base_dir: str | Path) -> str:
    """How an adapter's config names its base (`base_model_name_or_path`): an external base's source as the
    config names it (a hub id or a folder), the embedded base's folder relative to the working directory.
    Never the absolute folder the weights were loaded from: a copied project's adapters would name the
    original's (PEFT given the model, and vLLM, ignore the field)."""
    return os.path.relpath(base_dir) if manifest["source_type"] == "embedded" else manifest["source"]


def read_adapter(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(adapter_config, tensors) of an adapter folder; rejects missing, pickle, unreadable and NaN/Inf weights."""
    path = Path(path)
    # PEFT and vLLM would load a pickle beside or instead of the safetensors; pickles run code when loaded.
    if (path / PICKLE_WEIGHTS).exists():
        raise InputError(f"{path}: holds {PICKLE_WEIGHTS} (pickle); only {WEIGHTS} is accepted")
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            raise InputError(f"{path}: adapter folder has no {name}")
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = check_config(path / CONFIG)
    try:
        tensors = load_file(str(path / WEIGHTS))
    except SafetensorError as e:
        raise InputError(f"{path}: {WEIGHTS} is not a readable safetensors file ({e})") from None
    for key, t in tensors.items():
        if not torch.isfinite(t).all():
            raise InputError(f"{path}: tensor {key} holds NaN or Inf")
    return config, tensors


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _positive_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v) and v > 0


def _finite(v: int | float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int past float's range (JSON's 1e400 written out): alpha / r would overflow too
        return False


def _module_names(v) -> bool:
    return (isinstance(v, str) and v != "") or (isinstance(v, list) and v != [] and all(isinstance(x, str) for x in v))


# What each adapter_config.json field the readers act on must hold: a field of another kind would be a
# TypeError deep in module_scaling, and a LoRA field the backends and crossover ignore (full modules, DoRA's
# magnitudes) would make them compute something other than what PEFT computes from the same folder.
CONFIG_FIELDS = {
    "peft_type": (lambda v: v == "LORA", '"LORA"'),
    "r": (_positive_int, "a positive integer"),
    "lora_alpha": (_positive_number, "a finite positive number"),
    "use_rslora": (lambda v: isinstance(v, bool), "true or false"),
    "rank_pattern": (
        lambda v: v is None or (isinstance(v, dict) and all(map(_positive_int, v.values()))),
        "a mapping of module patterns to positive integers",
    ),
    "alpha_pattern": (
        lambda v: v is None or (isinstance(v, dict) and all(map(_positive_number, v.values()))),
        "a mapping of module patterns to finite positive numbers",
    ),
    "target_modules": (_module_names, "a module name pattern or a non-empty list of module names"),
    "modules_to_save": (lambda v: v is None or v == [], "empty (evoswarm adapters hold LoRA factors only)"),
    "use_dora": (lambda v: v is None or v is False, "false (evoswarm adapters hold LoRA factors only)"),
}
REQUIRED_CONFIG = ("peft_type", "r", "lora_alpha")  # PEFT writes them all; without one the scaling is a guess


def check_config(path: str | Path) -> dict:
    """adapter_config.json at `path`, each field the readers act on checked: one line naming the field."""
    config = read_json(path)
    for field in REQUIRED_CONFIG:
        if field not in config:
            raise InputError(f"{path}: no field {field}")
    for field, (ok, want) in CONFIG_FIELDS.items():
        if field in config and not ok(config[field]):
            raise InputError(f"{path}: {field} must be {want}, not {json.dumps(config[field])[:80]}")
    return config


# adapter_config.json fields that say where or by which PEFT an adapter was made, not what it adds to the
# base: left out of config_sha256, so a copied project or another PEFT version keeps its adapters.
UNHASHED_CONFIG = ("base_model_name_or_path", "revision", "peft_version", "auto_mapping", "inference_mode")
# Sets PEFT writes as lists in the process's hash order: sorted, so one adapter always hashes the same.
SET_CONFIG = ("target_modules", "exclude_modules")


def config_sha256(config: dict) -> str:
    """sha256 over the sorted-key JSON of the adapter_config fields that change the delta."""
    kept = {k: v for k, v in config.items() if k not in UNHASHED_CONFIG}
    for k in SET_CONFIG:
        if isinstance(kept.get(k), list):
            kept[k] = sorted(kept[k], key=str)
    # surrogatepass: a JSON "\ud800" is a lone surrogate, which strict UTF-8 cannot encode; other text
    # encodes as before, so every recorded hash stays valid.
    text = json.dumps(kept, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def read_lineage(path: str | Path) -> dict:
    p = Path(path) / LINEAGE
    if not p.is_file():
        raise InputError(f"{path}: adapter folder has no {LINEAGE}")
    return read_json(p)


def verify_adapter(path: str | Path, manifest: dict) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(adapter_config, tensors, lineage) of an adapter folder that a stage breeds from or copies: on
    this run's base, readable finite safetensors, and weights and config that still hash to lineage's
    sha256 and config_sha256."""
    lineage = read_lineage(path)
    check_base(path, manifest)
    config, tensors = read_adapter(path)
    check_hashes(path, lineage)
    return config, tensors, lineage


def check_hashes(path: str | Path, lineage: dict) -> None:
    """Refuses an adapter folder whose weights or config no longer hash to its lineage's sha256 and
    config_sha256. Reads no tensors (no torch): lamarck's copies check this much before rewriting lineage."""
    path = Path(path)
    if "config_sha256" not in lineage:
        raise InputError(
            f"{path}: {LINEAGE} records no config_sha256 (written before evoswarm hashed {CONFIG}); retrain or "
            "rebreed this adapter (snakemake --forcerun train_persona)"
        )
    if not (path / WEIGHTS).is_file():
        raise InputError(f"{path}: adapter folder has no {WEIGHTS}")
    sha = sha256_file(path / WEIGHTS)
    if lineage.get("sha256") != sha:
        raise InputError(
            f"{path}: {WEIGHTS} has sha256 {sha[:12]}, but {LINEAGE} records {str(lineage.get('sha256'))[:12]}: "
            "the weights changed after they were written"
        )
    config_sha = config_sha256(check_config(path / CONFIG))
    if lineage["config_sha256"] != config_sha:
        raise InputError(
            f"{path}: {CONFIG} has sha256 {config_sha[:12]}, but {LINEAGE} records "
            f"{str(lineage['config_sha256'])[:12]}: the config changed after it was written"
        )


def lora_factors(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """module name -> (A [r, d_in], B [d_out, r]) from PEFT's key layout."""
    out = {}
    for key, a in tensors.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0]
        b_key = key.replace(".lora_A.", ".lora_B.")
        if b_key not in tensors:
            raise InputError(f"adapter has {key} but no {b_key}")
        out[module] = (a, tensors[b_key])
    if not out:
        raise InputError("adapter holds no LoRA factors (no '.lora_A.' keys)")
    return out


def module_scaling(config: dict, module: str, rank: int) -> float:
    """s = lora_alpha / r (or / sqrt(r) with rsLoRA), honouring PEFT's rank/alpha patterns."""
    alpha = config["lora_alpha"]
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if module.endswith(pattern):
            alpha = value
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def factors_to_tensors(factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    out = {}
    for module, (a, b) in factors.items():
        out[f"{module}.lora_A.weight"] = a.contiguous()
        out[f"{module}.lora_B.weight"] = b.contiguous()
    return out


def write_adapter(out: str | Path, config: dict, tensors: dict[str, torch.Tensor], lineage: dict) -> str:
    """Write an adapter folder atomically; lineage gets the sha256 of the weights. Returns the sha."""
    from safetensors.torch import save_file

    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in sorted(tensors.items())}, str(tmp / WEIGHTS), metadata={"format": "pt"}
        )
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        sha = write_lineage(tmp, lineage)
    return sha


# lineage.json's fields, in the order a new record lists them (write_lineage adds the weights' sha256 and
# the config's config_sha256).
LINEAGE_FIELDS = (
    "generation",
    "slot",
    "persona",
    "system",
    "parents",
    "parent_personas",
    "parent_generation",
    "operator",
    "params",
    "seed",
    "base",
    "train",
    "lamarck",
)


def lineage_record(inherit: dict | None = None, **fields) -> dict:
    """An adapter's lineage: `fields` in LINEAGE_FIELDS' order, after the record of the adapter it copies or
    continues (`inherit`: an elite's parent, a Lamarckian step's bred child), whose keys keep their place."""
    unknown = set(fields) - set(LINEAGE_FIELDS)
    if unknown:
        raise TypeError(f"lineage_record: unknown fields {sorted(unknown)}")
    return {**(inherit or {}), **{k: fields[k] for k in LINEAGE_FIELDS if k in fields}}


def write_lineage(folder: str | Path, lineage: dict) -> str:
    """Write lineage.json beside the weights and config, with the weights' sha256 and the (checked)
    config's config_sha256. Returns the weights' sha."""
    sha = sha256_file(Path(folder) / WEIGHTS)
    record = {**lineage, "sha256": sha, "config_sha256": config_sha256(check_config(Path(folder) / CONFIG))}
    (Path(folder) / LINEAGE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return sha


def check_base(path: str | Path, manifest: dict) -> None:
    """An adapter trained on another base is refused, naming both."""
    lineage = read_lineage(path)
    ours = base_identity(manifest)
    if lineage.get("base") != ours:
        raise InputError(
            f"{path}: adapter was trained on base {lineage.get('base')!r}, but this run's base is {ours!r}"
        )
