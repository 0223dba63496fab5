rule fitness:
    input:
        base=base_dir(),
        adapters=gen_adapters,
        transcripts=f"{R}/gen{{gen}}/debate/transcripts.jsonl",
        votes=f"{R}/gen{{gen}}/debate/votes.jsonl",
        tasks=config["tasks"]["dev"],
    output:
        f"{R}/gen{{gen}}/fitness.csv",
    params:
        config=params_for("fitness"),
    log:
        "logs/fitness/gen{gen}.log",
    benchmark:
        "benchmarks/fitness/gen{gen}.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    script:
        "../workflow/scripts/fitness.py"


rule select:
    input:
        f"{R}/gen{{gen}}/fitness.csv",
    output:
        f"{R}/gen{{gen}}/selection.json",
    params:
        config=params_for("select"),
    log:
        "logs/select/gen{gen}.log",
    benchmark:
        "benchmarks/select/gen{gen}.tsv"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../workflow/scripts/select.py"


def breed_inputs(wildcards):
    prev = int(wildcards.bred) - 1
    return {"adapters": adapters_of(prev), "selection": selection_json(prev)}


rule breed:
    input:
        unpack(breed_inputs),
    output:
        directory(f"{R}/gen{{bred}}/adapters/{{agent}}"),
    params:
        config=params_for("breed"),
        # Read only by child SFT (off by default); not an input, so cheap breeds never wait on it.
        base=base_dir(),
    log:
        "logs/breed/gen{bred}-{agent}.log",
    benchmark:
        "benchmarks/breed/gen{bred}-{agent}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../workflow/scripts/breed.py"
