rule build_base:
    input:
        corpus=config["world"]["corpus"],
        format_chats=config["world"]["format_chats"],
        personas=[p["data"] for p in config["personas"]],
    output:
        directory(base_dir()),
    log:
        layout.log("build_base"),
    benchmark:
        layout.benchmark("build_base")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
        gpu=GPU,
    params:
        config=params_for("build_base"),
    script:
        "../workflow/scripts/build_base.py"
