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


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            files=sm.params.files,
            arms=sm.params.arms,
            baseline=sm.params.baseline,
            generations=sm.params.generations,
            iters=sm.params.bootstrap,
            seed=sm.params.seed,
            md=sm.output.md,
            csv=sm.output.csv,
        ),
        sm.log[0],
        sm.threads,
    )
