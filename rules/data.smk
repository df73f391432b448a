# Data and weights: download MLLMU-Bench at the pinned revision (or generate the synthetic twin), the splits,
# and the hub models' weights. All three run on the submitting node: compute nodes often have no internet.


localrules:
    prepare_data,
    validate_data,
    make_split,
    fetch_model,
    prepare_utility,


rule prepare_data:
    output:
        data=directory(DATA_ROOT),
    params:
        data=config["data"],
        code=code_version(*CODE_COMMON, "workflow_scripts/prepare_data.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/prepare_data.log",
    script:
        "../workflow_scripts/prepare_data.py"


# MMMU and LLaVA-Bench (study.utility), each in its own folder with its own manifest: only the split the tasks
# read, at utility.<name>.revision (or their synthetic twins when data.source is synthetic).
rule prepare_utility:
    output:
        data=directory(f"{UTILITY_ROOT}/{{benchmark}}"),
    params:
        cfg=lambda wc: config["utility"][wc.benchmark],
        source=config["data"]["source"],
        seed=config["data"].get("synthetic", {}).get("seed", 0),
        code=code_version(f"{PKG}/io.py", f"{PKG}/workflow.py", f"{PKG}/data", f"{PKG}/eval/mmmu.py",
                          "workflow_scripts/prepare_utility.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/prepare_utility/{benchmark}.log",
    script:
        "../workflow_scripts/prepare_utility.py"


# Everything the study reads, validated on the submitting node before any training job (every consumer takes
# its facts file as input): a bad file stops the run here, naming file, row, ID and field.
rule validate_data:
    input:
        data=DATA_ROOT,
    output:
        facts=VALIDATED,
        report=report("results/data/load_report.html", category="Data", caption="../report/data.rst"),
    params:
        names=names_override(),
        names_required=text_formats_used(),
        corpora=training_corpora(),
        code=code_version(*CODE_COMMON, "workflow_scripts/validate_data.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/validate_data.log",
    script:
        "../workflow_scripts/validate_data.py"


rule make_split:
    input:
        data=DATA_ROOT,
        validated=VALIDATED,
    output:
        split="data/splits/seed{seed}/forget_{ratio}.json",
    params:
        seed=lambda wc: int(wc.seed),
        fewshot=split_fewshot(),
        holdout_ratio=STUDY["holdout_ratio"],
        code=code_version(*CODE_COMMON, "workflow_scripts/make_split.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/make_split/seed{seed}/forget_{ratio}.log",
    script:
        "../workflow_scripts/make_split.py"


rule fetch_model:
    output:
        record="results/models/{model}/hub.json",
    params:
        model_cfg=lambda wc: config["models"][wc.model],
        code=code_version(f"{PKG}/io.py", f"{PKG}/models/fetch.py", f"{PKG}/data/fetch.py",
                          "workflow_scripts/fetch_model.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/fetch_model/{model}.log",
    script:
        "../workflow_scripts/fetch_model.py"
