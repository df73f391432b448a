# MLLMU-Bench multimodal unlearning study as one DAG. Default target: results/summary.csv.
#   snakemake --profile profiles/demo          offline demo (synthetic data, tiny LLaVA, CPU)
#   snakemake --profile slurm results/summary.csv   the paper's study on a SLURM cluster
#   snakemake --profile slurm results/preflight.json  measure every GPU rule on your GPU first (README "Preflight")

configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/unlearn.smk"
include: "rules/eval.smk"
include: "rules/report.smk"
include: "rules/export.smk"
include: "rules/preflight.smk"


onsuccess:
    # Training checkpoints stay until the workflow has accepted their run (mmunlearn.workflow)
    from mmunlearn.workflow import remove_finished_checkpoints

    remove_finished_checkpoints()


rule all:
    default_target: True
    input:
        "results/summary.csv",
        "results/tables",
        "results/figures",
