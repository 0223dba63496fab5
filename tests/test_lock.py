"""uv.lock is current with pyproject.toml and locks, for `uv sync --extra cuda`, the versions that
constraints.txt measured together (uv installed by pip through the dev extra)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UV = [sys.executable, "-m", "uv"]


def uv(*args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("uv") is None:
        pytest.fail("uv is not installed: it comes with the dev extra (pip install -c constraints.txt -e '.[dev]')")
    # The interpreter running the tests: uv neither searches for nor downloads another.
    return subprocess.run([*UV, *args, "--python", sys.executable], cwd=REPO, capture_output=True, text=True)


def test_uv_lock_is_current():
    done = uv("lock", "--check")
    if done.returncode:
        pytest.fail(
            "uv.lock does not match pyproject.toml: run `python -m uv lock` and commit uv.lock "
            f"(uv says: {done.stderr.strip()[-1500:]})",
            pytrace=False,
        )


def test_lock_has_the_measured_versions():
    done = uv("export", "--frozen", "--extra", "cuda", "--extra", "dev", "--no-hashes", "--no-emit-project")
    assert done.returncode == 0, done.stderr
    locked = dict(line.split(" ;")[0].split("==") for line in done.stdout.splitlines() if "==" in line)
    lines = (REPO / "constraints.txt").read_text().splitlines()
    pins = [ln.strip().split("==") for ln in lines if "==" in ln and not ln.lstrip().startswith("#")]
    differ = [
        f"{name} {locked.get(name, 'missing')} (constraints.txt: {version})"
        for name, version in pins
        if locked.get(name) != version
    ]
    assert not differ, (
        "uv.lock (`uv sync --extra cuda --extra dev`) differs from the versions measured together: "
        f"{', '.join(differ)}; relock with `python tests/support/relock.py`"
    )
