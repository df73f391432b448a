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
         "value": "0.500000", "n": "10"},
        {"model": "tiny", "method": "ga", "unlearn_modality": "text", "forget_ratio": "15", "seed": "42",
         "split": "forget", "input_modality": "text", "task": "classification", "metric": "accuracy_loglik",
         "value": "0.250000", "n": "8"},
    ]


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
