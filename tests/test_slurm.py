"""The smoke workflow on a real one-node SLURM cluster (Debian's packages, tests/support/slurm_cluster.sh) with
profiles/slurm: the same fitness tables and adapters as the local run. Fails, never skips, where the cluster
cannot be brought up (no root or apt-get), saying why."""

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import yaml
from conftest import REPO, adapter_hashes, fitness_table, snakemake_cmd

CLUSTER = REPO / "tests/support/slurm_cluster.sh"
PROFILE = REPO / "profiles/slurm"
# The whole smoke run under SLURM (about 3 minutes of jobs plus submission and polling); past this it is
# killed and the test fails instead of hanging CI.
RUN_LIMIT_S = 1800


@pytest.fixture(scope="module")
def slurm_partition():
    """A running one-node cluster for this module; its partition's name (the cluster has no default one)."""
    # One cluster per machine (fixed ports, /etc/slurm/slurm.conf): a second test session waits its turn.
    with open("/tmp/evoswarm-slurm-test.lock", "w") as lock:
        deadline = time.monotonic() + 1800
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail("another test session has held the SLURM test cluster for 30 minutes")
                time.sleep(5)
        # Not under pytest's tmp folder: that one is private to root, and munged must reach its socket.
        state = tempfile.mkdtemp(prefix="evoswarm-slurm-")
        os.chmod(state, 0o755)
        try:
            started = subprocess.run(
                ["timeout", "-k", "10", "1500", "sh", str(CLUSTER), "start", state],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHON": sys.executable},
            )
            if started.returncode:
                pytest.fail(f"{CLUSTER.name} start failed (exit {started.returncode}):\n{started.stderr[-4000:]}")
            yield started.stdout.split()[-1]
        finally:
            subprocess.run(["timeout", "-k", "10", "120", "sh", str(CLUSTER), "stop", state], check=False)
            shutil.rmtree(state, ignore_errors=True)


def slurm_snakemake(work, *args):
    """Snakemake with profiles/slurm, plus the test cluster's settings: the first status check after 1 s
    instead of 40 (the plugin's default, for real clusters), bounded by RUN_LIMIT_S."""
    cmd = snakemake_cmd(
        work,
        "--executor",
        "slurm",
        "--profile",
        str(PROFILE),
        "--slurm-init-seconds-before-status-checks",
        "1",
        *args,
    )
    return subprocess.run(["timeout", "-k", "30", str(RUN_LIMIT_S), *cmd], capture_output=True, text=True)


@pytest.mark.slow  # a SLURM cluster brought up, the smoke workflow run on it and locally
def test_smoke_workflow_on_slurm_equals_the_local_run(slurm_partition, smoke_run_timed, tmp_path, capsys):
    local, local_s = smoke_run_timed
    work = tmp_path / "slurm"
    start = time.monotonic()
    done = slurm_snakemake(work, "--default-resources", f"slurm_partition={slurm_partition}")
    slurm_s = time.monotonic() - start
    with capsys.disabled():  # shown in CI's log, passed or not
        print(f"\nsmoke workflow wall time: local (--cores 2) {local_s:.0f} s, SLURM {slurm_s:.0f} s")
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", done.stdout + done.stderr)
    assert len(submitted) >= 15, "the model rules ran as SLURM jobs"
    for g in range(3):
        assert fitness_table(work, g) == fitness_table(local, g)
    assert adapter_hashes(work) == adapter_hashes(local)


@pytest.mark.slow  # a SLURM cluster brought up
def test_a_run_without_a_partition_stops_in_one_line_before_submitting(slurm_partition, tmp_path):
    done = slurm_snakemake(tmp_path / "nopartition")
    assert done.returncode == 1
    last = (done.stdout + done.stderr).strip().splitlines()[-1]
    assert last.startswith("error: no SLURM partition for rule(s) build_base, ") and slurm_partition in last
    assert "submitted with SLURM" not in done.stdout + done.stderr


def test_every_rule_is_local_or_has_cluster_resources_in_the_profile():
    rules = set(re.findall(r"^rule (\w+):", "".join(p.read_text() for p in (REPO / "rules").glob("*.smk")), re.M))
    local = set(
        re.findall(r"\w+", re.search(r"^localrules:\n((?: +\w+,\n)+)", (REPO / "Snakefile").read_text(), re.M)[1])
    )
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert local <= rules
    for rule in rules - local:
        assert {"mem_mb", "runtime", "cpus_per_gpu"} <= set(profile["set-resources"].get(rule, {})), rule


def test_the_default_partition_is_the_one_sinfo_stars():
    from evoswarm.slurm import default_partition

    assert default_partition("gpu\ndebug*\nlong\n") == "debug"
    assert default_partition("gpu\nlong\n") is None
