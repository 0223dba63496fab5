"""What every stage script shares: run under Snakemake's `script:` or by hand with file arguments,
log to the rule's log file, pin threads, stay offline, and take a device of the GPU pool when the job
asks for a GPU (at import: every stage script imports this module before anything that imports torch)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from evoswarm import gpu_pool
from evoswarm.io import InputError

# No stage ever reaches a model hub; a hub id must already be in the local cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _claim_gpu_for_snakemake_job() -> None:
    """A Snakemake job whose rule declares `resources: gpu` takes a device of the pool (evoswarm.gpu_pool),
    before its script imports torch; its lines go to the job's log and to stderr (Snakemake's terminal).
    No free device in time: one error line, exit 1, as for any bad input."""
    sm = getattr(sys.modules.get("__main__"), "snakemake", None)  # Snakemake's `script:` preamble sets it
    resources = getattr(sm, "resources", None)
    if resources is None or not resources.get("gpu", 0):
        return
    log_path = sm.log[0] if sm.log else None

    def log(line: str) -> None:
        if log_path:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8") as f:
                print(line, file=f, flush=True)
        print(line, file=sys.stderr, flush=True)

    try:
        gpu_pool.claim(log=log, owner=log_path or sm.rule)
    except InputError as e:
        log(f"error: {e}")
        raise SystemExit(1) from None


_claim_gpu_for_snakemake_job()


def set_threads(n: int) -> None:
    """Pin torch's CPU threads, without importing torch (seconds) in a stage that never uses it."""
    n = max(1, int(n))
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ["OMP_NUM_THREADS"] = str(n)  # what torch starts its thread pool with when imported
    else:
        torch.set_num_threads(n)


@contextlib.contextmanager
def _log_to(path: str | None):
    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1, encoding="utf-8") as f:
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = f
        try:
            yield
        finally:
            sys.stdout, sys.stderr = old


def keep_out_bitsandbytes() -> None:
    """Make `import bitsandbytes` fail in this process, so PEFT and transformers take it as not installed.

    PEFT imports it whenever it is installed (at its own import and at every LoRA layer it builds): about
    4 s of CPU per process on 2 cores, though only an nf4-quantized base uses it. For the stage processes
    that quantize nothing; never in a process (a test session) that may later train nf4."""
    sys.modules.setdefault("bitsandbytes", None)


def run(
    main: Callable[..., None],
    kwargs: dict,
    log: str | None = None,
    threads: int = 1,
    without_bitsandbytes: bool = False,
) -> None:
    """Call `main(**kwargs)`, its output going to `log`; an InputError becomes one clear line and exit 1.
    `without_bitsandbytes`: the stage quantizes nothing (see keep_out_bitsandbytes)."""
    t0 = time.time()
    if without_bitsandbytes:
        keep_out_bitsandbytes()
    with _log_to(log):
        try:
            set_threads(threads)
            main(**kwargs)
        except InputError as e:
            print(f"error: {e}", flush=True)
            if log:
                print(f"error: {e}", file=sys.__stderr__, flush=True)
            raise SystemExit(1) from None
        print(f"done in {time.time() - t0:.1f}s{_gpu_peak()}", flush=True)


def _gpu_peak() -> str:
    """The stage's peak GPU memory (torch's allocator), when it used a GPU."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return ""
    gib = 2**30
    return (
        f"; on {torch.cuda.get_device_name()} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')})"
        f"; peak GPU memory {torch.cuda.max_memory_allocated() / gib:.2f} GiB allocated, "
        f"{torch.cuda.max_memory_reserved() / gib:.2f} GiB reserved"
    )


def from_snakemake(g: dict) -> object | None:
    """The `snakemake` object when the script runs under `script:`, else None."""
    return g.get("snakemake")
