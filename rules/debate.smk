rule debate:
    input:
        base=base_dir(),
        adapters=gen_adapters,
        tasks=config["tasks"]["dev"],
    output:
        transcripts=layout.debate_out(R, "{seed}", "{gen}", "transcripts", "{arm}"),
        votes=layout.debate_out(R, "{seed}", "{gen}", "votes", "{arm}"),
    log:
        "logs/debate/{arm}seed{seed}-gen{gen}.log",
    benchmark:
        "benchmarks/debate/{arm}seed{seed}-gen{gen}.tsv"
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


# Debate distillation's data: the generation debates a seeded sample of TRAIN items (never dev or test).
rule debate_train:
    input:
        base=base_dir(),
        adapters=gen_adapters,
        tasks=config["tasks"]["train"],
    output:
        transcripts=layout.debate_out(
            R, "{seed}", "{gen}", "transcripts", "{arm}", "train"
        ),
        votes=layout.debate_out(R, "{seed}", "{gen}", "votes", "{arm}", "train"),
    log:
        "logs/debate_train/{arm}seed{seed}-gen{gen}.log",
    benchmark:
        "benchmarks/debate_train/{arm}seed{seed}-gen{gen}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("debate_train"),
        sample=lambda w: arm_config(w)["evolution"]["lamarck"]["train_items"],
    script:
        "../workflow/scripts/debate.py"
