# Evaluation (docs/design.md, "Evaluation targets and baselines"): one job per generation of a replicate, which debates the test split
# once and scores its single-model targets on the base loaded once (workflow/scripts/evaluate.py).
# Generation 0 of the main run: its debate (team-gen0, and team-vote from its round 1), the personas,
# and the base-only per-seed baselines (base-sc, prompt-vote). Every study arm shares it.
rule evaluate_gen0:
    input:
        unpack(gen_eval_inputs),
    output:
        gen_eval_outputs(0),
    log:
        layout.log("evaluate", seed="{seed}", gen=0),
    benchmark:
        layout.benchmark("evaluate", seed="{seed}", gen=0)
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("evaluate"),
        population=config["population"],
        systems=gen0_systems(config),
    script:
        "../workflow/scripts/evaluate.py"


# Generation g >= 1 of the main run or a study arm: its debate (team-gen<g>) and its best agent.
rule evaluate_generation:
    input:
        unpack(gen_eval_inputs),
    output:
        gen_eval_outputs("{gen}", "{arm}"),
    log:
        layout.log("evaluate", arm="{arm}", seed="{seed}", gen="{gen}"),
    benchmark:
        layout.benchmark("evaluate", arm="{arm}", seed="{seed}", gen="{gen}")
    wildcard_constraints:
        gen=r"[1-9]\d*",
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("evaluate"),
        population=config["population"],
        systems={},
    script:
        "../workflow/scripts/evaluate.py"


# Generation 0's best agent by the fitness of the run that asks (a study arm may rank differently):
# a copy of that agent's gen0-<agent> result, no model.
rule evaluate_gen0_best:
    input:
        unpack(gen0_best_inputs),
    output:
        best=layout.eval_json(R, "{seed}", GEN0_BEST, "{arm}"),
    log:
        layout.log("evaluate", arm="{arm}", seed="{seed}", target=GEN0_BEST),
    benchmark:
        layout.benchmark("evaluate", arm="{arm}", seed="{seed}", target=GEN0_BEST)
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
    params:
        config=params_for("evaluate"),
        population=config["population"],
        systems={},
    script:
        "../workflow/scripts/evaluate.py"


# Targets every replicate shares (the base alone), evaluated once with the first seed.
rule evaluate_shared:
    input:
        base=base_dir(),
        tasks=config["tasks"]["test"],
    output:
        layout.shared_eval_json(R, "{target}"),
    log:
        layout.log("evaluate", target="{target}"),
    benchmark:
        layout.benchmark("evaluate", target="{target}")
    wildcard_constraints:
        target="|".join(map(str, SHARED)),
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("evaluate"),
        population=config["population"],
        systems={},
    script:
        "../workflow/scripts/evaluate.py"


rule report:
    input:
        unpack(report_inputs),
    output:
        html=f"{layout.report_dir(R)}/index.html",
        md=f"{layout.report_dir(R)}/report.md",
    log:
        layout.log("report"),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        config=params_for("report"),
        files=report_files(),
        benchmarks=layout.BENCHMARKS,
    script:
        "../workflow/scripts/report.py"


rule study:
    input:
        lambda w: layout.flatten({"files": study_files()})["files"],
    output:
        md=layout.study_table(R, "md"),
        csv=layout.study_table(R, "csv"),
    log:
        layout.log("study"),
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
