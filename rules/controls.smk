# The controls (controls.targets; docs/design.md, "Controls"): what the loop must beat at a stated budget,
# once per replicate of the main run. Study arms compare with each other, not with these.


# multitask: one LoRA on the union of the personas' SFT files for generation 0's total steps;
# specialist-long: generation 0's best agent trained further on its persona's data for evolution's SFT steps.
rule train_control:
    input:
        unpack(train_control_inputs),
    output:
        directory(layout.control_dir(R, "{seed}", "{control}")),
    log:
        layout.log("train_control", seed="{seed}", target="{control}"),
    benchmark:
        layout.benchmark("train_control", seed="{seed}", target="{control}")
    wildcard_constraints:
        control="|".join(map(str, TRAINED)) or "(?!)",
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("train_control"),
    script:
        "../workflow/scripts/train_control.py"


# Every control's test result: the trained ones by lm-eval, the oracle routed from generation 0's results.
rule evaluate_controls:
    input:
        unpack(controls_eval_inputs),
    output:
        [layout.eval_json(R, "{seed}", c) for c in CONTROLS],
    log:
        layout.log("evaluate", seed="{seed}", target="controls"),
    benchmark:
        layout.benchmark("evaluate", seed="{seed}", target="controls")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=6000,
        gpu=GPU,
    params:
        config=params_for("evaluate"),
        population=config["population"],
        systems={},
        skills=gen0_skills(config),
    script:
        "../workflow/scripts/evaluate.py"
