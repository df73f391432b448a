# Optional export: a run's adapters merged into a full model. Not part of the default target: the pipeline
# stores adapters only (a merged 7B model is ~177 x larger).


rule export_merged:
    input:
        run="results/models/{model}/seed{seed}/{run}",
        base=base_input,
    output:
        merged=directory("results/merged/{model}/seed{seed}/{run}"),
    params:
        model_cfg=lambda wc: config["models"][wc.model],
        base_source=lambda wc: base_source(wc.model),
        seed=lambda wc: int(wc.seed),
        code=code_version(*CODE_COMMON, "workflow_scripts/export_merged.py"),
    threads: job_threads("export_merged")
    resources:
        **job_resources("export_merged"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/export_merged/{model}/seed{seed}/{run}.log",
    script:
        "../workflow_scripts/export_merged.py"
