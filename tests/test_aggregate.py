"""Aggregation of hand-made metrics files into summary.csv gives exactly the expected rows."""
import csv
import json

import pytest

from mmunlearn.eval.runner import run_identity
from mmunlearn.report.aggregate import COLUMNS, write_summary


def _metrics(path, model, run, split, results):
    path.write_text(json.dumps({**run_identity(model, run, split, 42), "results": results}))
    return path


def test_summary_rows(tmp_path):
    a = _metrics(tmp_path / "a.json", "tiny", "vanilla", "celebrity",
                 [{"input_modality": "image_text", "task": "classification", "metric": "accuracy", "value": 0.5, "n": 10}])
    b = _metrics(tmp_path / "b.json", "tiny", "ga_text_15", "forget_15",
                 [{"input_modality": "text", "task": "classification", "metric": "accuracy_loglik", "value": 0.25, "n": 8}])
    out = tmp_path / "summary.csv"
    assert write_summary([b, a], out) == 2
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == COLUMNS
    assert rows == [
        {"model": "tiny", "method": "vanilla", "unlearn_modality": "none", "forget_ratio": "", "seed": "42",
         "split": "celebrity", "input_modality": "image_text", "task": "classification", "metric": "accuracy",
         "value": "0.500000", "n": "10", "ci_low": "", "ci_high": "", "sd": ""},  # no per-item records: no interval
        {"model": "tiny", "method": "ga", "unlearn_modality": "text", "forget_ratio": "15", "seed": "42",
         "split": "forget", "input_modality": "text", "task": "classification", "metric": "accuracy_loglik",
         "value": "0.250000", "n": "8", "ci_low": "", "ci_high": "", "sd": ""},
    ]


def test_intervals_from_the_per_item_records(tmp_path):
    """The layout the DAG writes: a cell whose value is the mean of its items gets the person-level interval;
    the differences file pairs each run with vanilla."""
    runs = {"vanilla": [1.0, 1.0, 0.0, 1.0] * 5, "ga_text_5": [0.0, 1.0, 0.0, 0.0] * 5}
    metrics, samples = [], []
    for run, scores in runs.items():
        d = tmp_path / "results/eval/tiny" / run
        d.mkdir(parents=True)
        value = sum(scores) / len(scores)
        metrics.append(_metrics(d / "forget_5.json", "tiny", run, "forget_5", [
            {"input_modality": "text", "task": "cloze", "metric": "accuracy", "value": value, "n": len(scores)}]))
        recs = [{"task": "cloze", "input_modality": "text", "prompt_id": f"{k // 2}/text/{k % 2}",
                 "profile_id": str(k // 2), "score": {"accuracy": x}, "raw_output": "dropped"} for k, x in enumerate(scores)]
        samples.append(d / "forget_5.samples.jsonl")
        samples[-1].write_text("".join(json.dumps(r) + "\n" for r in recs))
    out, diff = tmp_path / "summary.csv", tmp_path / "differences.csv"
    write_summary(metrics, out, samples_files=samples, differences_out=diff)
    rows = {r["method"]: r for r in csv.DictReader(out.open())}
    assert float(rows["vanilla"]["ci_low"]) < 0.75 < float(rows["vanilla"]["ci_high"])
    (d,) = list(csv.DictReader(diff.open()))
    assert (d["comparison"], d["method"], d["against"], d["split"]) == ("vs_vanilla", "ga", "vanilla", "forget")
    assert float(d["value"]) == pytest.approx(0.25 - 0.75) and float(d["ci_high"]) < 0 and d["excludes_zero"] == "True"


def _seeded_run(root, seed, run, scores):
    """One evaluation in the DAG's layout, results/eval/<model>/seed<seed>/<run>/forget_5.*: metrics and items."""
    d = root / f"results/eval/tiny/seed{seed}/{run}"
    d.mkdir(parents=True)
    path = d / "forget_5.json"
    path.write_text(json.dumps({**run_identity("tiny", run, "forget_5", seed), "results": [
        {"input_modality": "text", "task": "cloze", "metric": "accuracy", "value": sum(scores) / len(scores),
         "n": len(scores)}]}))
    recs = [{"task": "cloze", "input_modality": "text", "prompt_id": f"{k // 2}/text/{k % 2}",
             "profile_id": str(k // 2), "score": {"accuracy": x}} for k, x in enumerate(scores)]
    (d / "forget_5.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path, d / "forget_5.samples.jsonl"


def test_seeds_each_on_their_own_and_across(tmp_path):
    """Two seeds: a row per seed (each with its own bootstrap interval and its own paired differences) plus a row
    over seeds: the mean, the sample sd and the Student-t interval of the mean (checked against scipy)."""
    from scipy import stats

    from mmunlearn.report.tables import read_differences, read_summary
    from mmunlearn.report.uncertainty import headline_rows

    vanilla = {1: [1.0, 1.0, 0.0, 1.0] * 5, 2: [1.0, 1.0, 1.0, 0.0] * 5, 3: [1.0] * 20}
    ga = {1: [0.0, 1.0, 0.0, 0.0] * 5, 2: [0.0, 0.0, 0.0, 0.0] * 5, 3: [1.0, 0.0, 0.0, 0.0] * 5}
    files = [_seeded_run(tmp_path, seed, run, scores[seed]) for seed in (1, 2, 3)
             for run, scores in (("vanilla", vanilla), ("ga_text_5", ga))]
    out, diff = tmp_path / "summary.csv", tmp_path / "differences.csv"
    write_summary([m for m, _ in files], out, samples_files=[s for _, s in files], differences_out=diff)
    rows = list(csv.DictReader(out.open()))
    assert [r["seed"] for r in rows if r["method"] == "ga"] == ["1", "2", "3", "mean"]  # per seed, then across
    per_seed = {int(r["seed"]): float(r["value"]) for r in rows if r["method"] == "ga" and r["seed"] != "mean"}
    assert per_seed == {1: 0.25, 2: 0.0, 3: 0.25}
    assert all(r["ci_low"] != "" for r in rows if r["seed"] != "mean" and r["method"] == "vanilla" and r["seed"] != "3")
    (across,) = [r for r in rows if r["method"] == "ga" and r["seed"] == "mean"]
    x = [0.25, 0.0, 0.25]
    low, high = stats.t.interval(0.95, 2, loc=sum(x) / 3, scale=stats.sem(x))
    assert float(across["value"]) == pytest.approx(sum(x) / 3, abs=1e-6)
    assert float(across["sd"]) == pytest.approx(stats.tstd(x), abs=1e-6)
    assert (float(across["ci_low"]), float(across["ci_high"])) == pytest.approx((low, high), abs=1e-6)
    # the differences: paired per seed, and over seeds the mean of the per-seed differences with its t interval
    d = [r for r in csv.DictReader(diff.open()) if r["comparison"] == "vs_vanilla"]
    assert [r["seed"] for r in d] == ["1", "2", "3", "mean"]
    per_seed_diff = [float(r["value"]) for r in d[:3]]
    assert per_seed_diff == pytest.approx([0.25 - 0.75, 0.0 - 0.75, 0.25 - 1.0])
    low, high = stats.t.interval(0.95, 2, loc=sum(per_seed_diff) / 3, scale=stats.sem(per_seed_diff))
    assert (float(d[3]["ci_low"]), float(d[3]["ci_high"])) == pytest.approx((low, high), abs=1e-6)
    assert d[3]["excludes_zero"] == "True"
    # tables and figures read the rows over seeds; summary.json holds the means
    assert {r["seed"] for r in headline_rows(read_summary(out))} == {"mean"}
    assert {r["seed"] for r in read_differences(diff).values()} == {"mean"}
    from mmunlearn.report.tables import write_tables

    md = next(p for p in write_tables(out, tmp_path / "tables", diff) if p.name == "tiny_forget5.md").read_text()
    assert "**Over 3 seeds**" in md and "| ga (text) |" in md
    nested = json.loads(out.with_suffix(".json").read_text())
    assert nested["tiny"]["ga_text_5"]["forget"]["text"]["cloze.accuracy"] == pytest.approx(sum(x) / 3, abs=1e-6)


def test_a_seed_without_a_value_leaves_the_mean_empty(tmp_path):
    """A cell one seed did not score (the judge without a key, say) has no mean over seeds, not a mean of the
    others."""
    seeded = []
    for seed, value in ((1, 6.0), (2, None)):
        d = tmp_path / f"results/eval/tiny/seed{seed}/vanilla"
        d.mkdir(parents=True)
        seeded.append(d / "celebrity.factuality.json")
        seeded[-1].write_text(json.dumps({**run_identity("tiny", "vanilla", "celebrity", seed), "results": [
            {"input_modality": "text", "task": "generation", "metric": "factuality", "value": value, "n": 4}]}))
    out = tmp_path / "summary.csv"
    write_summary(seeded, out)
    (across,) = [r for r in csv.DictReader(out.open()) if r["seed"] == "mean"]
    assert across["value"] == "" and across["ci_low"] == "" and across["sd"] == ""


def test_run_identity():
    assert run_identity("m", "grad_diff_multimodal_5", "celebrity", 1)["method"] == "grad_diff"
    assert run_identity("m", "grad_diff_multimodal_5", "celebrity", 1)["forget_ratio"] == 5
    assert run_identity("m", "oracle_10", "test_10", 1)["unlearn_modality"] == "none"
    assert run_identity("m", "base", "forget_10", 1)["forget_ratio"] == 10
    with pytest.raises(ValueError):
        run_identity("m", "ga_text_5", "forget_10", 1)


def test_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        write_summary([tmp_path / "nowhere.json"], tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_percent_values_are_rejected(tmp_path):
    f = _metrics(tmp_path / "p.json", "tiny", "vanilla", "celebrity",
                 [{"input_modality": "text", "task": "classification", "metric": "accuracy", "value": 49.2, "n": 3}])
    with pytest.raises(ValueError, match="p.json"):
        write_summary([f], tmp_path / "s.csv")


def test_factuality_rows_keep_the_judge_scale_and_not_scored_runs_are_listed(tmp_path):
    judged = tmp_path / "judged.factuality.json"
    judged.write_text(json.dumps({**run_identity("tiny", "vanilla", "forget_5", 42), "status": "scored", "results": [
        {"input_modality": "text", "task": "generation", "metric": "factuality", "value": 7.25, "n": 4}]}))
    unjudged = tmp_path / "unjudged.factuality.json"
    unjudged.write_text(json.dumps({**run_identity("tiny", "base", "forget_5", 42),
                                    "status": "not scored: no API key in $OPENAI_API_KEY", "results": [
        {"input_modality": "text", "task": "generation", "metric": "factuality", "value": None, "n": 0}]}))
    out, prov = tmp_path / "summary.csv", tmp_path / "prov.json"
    assert write_summary([judged, unjudged], out, prov) == 2
    values = {r["method"]: (r["value"], r["n"]) for r in csv.DictReader(out.open())}
    assert values == {"vanilla": ("7.250000", "4"), "base": ("", "0")}
    assert json.loads(prov.read_text())["not_scored"] == {str(unjudged): "not scored: no API key in $OPENAI_API_KEY"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**run_identity("tiny", "base", "forget_5", 42), "results": [
        {"input_modality": "text", "task": "generation", "metric": "rougeL", "value": 7.0, "n": 4}]}))
    with pytest.raises(ValueError, match=r"bad.json: .*outside \[0, 1\]"):
        write_summary([bad], out)


def test_item_scores_are_read_column_wise_with_the_judges_scores():
    from mmunlearn.report.items import item_scores
    gen = [{"task": "generation", "input_modality": "text", "prompt_id": f"{p}/text/0", "profile_id": str(p),
            "score": {"rougeL": 0.1 * p}, "raw_output": "dropped"} for p in range(4)]
    judged = [{"prompt_id": "1/text/0", "input_modality": "text", "factuality": 7},
              {"prompt_id": "2/text/0", "input_modality": "text", "factuality": None}]  # unscored: no number
    scores = item_scores({("m", "vanilla", "forget_5"): gen}, {("m", "vanilla", "forget_5"): judged})
    assert scores.cells("m", "vanilla", "forget_5") == [("generation", "text", "factuality"),
                                                         ("generation", "text", "rougeL")]
    assert scores.values("m", "vanilla", "forget_5", "generation", "text", "factuality") == {"1/text/0": 7.0}
    assert scores.values("m", "vanilla", "forget_5", "generation", "text", "rougeL")["3/text/0"] == pytest.approx(0.3)
    assert scores.people[("m", "forget_5", "generation", "text")]["1/text/0"] == "1"
    with pytest.raises(ValueError, match="where.jsonl:2: sample record without prompt_id"):
        scores.add("m", "ga_text_5", "forget_5", [gen[0], {"task": "cloze", "input_modality": "text"}],
                   where="where.jsonl")


def test_evaluation_paths_name_model_seed_run_and_split():
    from mmunlearn.report.items import eval_names, eval_seed

    assert eval_names("results/eval/m-1.5/seed7/ga_text_5/forget_5.samples.jsonl") == ("m-1.5", "ga_text_5", "forget_5")
    assert eval_seed("results/eval/m-1.5/seed7/ga_text_5/forget_5.samples.jsonl") == 7
    # the layout without a seed folder (hand-made files): the model is the run's parent
    assert eval_names("results/eval/m/vanilla/celebrity.json") == ("m", "vanilla", "celebrity")
    assert eval_seed("results/eval/m/vanilla/celebrity.json") is None
    assert eval_seed("results/eval/m/seedling/vanilla/celebrity.json") is None  # a model named seed-something
