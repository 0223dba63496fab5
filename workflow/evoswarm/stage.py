"""What every stage script shares: run under Snakemake's `script:` or by hand with flags, log to the rule's
log file, pin torch's threads, stay offline, and take a device of the GPU pool when the job asks for a GPU
(at import: every stage script imports this module before anything that imports torch).

A script declares each keyword of its one library call once, as an `Arg`: where a Snakemake job holds it and
which flag (or what derived from the flags and the config) gives it by hand; `entry` does the rest."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from evoswarm import gpu_pool, layout
from evoswarm.io import InputError

# No stage ever reaches a model hub; a hub id must already be in the local cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# torch's CPU threads in every stage that runs the model, under Snakemake whatever --cores is, and by hand
# unless --threads says otherwise: on some CPUs (AVX-512, AMX) training at 1 thread writes other bytes than
# at 2, so a run's results must not depend on the cores it was given. A rule's `threads:` only tells the
# scheduler how many cores the job takes.
MODEL_THREADS = 2


def _job() -> Any:
    """The `snakemake` object of a job's script (Snakemake's `script:` preamble sets it in __main__), else None."""
    return getattr(sys.modules.get("__main__"), "snakemake", None)


def _claim_gpu_for_snakemake_job() -> None:
    """A Snakemake job whose rule declares `resources: gpu` takes a device of the pool (evoswarm.gpu_pool),
    before its script imports torch; its lines go to the job's log and to stderr (Snakemake's terminal).
    No free device in time: one error line, exit 1, as for any bad input."""
    sm = _job()
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


class Hand:
    """A by-hand run: its parsed flags, and the config file they name, read on first use."""

    def __init__(self, flags: argparse.Namespace, stage: str | None):
        self.flags, self.stage = flags, stage

    @cached_property
    def config(self) -> dict:
        from evoswarm.config import load_config

        return load_config(self.flags.config)

    @property
    def seed(self) -> int:
        """The replicate (--seed; default the config's first seed)."""
        return self.config["seeds"][0] if self.flags.seed is None else self.flags.seed

    @property
    def stage_config(self) -> dict:
        from evoswarm.config import stage_config

        return stage_config(self.config, self.stage, self.flags.seed)


_JOB_FIELD = re.compile(r"(input|output|params|wildcards)(?:\.(\w+)|\[(\d+)\])")


class Arg:
    """One keyword of a stage's library call.

    `job`: where a Snakemake job holds it, "input.base", "output[0]", "wildcards.gen", "params.sample" (a name
    the rule does not set reads as None), or a function of the job's `snakemake` object. By hand: the value of
    `flag` (argparse's keywords in `options`; `default` may be a function of the run, `Hand`), or `hand`, a
    function of the run for a value derived from other flags or the config. `options["type"]` converts the
    job's value too (a wildcard is a string)."""

    def __init__(
        self,
        job: str | Callable[[Any], Any],
        flag: str | None = None,
        *,
        hand: Callable[[Hand], Any] | None = None,
        default: Any = None,
        **options: Any,
    ):
        if isinstance(job, str) and not _JOB_FIELD.fullmatch(job):
            raise ValueError(f"Arg: {job!r} is not input|output|params|wildcards followed by .name or [index]")
        self.job, self.flag, self.hand, self.default, self.options = job, flag, hand, default, options

    def from_job(self, sm: Any) -> Any:
        if callable(self.job):
            value = self.job(sm)
        else:
            section, name, index = _JOB_FIELD.fullmatch(self.job).groups()
            value = getattr(sm, section).get(name) if name else getattr(sm, section)[int(index)]
        convert = self.options.get("type", lambda v: v)
        if isinstance(value, list):  # Snakemake's named lists
            return [convert(v) for v in value]
        return None if value is None else convert(value)

    def add_flag(self, ap: argparse.ArgumentParser) -> None:
        if self.flag:
            ap.add_argument(self.flag, default=None if callable(self.default) else self.default, **self.options)

    def from_hand(self, run: Hand) -> Any:
        if self.hand:
            return self.hand(run)
        value = getattr(run.flags, self.flag.lstrip("-").replace("-", "_"))
        return self.default(run) if value is None and callable(self.default) else value


# The base model folder: the job's input, by hand --base (default the config's <results>/base).
BASE = Arg(
    "input.base",
    "--base",
    default=lambda run: layout.base_dir(run.config["results"]),
    help="default: <results>/base of --config",
)


def entry(
    main: Callable[..., None],
    *,
    stage: str | None = None,
    threads: int = 1,
    flags: dict[str, dict] | None = None,
    **args: Arg,
) -> None:
    """Run `main(**keywords)` as a Snakemake job's script or by hand (flags as the script's docstring shows),
    each keyword from its `Arg`.

    `stage` (a key of config.STAGE_KEYS): `main` takes `config`, the rule's params.config or, by hand, that
    stage's part of --config for the replicate --seed. `threads`: torch's CPU threads, the same under
    Snakemake and by hand (MODEL_THREADS for a stage that runs the model; by hand --threads may change it).
    `flags`: by-hand flags that no keyword is named after, read by the `hand` functions (argparse's keywords)."""
    if stage and "config" not in args:
        args = {"config": Arg("params.config", hand=lambda run: run.stage_config), **args}
    sm = _job()
    if sm is not None:
        kwargs, log = {k: a.from_job(sm) for k, a in args.items()}, sm.log[0]
    else:
        try:  # the config and the values derived from it are read here, before the stage runs
            kwargs, threads, log = *_by_hand(stage, threads, flags or {}, args), None
        except InputError as e:
            raise SystemExit(f"error: {e}") from None
    run(main, kwargs, log, threads, without_bitsandbytes=not quantizes(kwargs.get("config"), kwargs.get("persona")))


def _by_hand(stage: str | None, threads: int, flags: dict, args: dict[str, Arg]) -> tuple[dict, int]:
    ap = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.splitlines()[0])
    if stage or any(callable(a.default) for a in args.values()):
        ap.add_argument("--config", default="config.yaml")
    if stage:
        ap.add_argument("--seed", type=int, default=None, help="the replicate (default: the config's first seed)")
    for a in args.values():
        a.add_flag(ap)
    for flag, options in flags.items():
        ap.add_argument(flag, **options)
    if threads > 1:  # a stage that runs the model
        ap.add_argument("--threads", type=int, default=threads, help=f"torch's CPU threads (default {threads})")
    if any(not (a.flag or a.hand) for a in args.values()):
        ap.error("this stage runs under Snakemake only (see its docstring)")
    hand = Hand(ap.parse_args(), stage)
    return {k: a.from_hand(hand) for k, a in args.items()}, getattr(hand.flags, "threads", threads)


def quantizes(config: dict | None, persona: dict | None = None) -> bool:
    """Whether a stage with this config may load a 4-bit (nf4) model, the one use of bitsandbytes: it trains
    with `quantization: nf4` (the persona's own setting, for a persona), or debates on a backend other than hf.
    A stage that reads no `base` (the report: training steps only) loads no model."""
    if not config or "base" not in config:
        return False
    if "training" in config:
        from evoswarm.config import persona_training

        return persona_training(config, persona or {})["quantization"] != "none"
    if "debate" in config:
        return config["debate"]["backend"] != "hf"
    return False


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
