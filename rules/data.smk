# Data: download MLLMU-Bench at the pinned revision (or generate the synthetic twin), then the splits.


localrules:
    prepare_data,
    make_split,


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


rule make_split:
    input:
        data=DATA_ROOT,
    output:
        split="data/splits/forget_{ratio}.json",
    params:
        seed=SEED,
        fewshot=split_fewshot(),
        code=code_version(*CODE_COMMON, "workflow_scripts/make_split.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/make_split/forget_{ratio}.log",
    script:
        "../workflow_scripts/make_split.py"
