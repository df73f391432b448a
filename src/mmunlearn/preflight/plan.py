"""From a preflight's measurements to decisions: each job's projected runtime, whether every rule fits the
resources the config gives it (and what would make it fit), a suggested ``resources:`` block with stated
headroom, and the study's GPU-hour bill recomputed from measurements. Pure functions over plain dicts; the
measuring is preflight/measure.py's.

A measurement (one per model and rule key: ``pretrain_tiny_base``, ``finetune_vanilla``, ``finetune_oracle``,
``unlearn:<method>``, ``evaluate``) holds ``peak_gpu_gb`` (None without a GPU), ``peak_host_mb``, ``model_gb``
(accelerator memory of the loaded weights; None on CPU), ``startup_s`` (a job's interpreter start and imports),
``load_s`` and, for training, ``step_s``; for ``evaluate``, ``split_s`` (seconds per split of the study, from the
measured batch times). A job's own reading and tokenising of its data is not in the projections.
"""

from __future__ import annotations

import math

from ..cluster import PlannedJob, gpu_hour_estimate, limit_minutes, rule_resources

HEADROOM = {"runtime": 1.5, "memory": 1.2}  # suggested limits = measured x headroom (preflight.headroom)
TRAINING_RULES = ("pretrain_tiny_base", "finetune_vanilla", "finetune_oracle", "unlearn")
RULES = (*TRAINING_RULES, "evaluate")


def resource_key(rule: str, method: str | None = None) -> str:
    """The ``resources:`` entry a rule's job reads (``unlearn:<method>`` for unlearning)."""
    return rule if method is None else f"{rule}:{method}"


def training_minutes(load_s: float, step_s: float, steps: int, processes: int = 1) -> float:
    """A training job's runtime: start-up and loading (``load_s``), then its micro-steps at the measured time
    per step. ``steps`` is the whole plan's count; ``processes`` data-parallel processes share it (each runs
    steps / processes at the same per-process batch; their gradient all-reduce is not in the measurement)."""
    return (load_s + math.ceil(steps / max(1, processes)) * step_s) / 60


def split_seconds(items: dict[str, int], batch_s: dict[str, float], batch_size: int) -> float:
    """One split's evaluation time: per task and input modality (``"task/modality"``), its batches at the
    measured time per batch of that task and modality."""
    missing = sorted(set(items) - set(batch_s))
    if missing:
        raise ValueError(f"preflight: no batch time measured for {missing}")
    return sum(math.ceil(n / batch_size) * batch_s[key] for key, n in items.items() if n)


def job_minutes(job: PlannedJob, measured: dict, steps: dict) -> float | None:
    """The projected runtime of one planned job from its model's measurements (None: not measured).
    ``steps[(model, key, ratio)]``: the optimiser steps of a training job (ratio None for the vanilla and the
    tiny base)."""
    m = measured.get((job.model, resource_key(job.rule, job.method)))
    if m is None:
        return None
    start = m.get("startup_s", 0.0) + m["load_s"]
    if job.rule == "evaluate":
        return (start + sum(m["split_s"][s] for s in job.splits)) / 60
    return training_minutes(start, m["step_s"], steps[(job.model, resource_key(job.rule, job.method), job.ratio)],
                            job.processes)


def _round_up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


def suggest(rows: list[dict], headroom: dict = HEADROOM) -> dict:
    """The ``resources:`` entries the measurements call for: per rule key, ``runtime`` = the longest projected
    job per unit of work x headroom.runtime (whole minutes), ``mem_mb`` = peak host memory x headroom.memory (up
    to 100 MB), and with a GPU ``gpu_mem_gb`` = peak GPU memory x headroom.memory (up to 0.1 GB). CPUs and
    GPUs are the config's: a preflight measures one process on what it was given."""
    out = {}
    for r in rows:
        entry = {"runtime": max(1, math.ceil(r["longest_unit_min"] * headroom["runtime"] - 1e-9)),
                 "mem_mb": max(100, int(_round_up(r["peak_host_mb"] * headroom["memory"], 100)))}
        if r.get("peak_gpu_gb") is not None:
            entry["gpu_mem_gb"] = round(_round_up(r["peak_gpu_gb"] * headroom["memory"], 0.1), 1)
        previous = out.get(r["key"])
        out[r["key"]] = entry if previous is None else {k: max(v, previous[k]) for k, v in entry.items()}
    return {"resources": out}


def fit_options(row: dict, hp: dict | None, eval_batch: int | None, budget_gb: float) -> list[str]:
    """What would bring a rule's GPU memory under ``budget_gb``."""
    if row["rule"] == "evaluate":
        model_gb, peak = row.get("model_gb") or 0.0, row["peak_gpu_gb"]
        per_item = (peak - model_gb) / max(1, eval_batch or 1)
        fits = math.floor((budget_gb - model_gb) / per_item) if per_item > 0 else 0
        if fits >= 1:
            return [f"eval.batch_size: {fits} (the batch's share of the peak is {per_item:.2f} GB per item; the "
                    f"weights take {model_gb:.1f} GB)"]
        return [f"a GPU with more than {model_gb:.1f} GB: the weights alone do not leave room for one item"]
    options = []
    block = row.get("block", row["key"])
    if not (hp or {}).get("gradient_checkpointing"):
        options.append(f"{block}.gradient_checkpointing: true (activations recomputed in backward: less memory, "
                       "about a third more time)")
    batch = (hp or {}).get("batch_size", 1)
    if batch > 1:
        half = batch // 2
        options.append(f"{block}.batch_size: {half} with {block}.grad_accum: {batch // half} (same effective batch)")
        options.append(f"{block}.batch_size: {half} with {block}.processes: {batch // half} (one GPU each, same "
                       "effective batch)")
    return options


def check(row: dict, res: dict, hp: dict | None = None, eval_batch: int | None = None,
          device_gb: float | None = None) -> list[dict]:
    """Problems of one measured rule against its ``resources:`` entry ``res`` (and the GPU's memory
    ``device_gb``): a peak above ``gpu_mem_gb`` or the device, a host peak above ``mem_mb``, a projected job
    longer than its runtime limit. Each names the rule, the numbers and the options that would fix it."""
    problems = []
    key = row["key"]
    peak = row.get("peak_gpu_gb")
    budgets = [(b, what) for b, what in ((res.get("gpu_mem_gb"), f"resources.{key}.gpu_mem_gb"),
                                         (device_gb, "this GPU's memory")) if b is not None]
    for budget, what in budgets:
        if peak is not None and peak > budget:
            problems.append({"rule": key, "kind": "gpu_memory", "measured": round(peak, 2), "limit": budget,
                             "message": f"{key}: peak GPU memory {peak:.1f} GB exceeds {what} ({budget:g} GB)",
                             "options": fit_options(row, hp, eval_batch, budget)})
    if row["peak_host_mb"] > res["mem_mb"]:
        need = int(_round_up(row["peak_host_mb"] * HEADROOM["memory"], 100))
        problems.append({"rule": key, "kind": "host_memory", "measured": round(row["peak_host_mb"]),
                         "limit": res["mem_mb"],
                         "message": f"{key}: peak host memory {row['peak_host_mb']:.0f} MB exceeds "
                                    f"resources.{key}.mem_mb ({res['mem_mb']} MB)",
                         "options": [f"resources.{key}.mem_mb: {need}"]})
    if row["longest_unit_min"] > res["runtime"]:
        need = math.ceil(row["longest_unit_min"] * HEADROOM["runtime"])
        options = [f"resources.{key}.runtime: {need}" + (" (per split)" if row["rule"] == "evaluate" else "")]
        if row["rule"] != "evaluate":
            options.append(f"{row.get('block', key)}.processes: 2 (data parallel: half the steps per process)")
        problems.append({"rule": key, "kind": "runtime", "measured": round(row["longest_unit_min"], 1),
                         "limit": res["runtime"],
                         "message": f"{key}: the longest job is projected at {row['longest_unit_min']:.1f} min"
                                    f"{' per split' if row['rule'] == 'evaluate' else ''}, over its limit "
                                    f"resources.{key}.runtime ({res['runtime']} min)",
                         "options": options})
    return problems


def rule_rows(jobs: list[PlannedJob], measured: dict, steps: dict) -> list[dict]:
    """One row per measured model and rule key: the measurement, its jobs, and the longest job's projected
    runtime in all and per unit of work (an evaluation job of k splits is k units, as its runtime limit)."""
    rows = []
    for (model, key), m in measured.items():
        mine = [j for j in jobs if j.model == model and resource_key(j.rule, j.method) == key]
        minutes = [(job_minutes(j, measured, steps), j.units) for j in mine]
        longest = max((t for t, _ in minutes), default=0.0)
        rows.append({**m, "model": model, "key": key, "jobs": len(mine), "longest_job_min": round(longest, 3),
                     "longest_unit_min": round(max((t / u for t, u in minutes), default=0.0), 3),
                     "job_hours": round(sum(t for t, _ in minutes) / 60, 3)})
    return rows


def bill(jobs: list[PlannedJob], resources: dict, measured: dict, steps: dict) -> dict:
    """The GPU-hour bill twice: from the config's runtime limits (the dry run's estimate) and from the measured
    projections (a job of a model or rule the preflight did not measure keeps its limit, and is counted)."""
    unmeasured = []

    def projected(job, res):
        t = job_minutes(job, measured, steps)
        if t is None:
            unmeasured.append(resource_key(job.rule, job.method))
            return limit_minutes(job, res)
        return t

    from_limits = gpu_hour_estimate(jobs, resources)
    from_measurements = gpu_hour_estimate(jobs, resources, projected)
    return {"from_config_limits": from_limits, "from_measurements": from_measurements,
            "gpu_hours_limits": round(sum(r["gpu_hours"] for r in from_limits), 2),
            "gpu_hours_measured": round(sum(r["gpu_hours"] for r in from_measurements), 2),
            "device_hours_measured": round(sum(job_minutes(j, measured, steps) or 0.0 for j in jobs) / 60, 3),
            "jobs_at_their_limit": sorted(set(unmeasured))}


def merged(config: dict, suggestion: dict) -> dict:
    """The config with a suggestion merged in, entry by entry, as ``--configfile`` merges it."""
    out = {**config, "resources": {**config["resources"]}}
    for key, entry in suggestion["resources"].items():
        out["resources"][key] = {**config["resources"].get(key, {}), **entry}
    return out


def effective_resources(config_resources: dict, key: str) -> dict:
    """A rule key's resources as its jobs get them (default, rule, rule:method)."""
    rule, _, method = key.partition(":")
    return rule_resources(config_resources, rule, method or None)
