"""Atomic writes: a write killed midway leaves a `.tmp-<name>-*` sibling; the next write of the same
output removes it, and only its own."""

import os
import subprocess
import sys

from conftest import REPO
from evoswarm.io import atomic_path, write_text

KILLED_WRITE = """
import os, sys
from evoswarm.io import atomic_path
path, is_dir = sys.argv[1], sys.argv[2] == "dir"
with atomic_path(path, is_dir=is_dir) as tmp:
    if is_dir:
        tmp.mkdir(exist_ok=True)
        tmp = tmp / "weights"
    tmp.write_text("half")
    os._exit(9)  # as a SIGKILL: no cleanup runs
"""


def _killed_write(path, kind: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    assert subprocess.run([sys.executable, "-c", KILLED_WRITE, str(path), kind], env=env).returncode == 9


def test_a_later_write_removes_the_leftovers_of_a_killed_one_and_only_its_own(tmp_path):
    out, other, adapter = tmp_path / "votes.jsonl", tmp_path / "votes.jsonl-old", tmp_path / "adapter"
    for path, kind in ((out, "file"), (other, "file"), (adapter, "dir")):
        _killed_write(path, kind)

    def leftovers():  # their names without the "-" and 8 random characters
        return sorted(p.name[:-9] for p in tmp_path.glob(".tmp-*"))

    assert leftovers() == [".tmp-adapter", ".tmp-votes.jsonl", ".tmp-votes.jsonl-old"]
    write_text(out, "whole\n")
    assert out.read_text() == "whole\n" and leftovers() == [".tmp-adapter", ".tmp-votes.jsonl-old"]
    with atomic_path(adapter, is_dir=True) as tmp:
        tmp.mkdir(exist_ok=True)
        (tmp / "weights").write_text("whole")
    assert (adapter / "weights").read_text() == "whole" and leftovers() == [".tmp-votes.jsonl-old"]
