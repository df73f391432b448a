# Preflight (README "Preflight"): one short job that measures, on the GPU the study will run on, what every GPU
# rule needs (memory, time per step or batch, projected runtime) and suggests resources. Not part of `all`:
#   snakemake --profile slurm results/preflight.json
# It reads the data and one seed's split files, as the jobs it stands for.


rule preflight:
    input:
        data=DATA_ROOT,
        validated=VALIDATED,
        splits=[f"data/splits/seed{SEEDS[0]}/forget_{r}.json" for r in STUDY["forget_ratios"]],
        utility=[f"{UTILITY_ROOT}/{name}" for name in UTILITY],
    output:
        report="results/preflight.json",
        resources="results/preflight_resources.yaml",
    params:
        ratios=STUDY["forget_ratios"],
        jobs=preflight_jobs(),
        model_cfgs={m: config["models"][m] for m in STUDY["models"]},
        base_sources={m: base_source(m) for m in STUDY["models"]},
        eval_cfgs={m: eval_config(m) for m in STUDY["models"]},
        settings=config["preflight"],
        resources=RESOURCES,
        seed=SEEDS[0],
        code=code_version(*CODE_TRAIN, *CODE_EVAL, f"{PKG}/preflight", f"{PKG}/cluster.py",
                          "workflow_scripts/preflight.py"),
    threads: job_threads("preflight")
    resources:
        **job_resources("preflight"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/preflight.log",
    script:
        "../workflow_scripts/preflight.py"
