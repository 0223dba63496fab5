# evoswarm: evolve populations of cooperating LoRA-adapted LLM agents.
# `snakemake -n` lists every job of every generation of every seed; `snakemake --cores 2` runs them.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/base.smk"
include: "rules/personas.smk"
include: "rules/debate.smk"
include: "rules/evolve.smk"
include: "rules/report.smk"


# A study config (`study.arms`) makes its comparison table the default target; otherwise the report.
rule all:
    default_target: True
    input:
        layout.study_table(R, "md") if ARMS else f"{layout.report_dir(R)}/index.html",
