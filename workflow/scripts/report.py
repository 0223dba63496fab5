"""Stage report: one report over every replicate seed -> results/report/index.html (one offline file:
verdicts, tables, plots) and report.md (the same tables).

By hand: python workflow/scripts/report.py --config config.yaml
"""

from evoswarm import layout, stage
from evoswarm.io import write_text
from evoswarm.report.build import build, to_html, to_markdown


def main(config: dict, files: dict, benchmarks: str, html_out: str, md_out: str) -> None:
    title, intro, sections = build(config, files, benchmarks)
    write_text(md_out, to_markdown(title, intro, sections))
    write_text(html_out, to_html(title, intro, sections))
    print(to_markdown(title, intro, sections[:2]))


if __name__ == "__main__":
    stage.entry(
        main,
        stage="report",
        files=stage.Arg("params.files", hand=lambda run: layout.report_files(run.config)),
        benchmarks=stage.Arg(
            "params.benchmarks", "--benchmarks", default="benchmarks", help="Snakemake's benchmark files"
        ),
        html_out=stage.Arg("output.html", hand=lambda run: f"{layout.report_dir(run.config['results'])}/index.html"),
        md_out=stage.Arg("output.md", hand=lambda run: f"{layout.report_dir(run.config['results'])}/report.md"),
    )
