"""One GPU per job on a multi-GPU host without a scheduler.

Snakemake's `--resources gpu=K` only counts jobs: it assigns no devices, so every job would land on
device 0. A job that asks for a GPU takes a free device from a pool instead, a lock file per device, and
sets CUDA_VISIBLE_DEVICES to it before torch starts. The lock is an flock on an open file: the kernel
drops it when the process ends, however it ends, so a killed job frees its device. Under SLURM, or
wherever CUDA_VISIBLE_DEVICES is already set, the job keeps what it was given.

Environment (machine settings, not workflow config):
  EVOSWARM_GPUS          the pool's devices as CUDA_VISIBLE_DEVICES names them, e.g. `0,1` (default:
                         every device `nvidia-smi -L` lists)
  EVOSWARM_GPU_LOCK_DIR  the lock files' folder, shared by every job of the host (default:
                         <tmp>/evoswarm-gpus-<uid>)
  EVOSWARM_GPU_WAIT      seconds a job waits for a free device before it fails (default 600)
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path

from evoswarm.io import InputError

DEFAULT_WAIT_S = 600.0
POLL_S = 0.5
_DEVICE = re.compile(r"[A-Za-z0-9-]+")  # an index, a GPU-/MIG- UUID: also a safe file name
_held: list[int] = []  # the locks' descriptors, open for the rest of the process


def pool_devices(env: MutableMapping[str, str]) -> list[str]:
    """The pool: EVOSWARM_GPUS, else the indices of the devices `nvidia-smi -L` lists (none without it)."""
    given = env.get("EVOSWARM_GPUS")
    if given is not None:
        devices = [d.strip() for d in given.split(",") if d.strip()]
        bad = [d for d in devices if not _DEVICE.fullmatch(d)]
        if bad or not devices:
            raise InputError(f"EVOSWARM_GPUS={given!r}: expected device indices or UUIDs, comma-separated (e.g. 0,1)")
        return devices
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    n = sum(line.startswith("GPU ") for line in listed.stdout.splitlines()) if listed.returncode == 0 else 0
    return [str(i) for i in range(n)]


def lock_dir(env: MutableMapping[str, str]) -> Path:
    return Path(env.get("EVOSWARM_GPU_LOCK_DIR") or Path(tempfile.gettempdir()) / f"evoswarm-gpus-{os.getuid()}")


def _wait_s(env: MutableMapping[str, str]) -> float:
    raw = env.get("EVOSWARM_GPU_WAIT", str(DEFAULT_WAIT_S))
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not wait >= 0:
        raise InputError(f"EVOSWARM_GPU_WAIT={raw!r}: expected seconds >= 0")
    return wait


def _try_lock(path: Path, owner: str) -> int | None:
    """The descriptor of `path`, locked by this process, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{owner}\n".encode())  # who holds it, for the waiting jobs' log lines
    return fd


def _holders(folder: Path, devices: list[str]) -> str:
    def holder(d: str) -> str:
        try:
            return (folder / f"gpu-{d}.lock").read_text().strip() or "?"
        except OSError:
            return "?"

    return ", ".join(f"{d}: {holder(d)}" for d in devices)


def claim(
    env: MutableMapping[str, str] | None = None, log: Callable[[str], None] = print, owner: str = ""
) -> str | None:
    """Take a free device of the pool for this process and set CUDA_VISIBLE_DEVICES to it; returns the
    device, or None where the job keeps what it has (SLURM, CUDA_VISIBLE_DEVICES set, no GPU found).
    Waits up to EVOSWARM_GPU_WAIT seconds for a device, then raises InputError. Call it before torch
    initialises CUDA (before importing torch, to be safe). `owner`: written into the lock (with the pid)."""
    env = os.environ if env is None else env
    if "SLURM_JOB_ID" in env:
        log(f"gpu pool: SLURM job {env['SLURM_JOB_ID']}, CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')}")
        return None
    if "CUDA_VISIBLE_DEVICES" in env:
        log(f"gpu pool: CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']} already set, kept")
        return None
    devices = pool_devices(env)
    if not devices:
        log("gpu pool: nvidia-smi lists no GPU and EVOSWARM_GPUS is unset; CUDA_VISIBLE_DEVICES left unset")
        return None
    folder = lock_dir(env)
    folder.mkdir(parents=True, exist_ok=True)
    wait = _wait_s(env)
    start = time.monotonic()
    waiting = False
    while True:
        for d in devices:
            fd = _try_lock(folder / f"gpu-{d}.lock", f"pid {os.getpid()} {owner}".strip())
            if fd is not None:
                _held.append(fd)
                env["CUDA_VISIBLE_DEVICES"] = d
                waited = f" after {time.monotonic() - start:.0f} s" if waiting else ""
                log(f"gpu pool: device {d} of {','.join(devices)}{waited} (CUDA_VISIBLE_DEVICES={d})")
                return d
        if time.monotonic() - start >= wait:
            raise InputError(
                f"no free GPU after {wait:g} s: every device of the pool is held ({_holders(folder, devices)}; "
                f"locks in {folder}); raise EVOSWARM_GPU_WAIT, or give Snakemake --resources gpu={len(devices)} "
                "(the pool's size)"
            )
        if not waiting:
            log(
                f"gpu pool: all {len(devices)} devices held ({_holders(folder, devices)}); "
                f"waiting up to {wait:g} s for one"
            )
            waiting = True
        time.sleep(POLL_S)
