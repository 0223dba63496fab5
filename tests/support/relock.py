"""Regenerate uv.lock from scratch with the versions constraints.txt measured (for `cuda` and `dev`).

    python tests/support/relock.py

`uv lock` alone keeps the versions already locked and resolves only what changed: use it after editing
pyproject.toml's dependencies. This script is for a lock started over: uv applies a constraint to every
extra, and the `vllm` extra cannot take the measured transformers, so the measured versions are locked
first without `vllm` (in a temporary copy of pyproject.toml), then `uv lock` adds `vllm`'s own versions
with that lock as its preferences. tests/test_lock.py checks the result.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pins() -> list[str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def without_vllm(pyproject: str) -> str:
    """pyproject.toml without the vllm extra and its conflict, constrained to the measured versions."""
    text = re.sub(r"^vllm = .*\n", "", pyproject, flags=re.M)
    text = re.sub(r"^conflicts = .*\n", "", text, flags=re.M)
    constraints = "".join(f'    "{p}",\n' for p in pins())
    return text.replace("[tool.uv]\n", f"[tool.uv]\nconstraint-dependencies = [\n{constraints}]\n", 1)


def main() -> None:
    uv = [sys.executable, "-m", "uv"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "pyproject.toml").write_text(without_vllm((REPO / "pyproject.toml").read_text()))
        shutil.copy(REPO / "README.md", tmp / "README.md")
        subprocess.run([*uv, "lock"], cwd=tmp, check=True)
        shutil.copy(tmp / "uv.lock", REPO / "uv.lock")
    subprocess.run([*uv, "lock"], cwd=REPO, check=True)


if __name__ == "__main__":
    main()
