# Unlearning: every method x variant (multimodal / text-only) x forget ratio, from the vanilla model.


rule unlearn:
    input:
        data=DATA_ROOT,
        validated=VALIDATED,
        base=base_input,
        split="data/splits/forget_{ratio}.json",
        vanilla="results/models/{model}/vanilla",
        oracle=unlearn_refs,
    output:
        run=directory("results/models/{model}/{method}_{modality}_{ratio}"),
    params:
        model_cfg=lambda wc: config["models"][wc.model],
        base_source=lambda wc: base_source(wc.model),
        hp=lambda wc: config["methods"][wc.method],
        seed=SEED,
        code=code_version(*CODE_TRAIN, "workflow_scripts/unlearn.py"),
        checkpoints="checkpoints/{model}/{method}_{modality}_{ratio}",
    priority: 20
    threads: job_threads("unlearn")
    resources:
        **job_resources("unlearn", processes=lambda wc: config["methods"][wc.method]["processes"]),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/unlearn/{model}_{method}_{modality}_{ratio}.log",
    script:
        "../workflow_scripts/unlearn.py"
