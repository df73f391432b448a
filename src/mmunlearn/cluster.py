"""What each job asks the scheduler for, from the config's ``resources`` and ``cluster`` blocks, and the
study's GPU-hour estimate. Snakemake rules call ``job_resources``; the SLURM executor turns the result into
sbatch flags (runtime -> -t, mem_mb -> --mem, gpu/gres -> --gpus/--gres, slurm_partition -> -p, ...)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# What a retried job asks for when cluster.retry is not configured (config.yaml documents the defaults)
NO_RETRY_SCALING = {"rules": [], "runtime_factor": 1.0, "mem_factor": 1.0, "max_factor": 1.0}


def hub_environment(cluster: dict, in_cluster_job: bool) -> dict[str, str]:
    """Environment variables for every job: the shared Hugging Face cache (``cluster.hf_home``), and, inside a
    cluster job (compute nodes often have no internet), offline hub access (``cluster.offline_jobs``): the
    submitting node's ``fetch_model`` filled the cache."""
    env = {"HF_HOME": cluster["hf_home"]} if cluster.get("hf_home") else {}
    if cluster.get("offline_jobs", True) and in_cluster_job:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def rule_resources(resources: dict, rule: str, method: str | None = None) -> dict:
    """``default``, then the rule's entry, then ``<rule>:<method>`` (per-method overrides of unlearn)."""
    merged = {**resources["default"], **resources.get(rule, {})}
    if method is not None:
        merged.update(resources.get(f"{rule}:{method}", {}))
    return merged


def total_gpus(res: dict, processes: int = 1) -> int:
    """GPUs a job asks for: ``gpus`` per process times the data-parallel processes of a training stage."""
    return int(res.get("gpus", 0)) * max(1, processes)


def retry_factor(factor: float, max_factor: float, attempt: int) -> float:
    """How much more attempt ``attempt`` (1 = the first submission) asks for: ``factor`` per retry, at most
    ``max_factor``. Snakemake does not say why a job failed, so a rule whose failures are usually a time or
    memory limit (training, evaluation) grows both; a bug fails again, only later."""
    return min(max_factor, factor ** (max(1, attempt) - 1))


def scheduler_resources(resources: dict, cluster: dict, rule: str, method: str | None = None,
                        processes: int = 1, units: int = 1, attempt: int = 1) -> dict:
    """The Snakemake resources of one job. GPU jobs carry the GPU request in the form the site configured
    (``cluster.gpu_request``: ``gpu`` -> sbatch --gpus=[model:]N, ``gres`` -> --gres=gpu[:model]:N), the GPU
    partition and the constraint; every job carries runtime, memory, partition, account and qos where set. A job
    of ``units`` times the work the entry is sized for (an evaluation of several splits) asks that times the
    runtime. A retried job (``attempt`` > 1) of a rule in ``cluster.retry.rules`` asks for more runtime and
    memory (``retry_factor``), rounded up to whole minutes and megabytes."""
    res = rule_resources(resources, rule, method)
    gpus = total_gpus(res, processes)
    retry = {**NO_RETRY_SCALING, **(cluster.get("retry") or {})}
    grow = rule in retry["rules"]
    runtime_x = retry_factor(retry["runtime_factor"], retry["max_factor"], attempt) if grow else 1.0
    mem_x = retry_factor(retry["mem_factor"], retry["max_factor"], attempt) if grow else 1.0
    out = {"runtime": math.ceil(int(res["runtime"]) * units * runtime_x),
           "mem_mb": math.ceil(int(res["mem_mb"]) * mem_x)}
    partition = (cluster.get("gpu_partition") or cluster.get("partition")) if gpus else cluster.get("partition")
    if partition:
        out["slurm_partition"] = partition
    if cluster.get("account"):
        out["slurm_account"] = cluster["account"]
    if cluster.get("qos"):
        out["qos"] = cluster["qos"]
    if gpus:
        model = cluster.get("gpu_model")
        if cluster.get("gpu_request", "gpu") == "gpu":
            out["gpu"] = gpus
            if model:
                out["gpu_model"] = model
        else:
            out["gres"] = f"gpu:{model}:{gpus}" if model else f"gpu:{gpus}"
        if cluster.get("constraint"):
            out["constraint"] = cluster["constraint"]
    return out


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    method: str | None = None
    processes: int = 1
    done: bool = False  # its output exists already
    units: int = 1  # times the work its resources entry is sized for (runtime scales with it)
    model: str | None = None
    ratio: int | None = None  # the forget ratio of its data (oracle, unlearning), if any
    splits: tuple[str, ...] = ()  # an evaluation job's splits (forget_10, celebrity, mmmu, ...)


def limit_minutes(job: PlannedJob, res: dict) -> float:
    """A job's runtime limit from config: the entry's runtime times the job's units."""
    return res["runtime"] * job.units


def gpu_hour_estimate(jobs: list[PlannedJob], resources: dict, minutes=limit_minutes) -> list[dict]:
    """Per rule (and method): GPU jobs, GPUs per job, the longest job's runtime, and GPU-hours for the whole study
    and for the jobs whose outputs are still missing. ``minutes(job, resources entry)``: a job's runtime; by
    default its limit, which makes this an upper bound (the preflight passes measured projections)."""
    rows: dict[tuple, dict] = {}
    for job in jobs:
        res = rule_resources(resources, job.rule, job.method)
        gpus = total_gpus(res, job.processes)
        if not gpus:
            continue
        key = (job.rule, job.method)
        run_min = minutes(job, res)
        row = rows.setdefault(key, {"rule": job.rule if job.method is None else f"{job.rule}:{job.method}",
                                    "jobs": 0, "todo": 0, "gpus": gpus, "runtime_min": run_min,
                                    "gpu_mem_gb": res.get("gpu_mem_gb"), "gpu_hours": 0.0, "todo_gpu_hours": 0.0})
        hours = gpus * run_min / 60
        row["runtime_min"] = max(row["runtime_min"], run_min)  # the longest job's
        row["jobs"] += 1
        row["gpu_hours"] += hours
        if not job.done:
            row["todo"] += 1
            row["todo_gpu_hours"] += hours
    return list(rows.values())


def format_estimate(rows: list[dict]) -> str:
    if not rows:
        return "GPU-hour estimate: no job of this config asks for a GPU"
    lines = ["GPU-hour estimate (config resources: GPUs x runtime limit; an upper bound):",
             f"  {'rule':<22} {'jobs':>5} {'to run':>6} {'GPUs':>4} {'limit':>7} {'GPU mem':>8} {'GPU-h':>8} "
             f"{'to run':>8}"]
    for r in rows:
        mem = f"{r['gpu_mem_gb']:g} GB" if r["gpu_mem_gb"] else "-"
        lines.append(f"  {r['rule']:<22} {r['jobs']:>5} {r['todo']:>6} {r['gpus']:>4} {math.ceil(r['runtime_min']):>5} m "
                     f"{mem:>8} {r['gpu_hours']:>8.1f} {r['todo_gpu_hours']:>8.1f}")
    total = sum(r["gpu_hours"] for r in rows)
    todo = sum(r["todo_gpu_hours"] for r in rows)
    lines.append(f"  {'total':<22} {sum(r['jobs'] for r in rows):>5} {sum(r['todo'] for r in rows):>6} "
                 f"{'':>4} {'':>7} {'':>8} {total:>8.1f} {todo:>8.1f}")
    return "\n".join(lines)
