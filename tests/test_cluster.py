"""Scheduler resources from config (resources, cluster): the sbatch-facing keys the SLURM executor reads, the
GPU request forms, per-method overrides, and the GPU-hour estimate. The real submission is `make test-slurm`."""
import re
import subprocess
import sys

import pytest
import yaml

from conftest import copy_workflow
from mmunlearn.cluster import (PlannedJob, format_estimate, gpu_hour_estimate, hub_environment, retry_factor,
                               rule_resources, scheduler_resources)

RESOURCES = {
    "default": {"cpus": 1, "mem_mb": 4000, "runtime": 30, "gpus": 0},
    "unlearn": {"cpus": 8, "mem_mb": 64000, "runtime": 120, "gpus": 1, "gpu_mem_gb": 40},
    "unlearn:kl_min": {"runtime": 360, "gpu_mem_gb": 56},
    "evaluate": {"runtime": 180, "gpus": 1},
}


def test_rule_then_method_overrides_the_default():
    assert rule_resources(RESOURCES, "aggregate") == RESOURCES["default"]
    kl = rule_resources(RESOURCES, "unlearn", "kl_min")
    assert (kl["cpus"], kl["runtime"], kl["gpu_mem_gb"], kl["gpus"]) == (8, 360, 56, 1)
    assert rule_resources(RESOURCES, "unlearn", "ga")["runtime"] == 120


def test_gpu_request_forms_and_site_settings():
    site = {"gpu_request": "gpu", "gpu_model": "a100", "partition": "cpu", "gpu_partition": "gpu",
            "account": "lab42", "qos": "normal", "constraint": "a100|h100"}
    gpu = scheduler_resources(RESOURCES, site, "unlearn", "kl_min", processes=2)
    assert gpu == {"runtime": 360, "mem_mb": 64000, "slurm_partition": "gpu", "slurm_account": "lab42",
                   "qos": "normal", "gpu": 2, "gpu_model": "a100", "constraint": "a100|h100"}
    gres = scheduler_resources(RESOURCES, {**site, "gpu_request": "gres"}, "evaluate")
    assert gres["gres"] == "gpu:a100:1" and "gpu" not in gres and gres["slurm_partition"] == "gpu"
    assert scheduler_resources(RESOURCES, {"gpu_request": "gres"}, "evaluate")["gres"] == "gpu:1"
    # CPU jobs: no GPU keys, the CPU partition; unset site keys are not passed at all
    cpu = scheduler_resources(RESOURCES, site, "aggregate")
    assert cpu == {"runtime": 30, "mem_mb": 4000, "slurm_partition": "cpu", "slurm_account": "lab42", "qos": "normal"}
    assert scheduler_resources(RESOURCES, {}, "aggregate") == {"runtime": 30, "mem_mb": 4000}


def test_retries_ask_for_more_time_and_memory_up_to_the_cap():
    retry = {"rules": ["unlearn", "evaluate"], "runtime_factor": 1.5, "mem_factor": 1.25, "max_factor": 2.0}
    assert [retry_factor(1.5, 2.0, k) for k in (1, 2, 3, 4)] == [1.0, 1.5, 2.0, 2.0]
    site = {"retry": retry}
    asked = [scheduler_resources(RESOURCES, site, "unlearn", "kl_min", attempt=k) for k in (1, 2, 3)]
    assert [a["runtime"] for a in asked] == [360, 540, 720]
    assert [a["mem_mb"] for a in asked] == [64000, 80000, 100000]
    # a multi-split evaluation grows from its whole runtime, rounded up to minutes
    assert scheduler_resources({**RESOURCES, "evaluate": {"runtime": 7, "gpus": 1}}, site, "evaluate", units=3,
                               attempt=2)["runtime"] == 32  # ceil(21 x 1.5)
    # rules not listed, and sites without a retry block, ask the same every time
    assert scheduler_resources(RESOURCES, site, "aggregate", attempt=3) == {"runtime": 30, "mem_mb": 4000}
    assert scheduler_resources(RESOURCES, {}, "unlearn", "ga", attempt=3)["runtime"] == 120


def test_gpu_hour_estimate_counts_what_is_left():
    jobs = [PlannedJob("unlearn", "ga", done=True), PlannedJob("unlearn", "ga"), PlannedJob("unlearn", "kl_min"),
            PlannedJob("evaluate"), PlannedJob("evaluate", units=4, done=True), PlannedJob("aggregate")]
    rows = {r["rule"]: r for r in gpu_hour_estimate(jobs, RESOURCES)}
    assert set(rows) == {"unlearn:ga", "unlearn:kl_min", "evaluate"}  # CPU jobs cost no GPU-hours
    assert rows["unlearn:ga"]["jobs"] == 2 and rows["unlearn:ga"]["todo"] == 1
    assert rows["unlearn:ga"]["gpu_hours"] == 4.0 and rows["unlearn:ga"]["todo_gpu_hours"] == 2.0
    # an evaluation job of 4 splits asks 4 x the per-split runtime
    assert rows["unlearn:kl_min"]["gpu_hours"] == 6.0 and rows["evaluate"]["gpu_hours"] == 3.0 + 12.0
    assert rows["evaluate"]["runtime_min"] == 720 and rows["evaluate"]["todo_gpu_hours"] == 3.0
    text = format_estimate(list(rows.values()))
    assert "25.0" in text and "11.0" in text  # totals: all jobs, jobs still to run
    assert "no job of this config asks for a GPU" in format_estimate([])


def test_the_paper_dry_run_submits_gpu_rules_with_gpus(tmp_path):
    """The paper config through the slurm profile's executor settings: every GPU rule carries its GPU request
    and site settings, localrules carry none; the dry run prints the GPU-hour estimate."""
    wd = copy_workflow(tmp_path)
    site = {"cluster": {"gpu_request": "gres", "account": "lab42", "gpu_partition": "gpu"}}
    (wd / "site.yaml").write_text(yaml.safe_dump(site))
    out = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "-n", "--configfile",
                          "config.yaml", "site.yaml", "--", "results/eval/llava-1.5-7b/seed42/npo_text_5/forget_5.json"],
                         cwd=wd, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "GPU-hour estimate" in text and "unlearn:kl_min" in text
    resources = dict(re.findall(r"^rule (\w+):\n.*?^    resources: (.*?)$", text, re.MULTILINE | re.DOTALL))
    assert set(resources) == {"fetch_model", "prepare_data", "prepare_utility", "validate_data", "make_split",
                              "finetune_vanilla", "finetune_oracle", "unlearn", "evaluate"}
    for rule in ("finetune_vanilla", "finetune_oracle", "unlearn", "evaluate"):
        assert "gres=gpu:1" in resources[rule] and "slurm_account=lab42" in resources[rule], resources[rule]
        assert "slurm_partition=gpu" in resources[rule]
    assert "runtime=360" in resources["finetune_vanilla"] and "mem_mb=96000" in resources["unlearn"]  # NPO
    assert "runtime=1080" in resources["evaluate"]  # one job for the run's 4 splits, MMMU, LLaVA-Bench: 6 x 180 min
    for rule in ("fetch_model", "prepare_data", "prepare_utility", "validate_data", "make_split"):  # localrules
        assert "slurm" not in resources[rule] and "gpu" not in resources[rule]


def test_qwen2_5_vl_added_to_the_paper_study_lists_its_jobs_and_gpu_hours(tmp_path):
    """study.models with Qwen2.5-VL-7B beside the paper's two: a third of the GPU jobs and GPU-hours more, its
    jobs in the DAG; a chat-template family with the original's whole-sequence decode is refused by name."""
    wd = copy_workflow(tmp_path)
    (wd / "qwen.yaml").write_text("study: {models: [llava-1.5-7b, idefics2-8b, qwen2.5-vl-7b]}\n")
    target = "results/eval/qwen2.5-vl-7b/seed42/kl_min_multimodal_10/forget_10.json"
    out = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "-n", "--configfile", "config.yaml",
                          "qwen.yaml", "--", target], cwd=wd, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    rows = {line.split()[0]: line.split() for line in text.split("GPU-hour estimate")[1].splitlines()[2:11]}
    assert rows["finetune_vanilla"][1] == "3" and rows["unlearn:kl_min"][1] == "18" and rows["evaluate"][1] == "105"
    assert rows["total"][1] == "189" and float(rows["total"][-2]) == pytest.approx(1296.0 * 3 / 2)
    assert "results/models/qwen2.5-vl-7b/seed42/kl_min_multimodal_10" in text and "hub.json" in text
    (wd / "qwen.yaml").write_text("study: {models: [qwen2.5-vl-7b]}\nmodels: {qwen2.5-vl-7b: {eval: "
                                  "{decode_from: sequence}}}\n")
    out = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "-n", "--configfile", "config.yaml",
                          "qwen.yaml", "--", target], cwd=wd, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "models.qwen2.5-vl-7b.eval.decode_from is 'sequence'" in out.stdout + out.stderr


def test_the_estimate_counts_every_pretraining_process(tmp_path):
    """The tiny base's pre-training with `pretrain.processes: 2` and a GPU per process: the dry run's bill counts
    the two GPUs its rule asks for (the planned job and the rule's resources are twins)."""
    wd = copy_workflow(tmp_path)
    (wd / "two.yaml").write_text("models: {tiny-llava: {pretrain: {processes: 2}}}\n"
                                 "resources: {pretrain_tiny_base: {gpus: 1, runtime: 30}}\n")
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", "config/test.yaml",
                          "two.yaml", "--", "results/models/tiny-llava/base"], cwd=wd, capture_output=True, text=True,
                         timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    row = next(line.split() for line in text.split("GPU-hour estimate")[1].splitlines()
               if line.split()[:1] == ["pretrain_tiny_base"])
    assert row[1:4] == ["1", "1", "2"] and float(row[-1]) == pytest.approx(1.0)  # 2 GPUs x 30 min


def test_hub_environment_is_offline_only_inside_cluster_jobs():
    assert hub_environment({"hf_home": "/shared/hf", "offline_jobs": True}, in_cluster_job=True) == \
        {"HF_HOME": "/shared/hf", "HF_HUB_OFFLINE": "1"}
    # the submitting node (localrules: downloads, the judge) keeps the internet
    assert hub_environment({"hf_home": "/shared/hf", "offline_jobs": True}, in_cluster_job=False) == \
        {"HF_HOME": "/shared/hf"}
    assert hub_environment({"hf_home": None, "offline_jobs": False}, in_cluster_job=True) == {}
