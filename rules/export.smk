# On request only (`snakemake export`, not part of `all`): each generation's best agent of every seed of
# the main run, merged into the base as a standalone transformers model (workflow/scripts/export_best.py).
rule export_best:
    input:
        unpack(export_inputs),
    output:
        directory(layout.export_dir(R, "{seed}", "{gen}")),
    log:
        layout.log("export_best", seed="{seed}", gen="{gen}"),
    benchmark:
        layout.benchmark("export_best", seed="{seed}", gen="{gen}")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
    script:
        "../workflow/scripts/export_best.py"


rule export:
    input:
        [
            layout.export_dir(R, s, g)
            for s in SEEDS
            for g in range(config["generations"] + 1)
        ],
