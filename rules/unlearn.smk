# Unlearning: every method x variant (multimodal / text-only) x forget ratio, from the vanilla model.


def unlearn_refs(wildcards):
    """Reference models a method's loss declares (KL-Min: vanilla, already an input; NPO: the oracle)."""
    import sys

    sys.path.insert(0, str(REPO / "src"))
    from mmunlearn.train.losses import get_loss

    refs = get_loss(wildcards.method).refs
    return [f"results/models/{wildcards.model}/oracle_{wildcards.ratio}"] if "oracle" in refs else []


rule unlearn:
    input:
        data=DATA_ROOT,
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
    threads: threads_for("gpu")
    resources:
        runtime=12 * 60,
        mem_mb=64000,
        **gpu_resources(),
    log:
        "logs/unlearn/{model}_{method}_{modality}_{ratio}.log",
    script:
        "../workflow_scripts/unlearn.py"
