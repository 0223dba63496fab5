"""Shared fixtures: a tiny embedded base and trained adapters, built once per test session."""

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "configs" / "smoke.yaml"

# What torch sizes its thread pool by when imported (libgomp and MKL read them then).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_threads_at_import: dict[tuple, int] = {}


def _threads_torch_starts_with(env: dict) -> int:
    """torch.get_num_threads() of a fresh interpreter under `env`: asked (once per setting of THREAD_VARS)
    only after a test that was the first to import torch, which may have read a value the test had set."""
    key = tuple(env.get(v) for v in THREAD_VARS)
    if key not in _threads_at_import:
        code = "import torch; print(torch.get_num_threads())"
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        _threads_at_import[key] = int(done.stdout.split()[-1])
    return _threads_at_import[key]


@pytest.fixture(autouse=True)
def _restore_process_state():
    """Each test leaves the process as it found it. Stage code run in process pins torch's threads
    (stage.set_threads: torch.set_num_threads, or OMP_NUM_THREADS while torch is not imported), and on
    AVX-512/AMX CPUs training at 1 thread writes other adapter bytes than at 2; stage.keep_out_bitsandbytes
    blocks an import for the rest of the process (sys.modules['bitsandbytes'] = None). Restored after every
    test: the working directory, os.environ, sys.path, the sys.modules entries set to None or dropped, and
    torch's thread count (torch is never imported here)."""
    cwd, env, path = os.getcwd(), dict(os.environ), list(sys.path)
    blocked = {name for name, module in sys.modules.items() if module is None}
    modules = dict(sys.modules)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    if os.getcwd() != cwd:
        os.chdir(cwd)
    if os.environ != env:
        for key in set(os.environ) - set(env):
            del os.environ[key]
        os.environ.update(env)
    if sys.path != path:
        sys.path[:] = path
    for name in {name for name, module in sys.modules.items() if module is None} - blocked:
        if name in modules:
            sys.modules[name] = modules[name]
        else:
            del sys.modules[name]  # a later import looks for the module again
    for name in modules.keys() - sys.modules.keys():  # dropped: a later import would make a second copy
        sys.modules[name] = modules[name]
    torch = sys.modules.get("torch")
    if torch is not None:
        want = threads if threads is not None else _threads_torch_starts_with(env)
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)


@pytest.fixture(scope="session")
def smoke_config():
    from evoswarm.config import load_config

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return load_config(SMOKE)
    finally:
        os.chdir(cwd)


def build_base(config: dict, out: Path) -> Path:
    """The config's embedded base, built into `out` (the data paths are the repo's)."""
    from evoswarm.config import stage_config
    from evoswarm.model.base import build_embedded

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        build_embedded(
            stage_config(config, "build_base"),
            "data/corpus/corpus.txt",
            "data/corpus/format.jsonl",
            out,
            log=lambda *_: None,
        )
    finally:
        os.chdir(cwd)
    return out


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, smoke_config):
    """The smoke config's embedded base (a 2-layer Qwen3), built in a temp folder."""
    return build_base(smoke_config, tmp_path_factory.mktemp("base") / "base")


def train(base, persona, out, config, seed=1, **overrides):
    """A generation-0 adapter of `persona` with the lineage train_persona writes (training overrides applied)."""
    from evoswarm.config import persona_training
    from evoswarm.model.adapters import write_lineage
    from evoswarm.model.persona import persona_lineage
    from evoswarm.model.training import train_lora

    p = next(p for p in config["personas"] if p["name"] == persona)
    tcfg = {**persona_training(config, p), **overrides}
    out.mkdir(parents=True, exist_ok=True)
    stats = train_lora(str(base), str(REPO / p["data"]), p["system"], tcfg, config, seed, out)
    write_lineage(out, persona_lineage(persona, p, tcfg, seed, str(base), stats))
    return out


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory, tiny_base, smoke_config):
    """Two trained persona adapters on the tiny base (ranks 8 and 4)."""
    root = tmp_path_factory.mktemp("adapters")
    return {name: train(tiny_base, name, root / name, smoke_config) for name in ("critic", "ideator")}


@pytest.fixture(scope="session")
def vllm_python():
    """The python of the separate vLLM-for-CPU venv (built once per machine); fails, never skips."""
    done = subprocess.run(
        ["bash", str(REPO / "tests/support/ensure_vllm.sh")], capture_output=True, text=True, timeout=1800
    )
    if done.returncode:
        pytest.fail(f"tests/support/ensure_vllm.sh failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout.split()[-1]


@pytest.fixture(scope="session")
def vllm_config(smoke_config):
    """The smoke config with 2 heads of 32: vLLM's CPU attention has no head size 16 (the smoke base's)."""
    config = copy.deepcopy(smoke_config)
    config["base"]["embedded"]["num_heads"] = 2
    return config


@pytest.fixture(scope="session")
def vllm_base(tmp_path_factory, vllm_config):
    return build_base(vllm_config, tmp_path_factory.mktemp("vllm-base") / "base")


@pytest.fixture(scope="session")
def vllm_adapters(tmp_path_factory, vllm_base, vllm_config):
    """Two persona adapters on the vLLM base (ranks 8 and 4), as tiny_adapters are on tiny_base."""
    root = tmp_path_factory.mktemp("vllm-adapters")
    return {name: train(vllm_base, name, root / name, vllm_config) for name in ("critic", "ideator")}


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


SMOKE_REP = "results-smoke/seed0"  # the smoke config's one replicate


@pytest.fixture(scope="session")
def smoke_run_timed(tmp_path_factory):
    """The smoke config run to the end by Snakemake on 2 local cores, once per session, and its wall seconds."""
    work = tmp_path_factory.mktemp("smoke")
    start = time.monotonic()
    run_snakemake(work, "--cores", "2")
    return work, time.monotonic() - start


@pytest.fixture(scope="session")
def smoke_run(smoke_run_timed):
    return smoke_run_timed[0]


def fitness_table(work, g):
    with open(work / SMOKE_REP / f"gen{g}/fitness.csv", newline="") as f:
        return list(csv.DictReader(f))


def adapter_hashes(work):
    return {
        str(p.parent.relative_to(work)): json.loads(p.read_text())["sha256"]
        for p in sorted((work / SMOKE_REP).glob("gen*/adapters/*/lineage.json"))
    }
