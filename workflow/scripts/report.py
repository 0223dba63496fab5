"""Stage report: one report over every replicate seed -> results/report/index.html (one offline file:
verdicts, tables, plots) and report.md (the same tables).

By hand: python workflow/scripts/report.py --config config.yaml
"""

import argparse

from evoswarm import stage
from evoswarm.io import write_text
from evoswarm.report.build import build, to_html, to_markdown


def main(config: dict, files: dict, benchmarks: str, html_out: str, md_out: str) -> None:
    title, intro, sections = build(config, files, benchmarks)
    write_text(md_out, to_markdown(title, intro, sections))
    write_text(html_out, to_html(title, intro, sections))
    print(to_markdown(title, intro, sections[:2]))


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            config=sm.params.config,
            files=sm.params.files,
            benchmarks=sm.params.benchmarks,
            html_out=sm.output.html,
            md_out=sm.output.md,
        ),
        sm.log[0],
        sm.threads,
    )
elif __name__ == "__main__":
    from evoswarm.config import load_config, stage_config
    from evoswarm.layout import report_dir, report_files

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    a = ap.parse_args()
    cfg = load_config(a.config)
    stage.run(
        main,
        dict(
            config=stage_config(cfg, "report"),
            files=report_files(cfg),
            benchmarks="benchmarks",
            html_out=f"{report_dir(cfg['results'])}/index.html",
            md_out=f"{report_dir(cfg['results'])}/report.md",
        ),
    )
