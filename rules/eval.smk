# Evaluation. A run with a forget ratio (the oracle, each unlearned model) is evaluated on all its splits in one
# job, `evaluate`: its model is loaded once, and a job's start and model load cost more than a demo split's
# evaluation (README "Demo time"). base and vanilla, whose forget/test/retain splits exist once per ratio, get a
# job per ratio for its splits, `evaluate_ratio` (an added ratio evaluates only its own), and one job for everything
# that depends on no ratio (celebrities, the holdout, MMMU, LLaVA-Bench), `evaluate_ratio_free`. All write the
# same files per split and take resources.evaluate, whose runtime is per split (a job of k splits asks k times it).

rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        **run_eval_outputs(),
    params:
        model_cfg=lambda wc: config["models"][wc.model],
        base_source=lambda wc: base_source(wc.model),
        eval_cfg=lambda wc: eval_config(wc.model),
        tasks=STUDY["tasks"],
        utility_cfg={name: config["utility"][name] for name in UTILITY},
        seed=lambda wc: int(wc.seed),
        code=code_version(*CODE_EVAL, "workflow_scripts/evaluate.py"),
    threads: job_threads("evaluate")
    resources:
        **job_resources("evaluate", units=run_eval_units()),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/evaluate/{model}/seed{seed}/{stem}_{ratio}.log",
    script:
        "../workflow_scripts/evaluate.py"


if ratio_splits():  # a study of celebrities only has none

    use rule evaluate as evaluate_ratio with:
        output:
            **ratio_eval_outputs(),
        wildcard_constraints:
            run="base|vanilla",
            ratio=r"\d+",
        resources:
            **job_resources("evaluate", units=len(ratio_splits())),
        log:
            "logs/evaluate/{model}/seed{seed}/{run}/ratio_{ratio}.log",


use rule evaluate as evaluate_ratio_free with:
    output:
        **ratio_free_eval_outputs(),
    wildcard_constraints:
        run="base|vanilla",
    resources:
        **job_resources("evaluate", units=len(ratio_free_splits())),
    log:
        "logs/evaluate/{model}/seed{seed}/{run}/ratio_free.log",


# The factuality judge reads the generation samples and calls an OpenAI-compatible endpoint: it needs the
# internet, not a GPU, so it runs on the submitting node. Replies are cached under judge.cache_dir. Whether the
# key is set (never the key) is a param: a key set later rescores the "not scored" results, and a key unset
# later reruns the jobs from the reply cache, which keeps every score already paid for (eval/judge.py).
localrules:
    judge,


rule judge:
    input:
        samples="results/eval/{model}/seed{seed}/{run}/{split}.samples.jsonl",
    output:
        metrics="results/eval/{model}/seed{seed}/{run}/{split}.factuality.json",
        samples="results/eval/{model}/seed{seed}/{run}/{split}.factuality.jsonl",
    params:
        judge_cfg=config["judge"],
        judge_key_set=bool(os.environ.get(config["judge"]["api_key_env"])),
        seed=lambda wc: int(wc.seed),
        code=code_version(f"{PKG}/io.py", f"{PKG}/workflow.py", f"{PKG}/eval/judge.py", f"{PKG}/eval/identity.py",
                          "workflow_scripts/judge.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/judge/{model}/seed{seed}/{run}/{split}.log",
    script:
        "../workflow_scripts/judge.py"


# LLaVA-Bench's reviewer (eval/llava_bench.py): the same OpenAI-compatible judge, cache and key handling as the
# factuality judge, with LLaVA's reviewer protocol. On the submitting node, like the judge.
localrules:
    review_llava_bench,


rule review_llava_bench:
    input:
        samples="results/eval/{model}/seed{seed}/{run}/llava_bench.samples.jsonl",
    output:
        metrics="results/eval/{model}/seed{seed}/{run}/llava_bench.review.json",
        samples="results/eval/{model}/seed{seed}/{run}/llava_bench.review.jsonl",
    params:
        judge_cfg=config["judge"],
        bench_cfg=config["utility"]["llava_bench"],
        judge_key_set=bool(os.environ.get(config["judge"]["api_key_env"])),
        seed=lambda wc: int(wc.seed),
        code=code_version(f"{PKG}/io.py", f"{PKG}/workflow.py", f"{PKG}/eval/judge.py", f"{PKG}/eval/identity.py",
                          f"{PKG}/eval/llava_bench.py", "workflow_scripts/review_llava_bench.py"),
    conda:
        "../envs/mmunlearn.yaml"
    log:
        "logs/review_llava_bench/{model}/seed{seed}/{run}.log",
    script:
        "../workflow_scripts/review_llava_bench.py"
