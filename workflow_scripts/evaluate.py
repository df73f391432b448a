"""Evaluate one model run on the splits its outputs name (all of the run's, or one): per split, a per-sample JSONL
and a metrics JSON with provenance. The model is loaded once."""
import json
import os

from mmunlearn.data.sets import vanilla_set
from mmunlearn.data.validate import load_facts
from mmunlearn.eval.identity import UTILITY_SPLITS, split_parts
from mmunlearn.eval.runner import benchmark_breakdown, evaluate_benchmark, evaluate_split, run_identity
from mmunlearn.eval.tasks import get_task
from mmunlearn.io import provenance, sha256_tree, write_json_atomic, write_text_atomic
from mmunlearn.models.loading import load_model
from mmunlearn.workflow import resolved_config, setup

smk = snakemake  # noqa: F821
log = setup(smk)
run_dir = smk.input.get("run")
run = os.path.basename(run_dir) if run_dir else "base"
split_info = json.load(open(smk.input.split))
vlm = load_model(smk.params.model_cfg, smk.params.base_source, run_dir)
tasks = list(smk.params.tasks)
# the people's fine-tuning rows, for the tasks that score them (likelihood_qa): read once for every split
training = ({p.id: p for p in vanilla_set(smk.input.data, load_facts(smk.input.validated))}
            if any(get_task(t).training_rows for t in tasks) else None)
adapter_sha256 = sha256_tree(f"{run_dir}/adapter") if run_dir and os.path.isdir(f"{run_dir}/adapter") else None
for samples_path in [p for p in smk.output if p.endswith(".samples.jsonl")]:
    split_name = os.path.basename(samples_path).removesuffix(".samples.jsonl")  # forget_10, celebrity, ...
    if split_name in UTILITY_SPLITS:  # MMMU, LLaVA-Bench: their own data and tasks
        samples, metrics, decode_stats = evaluate_benchmark(vlm, smk.input[split_name], split_name,
                                                            smk.params.eval_cfg, smk.params.utility_cfg[split_name],
                                                            smk.params.seed)
    else:
        samples, metrics, decode_stats = evaluate_split(vlm, f"{smk.input.data}/MLLMU-Bench",
                                                        split_parts(split_name)[0], split_info, tasks,
                                                        smk.params.eval_cfg, training)
    identity = run_identity(smk.wildcards.model, run, split_name, smk.params.seed)
    write_text_atomic(samples_path, "".join(json.dumps({**identity, **s}) + "\n" for s in samples))
    write_json_atomic(samples_path.removesuffix(".samples.jsonl") + ".json", {
        **identity, "results": metrics, "decode": decode_stats, **benchmark_breakdown(split_name, samples),
        "provenance": provenance(resolved_config(smk), seed=smk.params.seed, dtype=str(vlm.model.dtype),
                                 effective_batch_size=smk.params.eval_cfg["batch_size"], device=str(vlm.device),
                                 adapter_sha256=adapter_sha256, image_policy=vlm.image_policy)})
