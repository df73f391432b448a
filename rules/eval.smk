# Evaluation: one job per (model run, split), both input modalities, every configured task.

CODE_EVAL = [*CODE_COMMON, f"{PKG}/eval"]


def eval_inputs(wildcards):
    run, split = wildcards.run, wildcards.split
    ratio = split.rsplit("_", 1)[1] if split != "celebrity" else None
    if ratio is None and run not in ("base", "vanilla"):
        ratio = run.rsplit("_", 1)[1]
    # celebrity for base/vanilla uses the first ratio's split file only for its seeded few-shot choice
    ratio = ratio or str(STUDY["forget_ratios"][0])
    inputs = {"data": DATA_ROOT, "split": f"data/splits/forget_{ratio}.json", "base": base_input(wildcards)}
    if run != "base":
        inputs["run"] = f"results/models/{wildcards.model}/{run}"
    return inputs


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
    log:
        "logs/evaluate/{model}/{run}/{split}.log",
    script:
        "../workflow_scripts/evaluate.py"
