"""The paper's tables and figures from a hand-made summary.csv: exact cells and deltas, not-scored and missing
cells marked, the trade-off points, and figures rendered without a display."""
import csv
import json

import pytest

from mmunlearn.report.aggregate import COLUMNS
from mmunlearn.report.figures import tradeoff_points, write_figures
from mmunlearn.report.tables import column, read_summary, table_cells, write_tables


def _row(method, modality, ratio, split, inp, task, metric, value, n=10):
    return {"model": "m", "method": method, "unlearn_modality": modality, "forget_ratio": ratio, "seed": 42,
            "split": split, "input_modality": inp, "task": task, "metric": metric,
            "value": "" if value is None else f"{value:.6f}", "n": n}


@pytest.fixture
def summary(tmp_path):
    rows = []
    for split in ("forget", "test", "retain", "celebrity"):
        for inp in ("image_text", "text"):
            van_ratio = "" if split == "celebrity" else "5"
            rows += [_row("vanilla", "none", van_ratio, split, inp, "classification", "accuracy", 0.8),
                     _row("vanilla", "none", van_ratio, split, inp, "generation", "rougeL", 0.5),
                     _row("vanilla", "none", van_ratio, split, inp, "generation", "factuality", None, 0)]
            for variant, drop in (("multimodal", 0.3), ("text", 0.1)):
                own = drop if (variant == "multimodal") == (inp == "image_text") else 0.0
                acc = 0.8 - own if split in ("forget", "test") else 0.7
                rows += [_row("ga", variant, "5", split, inp, "classification", "accuracy", acc),
                         _row("ga", variant, "5", split, inp, "generation", "factuality", 6.5 if split == "forget"
                              else None, 4)]
    path = tmp_path / "summary.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return path


def test_table_cells_and_deltas(summary):
    runs, columns, cells = table_cells(read_summary(summary), "m", "5")
    assert runs == ["vanilla", "ga (multimodal)", "ga (text)"]
    assert cells[("vanilla", column("forget", "classification", "accuracy", "image_text"))][:2] == (0.8, None)
    value, delta, *_ = cells[("ga (multimodal)", column("forget", "classification", "accuracy", "image_text"))]
    assert value == pytest.approx(0.5) and delta == pytest.approx(-0.3)
    value, delta, *_ = cells[("ga (text)", column("forget", "classification", "accuracy", "image_text"))]
    assert value == pytest.approx(0.8) and delta == pytest.approx(0.0)
    # the celebrity row of vanilla (no ratio) is the reference of every ratio's table
    assert cells[("ga (text)", column("celebrity", "classification", "accuracy", "text"))][1] == pytest.approx(-0.1)
    # a factuality the unlearned run has and vanilla has not: a value, no delta
    assert cells[("ga (text)", column("forget", "generation", "factuality", "text"))][:2] == (6.5, None)
    assert cells[("ga (text)", column("forget", "generation", "rougeL", "text"))][:2] == (None, None)


def test_written_tables(summary, tmp_path):
    paths = write_tables(summary, tmp_path / "tables")
    assert [p.name for p in paths] == ["m_forget5.csv", "m_forget5.md"]
    rows = list(csv.DictReader(paths[0].open()))
    assert [r["run"] for r in rows] == ["vanilla", "ga (multimodal)", "ga (text)"]
    assert float(rows[1]["delta forget/classification.accuracy/image_text"]) == pytest.approx(-0.3)
    md = paths[1].read_text()
    assert "| ga (multimodal) | 0.50 (-0.30) | 0.80 (+0.00) |" in md
    assert "n/s" in md and "6.5" in md and "–" in md


def test_tradeoff_points_and_figures_render(summary, tmp_path):
    points = tradeoff_points(read_summary(summary), "m")
    assert [(p["method"], p["variant"], round(p["forget_drop"], 6), p["retain"], p["celebrity"]) for p in points] == \
        [("ga", "multimodal", 0.3, 0.7, 0.7), ("ga", "text", 0.0, 0.7, 0.7), ("vanilla", "none", 0.0, 0.8, 0.8)]
    assert points[0]["forget_drop_ci_low"] is None  # no differences.csv: no error bars
    paths = write_figures(summary, tmp_path / "figures")
    names = sorted(p.name for p in paths)
    assert names == ["fig3_m_forget5_ga.pdf", "fig3_m_forget5_ga.png", "fig4_m.pdf", "fig4_m.png",
                     "fig4_m_points.csv"]
    assert (tmp_path / "figures/fig4_m_points.csv").read_text().splitlines()[1] == "ga,multimodal,5,0.3,0.7,0.7" + "," * 12
    for p in [p for p in paths if p.suffix != ".csv"]:
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else head.startswith(b"%PDF")
        assert p.stat().st_size > 5000


def test_intervals_markers_and_the_selectivity_table(summary, tmp_path):
    """Intervals from summary.csv's ci columns, the * from differences.csv, and the selectivity table built from
    its vs_vanilla and selectivity rows (drops are minus the changes, with the interval's ends swapped)."""
    rows = read_summary(summary)
    for r in rows:
        r["ci_low"], r["ci_high"] = ("0.400000", "0.600000") if r["method"] == "ga" and r["value"] == "0.500000" \
            else ("", "")
    with summary.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    from mmunlearn.report.intervals import DIFFERENCE_COLUMNS

    def diff(comparison, split, value, low, high, task="classification", metric="accuracy"):
        return {"model": "m", "comparison": comparison, "method": "ga", "unlearn_modality": "multimodal",
                "against": "vanilla", "forget_ratio": "5", "seed": "42", "split": split, "input_modality": "image_text",
                "task": task, "metric": metric, "value": value, "ci_low": low, "ci_high": high, "n": 40,
                "excludes_zero": str(low > 0 or high < 0)}
    path = tmp_path / "differences.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=DIFFERENCE_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows([diff("vs_vanilla", "forget", -0.3, -0.4, -0.2), diff("vs_vanilla", "retain", -0.1, -0.15, 0.01),
                     diff("selectivity", "forget-retain", 0.2, 0.05, 0.3)])
    paths = write_tables(summary, tmp_path / "tables", path)
    assert [p.name for p in paths] == ["m_forget5.csv", "m_forget5.md", "m_forget5_selectivity.csv",
                                       "m_forget5_selectivity.md"]
    md = paths[1].read_text()
    assert "| ga (multimodal) | 0.50 [0.40, 0.60] (-0.30*) | 0.80 (+0.00) |" in md
    table = list(csv.DictReader(paths[0].open()))
    assert table[1]["delta ci_high forget/classification.accuracy/image_text"] == "-0.200000"
    (sel,) = list(csv.DictReader(paths[2].open()))
    assert (sel["run"], sel["forget_drop"], sel["forget_drop_ci_low"], sel["forget_drop_ci_high"]) == \
        ("ga (multimodal)", "0.300000", "0.200000", "0.400000")
    assert (sel["retain_drop_ci_low"], sel["margin"], sel["margin_excludes_zero"]) == ("-0.010000", "0.200000", "True")
    assert "| 0.300 [0.200, 0.400] | 0.100 [-0.010, 0.150] | 0.200 [0.050, 0.300]* |" in paths[3].read_text()
    from mmunlearn.report.tables import read_differences
    points = tradeoff_points(read_summary(summary), "m", differences=read_differences(path))
    ga = points[0]
    assert (ga["method"], ga["variant"], ga["forget_drop_ci_low"], ga["forget_drop_ci_high"]) == \
        ("ga", "multimodal", pytest.approx(0.2), pytest.approx(0.4))
    assert points[-1]["method"] == "vanilla" and points[-1]["forget_drop_ci_low"] == 0.0  # the reference itself


def test_figure4_has_the_papers_four_panels_with_the_utility_benchmarks(summary, tmp_path):
    """MMMU and LLaVA-Bench rows (ratio-free for vanilla, the run's ratio for an unlearned model) become Figure 4's
    third and fourth panels; the points CSV carries them."""
    extra = [_row("vanilla", "none", "", "mmmu", "image_text", "mmmu", "accuracy", 0.35, 30),
             _row("vanilla", "none", "", "llava_bench", "image_text", "llava_bench", "relative_score", 61.5, 12)]
    for variant, (acc, rel) in (("multimodal", (0.30, 55.0)), ("text", (0.33, 60.0))):
        extra += [_row("ga", variant, "5", "mmmu", "image_text", "mmmu", "accuracy", acc, 30),
                  _row("ga", variant, "5", "llava_bench", "image_text", "llava_bench", "relative_score", rel, 12)]
    with summary.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n").writerows(extra)
    points = {(p["method"], p["variant"]): p for p in tradeoff_points(read_summary(summary), "m")}
    assert points[("vanilla", "none")]["mmmu"] == 0.35 and points[("vanilla", "none")]["llava_bench"] == 61.5
    assert points[("ga", "multimodal")]["mmmu"] == 0.30 and points[("ga", "text")]["llava_bench"] == 60.0
    import matplotlib.pyplot as plt

    drawn = []
    real_subplots = plt.subplots

    def spy(*args, **kw):
        fig, axes = real_subplots(*args, **kw)
        drawn.append(axes)
        return fig, axes

    plt.subplots = spy
    try:
        write_figures(summary, tmp_path / "figures")
    finally:
        plt.subplots = real_subplots
    fig4 = next(a for a in drawn if a.size == 4)
    assert [ax.get_ylabel() for ax in fig4.flat] == ["retain accuracy (image+text)", "celebrity accuracy (image+text)",
                                                     "MMMU accuracy", "LLaVA-Bench relative score (x100)"]
    assert all(len(ax.collections) >= 3 for ax in fig4.flat)  # vanilla and both variants drawn on every panel
    md = next(p for p in write_tables(summary, tmp_path / "tables") if p.name == "m_forget5.md").read_text()
    assert "| run | MMMU acc | LLaVA-Bench |" in md
    assert "| vanilla | 0.35 | 61.5 |" in md and "| ga (multimodal) | 0.30 (-0.05) | 55.0 (-6.5) |" in md
    # LLaVA-Bench not scored (no judge key): its panel is drawn and says so, with no point on it
    rows = [r for r in read_summary(summary)]
    for r in rows:
        if r["split"] == "llava_bench":
            r["value"] = ""
    with summary.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    # the reason comes from the provenance: the first unscored LLaVA-Bench file of this model
    provenance = tmp_path / "summary.provenance.json"
    provenance.write_text(json.dumps({"not_scored": {
        "results/eval/other/vanilla/llava_bench.review.json": "not scored: another model's reason",
        "results/eval/m/vanilla/forget_5.factuality.json": "not scored: a factuality reason",
        "results/eval/m/vanilla/llava_bench.review.json": "not scored: no API key in $JUDGE_KEY (12 of 12)"}}))
    drawn.clear()
    plt.subplots = spy
    try:
        write_figures(summary, tmp_path / "figures", provenance=provenance)
    finally:
        plt.subplots = real_subplots
    last = next(a for a in drawn if a.size == 4).flat[3]
    text = last.texts[0].get_text()
    assert not last.collections and text.startswith("not scored\n") and "$JUDGE_KEY" in text.replace("\n", " ")
