rule build_base:
    input:
        corpus="data/corpus/corpus.txt",
        format_chats="data/corpus/format.jsonl",
        personas=[p["data"] for p in config["personas"]],
    output:
        directory(base_dir()),
    log:
        "logs/build_base/build_base.log",
    benchmark:
        "benchmarks/build_base/build_base.tsv"
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
