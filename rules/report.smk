rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        f"{R}/eval/{{target}}.json",
    log:
        "logs/evaluate/{target}.log",
    benchmark:
        "benchmarks/evaluate/{target}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("evaluate"),
        population=config["population"],
        systems=eval_systems,
    script:
        "../workflow/scripts/evaluate_target.py"


rule report:
    input:
        unpack(report_inputs),
    output:
        html=f"{R}/report/index.html",
        md=f"{R}/report/report.md",
    log:
        "logs/report/report.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        config=params_for("report"),
        benchmarks="benchmarks",
    script:
        "../workflow/scripts/report.py"
