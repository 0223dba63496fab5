# evoswarm: evolve populations of cooperating LoRA-adapted LLM agents.
# `snakemake -n` lists every job of every generation of every seed; `snakemake --cores 2` runs them.
import os
import sys
from pathlib import Path

from snakemake.utils import min_version

from evoswarm.config import read_yaml_config
from evoswarm.io import InputError

min_version("9.0")

# Snakemake's own message for a YAML syntax error names neither file nor line, so the default config
# file is read here first. (Snakemake reads --configfile files before this file runs: a syntax error in
# one still gets only its message.)
DEFAULT_CONFIG = Path("config.yaml").absolute()
try:
    if DEFAULT_CONFIG.is_file():
        read_yaml_config(DEFAULT_CONFIG)
except InputError as e:
    sys.exit(f"error: {e}")


configfile: DEFAULT_CONFIG


include: "rules/common.smk"
include: "rules/base.smk"
include: "rules/personas.smk"
include: "rules/debate.smk"
include: "rules/evolve.smk"
include: "rules/report.smk"
include: "rules/export.smk"


if CONTROLS:

    include: "rules/controls.smk"


# Cheap rules (seconds of CPU, no model): on a cluster they run where snakemake runs, not as jobs.
localrules:
    select,
    breed,
    report,
    study,
    evaluate_gen0_best,
    export,


# Under the SLURM executor, before anything is submitted: a job without a partition on a cluster without
# a default one stops the run in one line (the plugin would submit it and fail it in sbatch).
onstart:
    if workflow.executor_plugin and workflow.executor_plugin.name == "slurm":
        from evoswarm.slurm import missing_partition

        # The plugin picks partitions itself from a partition file, when given one.
        if not (
            workflow.executor_settings.partition_config
            or os.environ.get("SNAKEMAKE_SLURM_PARTITIONS")
        ):
            problem = missing_partition(
                {
                    job.rule.name
                    for job in workflow.dag.needrun_jobs()
                    if not job.is_local and not job.resources.get("slurm_partition")
                }
            )
            if problem:
                sys.exit(f"error: {problem}")


# A study config (`study.arms`) makes its comparison table the default target; otherwise the report.
rule all:
    default_target: True
    input:
        layout.study_table(R, "md") if ARMS else f"{layout.report_dir(R)}/index.html",
