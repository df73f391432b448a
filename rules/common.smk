# Config validation, paths and input functions shared by every rule file.
import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

validate(config, "../schemas/config.schema.yaml", set_default=True)

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))  # once: the registries below are the package's own

from mmunlearn.cluster import (PlannedJob, format_estimate, gpu_hour_estimate, hub_environment, rule_resources,
                               scheduler_resources)
from mmunlearn.code_version import code_version as mmunlearn_code_version
from mmunlearn.eval.identity import RATIO_FREE_SPLITS, UTILITY_SPLITS
from mmunlearn.eval.tasks import TASKS
from mmunlearn.models.registry import family
from mmunlearn.slurm_states import install as normalise_slurm_states
from mmunlearn.train.losses import LOSSES, get_loss
from mmunlearn.workflow import checkpoint_root

DATA_ROOT = config["data"]["root"]
VALIDATED = "results/data/validated.json"  # validate_data's facts: every consumer of the data depends on it
BENCH = f"{DATA_ROOT}/MLLMU-Bench"
STUDY = config["study"]
SEED = config["seed"]  # what depends on no replicate (the tiny base, which stands for the hub weights)
# study.seeds: one full replicate of everything seeded per seed (split choices, fine-tunes, oracle, unlearning,
# evaluation), under results/*/<model>/seed<seed>/ and data/splits/seed<seed>/; default: the one seed above
SEEDS = [int(s) for s in STUDY.get("seeds") or [SEED]]
if len(set(SEEDS)) != len(SEEDS):
    raise ValueError(f"config: study.seeds lists a seed twice: {SEEDS}")
UTILITY = STUDY["utility"]  # MMMU, LLaVA-Bench: evaluated once per model run (data/utility.py)
UTILITY_ROOT = config["utility"]["root"]


def _check_study():
    """Names in `study` must exist in their registries/config blocks: fail at start-up, not mid-run."""
    for m in STUDY["models"]:
        if m not in config["models"]:
            raise ValueError(f"config: study.models names '{m}', which has no entry under 'models:'")
        if config["models"][m]["source"] == "tiny" and "pretrain" not in config["models"][m]:
            raise ValueError(f"config: models.{m} is tiny but has no 'pretrain' block")
        if eval_config(m)["decode_from"] == "sequence" and family(config["models"][m]["family"]).chat is not None:
            raise ValueError(f"config: models.{m}.eval.decode_from is 'sequence', which reads the answer past "
                             "'ASSISTANT:'; its family's chat template has none: set it to new_tokens")
    for method in STUDY["methods"]:
        if method not in LOSSES:
            raise ValueError(f"config: study.methods names unknown method '{method}'; known: {sorted(LOSSES)}")
        if method not in config["methods"]:
            raise ValueError(f"config: study.methods names '{method}', which has no block under 'methods:'")
    if STUDY["holdout_ratio"]:
        for m in STUDY["models"]:
            if config["models"][m].get("vanilla"):
                raise ValueError(f"config: study.holdout_ratio is {STUDY['holdout_ratio']}, but models.{m}.vanilla "
                                 "imports a vanilla model that learnt every person: it has no non-members")
    for task in STUDY["tasks"]:
        if task not in TASKS:
            raise ValueError(f"config: study.tasks names unknown task '{task}'; known: {sorted(TASKS)}")
        if TASKS[task].generate and task not in config["eval"]["max_new_tokens"]:
            raise ValueError(f"config: eval.max_new_tokens has no entry for task '{task}'")
    for name in UTILITY:
        if name not in config["utility"]:
            raise ValueError(f"config: study.utility names '{name}', which has no block under 'utility:'")
        if name not in config["eval"]["max_new_tokens"]:
            raise ValueError(f"config: eval.max_new_tokens has no entry for the utility task '{name}'")



def code_version(*paths):
    """Content hash of the code a rule runs (scripts and package modules), used as a param so that editing what
    the rule executes reruns it, while a new git commit, or a comment or docstring edit, does not
    (mmunlearn.code_version)."""
    return mmunlearn_code_version(REPO, *paths)


PKG = "src/mmunlearn"
CODE_COMMON = [f"{PKG}/io.py", f"{PKG}/workflow.py", f"{PKG}/data", f"{PKG}/models"]
CODE_TRAIN = [*CODE_COMMON, f"{PKG}/train"]
# the evaluation's modules; the judge's own (eval/judge.py) is not one: editing it reruns the judge jobs only
CODE_EVAL = [*CODE_COMMON, *(f"{PKG}/eval/{m}.py" for m in ("__init__", "decode", "identity", "runner", "tasks"))]


def eval_config(model):
    """The global eval block with the model's own overrides (models.<m>.eval) merged over it."""
    cfg = {**config["eval"]}
    for key, value in config["models"][model].get("eval", {}).items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    return cfg


_check_study()  # after eval_config, which it reads


def split_fewshot():
    """Few-shot profiles the split files draw per task: the most any studied model shows (a model showing fewer
    takes a seeded subset of them)."""
    tasks = set(config["eval"]["fewshot"]) | {t for m in STUDY["models"] for t in eval_config(m)["fewshot"]}
    return {t: max(eval_config(m)["fewshot"].get(t, 0) for m in STUDY["models"]) for t in sorted(tasks)}


def names_override():
    """data.names: {ID: name}, or the path of a YAML/JSON file holding that mapping (read here, so that an edit
    of the file reruns validation like an edit of the config)."""
    names = config["data"].get("names") or {}
    if isinstance(names, str):
        import yaml

        try:
            names = yaml.safe_load(Path(names).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"config: data.names names the file '{names}', which cannot be read ({exc})") from None
        if not isinstance(names, dict):
            raise ValueError(f"config: data.names file '{config['data']['names']}' must hold a mapping ID -> name")
    return {str(k): str(v) for k, v in names.items()}


def _stage_mixes():
    """Every training stage's data mix (and its formats) the configured study runs."""
    mixes = [config["finetune"]["mix"], config["oracle"]["mix"]]
    mixes += [{"formats": config["models"][m]["pretrain"]["formats"], "replay_fraction": 0}
              for m in STUDY["models"] if config["models"][m]["source"] == "tiny"]
    return mixes


def text_formats_used():
    """Whether any stage trains on a text-only format (the people must be named: validation then requires it)."""
    formats = [f for mix in _stage_mixes() for f in [*mix["formats"], *mix.get("replay_formats", [])]]
    return bool(STUDY["methods"]) and "text" in STUDY["unlearn_modalities"] or any(f.endswith("_text") for f in formats)


def training_corpora():
    """Training-format folders besides the benchmark's that the study reads: replay data, tiny pre-training."""
    corpora = {mix["replay_data"] for mix in _stage_mixes()[:2] if mix["replay_fraction"] > 0}
    corpora |= {config["models"][m]["pretrain"].get("data", "Pretrain_Set") for m in STUDY["models"]
                if config["models"][m]["source"] == "tiny"}
    return sorted(corpora)


CLUSTER = config["cluster"]
RESOURCES = config["resources"]
if not workflow.remote_exec:
    # --executor slurm: a cancelled or preempted job is reported failed (resubmitted within --retries) instead of
    # being waited on for ever (mmunlearn/slurm_states.py; README "When the cluster stops a job")
    from snakemake.logging import logger as snakemake_logger

    normalise_slurm_states(requeue=lambda: bool(getattr(workflow.executor_settings, "requeue", False)),
                           log=snakemake_logger)
# Jobs inherit this process's environment (sbatch --export=ALL): one shared hub cache, offline on the nodes
os.environ.update(hub_environment(CLUSTER, in_cluster_job=workflow.remote_exec))


def job_threads(rule):
    return lambda wc: rule_resources(RESOURCES, rule, wc.get("method"))["cpus"]


def job_resources(rule, processes=lambda wc: 1, units=1):
    """The rule's Snakemake resources from config (resources.<rule>, resources.<rule>:<method>, cluster.*), each
    a function of the job's wildcards and attempt: GPUs, runtime, memory, partition, account, qos, GPU request
    form. A job doing ``units`` times the work the entry is sized for (an evaluation job of several splits) asks
    that times the runtime; a retry of a rule in cluster.retry.rules asks for more runtime and memory."""
    keys = scheduler_resources(RESOURCES, CLUSTER, rule, None, 1)
    # a key a method's own entry drops (e.g. gpus: 0) becomes empty, which sbatch is then not given
    empty = {key: "" if isinstance(value, str) else 0 for key, value in keys.items()}
    return {key: (lambda wc, attempt, key=key: scheduler_resources(RESOURCES, CLUSTER, rule, wc.get("method"),
                                                                   processes(wc), units, attempt).get(key, empty[key]))
            for key in keys}


def base_source(model):
    """Where a model's base weights come from: the hub id, or the tiny base this workflow pre-trains."""
    entry = config["models"][model]
    return entry["hub_id"] if entry["source"] == "hub" else f"results/models/{model}/base/model"


def base_input(wildcards):
    """The base weights a job needs on disk: the tiny base this workflow pre-trains, or the hub snapshot that
    fetch_model put into the (shared) Hugging Face cache, so that GPU jobs can run offline."""
    entry = config["models"][wildcards.model]
    return [f"results/models/{wildcards.model}/" + ("base" if entry["source"] == "tiny" else "hub.json")]


def run_names(ratio=None):
    """Every model run of the study: base, vanilla, and per forget ratio the oracle and each unlearned model."""
    ratios = STUDY["forget_ratios"] if ratio is None else [ratio]
    runs = ["base", "vanilla"]
    for r in ratios:
        runs.append(f"oracle_{r}")
        runs += [f"{m}_{v}_{r}" for m in STUDY["methods"] for v in STUDY["unlearn_modalities"]]
    return runs


def study_splits():
    """The configured splits, plus the holdout (membership inference's non-members) when there is one and a
    teacher-forced task to score it with, plus the utility benchmarks."""
    scored = STUDY["holdout_ratio"] and any(not TASKS[t].generate for t in STUDY["tasks"])
    return list(STUDY["splits"]) + (["holdout"] if scored else []) + list(UTILITY)


def run_eval_units():
    """The size of one run's `evaluate` job, for its resources: the configured splits and the utility
    benchmarks (the holdout is teacher-forced only and cheap: not counted)."""
    return len(STUDY["splits"]) + len(UTILITY)


def eval_splits(run):
    """Splits a run is evaluated on. base/vanilla do not depend on a ratio: their forget/test/retain
    evaluations exist once per ratio, their celebrity and holdout evaluations once."""
    if run in ("base", "vanilla"):
        out = [f"{s}_{r}" for r in STUDY["forget_ratios"] for s in study_splits() if s not in RATIO_FREE_SPLITS]
        return out + [s for s in study_splits() if s in RATIO_FREE_SPLITS]
    ratio = run.rsplit("_", 1)[1]
    return [s if s in RATIO_FREE_SPLITS else f"{s}_{ratio}" for s in study_splits()]


def run_dir(model, seed, run, root="results/models"):
    """A model run's folder (``root="results/eval"``: its evaluations'): one per seed."""
    return f"{root}/{model}/seed{seed}/{run}"


def all_eval_outputs(kind="json"):
    """Every evaluation's metrics file (``kind="json"``), its per-item records (``"samples.jsonl"``), or its
    factuality files (``"factuality.json"``, ``"factuality.jsonl"``; only when the study generates answers),
    for every seed."""
    if kind.startswith("factuality") and "generation" not in STUDY["tasks"]:
        return []
    runs = [(run_dir(m, seed, run, "results/eval"), run) for m in STUDY["models"] for seed in SEEDS
            for run in run_names()]
    if kind.startswith("review"):  # the LLaVA-Bench reviewer's files
        return [f"{d}/llava_bench.{kind}" for d, _ in runs if "llava_bench" in UTILITY]
    return [f"{d}/{split}.{kind}" for d, run in runs for split in eval_splits(run)
            if kind in ("json", "samples.jsonl") or split not in ("holdout", *UTILITY_SPLITS)]


def unlearn_refs(wildcards):
    """Reference models a method's loss declares (KL-Min: vanilla, already an input; NPO: the oracle)."""
    refs = get_loss(wildcards.method).refs
    return [run_dir(wildcards.model, wildcards.seed, f"oracle_{wildcards.ratio}")] if "oracle" in refs else []


def run_eval_outputs():
    """The outputs of the per-run evaluation job, `evaluate`: metrics and samples of every split of a run that has a
    forget ratio (``{stem}_{ratio}``: the oracle, each unlearned model), named by split. Celebrity does not depend on
    the ratio but belongs to the run."""
    out = {}
    for s in study_splits():
        name = s if s in RATIO_FREE_SPLITS else f"{s}_{{ratio}}"
        out[s] = f"results/eval/{{model}}/seed{{seed}}/{{stem}}_{{ratio}}/{name}.json"
        out[f"{s}_samples"] = f"results/eval/{{model}}/seed{{seed}}/{{stem}}_{{ratio}}/{name}.samples.jsonl"
    return out


def ratio_splits():
    """The study's splits that exist once per forget ratio (forget, test, retain): base and vanilla evaluate a
    ratio's in one job."""
    return [s for s in study_splits() if s not in RATIO_FREE_SPLITS]


def ratio_eval_outputs():
    """The outputs of `evaluate_ratio` (base, vanilla): metrics and samples of each of one ratio's splits."""
    out = {}
    for s in ratio_splits():
        out[s] = f"results/eval/{{model}}/seed{{seed}}/{{run}}/{s}_{{ratio}}.json"
        out[f"{s}_samples"] = f"results/eval/{{model}}/seed{{seed}}/{{run}}/{s}_{{ratio}}.samples.jsonl"
    return out


def ratio_free_splits():
    """The study's splits that depend on no forget ratio: base and vanilla evaluate them in one job."""
    return [s for s in study_splits() if s in RATIO_FREE_SPLITS]


def ratio_free_eval_outputs():
    """The outputs of `evaluate_ratio_free` (base, vanilla): metrics and samples of each ratio-free split."""
    out = {}
    for s in ratio_free_splits():
        out[s] = f"results/eval/{{model}}/seed{{seed}}/{{run}}/{s}.json"
        out[f"{s}_samples"] = f"results/eval/{{model}}/seed{{seed}}/{{run}}/{s}.samples.jsonl"
    return out


def eval_run(wildcards):
    """The model run an evaluation job scores: ``run`` (evaluate_ratio, evaluate_ratio_free) or
    ``{stem}_{ratio}`` (evaluate)."""
    return wildcards.run if "run" in wildcards.keys() else f"{wildcards.stem}_{wildcards.ratio}"


def eval_inputs(wildcards):
    run = eval_run(wildcards)
    per_ratio = run in ("base", "vanilla") and "ratio" in wildcards.keys()  # evaluate_ratio
    if run in ("base", "vanilla"):
        # the ratio-free splits of base/vanilla use the first ratio's split file only for its seeded few-shot choice
        ratio = wildcards.ratio if per_ratio else str(STUDY["forget_ratios"][0])
    else:
        ratio = run.rsplit("_", 1)[1]
    inputs = {"data": DATA_ROOT, "validated": VALIDATED, "split": f"data/splits/seed{wildcards.seed}/forget_{ratio}.json",
              "base": base_input(wildcards)}
    inputs.update({name: f"{UTILITY_ROOT}/{name}" for name in UTILITY if not per_ratio})
    if run != "base":
        inputs["run"] = run_dir(wildcards.model, wildcards.seed, run)
    return inputs


def planned_jobs():
    """Every training and evaluation job of the study (per seed): its rule, method, processes, model, forget
    ratio, an evaluation job's splits, and whether its output exists already."""
    done = lambda path: Path(path).exists()  # noqa: E731
    jobs = []
    for m in STUDY["models"]:
        if config["models"][m]["source"] == "tiny":
            jobs.append(PlannedJob("pretrain_tiny_base", None, config["models"][m]["pretrain"].get("processes", 1),
                                   done(f"results/models/{m}/base"), model=m))
        for seed in SEEDS:
            model = lambda run: run_dir(m, seed, run)  # noqa: E731
            evals = lambda run: run_dir(m, seed, run, "results/eval")  # noqa: E731
            jobs.append(PlannedJob("finetune_vanilla", None, config["finetune"]["processes"], done(model("vanilla")),
                                   model=m))
            for r in STUDY["forget_ratios"]:
                jobs.append(PlannedJob("finetune_oracle", None, config["oracle"]["processes"],
                                       done(model(f"oracle_{r}")), model=m, ratio=r))
                jobs += [PlannedJob("unlearn", method, config["methods"][method]["processes"],
                                    done(model(f"{method}_{modality}_{r}")), model=m, ratio=r)
                         for method in STUDY["methods"] for modality in STUDY["unlearn_modalities"]]
            # base and vanilla: a job per ratio for its splits and one for the rest; every other run: one job for
            # all its splits (rules/eval.smk)
            jobs += [PlannedJob("evaluate", units=len(ratio_splits()), model=m,
                                splits=tuple(f"{s}_{r}" for s in ratio_splits()),
                                done=all(done(f"{evals(run)}/{s}_{r}.json") for s in ratio_splits()))
                     for run in ("base", "vanilla") for r in STUDY["forget_ratios"] if ratio_splits()]
            jobs += [PlannedJob("evaluate", units=len(ratio_free_splits()), model=m, splits=tuple(ratio_free_splits()),
                                done=all(done(f"{evals(run)}/{split}.json") for split in ratio_free_splits()))
                     for run in ("base", "vanilla") if ratio_free_splits()]
            jobs += [PlannedJob("evaluate", units=run_eval_units(), model=m, splits=tuple(eval_splits(run)),
                                done=all(done(f"{evals(run)}/{split}.json") for split in eval_splits(run)))
                     for run in run_names() if run not in ("base", "vanilla")]
    return jobs


def preflight_jobs():
    """The study's planned jobs for the preflight, without whether they are done (a param: finished jobs must
    not rerun it)."""
    import dataclasses

    return [{**dataclasses.asdict(j), "done": False, "splits": list(j.splits)} for j in planned_jobs()]


# The study's GPU bill, before anything is submitted (also on `snakemake -n`); cluster jobs stay quiet.
if workflow.is_main_process:
    _estimate = gpu_hour_estimate(planned_jobs(), RESOURCES)
    if _estimate:
        print(format_estimate(_estimate), file=sys.stderr)


wildcard_constraints:
    model=r"[A-Za-z0-9.\-]+",
    seed=r"\d+",
    ratio=r"\d+",
    method=r"[a-z][a-z0-9]*(_[a-z0-9]+)*?",
    modality=r"multimodal|text",
    run=r"base|vanilla|oracle_\d+|[a-z][a-z0-9_]*_(multimodal|text)_\d+",
    stem=r"oracle|[a-z][a-z0-9_]*_(multimodal|text)",
    split=r"(forget|test|retain)_\d+|celebrity|holdout|mmmu|llava_bench",
    benchmark=r"mmmu|llava_bench",
