"""Comparisons from per-item records (report/compare.py): forget quality and PrivLeak of a model against the
oracle, on constructed records whose answers are known: the oracle compared with itself (p = 1, PrivLeak 0),
a model that memorised its forget people (AUC 1, PrivLeak -100), no holdout (not scored, with the reason)."""
import json

import pytest

from mmunlearn.report.aggregate import write_summary
from mmunlearn.report.compare import NO_HOLDOUT, comparison_rows
from mmunlearn.report.items import item_scores, read_item_scores


def _records(run_nll: float, spread: float, truth_ratio: float, n: int = 6) -> list[dict]:
    """Forget-split records of one run: likelihood items with membership scores (loss-like: low = member) and
    classification items with a truth ratio."""
    out = []
    for i in range(n):
        nll = run_nll + spread * i
        for modality in ("image_text", "text"):
            out.append({"prompt_id": f"p{i}/{modality}/0", "task": "likelihood", "input_modality": modality,
                        "score": {"answer_nll": nll}, "mia": dict.fromkeys(("loss", "zlib", "min_k", "min_k_pp"), nll)})
            out.append({"prompt_id": f"p{i}/{modality}/1", "task": "classification", "input_modality": modality,
                        "truth_ratio_raw": truth_ratio * (1 + 0.1 * i), "score": {}})
    return out


def _samples(holdout: bool) -> dict:
    s = {("m", "oracle_10", "forget_10"): _records(3.0, 0.1, 1.0),  # never learnt: like the holdout
         ("m", "vanilla", "forget_10"): _records(0.1, 0.01, 0.1),  # memorised
         ("m", "ga_multimodal_10", "forget_10"): _records(3.0, 0.1, 1.0)}  # back to the oracle's records
    if holdout:
        for run in ("oracle_10", "vanilla", "ga_multimodal_10"):
            s[("m", run, "holdout")] = [dict(r, prompt_id="h" + r["prompt_id"]) for r in _records(3.05, 0.1, 1.0)]
    return s


def _value(rows, run, task, metric, modality="image_text"):
    method = {"oracle_10": "oracle", "vanilla": "vanilla", "ga_multimodal_10": "ga"}[run]
    [row] = [r for r in rows if r["method"] == method and r["task"] == task and r["metric"] == metric
             and r["input_modality"] == modality]
    return row["value"]


def test_oracle_against_itself_and_a_memorising_model():
    rows, not_scored = comparison_rows(item_scores(_samples(holdout=True)), seed=42, holdout=True)
    assert not not_scored
    assert _value(rows, "oracle_10", "classification", "forget_quality") == 1.0
    assert _value(rows, "oracle_10", "likelihood", "privleak_min_k") == 0.0
    assert _value(rows, "ga_multimodal_10", "classification", "forget_quality") == 1.0  # identical records
    assert _value(rows, "vanilla", "classification", "forget_quality") < 0.01  # far from the oracle
    assert _value(rows, "vanilla", "likelihood", "mia_auc_loss") == 1.0  # members all likelier than outsiders
    assert _value(rows, "vanilla", "likelihood", "privleak_min_k") == pytest.approx(-100, abs=1e-6)
    assert _value(rows, "vanilla", "likelihood", "reference_gap") == pytest.approx(0.125 - 3.25)
    row = next(r for r in rows if r["method"] == "vanilla" and r["metric"] == "mia_auc_min_k")
    assert (row["forget_ratio"], row["split"], row["n"]) == (10, "forget", 12)


def test_without_a_holdout_membership_is_not_scored_and_says_why():
    rows, not_scored = comparison_rows(item_scores(_samples(holdout=False)), seed=42, holdout=False)
    assert _value(rows, "vanilla", "likelihood", "mia_auc_min_k") is None
    assert _value(rows, "vanilla", "likelihood", "privleak_min_k") is None
    assert _value(rows, "vanilla", "classification", "forget_quality") < 0.01  # needs no holdout
    assert set(not_scored.values()) == {NO_HOLDOUT}


def test_summary_carries_the_comparisons(tmp_path):
    files = []
    for (model, run, split), records in _samples(holdout=True).items():
        path = tmp_path / "results/eval" / model / run / f"{split}.samples.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        files.append(path)
    scores = read_item_scores(files)
    ids, nll = scores.column("m", "vanilla", "forget_10", "likelihood", "text", "answer_nll")
    assert len(ids) == 6 and nll[0] == pytest.approx(0.1)  # read column-wise: one float per item and metric
    out = tmp_path / "summary.csv"
    n = write_summary([], out, tmp_path / "prov.json", {"seed": 42, "study": {"holdout_ratio": 10}}, files)
    lines = out.read_text().splitlines()
    assert n == len(lines) - 1 and any(",vanilla,none,10,42,forget,image_text,likelihood,privleak_min_k,-100.0" in line
                                       for line in lines)
    bad = tmp_path / "results/eval/m/vanilla/bad.samples.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match="bad.samples.jsonl:1"):
        read_item_scores([bad])


@pytest.mark.parametrize("holdout", [True, False])
def test_privacy_table_and_figure(tmp_path, holdout):
    from mmunlearn.report.figures import figure_privacy
    from mmunlearn.report.tables import read_summary, write_privacy_tables

    files = []
    for (model, run, split), records in _samples(holdout).items():
        for r in records:  # the fine-tuning QA pairs' task, which the table reports
            r["task"] = "likelihood_qa" if r["task"] == "likelihood" else r["task"]
        path = tmp_path / "results/eval" / model / run / f"{split}.samples.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        files.append(path)
    summary = tmp_path / "summary.csv"
    write_summary([], summary, None, {"seed": 42, "study": {"holdout_ratio": 10 if holdout else 0}}, files)
    [csv_path, md_path] = write_privacy_tables(summary, tmp_path / "tables")
    md = md_path.read_text()
    vanilla = next(line for line in md.splitlines() if line.startswith("| vanilla |"))
    oracle = next(line for line in md.splitlines() if line.startswith("| oracle |"))
    cells = [c.strip() for c in vanilla.split("|")[2:-1]]
    assert float(cells[0]) < 0.01  # forget quality p: far from the oracle
    # PrivLeak, with its interval: every forget item of vanilla outscores every holdout item in every replicate
    assert cells[6] == ("-100.0 [-100.0, -100.0]" if holdout else "n/s")
    assert [c.strip() for c in oracle.split("|")[2:-1]][6] == ("0.0 [0.0, 0.0]" if holdout else "n/s")
    assert "ga (multimodal)" in md and csv_path.read_text().startswith("run,forget/classification.forget_quality")
    paths = figure_privacy(read_summary(summary), "m", tmp_path / "privacy_m")
    assert all(p.stat().st_size > 1000 for p in paths)
