rule debate:
    input:
        base=base_dir(),
        adapters=gen_adapters,
        tasks=config["tasks"]["dev"],
    output:
        transcripts=debate_job_out("transcripts"),
        votes=debate_job_out("votes"),
    log:
        layout.log("debate", arm="{arm}", seed="{seed}", gen="{gen}", shard=SHARD),
    benchmark:
        layout.benchmark("debate", arm="{arm}", seed="{seed}", gen="{gen}", shard=SHARD)
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
        transcripts=debate_job_out("transcripts", "train"),
        votes=debate_job_out("votes", "train"),
    log:
        layout.log("debate_train", arm="{arm}", seed="{seed}", gen="{gen}", shard=SHARD),
    benchmark:
        layout.benchmark(
            "debate_train", arm="{arm}", seed="{seed}", gen="{gen}", shard=SHARD
        )
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


# `debate.shards` > 1: the shards of a debate, joined in order into the files the unsharded debate writes.
if SHARDS > 1:

    rule debate_merge:
        input:
            transcripts=debate_shards("transcripts"),
            votes=debate_shards("votes"),
        output:
            transcripts=layout.debate_out(R, "{seed}", "{gen}", "transcripts", "{arm}"),
            votes=layout.debate_out(R, "{seed}", "{gen}", "votes", "{arm}"),
        log:
            layout.log("debate_merge", arm="{arm}", seed="{seed}", gen="{gen}"),
        localrule: True
        conda:
            CONDA_ENV
        script:
            "../workflow/scripts/debate_merge.py"

    rule debate_train_merge:
        input:
            transcripts=debate_shards("transcripts", "train"),
            votes=debate_shards("votes", "train"),
        output:
            transcripts=layout.debate_out(
                R, "{seed}", "{gen}", "transcripts", "{arm}", "train"
            ),
            votes=layout.debate_out(R, "{seed}", "{gen}", "votes", "{arm}", "train"),
        log:
            layout.log("debate_train_merge", arm="{arm}", seed="{seed}", gen="{gen}"),
        localrule: True
        conda:
            CONDA_ENV
        script:
            "../workflow/scripts/debate_merge.py"
