"""Stage study: the study's comparison table -> results/study/table.md and table.csv.

By hand (after the study's jobs ran): snakemake --configfile configs/study.yaml --cores 2
"""

from evoswarm import stage
from evoswarm.io import write_text
from evoswarm.report.study import study_rows, to_csv, to_markdown

COMMAND = "snakemake --configfile configs/study.yaml --cores N"


def main(files: dict, arms: dict, baseline: str, generations: int, iters: int, seed: int, md: str, csv: str) -> None:
    rows = study_rows(files, arms, baseline, generations, iters, seed)
    write_text(csv, to_csv(rows))
    write_text(md, to_markdown(rows, COMMAND))
    print(to_markdown(rows, COMMAND))


if __name__ == "__main__":
    stage.entry(
        main,
        files=stage.Arg("params.files"),
        arms=stage.Arg("params.arms"),
        baseline=stage.Arg("params.baseline"),
        generations=stage.Arg("params.generations"),
        iters=stage.Arg("params.bootstrap"),
        seed=stage.Arg("params.seed"),
        md=stage.Arg("output.md"),
        csv=stage.Arg("output.csv"),
    )
