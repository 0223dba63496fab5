rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        f"{R}/eval/{{target}}.json",
    params:
        config=params_for("evaluate"),
        population=config["population"],
    log:
        "logs/evaluate/{target}.log",
    benchmark:
        "benchmarks/evaluate/{target}.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    script:
        "../workflow/scripts/evaluate.py"


rule report:
    input:
        unpack(report_inputs),
    output:
        html=f"{R}/report/index.html",
        md=f"{R}/report/report.md",
    params:
        config=params_for("report"),
        benchmarks="benchmarks",
    log:
        "logs/report/report.log",
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../workflow/scripts/report.py"
