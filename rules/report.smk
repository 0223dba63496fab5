rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        layout.eval_json(R, "{seed}", "{target}", "{arm}"),
    log:
        "logs/evaluate/{arm}seed{seed}-{target}.log",
    benchmark:
        "benchmarks/evaluate/{arm}seed{seed}-{target}.tsv"
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


# Targets every replicate shares (the base alone), evaluated once with the first seed.
rule evaluate_shared:
    input:
        unpack(eval_inputs),
    output:
        layout.shared_eval_json(R, "{target}"),
    log:
        "logs/evaluate/{target}.log",
    benchmark:
        "benchmarks/evaluate/{target}.tsv"
    wildcard_constraints:
        target="|".join(layout.SHARED_TARGETS),
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
        html=f"{layout.report_dir(R)}/index.html",
        md=f"{layout.report_dir(R)}/report.md",
    log:
        "logs/report/report.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        config=params_for("report"),
        files=report_files(),
        benchmarks="benchmarks",
    script:
        "../workflow/scripts/report.py"


rule study:
    input:
        lambda w: layout.flatten({"files": study_files()})["files"],
    output:
        md=layout.study_table(R, "md"),
        csv=layout.study_table(R, "csv"),
    log:
        "logs/study/study.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        files=study_files(),
        arms=config["study"]["arms"],
        baseline=config["study"]["baseline"],
        generations=config["generations"],
        bootstrap=config["evaluation"]["bootstrap"],
        seed=SEEDS[0],
    script:
        "../workflow/scripts/study_table.py"
