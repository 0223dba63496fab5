rule fitness:
    input:
        base=base_dir(),
        adapters=gen_adapters,
        transcripts=layout.debate_out(R, "{seed}", "{gen}", "transcripts"),
        votes=layout.debate_out(R, "{seed}", "{gen}", "votes"),
        tasks=config["tasks"]["dev"],
    output:
        layout.fitness_csv(R, "{seed}", "{gen}"),
    log:
        "logs/fitness/seed{seed}-gen{gen}.log",
    benchmark:
        "benchmarks/fitness/seed{seed}-gen{gen}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("fitness"),
    script:
        "../workflow/scripts/fitness.py"


rule select:
    input:
        layout.fitness_csv(R, "{seed}", "{gen}"),
    output:
        layout.selection_json(R, "{seed}", "{gen}"),
    log:
        "logs/select/seed{seed}-gen{gen}.log",
    benchmark:
        "benchmarks/select/seed{seed}-gen{gen}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    params:
        config=params_for("select"),
    script:
        "../workflow/scripts/select_parents.py"


rule breed:
    input:
        unpack(breed_inputs),
    output:
        directory(layout.adapter_dir(R, "{seed}", "{bred}", "{agent}")),
    log:
        "logs/breed/seed{seed}-gen{bred}-{agent}.log",
    benchmark:
        "benchmarks/breed/seed{seed}-gen{bred}-{agent}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        config=params_for("breed"),
        # Read only by child SFT (off by default); not an input, so cheap breeds never wait on it.
        base=base_dir(),
    script:
        "../workflow/scripts/breed.py"
