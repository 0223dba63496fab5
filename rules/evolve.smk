rule fitness:
    input:
        base=base_dir(),
        adapters=gen_adapters,
        transcripts=f"{R}/gen{{gen}}/debate/transcripts.jsonl",
        votes=f"{R}/gen{{gen}}/debate/votes.jsonl",
        tasks=config["tasks"]["dev"],
    output:
        f"{R}/gen{{gen}}/fitness.csv",
    log:
        "logs/fitness/gen{gen}.log",
    benchmark:
        "benchmarks/fitness/gen{gen}.tsv"
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
        f"{R}/gen{{gen}}/fitness.csv",
    output:
        f"{R}/gen{{gen}}/selection.json",
    log:
        "logs/select/gen{gen}.log",
    benchmark:
        "benchmarks/select/gen{gen}.tsv"
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
        directory(f"{R}/gen{{bred}}/adapters/{{agent}}"),
    log:
        "logs/breed/gen{bred}-{agent}.log",
    benchmark:
        "benchmarks/breed/gen{bred}-{agent}.tsv"
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
