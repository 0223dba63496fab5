"""The GPU pool (evoswarm.gpu_pool) on CPU with fake device lists: separate processes get separate
devices, a killed holder frees its device, an exhausted pool fails with one line after its wait, SLURM's
(or any preset) CUDA_VISIBLE_DEVICES is kept, and a stage script claims its device before torch loads."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from evoswarm import gpu_pool

ROOT = Path(__file__).resolve().parents[1]
# Claims a device, prints it, then holds it until its stdin closes (or it is killed).
HOLDER = "import sys; from evoswarm import gpu_pool; print(gpu_pool.claim(log=len), flush=True); sys.stdin.read()"


def pool_env(lock_dir: Path, devices: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env.update(
        EVOSWARM_GPUS=devices,
        EVOSWARM_GPU_LOCK_DIR=str(lock_dir),
        PYTHONPATH=str(ROOT / "workflow"),
        **extra,
    )
    return env


def holder(env: dict) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    return p, p.stdout.readline().strip()


def test_processes_get_different_devices_and_a_killed_holder_frees_its_own(tmp_path):
    env = pool_env(tmp_path, "0,1")
    (a, dev_a), (b, dev_b) = holder(env), holder(env)
    try:
        assert {dev_a, dev_b} == {"0", "1"}
        a.kill()  # SIGKILL: no cleanup runs; the kernel drops the lock
        a.wait()
        c, dev_c = holder(env)
        assert dev_c == dev_a
        c.kill()
    finally:
        for p in (a, b):
            p.kill()
            p.wait()


def test_a_full_pool_waits_then_fails_with_one_line(tmp_path):
    """Through a stage script's path: the job's log gets the waiting line and the error, stderr the error."""
    env = pool_env(tmp_path / "locks", "3", EVOSWARM_GPU_WAIT="1")
    busy, dev = holder(env)
    log = tmp_path / "job.log"
    fake_job = (
        "import types; snakemake = types.SimpleNamespace(resources={'gpu': 1}, "
        f"log=[{str(log)!r}], rule='debate')\n"
        "from evoswarm import stage\n"
        "print('never here')"
    )
    try:
        r = subprocess.run([sys.executable, "-c", fake_job], env=env, capture_output=True, text=True, timeout=60)
    finally:
        busy.kill()
        busy.wait()
    assert dev == "3"
    assert r.returncode == 1 and "never here" not in r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        f"error: no free GPU after 1 s: every device of the pool is held (3: pid {busy.pid}; "
        f"locks in {tmp_path / 'locks'}); raise EVOSWARM_GPU_WAIT, or give Snakemake --resources gpu=1 "
        "(the pool's size)"
    ]
    logged = log.read_text().splitlines()
    assert logged[0].startswith("gpu pool: all 1 devices held (3: pid") and "waiting up to 1 s" in logged[0]
    assert logged[-1] == errors[0]


@pytest.mark.parametrize(
    "preset",
    [{"SLURM_JOB_ID": "42"}, {"SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "2"}, {"CUDA_VISIBLE_DEVICES": "1"}],
)
def test_a_scheduler_given_device_is_kept(tmp_path, preset):
    env = {"EVOSWARM_GPUS": "0,1", "EVOSWARM_GPU_LOCK_DIR": str(tmp_path), **preset}
    lines = []
    assert gpu_pool.claim(env, log=lines.append) is None
    assert env == {"EVOSWARM_GPUS": "0,1", "EVOSWARM_GPU_LOCK_DIR": str(tmp_path), **preset}
    assert list(tmp_path.iterdir()) == []  # no lock taken
    assert len(lines) == 1


def test_bad_pool_settings_fail_naming_the_variable(tmp_path):
    with pytest.raises(gpu_pool.InputError, match="^EVOSWARM_GPUS='0,../x': expected"):
        gpu_pool.claim({"EVOSWARM_GPUS": "0,../x", "EVOSWARM_GPU_LOCK_DIR": str(tmp_path)})
    with pytest.raises(gpu_pool.InputError, match="^EVOSWARM_GPU_WAIT='soon': expected"):
        gpu_pool.claim({"EVOSWARM_GPUS": "0", "EVOSWARM_GPU_WAIT": "soon", "EVOSWARM_GPU_LOCK_DIR": str(tmp_path)})


def test_every_stage_script_claims_its_device_before_torch_loads(tmp_path):
    """Each script's imports run as a GPU job's would; an import hook reports CUDA_VISIBLE_DEVICES at the
    moment torch is first imported (and stops there: loading torch itself is not the point)."""
    probe = """
import ast, importlib.abc, os, sys, types
class Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch":
            print("torch", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
            os._exit(0)
sys.meta_path.insert(0, Guard())
snakemake = types.SimpleNamespace(resources={"gpu": 1}, log=[], rule="x")
tree = ast.parse(open(sys.argv[1]).read())
imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
exec(compile(ast.Module(imports, []), sys.argv[1], "exec"))
print("no torch", os.environ.get("CUDA_VISIBLE_DEVICES"))
"""
    scripts = sorted((ROOT / "workflow" / "scripts").glob("*.py"))
    env = pool_env(tmp_path, "7")
    for script in scripts:
        r = subprocess.run([sys.executable, "-c", probe, str(script)], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[-1] == "7", f"{script.name}: {r.stdout}"


def test_two_snakemake_gpu_jobs_at_once_get_different_devices(tmp_path):
    """Through Snakemake's `script:` itself: each job imports evoswarm.stage, which claims its device."""
    (tmp_path / "Snakefile").write_text(
        "rule all:\n"
        "    input: expand('out/{i}.txt', i=range(2))\n"
        "rule job:\n"
        "    output: 'out/{i}.txt'\n"
        "    log: 'logs/{i}.log'\n"
        "    resources: gpu=1\n"
        "    script: 'job.py'\n"
    )
    # Each job holds its device until both have one, so they overlap whatever order they start in.
    (tmp_path / "job.py").write_text(
        "import os, time\n"
        "from pathlib import Path\n"
        "from evoswarm import stage\n"
        "Path(f'claimed-{snakemake.wildcards.i}').touch()\n"
        "deadline = time.time() + 60\n"
        "while len(list(Path('.').glob('claimed-*'))) < 2 and time.time() < deadline:\n"
        "    time.sleep(0.1)\n"
        "Path(snakemake.output[0]).write_text(os.environ['CUDA_VISIBLE_DEVICES'])\n"
    )
    env = pool_env(tmp_path / "locks", "0,1")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=2", "--directory", str(tmp_path)]
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted((tmp_path / f"out/{i}.txt").read_text() for i in range(2)) == ["0", "1"]
    for i in range(2):
        assert "gpu pool: device" in (tmp_path / f"logs/{i}.log").read_text()
