rule train_persona:
    input:
        base=base_dir(),
        data=persona_data,
    output:
        directory(layout.adapter_dir(R, "{seed}", 0, "{agent}")),
    log:
        "logs/train_persona/seed{seed}-{agent}.log",
    benchmark:
        "benchmarks/train_persona/seed{seed}-{agent}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("train_persona"),
        persona=persona_of,
    script:
        "../workflow/scripts/train_persona.py"
