# Unlearning: every method x variant (multimodal / text-only) x forget ratio, from the vanilla model.


rule unlearn:
    input:
        data=DATA_ROOT,
        validated=VALIDATED,
        base=base_input,
        split="data/splits/seed{seed}/forget_{ratio}.json",
        vanilla="results/models/{model}/seed{seed}/vanilla",
        oracle=unlearn_refs,
    output:
        run=directory("results/models/{model}/seed{seed}/{method}_{modality}_{ratio}"),
    params:
        model_cfg=lambda wc: config["models"][wc.model],
        base_source=lambda wc: base_source(wc.model),
        hp=lambda wc: config["methods"][wc.method],
        seed=lambda wc: int(wc.seed),
        code=code_version(*CODE_TRAIN, "workflow_scripts/unlearn.py"),
        checkpoints=lambda wc, output: checkpoint_root(output.run),
    priority: 20
    threads: job_threads("unlearn")
    resources:
        **job_resources("unlearn", processes=lambda wc: config["methods"][wc.method]["processes"]),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/unlearn/{model}/seed{seed}/{method}_{modality}_{ratio}.log",
    script:
        "../workflow_scripts/unlearn.py"
