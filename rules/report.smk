# Aggregation: every evaluation's metrics into one tidy table.


localrules:
    aggregate,


rule aggregate:
    input:
        metrics=all_eval_outputs(),
        factuality=all_eval_outputs("factuality.json"),
    output:
        summary="results/summary.csv",
        provenance="results/summary.provenance.json",
    params:
        code=code_version(f"{PKG}/io.py", f"{PKG}/report", "workflow_scripts/aggregate.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/aggregate.log",
    script:
        "../workflow_scripts/aggregate.py"
