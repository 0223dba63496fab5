rule debate:
    input:
        base=base_dir(),
        adapters=gen_adapters,
        tasks=config["tasks"]["dev"],
    output:
        transcripts=layout.debate_out(R, "{seed}", "{gen}", "transcripts"),
        votes=layout.debate_out(R, "{seed}", "{gen}", "votes"),
    log:
        "logs/debate/seed{seed}-gen{gen}.log",
    benchmark:
        "benchmarks/debate/seed{seed}-gen{gen}.tsv"
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
