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
    # One thread each, so two personas train side by side on 2 cores: a ~2M-parameter model gains
    # little from a second thread, the imports and data preparation none. Same adapter bytes as with 2.
    threads: 1
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("train_persona"),
        persona=persona_of,
    script:
        "../workflow/scripts/train_persona.py"
