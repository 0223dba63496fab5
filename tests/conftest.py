"""Shared fixtures: a tiny embedded base and trained adapters, built once per test session."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "configs" / "smoke.yaml"


@pytest.fixture(scope="session")
def smoke_config():
    from evoswarm.config import load_config

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return load_config(SMOKE)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, smoke_config):
    """The smoke config's embedded base (a 2-layer Qwen3), built in a temp folder."""
    from evoswarm.base_model import build_embedded
    from evoswarm.config import stage_config

    out = tmp_path_factory.mktemp("base") / "base"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        build_embedded(
            stage_config(smoke_config, "build_base"),
            "data/corpus/corpus.txt",
            "data/corpus/format.jsonl",
            out,
            log=lambda *_: None,
        )
    finally:
        os.chdir(cwd)
    return out


def train(base, persona, out, config, seed=1, **overrides):
    from evoswarm.adapters import base_identity, write_lineage
    from evoswarm.base_model import read_manifest
    from evoswarm.training import train_lora

    p = next(p for p in config["personas"] if p["name"] == persona)
    tcfg = {**config["training"], **p.get("training", {}), **overrides}
    out.mkdir(parents=True, exist_ok=True)
    train_lora(str(base), str(REPO / p["data"]), p["system"], tcfg, config, seed, out)
    write_lineage(
        out,
        {
            "generation": 0,
            "slot": persona,
            "persona": persona,
            "system": p["system"],
            "parents": [],
            "operator": "sft",
            "seed": seed,
            "base": base_identity(read_manifest(base)),
        },
    )
    return out


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory, tiny_base, smoke_config):
    """Two trained persona adapters on the tiny base (ranks 8 and 4)."""
    root = tmp_path_factory.mktemp("adapters")
    return {name: train(tiny_base, name, root / name, smoke_config) for name in ("critic", "ideator")}


def snakemake_cmd(workdir: Path, *args, config=SMOKE) -> list[str]:
    """The command line of Snakemake on the repo's Snakefile in `workdir` (data/ linked in), as a user runs it."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "data").exists():
        (workdir / "data").symlink_to(REPO / "data")
    if not (workdir / "config.yaml").exists():
        shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--configfile",
        str(config),
        "--directory",
        str(workdir),
        *args,
    ]


def run_snakemake(workdir: Path, *args, config=SMOKE, check=True, **kw):
    return subprocess.run(
        snakemake_cmd(workdir, *args, config=config), capture_output=True, text=True, check=check, **kw
    )
