rule fitness:
    input:
        unpack(fitness_inputs),
    output:
        layout.fitness_csv(R, "{seed}", "{gen}", "{arm}"),
    log:
        layout.log("fitness", arm="{arm}", seed="{seed}", gen="{gen}"),
    benchmark:
        layout.benchmark("fitness", arm="{arm}", seed="{seed}", gen="{gen}")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("fitness"),
    script:
        "../workflow/scripts/fitness.py"


rule select:
    input:
        select_input,
    output:
        layout.selection_json(R, "{seed}", "{gen}", "{arm}"),
    log:
        layout.log("select", arm="{arm}", seed="{seed}", gen="{gen}"),
    benchmark:
        layout.benchmark("select", arm="{arm}", seed="{seed}", gen="{gen}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    params:
        config=params_for("select"),
    script:
        "../workflow/scripts/select_parents.py"


rule breed:
    input:
        unpack(breed_inputs),
        base=base_dir(),
    output:
        directory(layout.bred_dir(R, "{seed}", "{bred}", "{agent}", "{arm}")),
    log:
        layout.log("breed", arm="{arm}", seed="{seed}", gen="{bred}", agent="{agent}"),
    benchmark:
        layout.benchmark(
            "breed", arm="{arm}", seed="{seed}", gen="{bred}", agent="{agent}"
        )
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        config=params_for("breed"),
    script:
        "../workflow/scripts/breed.py"


rule lamarck:
    input:
        unpack(lamarck_inputs),
    output:
        directory(layout.adapter_dir(R, "{seed}", "{bred}", "{agent}", "{arm}")),
    log:
        layout.log("lamarck", arm="{arm}", seed="{seed}", gen="{bred}", agent="{agent}"),
    benchmark:
        layout.benchmark(
            "lamarck", arm="{arm}", seed="{seed}", gen="{bred}", agent="{agent}"
        )
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=lambda w: (
            GPU if arm_config(w)["evolution"]["lamarck"]["step"] != "none" else 0
        ),
    params:
        config=params_for("lamarck"),
    script:
        "../workflow/scripts/lamarck.py"
