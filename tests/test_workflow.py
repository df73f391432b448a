"""Integration: the reduced study (config/test.yaml) runs end to end through Snakemake, writes a tidy summary
with provenance, and a second run schedules nothing."""
import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import copy_workflow, job_counts

pytestmark = pytest.mark.integration


def snakemake(workdir, *args, timeout=900):
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("wf"))
    result = snakemake(wd, "results/summary.csv")
    assert result.returncode == 0, result.stderr[-4000:]
    return wd


METRICS = [("classification", "accuracy"), ("classification", "accuracy_loglik"), ("classification", "option_prob"),
           ("classification", "truth_ratio"), ("cloze", "accuracy"),
           ("generation", "rouge1"), ("generation", "rouge2"), ("generation", "rougeL"), ("generation", "bleu"),
           ("generation", "factuality"), ("likelihood", "exact_memorisation"), ("likelihood", "extraction_strength")]
PRIVACY = [(task, metric) for task in ("likelihood", "likelihood_qa")
           for metric in ("answer_nll", "exact_memorisation", "extraction_strength")]
RUNS = [("base", "none"), ("vanilla", "none"), ("oracle", "none"), ("ga", "multimodal"), ("ga", "text"),
        ("npo", "multimodal"), ("npo", "text")]
FRACTIONS = {"accuracy", "accuracy_loglik", "option_prob", "truth_ratio", "rouge1", "rouge2", "rougeL", "bleu",
             "exact_memorisation", "extraction_strength", "forget_quality", "forget_quality_ks"}


def test_summary_is_tidy_and_complete(workdir):
    rows = list(csv.DictReader((workdir / "results/summary.csv").open()))
    assert list(rows[0]) == ["model", "method", "unlearn_modality", "forget_ratio", "seed", "split",
                             "input_modality", "task", "metric", "value", "n", "ci_low", "ci_high", "sd"]
    index = {(r["method"], r["unlearn_modality"], r["split"], r["input_modality"], r["task"], r["metric"]): r
             for r in rows}
    assert len(index) == len(rows)  # one row per measurement
    for method, modality in RUNS:
        for inp in ("image_text", "text"):
            for split in ("forget", "test", "retain", "celebrity"):
                for task, metric in METRICS:
                    assert (method, modality, split, inp, task, metric) in index, (method, split, inp, metric)
            # the fine-tuning QA pairs of the people who have them; the holdout, teacher-forced tasks only
            for split in ("forget", "retain", "holdout"):
                for task, metric in PRIVACY:
                    assert (method, modality, split, inp, task, metric) in index, (method, split, inp, task, metric)
            assert not any(k[:4] == (method, modality, "holdout", inp) and k[4] not in ("likelihood", "likelihood_qa")
                           for k in index)
            # comparisons with the oracle; membership: forget people against the holdout
            for split in ("forget", "test"):
                fq = index[(method, modality, split, inp, "classification", "forget_quality")]
                assert 0 <= float(fq["value"]) <= 1 and int(fq["n"]) > 0
            for task in ("likelihood", "likelihood_qa"):
                auc = index[(method, modality, "forget", inp, task, "mia_auc_min_k")]
                leak = index[(method, modality, "forget", inp, task, "privleak_min_k")]
                assert 0 <= float(auc["value"]) <= 1 and int(auc["n"]) > 0 and leak["value"] != ""
                if method == "oracle":
                    assert float(leak["value"]) == 0.0  # by construction
                    assert float(index[(method, modality, "forget", inp, task, "reference_gap")]["value"]) == 0.0
        # the utility benchmarks, once per model run: MMMU scored, LLaVA-Bench answered (no reviewer key here)
        assert index[(method, modality, "mmmu", "image_text", "mmmu", "accuracy")]["n"] == "30"
        assert index[(method, modality, "mmmu", "image_text", "mmmu", "accuracy_loglik")]["n"] == "24"
        for metric in ("relative_score", "relative_score_conv", "relative_score_detail", "relative_score_complex"):
            cell = index[(method, modality, "llava_bench", "image_text", "llava_bench", metric)]
            assert cell["value"] == "" and cell["n"] == "0"  # not scored, never a number
    for r in rows:
        ratio_free = r["method"] in ("base", "vanilla") and r["split"] in ("celebrity", "holdout", "mmmu", "llava_bench")
        assert r["forget_ratio"] == ("" if ratio_free else "10")
        if r["metric"] == "factuality":  # no judge key in the test: not scored, never a number
            assert r["value"] == "" and r["n"] == "0"
        elif r["metric"] in FRACTIONS:
            assert 0.0 <= float(r["value"]) <= 1.0 and int(r["n"]) > 0, r
        # every mean over items has its interval around it; a cross-model measure has none
        if r["metric"] in FRACTIONS - {"forget_quality", "forget_quality_ks"} or r["metric"] == "answer_nll":
            assert float(r["ci_low"]) - 1e-6 <= float(r["value"]) <= float(r["ci_high"]) + 1e-6, r
        elif r["metric"].startswith("forget_quality"):  # a test's p-value: no interval
            assert r["ci_low"] == r["ci_high"] == "", r
        elif r["metric"].startswith(("mia_auc", "privleak", "reference_gap")) and r["value"] != "":
            assert float(r["ci_low"]) <= float(r["ci_high"]), r  # from the same draws (a ratio: maybe not around it)
    # the paired differences: each run against vanilla, multimodal against text-only, the selectivity margins
    diffs = list(csv.DictReader((workdir / "results/differences.csv").open()))
    kinds = {(d["comparison"], d["method"], d["unlearn_modality"], d["split"]) for d in diffs}
    assert {("vs_vanilla", "ga", "text", "forget"), ("vs_vanilla", "oracle", "none", "retain"),
            ("multimodal_vs_text", "npo", "multimodal", "celebrity"), ("selectivity", "ga", "multimodal",
                                                                      "forget-retain")} <= kinds
    for d in diffs:
        assert float(d["ci_low"]) - 1e-6 <= float(d["value"]) <= float(d["ci_high"]) + 1e-6, d
        assert d["excludes_zero"] == str(float(d["ci_low"]) > 0 or float(d["ci_high"]) < 0)
    # 20 profiles, 10 % forget = 2 profiles (2 more held out); one is the few-shot demo: 1 x 5 multiple-choice and
    # 1 x 2 cloze questions are scored; generation is zero-shot (2 x 2)
    forget = {(r["task"], r["n"]) for r in rows if r["method"] == "vanilla" and r["split"] == "forget"
              and r["task"] in ("classification", "cloze", "generation") and "forget_quality" not in r["metric"]}
    assert forget == {("classification", "5"), ("cloze", "2"), ("generation", "4"), ("generation", "0")}


def test_results_carry_provenance(workdir):
    metrics = json.loads((workdir / "results/eval/tiny-llava/seed42/ga_text_10/forget_10.json").read_text())
    prov = metrics["provenance"]
    for key in ("git_commit", "seed", "dtype", "effective_batch_size", "config"):
        assert key in prov
    assert prov["config"]["methods"]["ga"]["lr"] == 1e-4 and prov["adapter_sha256"]
    assert prov["cpu"]["model"] and prov["cpu"]["torch_kernels"]  # the evaluation ran torch: its kernel level
    samples = (workdir / "results/eval/tiny-llava/seed42/ga_text_10/forget_10.samples.jsonl").read_text().splitlines()
    first = json.loads(samples[0])
    assert {"prompt_id", "question", "gold", "raw_output", "parsed", "score"} <= set(first)
    run = json.loads((workdir / "results/models/tiny-llava/seed42/vanilla/run.json").read_text())
    assert run["effective_batch_size"] == 16 and run["lora_modules"]
    assert run["cpu"] == prov["cpu"]  # trained and evaluated on this machine
    assert all("language_model" in m for m in run["lora_modules"])
    assert (workdir / "results/models/tiny-llava/seed42/vanilla/adapter/adapter_model.safetensors").is_file()
    assert not list((workdir / "results/models/tiny-llava/seed42/vanilla/adapter").glob("model*.safetensors"))
    assert (workdir / "results/models/tiny-llava/seed42/ga_text_10/loss_log.csv").is_file()
    table = json.loads((workdir / "results/summary.provenance.json").read_text())
    # 28 evaluations + 7 of the holdout, 28 judge files (the holdout is not judged: nothing generated), and per
    # run MMMU, LLaVA-Bench and its review (7 x 3); no key: the factuality and LLaVA-Bench reviews not scored
    assert table["config"]["seed"] == 42 and len(table["evaluations"]) == 35 + 28 + 21
    assert len(table["not_scored"]) == 28 + 7 and all("no API key" in v for v in table["not_scored"].values())
    mmmu = json.loads((workdir / "results/eval/tiny-llava/seed42/ga_text_10/mmmu.json").read_text())
    assert mmmu["forget_ratio"] == 10 and mmmu["accuracy_by_subject"]["Overall"]["n"] == 30
    assert metrics["decode"]["classification"]["items"] > 0


def test_second_run_schedules_nothing(workdir):
    result = snakemake(workdir, "-n", "results/summary.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_editing_a_method_reruns_only_its_jobs(workdir):
    (workdir / "override.yaml").write_text("methods:\n  npo:\n    lr: 2.0e-4\n")
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "override.yaml", "--cores", "2",
           "-n", "results/summary.csv"]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    # exactly the 2 npo runs (multimodal, text), their 2 evaluation jobs (4 splits each), 2 x 4 judgements, and
    # the aggregation
    counts = job_counts(out)
    assert counts == {"unlearn": 2, "evaluate": 2, "judge": 8, "review_llava_bench": 2, "aggregate": 1,
                      "total": 15}, out[-3000:]


def test_lint(workdir):
    result = subprocess.run([sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "--lint"],
                            cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


IDEFICS2 = """models:
  tiny-idefics2:
    family: idefics2
    source: tiny
    dtype: float32
    tiny: {vocab_size: 400, image_size: 16, patch_size: 8, vision_hidden: 16, vision_layers: 2, vision_heads: 2,
           hidden: 32, intermediate: 64, layers: 2, heads: 2, max_positions: 512, resampler_latents: 4}
    pretrain: {lr: 1.0e-3, epochs: 1, max_steps: 4, batch_size: 16, append_eos: true, formats: [qa, mcq_text]}
"""


def run_family(workdir, model: str, model_yaml: str, targets: list[str]) -> dict:
    """Build ``targets`` of another model family's tiny version (its config merged over the test study's); its
    vanilla run.json."""
    (workdir / f"{model}.yaml").write_text(model_yaml)
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", f"{model}.yaml", "--cores", "2",
           *targets]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((workdir / f"results/models/{model}/seed42/vanilla/run.json").read_text())


def test_idefics2_runs_through_the_same_dag(workdir):
    """The paper's second model family: pre-train (tiny), fine-tune with its chat-template prompt, unlearn and
    evaluate with one- and two-image prompts through the same rules."""
    targets = [f"results/eval/tiny-idefics2/seed42/{run}/{split}.json" for run in ("vanilla", "ga_multimodal_10")
               for split in ("forget_10", "test_10")]
    run = run_family(workdir, "tiny-idefics2", IDEFICS2, targets)
    assert run["lora_modules"] and all(m.startswith("model.text_model.") for m in run["lora_modules"])
    metrics = json.loads((workdir / targets[-1]).read_text())
    assert {r["input_modality"] for r in metrics["results"]} == {"image_text", "text"}


QWEN = """
models:
  tiny-qwen:
    family: qwen2_5_vl
    source: tiny
    dtype: float32
    tiny: {vocab_size: 400, image_size: 16, patch_size: 4, vision_hidden: 16, vision_layers: 2, vision_heads: 2,
           hidden: 32, intermediate: 64, layers: 2, heads: 2, max_positions: 1024}
    processor: {min_pixels: 64, max_pixels: 1024}
    pretrain: {lr: 1.0e-3, epochs: 1, max_steps: 4, batch_size: 16, append_eos: true, formats: [qa, mcq_text]}
    eval: {decode_from: new_tokens}
"""


def test_qwen2_5_vl_runs_through_the_same_dag(workdir):
    """Issue 20's family: pre-train (tiny), fine-tune in its chat template, unlearn with every method and variant
    of the reduced study, and evaluate every task in both input modalities through the same rules; LoRA on the
    language model only; the image size policy in the provenance; the few-shot prefix not reused, with the reason
    in the log."""
    runs = ("vanilla", "ga_multimodal_10", "ga_text_10", "npo_multimodal_10", "npo_text_10")
    targets = [f"results/eval/tiny-qwen/seed42/{run}/forget_10.json" for run in runs]
    targets.append("results/eval/tiny-qwen/seed42/vanilla/celebrity.json")
    run = run_family(workdir, "tiny-qwen", QWEN, targets)
    assert run["lora_modules"] and all(m.startswith("model.language_model.layers.") for m in run["lora_modules"])
    policy = {"min_pixels": 64, "max_pixels": 1024, "patch_size": 4, "merge_size": 2}
    assert run["image_policy"] == policy
    metrics = json.loads((workdir / targets[0]).read_text())  # vanilla on forget_10: every task scored
    assert metrics["provenance"]["image_policy"] == policy
    assert {(r["task"], r["input_modality"]) for r in metrics["results"]} == {
        (t, m) for t in ("classification", "generation", "cloze", "likelihood", "likelihood_qa")
        for m in ("image_text", "text")}
    assert all(r["n"] > 0 for r in metrics["results"])
    log = (workdir / "logs/evaluate/tiny-qwen/seed42/vanilla/ratio_10.log").read_text()
    assert "few-shot prefix not reused for qwen2_5_vl: multimodal rotary positions" in log
    for target in targets[1:]:
        assert all(r["n"] > 0 for r in json.loads((workdir / target).read_text())["results"]), target


def test_merged_export_is_explicit_and_equivalent(workdir, monkeypatch):
    """results/merged/... is never built by default; when asked for, it equals base + adapter chain."""
    import torch

    from mmunlearn.models.loading import load_model

    assert not (workdir / "results/merged").exists()
    result = snakemake(workdir, "results/merged/tiny-llava/seed42/ga_text_10")
    assert result.returncode == 0, result.stderr[-3000:]
    merged = workdir / "results/merged/tiny-llava/seed42/ga_text_10"
    assert (merged / "model.safetensors").is_file() and (merged / "export.json").is_file()
    monkeypatch.chdir(workdir)  # runs name their parents by repository-relative paths
    cfg = {"family": "llava", "source": "tiny", "dtype": "float32"}
    a = load_model(cfg, str(merged)).model
    b = load_model(cfg, "results/models/tiny-llava/base/model", "results/models/tiny-llava/seed42/ga_text_10").model
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_a_training_stage_runs_as_two_data_parallel_processes(workdir):
    """`processes: 2` relaunches the job under torchrun (gloo on CPU; one process per GPU on a cluster):
    one job, two DDP ranks, rank 0 writes the run, which records the effective batch."""
    (workdir / "two.yaml").write_text("finetune:\n  processes: 2\n")
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "two.yaml", "--cores", "2",
           "results/models/tiny-llava/seed42/vanilla"]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = json.loads((workdir / "results/models/tiny-llava/seed42/vanilla/run.json").read_text())
    assert run["num_processes"] == 2 and run["per_process_batch_size"] == 16 and run["effective_batch_size"] == 32
    log = (workdir / "logs/finetune_vanilla/tiny-llava/seed42.log").read_text()
    assert "processes 2" in log and "batch 16 x 2 processes" in log


def test_judge_rule_scores_through_a_chat_completions_endpoint(workdir):
    """The judge rule, pointed at a loopback OpenAI-compatible server with a key in the environment: numbers
    instead of "not scored", per-sample judgements, and the key nowhere on disk."""
    from judge_server import JudgeServer

    key = "sk-workflow-4c1d"
    target = "results/eval/tiny-llava/seed42/vanilla/forget_10.factuality.json"
    with JudgeServer(key) as server:
        (workdir / "judge.yaml").write_text(f"judge:\n  base_url: {server.url}\n  api_key_env: MMU_JUDGE_KEY\n")
        cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "judge.yaml", "--cores", "2",
               target]
        env = {**os.environ, "MMU_JUDGE_KEY": key}
        result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "judge" in result.stdout + result.stderr and len(server.requests) == 8  # 2 people x 4 answers
    doc = json.loads((workdir / target).read_text())
    assert doc["status"] == "scored" and all(1 <= r["value"] <= 10 and r["n"] == 4 for r in doc["results"])
    judged = (workdir / target.replace(".json", ".jsonl")).read_text().splitlines()
    assert len(judged) == 8 and all(json.loads(j)["justification"] for j in judged)
    for path in [*workdir.glob("results/**/*.json*"), *workdir.glob("logs/**/*.log")]:
        assert key not in path.read_text(errors="ignore"), path


def test_llava_bench_reviewed_through_a_chat_completions_endpoint(workdir):
    """The LLaVA-Bench reviewer rule against a loopback OpenAI-compatible server: the relative scores per category
    and overall, and in the summary with their bootstrap interval over images."""
    from judge_server import JudgeServer

    key = "sk-review-77aa"
    target = "results/eval/tiny-llava/seed42/vanilla/llava_bench.review.json"
    with JudgeServer(key) as server:
        (workdir / "review.yaml").write_text(f"judge:\n  model: reviewer\n  base_url: {server.url}\n"
                                             f"  api_key_env: MMU_REVIEW_KEY\n")
        env = {**os.environ, "MMU_REVIEW_KEY": key}
        cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "review.yaml", "--cores", "2",
               target]
        result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        # (an earlier test retrained vanilla, whose evaluation may rerun first)
        assert job_counts(result.stdout + result.stderr)["review_llava_bench"] == 1
        assert len(server.requests) == 12 and all("[Context]" in r["body"]["messages"][1]["content"]
                                                  for r in server.requests)
    doc = json.loads((workdir / target).read_text())
    rows = {r["metric"]: r for r in doc["results"]}
    assert doc["status"] == "scored" and rows["relative_score"]["n"] == 12
    reviews = [json.loads(line) for line in (workdir / target.replace(".json", ".jsonl")).read_text().splitlines()]
    ours = [r["scores"][1] for r in reviews]
    assert rows["relative_score"]["value"] == pytest.approx(sum(ours) / 12 / 8 * 100)
    assert sum(rows[f"relative_score_{c}"]["n"] for c in ("conv", "detail", "complex")) == 12
    from mmunlearn.report.aggregate import write_summary

    out = workdir / "review_summary.csv"
    evals = workdir / "results/eval/tiny-llava/seed42/vanilla"
    write_summary([workdir / target], out, samples_files=[evals / "llava_bench.samples.jsonl",
                                                          workdir / target.replace(".json", ".jsonl")])
    cell = next(r for r in csv.DictReader(out.open()) if r["metric"] == "relative_score")
    assert float(cell["ci_low"]) <= float(cell["value"]) <= float(cell["ci_high"])


def test_a_key_set_later_rescores_only_the_judge_jobs(workdir):
    """Issue 13 (4): run without the key (not scored), set it and run the same command: the judge job reruns and
    scores, nothing else reruns, a third run has nothing to do; unset the key: the job reruns from the reply
    cache, same scores, nothing sent."""
    from judge_server import JudgeServer

    key, target = "sk-later-9e2b", "results/eval/tiny-llava/seed42/base/forget_10.factuality.json"
    with JudgeServer(key) as server:
        # a model of its own: its reply cache starts empty whatever the other tests cached
        (workdir / "judge_later.yaml").write_text(
            f"judge:\n  model: later-judge\n  base_url: {server.url}\n  api_key_env: MMU_JUDGE_LATER_KEY\n")
        cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "judge_later.yaml", "--cores",
               "2", target]

        def run(with_key: bool) -> tuple[dict, dict]:
            env = {k: v for k, v in os.environ.items() if k != "MMU_JUDGE_LATER_KEY"}
            result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300,
                                    env={**env, "MMU_JUDGE_LATER_KEY": key} if with_key else env)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            return job_counts(result.stdout + result.stderr), json.loads((workdir / target).read_text())

        counts, doc = run(with_key=False)
        assert counts == {"judge": 1, "total": 1} and server.requests == []
        assert doc["status"].startswith("not scored: no API key in $MMU_JUDGE_LATER_KEY")
        counts, doc = run(with_key=True)
        assert counts == {"judge": 1, "total": 1}, counts
        assert doc["status"] == "scored" and len(server.requests) == 8
        assert run(with_key=True)[0] == {}
        counts, unkeyed = run(with_key=False)
        assert counts == {"judge": 1, "total": 1} and unkeyed["results"] == doc["results"]
        assert len(server.requests) == 8
    for path in [*workdir.glob("results/**/*.json*"), *workdir.glob("logs/**/*.log"), *workdir.glob(".snakemake/**/*")]:
        assert path.is_dir() or key not in path.read_text(errors="ignore"), path


def test_tables_and_figures_from_the_summary(workdir):
    result = snakemake(workdir, "results/tables", "results/figures", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in (workdir / "results/tables").glob("tiny-llava*")) == \
        ["tiny-llava_forget10.csv", "tiny-llava_forget10.md", "tiny-llava_forget10_privacy.csv",
         "tiny-llava_forget10_privacy.md", "tiny-llava_forget10_selectivity.csv", "tiny-llava_forget10_selectivity.md"]
    figures = sorted(p.name for p in (workdir / "results/figures").glob("[!.]*"))
    assert figures == ["fig3_tiny-llava_forget10_ga.pdf", "fig3_tiny-llava_forget10_ga.png",
                       "fig3_tiny-llava_forget10_npo.pdf", "fig3_tiny-llava_forget10_npo.png",
                       "fig4_tiny-llava.pdf", "fig4_tiny-llava.png", "fig4_tiny-llava_points.csv",
                       "privacy_tiny-llava.pdf", "privacy_tiny-llava.png"]
    summary = json.loads((workdir / "results/summary.json").read_text())
    assert summary["tiny-llava"]["vanilla"]["celebrity"]["text"]["classification.accuracy_loglik"] >= 0
    # the self-contained HTML report: figures, tables, each job's config and runtime
    result = snakemake(workdir, "--report", "results/report.html", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = (workdir / "results/report.html").read_text(errors="ignore")
    assert len(html) > 100_000 and "fig4_tiny-llava" in html and "tiny-llava_forget10" in html
    assert "privacy_tiny-llava" in html
    assert "summary.provenance.json" in html


def test_preflight_measures_every_rule_and_flags_a_tight_budget(workdir):
    """results/preflight.json on the reduced study, on CPU (host memory for GPU memory): every rule the study
    runs measured (figures > 0), every evaluation split projected, a host-memory limit below the measured peak
    flagged by rule name, and a suggested resources: block that validates and, merged back, changes only
    resources:. Nothing else runs."""
    import yaml
    from snakemake.utils import update_config, validate

    (workdir / "tight.yaml").write_text("resources:\n  unlearn:npo: {mem_mb: 100}\n")
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "tight.yaml", "--cores", "2",
           "results/preflight.json"]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert job_counts(result.stdout + result.stderr) == {"preflight": 1, "total": 1}
    report = json.loads((workdir / "results/preflight.json").read_text())
    rows = {r["key"]: r for r in report["rules"]}
    assert set(rows) == {"pretrain_tiny_base", "finetune_vanilla", "finetune_oracle", "unlearn:ga", "unlearn:npo",
                         "evaluate"}
    assert report["device"]["kind"] == "cpu" and report["models"]["tiny-llava"]["weights"] == "random: tiny config"
    for key, r in rows.items():
        assert r["peak_host_mb"] > 0 and r["load_s"] > 0 and r["tokens_per_s"] > 0, key
        assert r["longest_job_min"] > 0 and r["jobs"] >= 1 and r["peak_gpu_gb"] is None, key
        assert (r["step_s"] > 0) if key != "evaluate" else all(b["batch_s"] > 0 for b in r["batches"].values())
    # every split the study evaluates is projected, from a timed batch of every task and input modality
    ev = rows["evaluate"]
    assert set(ev["split_s"]) == {"forget_10", "test_10", "retain_10", "celebrity", "holdout", "mmmu", "llava_bench"}
    assert all(v > 0 for v in ev["split_s"].values())
    assert {k.split("/")[0] for k in ev["batches"]} == {"classification", "generation", "cloze", "likelihood",
                                                          "likelihood_qa", "mmmu", "llava_bench"}
    assert ev["batches"]["classification/image_text"]["split"] == "forget_10"  # the few-shot prompts
    # the tight budget, named; nothing else flagged
    assert [(p["rule"], p["kind"]) for p in report["problems"]] == [("unlearn:npo", "host_memory")]
    assert report["problems"][0]["options"][0].startswith("resources.unlearn:npo.mem_mb: ")
    # the suggestion: a config file that validates and changes only resources:
    suggested = yaml.safe_load((workdir / "results/preflight_resources.yaml").read_text())
    assert set(suggested) == {"resources"} and set(suggested["resources"]) == set(rows)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    update_config(config, yaml.safe_load((workdir / "config/test.yaml").read_text()))
    merged = yaml.safe_load(yaml.safe_dump(config))
    update_config(merged, suggested)
    validate(merged, str(workdir / "schemas/config.schema.yaml"), set_default=True)
    validate(config, str(workdir / "schemas/config.schema.yaml"), set_default=True)
    assert {k: v for k, v in merged.items() if k != "resources"} == {k: v for k, v in config.items()
                                                                      if k != "resources"}
    assert suggested["resources"]["unlearn:npo"]["mem_mb"] > 100
    assert report["bill"]["device_hours_measured"] > 0
    assert "provenance" in report and report["provenance"]["seed"] == 42


def test_a_second_seed_adds_only_its_jobs(workdir):
    """study.seeds: a second seed fans out its own split, fine-tunes, unlearning and evaluations (the tiny base,
    seed-free, is shared); its results differ from the first seed's; the summary has a row per seed and one
    over seeds; a third seed would schedule only its own jobs, and dropping one reruns only the aggregation.
    (Last in this file: it leaves a two-seed summary behind.)"""
    def run(seeds, *args, timeout=300):
        (workdir / "seeds.yaml").write_text(f"study:\n  seeds: {seeds}\n")
        cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "seeds.yaml", "--cores", "2",
               *args, "results/summary.csv"]
        result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result

    def dry(seeds):
        result = run(seeds, "-n")
        return job_counts(result.stdout + result.stderr), result.stdout

    # one seed's jobs: its split, vanilla, oracle, 2 methods x 2 variants, and every evaluation of its 7 runs
    one_seed = {"make_split": 1, "finetune_vanilla": 1, "finetune_oracle": 1, "unlearn": 4, "evaluate_ratio": 2,
                "evaluate_ratio_free": 2, "evaluate": 5, "judge": 28, "review_llava_bench": 7, "aggregate": 1}
    counts, out = dry([42, 7])
    assert counts == {**one_seed, "total": sum(one_seed.values())}, out[-3000:]
    outputs = [line.split(":", 1)[1] for line in out.splitlines() if line.strip().startswith("output:")]
    assert outputs and all("seed7" in o or "summary" in o for o in outputs)
    run([42, 7], timeout=900)
    rows = list(csv.DictReader((workdir / "results/summary.csv").open()))
    assert {r["seed"] for r in rows} == {"42", "7", "mean"}
    cells = {}
    for r in rows:
        cells.setdefault((r["method"], r["unlearn_modality"], r["split"], r["input_modality"], r["task"],
                          r["metric"]), {})[r["seed"]] = r
    assert all(set(by_seed) == {"42", "7", "mean"} for by_seed in cells.values())
    nll = cells[("vanilla", "none", "forget", "image_text", "likelihood", "answer_nll")]
    assert float(nll["42"]["value"]) != float(nll["7"]["value"])  # another fine-tune, another model
    mean = (float(nll["42"]["value"]) + float(nll["7"]["value"])) / 2
    assert float(nll["mean"]["value"]) == pytest.approx(mean, abs=2e-6)
    assert float(nll["mean"]["ci_low"]) < mean < float(nll["mean"]["ci_high"]) and float(nll["mean"]["sd"]) > 0
    split7 = json.loads((workdir / "data/splits/seed7/forget_10.json").read_text())
    split42 = json.loads((workdir / "data/splits/seed42/forget_10.json").read_text())
    assert split7 != split42  # its own Test_Set images, few-shot profiles (and holdout)
    run7 = json.loads((workdir / "results/models/tiny-llava/seed7/vanilla/run.json").read_text())
    assert run7["seed"] == 7
    counts, out = dry([42, 7, 9])
    assert counts == {**one_seed, "total": sum(one_seed.values())}, out[-3000:]
    assert dry([42])[0] == {"aggregate": 1, "total": 1}
