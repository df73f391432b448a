# Aggregation: every evaluation's metrics into one tidy table.


localrules:
    aggregate,
    tables,
    figures,


rule aggregate:
    input:
        metrics=all_eval_outputs(),
        factuality=all_eval_outputs("factuality.json"),
        samples=all_eval_outputs("samples.jsonl"),  # per-item records: intervals, comparisons with the oracle, MIA
        judged=all_eval_outputs("factuality.jsonl"),  # the judge's per-item scores: factuality's intervals
        reviews=all_eval_outputs("review.json"),  # LLaVA-Bench's relative scores
        reviewed=all_eval_outputs("review.jsonl"),  # and its per-question reviews: their intervals
    output:
        summary="results/summary.csv",
        differences="results/differences.csv",  # paired differences with their intervals (report/intervals.py)
        summary_json="results/summary.json",  # the same numbers nested, for dvc metrics show/diff
        provenance=report("results/summary.provenance.json", category="Provenance",
                          caption="../report/provenance.rst"),
    params:
        code=code_version(f"{PKG}/io.py", f"{PKG}/report", "workflow_scripts/aggregate.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/aggregate.log",
    script:
        "../workflow_scripts/aggregate.py"


# The paper's tables (CSV + Markdown per model and forget ratio) and Figures 3 and 4 (PNG + PDF).
rule tables:
    input:
        summary="results/summary.csv",
        differences="results/differences.csv",
    output:
        report(directory("results/tables"), patterns=["{name}.csv"], caption="../report/tables.rst",
               category="Tables"),
    params:
        code=code_version(f"{PKG}/io.py", f"{PKG}/report", "workflow_scripts/tables.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/tables.log",
    script:
        "../workflow_scripts/tables.py"


rule figures:
    input:
        summary="results/summary.csv",
        differences="results/differences.csv",  # the error bars of the changes against vanilla
        provenance="results/summary.provenance.json",  # why an empty panel has no numbers
    output:
        report(directory("results/figures"), patterns=["{name}.png"], caption="../report/figures.rst",
               category="Figures"),
    params:
        classification_metric=config["report"]["classification_metric"],
        code=code_version(f"{PKG}/io.py", f"{PKG}/report", "workflow_scripts/figures.py"),
    threads: 2  # a process per figure: nothing else runs this late (the demo: 12.4 -> 7.0 s, README "Demo time")
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/figures.log",
    script:
        "../workflow_scripts/figures.py"
