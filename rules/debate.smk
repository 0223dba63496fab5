rule debate:
    input:
        base=base_dir(),
        adapters=gen_adapters,
        tasks=config["tasks"]["dev"],
    output:
        transcripts=f"{R}/gen{{gen}}/debate/transcripts.jsonl",
        votes=f"{R}/gen{{gen}}/debate/votes.jsonl",
    log:
        "logs/debate/gen{gen}.log",
    benchmark:
        "benchmarks/debate/gen{gen}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("debate"),
    script:
        "../workflow/scripts/debate.py"
