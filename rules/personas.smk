rule train_persona:
    input:
        base=base_dir(),
        data=persona_data,
    output:
        directory(layout.adapter_dir(R, "{seed}", 0, "{agent}")),
    log:
        layout.log("train_persona", seed="{seed}", agent="{agent}"),
    benchmark:
        layout.benchmark("train_persona", seed="{seed}", agent="{agent}")
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
