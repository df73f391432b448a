# Evaluation: one job per (model run, split), both input modalities, every configured task.

rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        metrics="results/eval/{model}/{run}/{split}.json",
        samples="results/eval/{model}/{run}/{split}.samples.jsonl",
    params:
        model_cfg=lambda wc: config["models"][wc.model],
        base_source=lambda wc: base_source(wc.model),
        eval_cfg=config["eval"],
        tasks=STUDY["tasks"],
        seed=SEED,
        code=code_version(*CODE_EVAL, "workflow_scripts/evaluate.py"),
    threads: threads_for("gpu")
    resources:
        runtime=4 * 60,
        mem_mb=32000,
        **gpu_resources(),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/evaluate/{model}/{run}/{split}.log",
    script:
        "../workflow_scripts/evaluate.py"
