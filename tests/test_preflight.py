"""The preflight's arithmetic and measuring (src/mmunlearn/preflight): projections from steps and batches to
runtimes, fit checks that name the rule and what would fix it, a suggested resources: block that validates and
changes nothing else, the bill, and the meters themselves on real allocations. The preflight rule through
Snakemake is tests/test_workflow.py's; through SLURM, make test-slurm's."""
import copy
import math

import pytest
import torch
import yaml
from snakemake.utils import update_config, validate

from conftest import REPO
from mmunlearn.cluster import PlannedJob
from mmunlearn.preflight import plan
from mmunlearn.preflight.measure import Meter, TokenCounter, model_source, random_model
from mmunlearn.preflight.study import select, steps_of

SCHEMA = str(REPO / "schemas/config.schema.yaml")


def paper_config():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, SCHEMA, set_default=True)
    return config


def test_training_steps_follow_the_trainers_plan():
    # 100 forget items, 20 retain, batch 4, 2 epochs. GA (interleaved, forget sets the epoch): 25 x 2 = 50 steps;
    # GradDiff sequential: per epoch 25 forget + 5 retain batches = 30, x 2 = 60; interleaved GradDiff: 50
    base = {"lr": 1e-5, "epochs": 2, "batch_size": 4}
    assert steps_of("ga", {"forget": 100}, base, 0) == 50
    assert steps_of("grad_diff", {"forget": 100, "retain": 20}, {**base, "schedule": "sequential"}, 0) == 60
    assert steps_of("grad_diff", {"forget": 100, "retain": 20}, base, 0) == 50
    assert steps_of("nll", {"train": 10}, {**base, "max_steps": 3}, 0) == 3
    # 60 steps of 0.5 s after a 30 s load: 1 minute; two data-parallel processes run 30 steps each
    assert plan.training_minutes(30, 0.5, 60) == pytest.approx(1.0)
    assert plan.training_minutes(30, 0.5, 60, processes=2) == pytest.approx(0.75)
    assert plan.training_minutes(0, 1.0, 61, processes=2) == pytest.approx(31 / 60)  # the last process's share


def test_evaluation_projection_from_batches():
    # 33 items at batch 16 = 3 batches of 2 s; a task with no items costs nothing
    assert plan.split_seconds({"generation/image_text": 33, "cloze/text": 0},
                              {"generation/image_text": 2.0, "cloze/text": 9.0}, 16) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="cloze/text"):
        plan.split_seconds({"cloze/text": 5}, {}, 16)
    measured = {("m", "evaluate"): {"startup_s": 15.0, "load_s": 45.0,
                                    "split_s": {"forget_5": 120.0, "celebrity": 60.0}}}
    job = PlannedJob("evaluate", model="m", units=2, splits=("forget_5", "celebrity"))
    assert plan.job_minutes(job, measured, {}) == pytest.approx(4.0)  # (15 + 45 + 120 + 60) s
    assert plan.job_minutes(PlannedJob("evaluate", model="other", splits=("forget_5",)), measured, {}) is None
    rows = plan.rule_rows([job, PlannedJob("evaluate", model="m", splits=("forget_5",))], measured, {})
    # the longest job 4 min over 2 splits (2 per split); the one-split job 3 min: 3 per split is the longest
    assert rows[0]["longest_job_min"] == pytest.approx(4.0) and rows[0]["longest_unit_min"] == pytest.approx(3.0)
    assert rows[0]["jobs"] == 2 and rows[0]["job_hours"] == pytest.approx(7 / 60, abs=1e-3)


def measured_rows():
    """A paper-like preflight on an 80 GB card: fine-tune 44 GB, KL-Min 70 GB (too much for its documented
    62 GB), evaluation 60 GB of which 14 GB are the weights."""
    return [
        {"model": "llava-1.5-7b", "key": "finetune_vanilla", "rule": "finetune_vanilla", "block": "finetune",
         "peak_gpu_gb": 44.0, "peak_host_mb": 30000.0, "model_gb": 14.1, "longest_job_min": 200.0,
         "longest_unit_min": 200.0},
        {"model": "llava-1.5-7b", "key": "unlearn:kl_min", "rule": "unlearn", "block": "methods.kl_min",
         "peak_gpu_gb": 70.0, "peak_host_mb": 31000.0, "model_gb": 14.1, "longest_job_min": 400.0,
         "longest_unit_min": 400.0},
        {"model": "llava-1.5-7b", "key": "evaluate", "rule": "evaluate", "block": "eval", "peak_gpu_gb": 60.0,
         "peak_host_mb": 20000.0, "model_gb": 14.0, "longest_job_min": 300.0, "longest_unit_min": 50.0},
        {"model": "idefics2-8b", "key": "finetune_vanilla", "rule": "finetune_vanilla", "block": "finetune",
         "peak_gpu_gb": 47.0, "peak_host_mb": 29000.0, "model_gb": 16.0, "longest_job_min": 150.0,
         "longest_unit_min": 150.0},
    ]


def test_suggested_resources_validate_and_change_only_resources():
    config = paper_config()
    suggestion = plan.suggest(measured_rows(), {"runtime": 1.5, "memory": 1.2})
    res = suggestion["resources"]
    # the larger of the two models, with the stated headroom: 200 min x 1.5, 47 GB x 1.2, 30,000 MB x 1.2
    assert res["finetune_vanilla"] == {"runtime": 300, "mem_mb": 36000, "gpu_mem_gb": 56.4}
    assert res["unlearn:kl_min"] == {"runtime": 600, "mem_mb": 37200, "gpu_mem_gb": 84.0}
    assert res["evaluate"]["runtime"] == 75  # per split, as resources.evaluate.runtime is
    new = plan.merged(config, suggestion)
    validate(copy.deepcopy(new), SCHEMA, set_default=True)
    # as a --configfile merges it: the same result
    via_configfile = copy.deepcopy(config)
    update_config(via_configfile, yaml.safe_load(yaml.safe_dump(suggestion)))
    assert via_configfile == new
    assert {k: v for k, v in new.items() if k != "resources"} == {k: v for k, v in config.items() if k != "resources"}
    changed = {k for k in new["resources"] if new["resources"][k] != config["resources"].get(k)}
    assert changed == {"finetune_vanilla", "unlearn:kl_min", "evaluate"}
    for key in changed:  # CPUs and GPUs stay the config's
        for field in ("cpus", "gpus"):
            assert new["resources"][key].get(field) == config["resources"].get(key, {}).get(field)


def test_an_impossible_budget_is_flagged_with_the_rule_and_the_way_out():
    config = paper_config()
    rows = {r["key"]: r for r in measured_rows() if r["model"] == "llava-1.5-7b"}
    res = lambda key: plan.effective_resources(config["resources"], key)  # noqa: E731
    # fine-tuning: 44 GB under its documented 48 GB, 200 min under 360, 30 GB host under 64 GB: fits
    assert plan.check(rows["finetune_vanilla"], res("finetune_vanilla"), config["finetune"], 16, 80.0) == []
    # KL-Min: 70 GB over its 62 GB; 400 min over its 360 min limit
    problems = plan.check(rows["unlearn:kl_min"], res("unlearn:kl_min"), config["methods"]["kl_min"], 16, 80.0)
    kinds = {p["kind"]: p for p in problems}
    assert set(kinds) == {"gpu_memory", "runtime"} and all(p["rule"] == "unlearn:kl_min" for p in problems)
    assert "70.0 GB exceeds resources.unlearn:kl_min.gpu_mem_gb (62 GB)" in kinds["gpu_memory"]["message"]
    options = " | ".join(kinds["gpu_memory"]["options"])
    assert "methods.kl_min.gradient_checkpointing: true" in options
    assert "methods.kl_min.batch_size: 2 with methods.kl_min.grad_accum: 2" in options
    assert "methods.kl_min.batch_size: 2 with methods.kl_min.processes: 2" in options
    assert kinds["runtime"]["options"][0] == "resources.unlearn:kl_min.runtime: 600"
    # with gradient checkpointing already on, it is not offered again
    on = plan.check(rows["unlearn:kl_min"], res("unlearn:kl_min"),
                    {**config["methods"]["kl_min"], "gradient_checkpointing": True}, 16, 80.0)
    assert not any("gradient_checkpointing" in o for p in on for o in p["options"])
    # evaluation on a 40 GB card: 60 GB = 14 GB weights + 16 x 2.875 GB; 26 GB of room hold 9 items
    ev = plan.check(rows["evaluate"], res("evaluate"), None, 16, 40.0)
    card = next(p for p in ev if "this GPU" in p["message"])
    assert card["rule"] == "evaluate" and card["options"] == [
        "eval.batch_size: 9 (the batch's share of the peak is 2.88 GB per item; the weights take 14.0 GB)"]
    assert math.floor((40 - 14) / ((60 - 14) / 16)) == 9
    # host memory below the measured peak
    tight = {**res("finetune_vanilla"), "mem_mb": 16000}
    host = plan.check(rows["finetune_vanilla"], tight, config["finetune"], 16, 80.0)
    assert [p["kind"] for p in host] == ["host_memory"]
    assert host[0]["message"].startswith("finetune_vanilla: peak host memory 30000 MB exceeds")
    assert host[0]["options"] == ["resources.finetune_vanilla.mem_mb: 36000"]
    # weights that alone fill the card: no batch size helps
    full = plan.check({**rows["evaluate"], "model_gb": 39.5}, res("evaluate"), None, 16, 40.0)
    assert any("a GPU with more than 39.5 GB" in o for p in full for o in p["options"])


def test_bill_from_measurements_and_limits():
    resources = {"default": {"cpus": 1, "mem_mb": 100, "runtime": 30, "gpus": 0},
                 "finetune_vanilla": {"runtime": 360, "gpus": 1}, "unlearn": {"runtime": 120, "gpus": 1},
                 "evaluate": {"runtime": 180, "gpus": 1}}
    jobs = [PlannedJob("finetune_vanilla", model="m"),
            PlannedJob("unlearn", "ga", processes=2, model="m", ratio=5),
            PlannedJob("unlearn", "npo", model="m", ratio=5),  # not measured: counted at its limit
            PlannedJob("evaluate", model="m", units=1, splits=("forget_5",))]
    measured = {("m", "finetune_vanilla"): {"load_s": 60.0, "step_s": 1.0},
                ("m", "unlearn:ga"): {"load_s": 0.0, "step_s": 2.0},
                ("m", "evaluate"): {"load_s": 30.0, "split_s": {"forget_5": 570.0}}}
    steps = {("m", "finetune_vanilla", None): 3540, ("m", "unlearn:ga", 5): 600}
    bill = plan.bill(jobs, resources, measured, steps)
    # vanilla (60 + 3540) s = 1 h; GA 300 steps per process x 2 s = 10 min on 2 GPUs = 1/3 GPU-h; NPO at its
    # 120-min limit = 2 GPU-h; evaluation 600 s = 1/6 h
    assert bill["gpu_hours_measured"] == pytest.approx(1 + 1 / 3 + 2 + 1 / 6, abs=0.01)
    assert bill["gpu_hours_limits"] == pytest.approx(6 + 4 + 2 + 3)
    assert bill["jobs_at_their_limit"] == ["unlearn:npo"]
    rows = {r["rule"]: r for r in bill["from_measurements"]}
    assert rows["unlearn:ga"]["gpus"] == 2 and rows["unlearn:ga"]["runtime_min"] == pytest.approx(10.0)


def test_select_models_and_rules():
    study = {"models": ["a", "b"], "methods": ["ga", "npo"]}
    assert select(study, {}) == (["a", "b"], ["pretrain_tiny_base", "finetune_vanilla", "finetune_oracle",
                                              "unlearn:ga", "unlearn:npo", "evaluate"])
    assert select(study, {"models": ["b"], "rules": ["unlearn", "evaluate"]}) == (
        ["b"], ["unlearn:ga", "unlearn:npo", "evaluate"])
    assert select(study, {"rules": ["unlearn:npo"]})[1] == ["unlearn:npo"]
    with pytest.raises(ValueError, match="preflight.rules names 'finetune'"):
        select(study, {"rules": ["finetune"]})
    with pytest.raises(ValueError, match="preflight.models names \\['c'\\]"):
        select(study, {"models": ["c"]})


def test_meter_sees_a_host_allocation_and_its_time():
    with Meter(torch.device("cpu"), interval=0.001) as idle:
        pass
    with Meter(torch.device("cpu"), interval=0.001) as busy:
        block = torch.ones(64, 1024, 1024)  # 256 MB, touched
        del block
    assert busy.peak_host_mb - idle.peak_host_mb > 200
    assert busy.seconds > 0 and busy.peak_gpu_gb is None


def test_process_age_is_the_time_since_the_process_started():
    import subprocess
    import sys

    code = "import time; time.sleep(0.6); from mmunlearn.preflight.measure import process_age_s; print(process_age_s())"
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0.6 <= age < 30


def test_token_counter_counts_every_forward():
    model = torch.nn.Embedding(10, 4)

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, input_ids=None):
            return self.inner(input_ids)

    w = Wrapper()
    counter = TokenCounter(w)
    w(input_ids=torch.zeros(3, 5, dtype=torch.long))
    w(torch.zeros(2, 1, dtype=torch.long))
    assert counter.close() == 17
    w(input_ids=torch.zeros(3, 5, dtype=torch.long))  # removed: no longer counted
    assert counter.tokens == 17


def test_a_hub_model_without_cache_gets_the_built_in_architecture(tmp_path, monkeypatch):
    """LLaVA-1.5-7B, not in the cache: its written-out architecture with random weights and a stand-in
    tokenizer; built on the meta device here (7.06 B parameters, nothing allocated)."""
    import mmunlearn.preflight.measure as measure

    monkeypatch.setattr(measure, "cached_snapshot", lambda repo, rev: None)
    text = ["USER: <image> What is the name of this person? ASSISTANT: Ada Lovelace"] * 20
    cfg = {"family": "llava", "source": "hub", "hub_id": "llava-hf/llava-1.5-7b-hf", "revision": None,
           "dtype": "bfloat16"}
    source = model_source("llava-1.5-7b", cfg, cfg["hub_id"], lambda: text, 0)
    assert source.weights == "random: built-in llava-hf/llava-1.5-7b-hf architecture"
    assert "stand-in" in source.tokenizer
    monkeypatch.setattr(measure, "default_device", lambda: torch.device("meta"))
    vlm = source.load()
    assert sum(p.numel() for p in vlm.model.parameters()) == pytest.approx(7.06e9, rel=0.01)
    assert vlm.model.dtype == torch.bfloat16 and vlm.image_tokens == 576
    # Qwen2.5-VL-7B (issue 20): 8.29 B parameters, its image tokens sized by the configured pixel bounds
    qwen = {"family": "qwen2_5_vl", "source": "hub", "hub_id": "Qwen/Qwen2.5-VL-7B-Instruct", "revision": None,
            "dtype": "bfloat16", "processor": {"min_pixels": 50176, "max_pixels": 451584}}
    source = model_source("qwen2.5-vl-7b", qwen, qwen["hub_id"], lambda: text, 0)
    vlm = source.load()
    assert sum(p.numel() for p in vlm.model.parameters()) == pytest.approx(8.29e9, rel=0.01)
    assert vlm.image_policy == {"min_pixels": 50176, "max_pixels": 451584, "patch_size": 14, "merge_size": 2}
    with pytest.raises(ValueError, match="models.other: neither weights nor a config.json of org/unknown"):
        model_source("other", {**cfg, "hub_id": "org/unknown"}, "org/unknown", lambda: text, 0)


def test_a_cached_hub_config_without_weights_gets_the_familys_own_processor(tmp_path, monkeypatch):
    """A snapshot with config.json and the processor but no weights (`weights: auto`): random weights of that
    architecture, and the processor built as the family's loader builds it (Idefics2: image splitting off, even
    where the saved processor turns it on)."""
    import mmunlearn.preflight.measure as measure
    from mmunlearn.models.tiny import build_tiny_idefics2, train_tokenizer

    text = ["User:<image>What is the job of this person?<end_of_utterance>\nAssistant: baker"] * 20
    tiny = dict(vocab_size=300, image_size=16, patch_size=8, vision_hidden=16, vision_layers=1, vision_heads=2,
                hidden=32, intermediate=64, layers=1, heads=2, max_positions=256, resampler_latents=4)
    model, processor = build_tiny_idefics2(train_tokenizer(text, 300, "idefics2"), tiny, seed=0)
    processor.image_processor.do_image_splitting = True
    model.config.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    monkeypatch.setattr(measure, "cached_snapshot", lambda repo, rev: tmp_path)
    cfg = {"family": "idefics2", "source": "hub", "hub_id": "org/idefics2-like", "revision": None, "dtype": "float32"}
    source = model_source("idefics2-like", cfg, cfg["hub_id"], lambda: text, 0)
    assert source.weights == "random: cached hub config"
    vlm = source.load()
    assert vlm.processor.image_processor.do_image_splitting is False
    assert sum(p.numel() for p in vlm.model.parameters()) == sum(p.numel() for p in model.parameters())


def test_random_model_runs_in_the_configured_dtype_and_attention():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    config = LlavaConfig(text_config=LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                 num_attention_heads=2, vocab_size=100),
                         vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                        num_attention_heads=2, image_size=16, patch_size=8),
                         image_token_id=99)
    model = random_model(config, torch.bfloat16, torch.device("cpu"))
    assert model.dtype == torch.bfloat16 and model.config._attn_implementation == "sdpa"
    out = model(input_ids=torch.tensor([[1, 2, 3]]))
    assert torch.isfinite(out.logits.float()).all()
