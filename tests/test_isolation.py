"""conftest.py's autouse fixture: what a test changes in the process (torch's threads, the environment,
the working directory, sys.path, a blocked or dropped import) is back as it was for the next test."""

import os
import sys

import pytest
import torch  # imported before the tests run: the thread count the first test changes is torch's own
from conftest import _threads_torch_starts_with
from evoswarm import stage

BEFORE = {}


def test_stage_code_run_in_process_changes_the_process(tmp_path):
    threads = 1 if torch.get_num_threads() != 1 else 2  # other than now, or the next test could not tell
    BEFORE.update(
        threads=torch.get_num_threads(), cwd=os.getcwd(), path=list(sys.path), bnb=sys.modules.get("bitsandbytes")
    )
    sys.modules.pop("bitsandbytes", None)  # as in a session where nothing has imported it yet
    stage.run(lambda: None, {}, threads=threads, without_bitsandbytes=True)
    os.environ["EVOSWARM_ISOLATION_PROBE"] = "1"
    os.chdir(tmp_path)
    sys.path.insert(0, str(tmp_path))
    assert torch.get_num_threads() == threads and sys.modules["bitsandbytes"] is None


def test_the_next_test_finds_the_process_as_it_was():
    if not BEFORE:
        pytest.skip("checks what the test above leaves behind")
    assert torch.get_num_threads() == BEFORE["threads"]
    assert sys.modules.get("bitsandbytes") is BEFORE["bnb"]  # the module again, or absent as before
    assert os.getcwd() == BEFORE["cwd"] and sys.path == BEFORE["path"]
    assert "EVOSWARM_ISOLATION_PROBE" not in os.environ


def test_torch_sizes_its_threads_by_omp_num_threads_at_import():
    """What the fixture asks after a test that was the first to import torch, and what set_threads relies on
    in a stage that has not imported torch yet."""
    assert _threads_torch_starts_with({**os.environ, "OMP_NUM_THREADS": "1"}) == 1
