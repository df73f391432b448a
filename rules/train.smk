# Training: tiny base (demo only), vanilla LoRA fine-tune on all fictitious profiles, oracle per forget ratio.
# Priorities put the critical path first (base -> vanilla -> unlearn -> evaluate): with few cores the
# evaluations of base and oracle fill the gaps instead of delaying the training the rest waits for.

rule pretrain_tiny_base:
    input:
        data=DATA_ROOT,
        validated=VALIDATED,
    output:
        run=directory("results/models/{model}/base"),
    params:
        model_cfg=lambda wc: config["models"][wc.model],
        seed=SEED,
        code=code_version(*CODE_TRAIN, "workflow_scripts/pretrain_tiny_base.py"),
        checkpoints=lambda wc, output: checkpoint_root(output.run),
    priority: 50
    threads: job_threads("pretrain_tiny_base")
    resources:
        **job_resources("pretrain_tiny_base",
                        processes=lambda wc: config["models"][wc.model]["pretrain"].get("processes", 1)),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/pretrain_tiny_base/{model}.log",
    script:
        "../workflow_scripts/pretrain_tiny_base.py"


rule finetune_vanilla:
    input:
        data=DATA_ROOT,
        validated=VALIDATED,
        base=base_input,
    output:
        run=directory("results/models/{model}/seed{seed}/vanilla"),
    params:
        model_cfg=lambda wc: config["models"][wc.model],
        base_source=lambda wc: base_source(wc.model),
        hp=config["finetune"],
        seed=lambda wc: int(wc.seed),
        holdout_ratio=STUDY["holdout_ratio"],  # people it must not learn (membership inference's non-members)
        code=code_version(*CODE_TRAIN, "workflow_scripts/finetune.py"),
        checkpoints=lambda wc, output: checkpoint_root(output.run),
    priority: 40
    threads: job_threads("finetune_vanilla")
    resources:
        **job_resources("finetune_vanilla", processes=lambda wc: config["finetune"]["processes"]),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/finetune_vanilla/{model}/seed{seed}.log",
    script:
        "../workflow_scripts/finetune.py"


rule finetune_oracle:
    input:
        data=DATA_ROOT,
        validated=VALIDATED,
        base=base_input,
        split="data/splits/seed{seed}/forget_{ratio}.json",
    output:
        run=directory("results/models/{model}/seed{seed}/oracle_{ratio}"),
    params:
        model_cfg=lambda wc: config["models"][wc.model],
        base_source=lambda wc: base_source(wc.model),
        hp=config["oracle"],
        seed=lambda wc: int(wc.seed),
        code=code_version(*CODE_TRAIN, "workflow_scripts/finetune.py"),
        checkpoints=lambda wc, output: checkpoint_root(output.run),
    priority: 30
    threads: job_threads("finetune_oracle")
    resources:
        **job_resources("finetune_oracle", processes=lambda wc: config["oracle"]["processes"]),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/finetune_oracle/{model}/seed{seed}/oracle_{ratio}.log",
    script:
        "../workflow_scripts/finetune.py"
