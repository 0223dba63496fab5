"""stage.entry: a script's one library call, its keywords from a Snakemake job or from flags by hand, torch
pinned to the stage's own thread count whatever the job was given, bitsandbytes kept out unless the stage's
config may quantize."""

import copy
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, SMOKE
from evoswarm import stage
from evoswarm.config import STAGE_KEYS, gen0_members, stage_config

# A stage script as Snakemake runs it: `snakemake` set in __main__ before the script imports evoswarm.stage.
JOB = """
import os, sys
from snakemake.iocontainers import Namedlist
snakemake = type("Job", (), {})()
snakemake.input = Namedlist(fromdict={"base": "b", "adapters": ["x", "y"]})
snakemake.output = Namedlist(fromdict={"out": "o"})
snakemake.params = Namedlist(fromdict={"config": {"training": {"quantization": "none"}}})
snakemake.wildcards = Namedlist(fromdict={"gen": "3"})
snakemake.threads, snakemake.resources, snakemake.log, snakemake.rule = 1, {}, [sys.argv[1]], "fake"
from evoswarm import stage

def main(**kw):
    print(sorted(kw.items()), os.environ["OMP_NUM_THREADS"], sys.modules.get("bitsandbytes", "importable"))

stage.entry(
    main,
    stage="lamarck",
    threads=stage.MODEL_THREADS,
    base=stage.BASE,
    adapters=stage.Arg("input.adapters", "--adapters", nargs="+"),
    out=stage.Arg("output[0]", "--out"),
    gen=stage.Arg("wildcards.gen", "--gen", type=int),
    votes=stage.Arg("input.votes", "--votes"),
)
"""


def test_a_job_gets_its_arguments_and_the_stages_threads_not_the_jobs(tmp_path):
    log = tmp_path / "job.log"
    subprocess.run([sys.executable, "-c", JOB, str(log)], check=True, cwd=REPO)
    called = log.read_text().splitlines()[0]
    kwargs = [
        ("adapters", ["x", "y"]),
        ("base", "b"),
        ("config", {"training": {"quantization": "none"}}),
        ("gen", 3),
        ("out", "o"),
        ("votes", None),
    ]
    assert called == f"{kwargs} {stage.MODEL_THREADS} None"  # 2 threads though the job has 1; bitsandbytes out


def test_by_hand_the_base_defaults_to_the_configs_results(tmp_path):
    """breed.py by hand without --base reads <results>/base of --config (not results/base)."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw["results"] = str(tmp_path / "elsewhere")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    selection = tmp_path / "selection.json"
    selection.write_text('{"generation": 0, "elites": {}, "children": {}}')
    flags = ["--selection", selection, "--parents-dir", tmp_path, "--slot", "s00", "--out", tmp_path / "out"]
    r = subprocess.run(
        [sys.executable, "workflow/scripts/breed.py", "--config", config, *flags],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        f"error: {tmp_path}/elsewhere/base/manifest.json: base model manifest not found (run the build_base stage)"
    ]


def test_a_script_without_flags_says_it_runs_under_snakemake_only():
    r = subprocess.run([sys.executable, "workflow/scripts/study_table.py"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "runs under Snakemake only" in r.stderr


@pytest.mark.parametrize(
    "change, quantizing",
    [
        ({}, set()),
        ({"training": {"quantization": "nf4"}}, {"train_persona", "lamarck", "train_control"}),
        ({"debate": {"backend": "vllm"}}, {"debate", "debate_train", "fitness", "evaluate"}),
    ],
)
def test_only_stages_whose_config_may_quantize_keep_bitsandbytes(change, quantizing, smoke_config):
    config = copy.deepcopy(smoke_config)
    for key, values in change.items():
        config[key].update(values)
    assert {s for s in STAGE_KEYS if stage.quantizes(stage_config(config, s))} == quantizing
    assert not stage.quantizes(None)  # export_best: no config, merges into the unquantized base


def test_a_personas_own_quantization_decides_its_training(smoke_config):
    config = smoke_config
    critic = {**gen0_members(config)["critic"], "training": {"quantization": "nf4"}}
    assert stage.quantizes(stage_config(config, "train_persona"), critic)
    assert not stage.quantizes(stage_config(config, "train_persona"), gen0_members(config)["ideator"])


def test_an_arg_names_a_field_of_the_job():
    with pytest.raises(ValueError, match="not input|output|params|wildcards"):
        stage.Arg("inputs.base")
