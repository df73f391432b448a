"""Aggregation: metrics JSON files -> the tidy ``results/summary.csv``.

Columns (fixed; later stages rely on them): model, method, unlearn_modality, forget_ratio, seed, split,
input_modality, task, metric, value, n, ci_low, ci_high (the bootstrap interval, report/uncertainty.py; empty
for forget quality and where nothing was scored). ``value`` is a fraction in [0, 1], except the judge's factuality
(1-10, as the paper), NLLs and the comparisons (reference gap, PrivLeak in percent); it is empty where nothing was scored (no judge key: the run is listed in the provenance
file under ``not_scored``). ``forget_ratio`` is empty where a row depends on no ratio. A metrics file that is
missing or malformed is an error naming it.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..eval import llava_bench
from ..io import git_commit, write_json_atomic, write_text_atomic
from .compare import comparison_rows
from .intervals import DIFFERENCE_COLUMNS, Intervals
from .items import eval_names, read_item_scores
from .uncertainty import Bootstrap

# every other metric: (0, 1); LLaVA-Bench's relative score is x100 and may pass 100 (ours better than the reference)
METRIC_RANGES = {"factuality": (1.0, 10.0), "answer_nll": (0.0, float("inf")),
                 **{m: (0.0, float("inf")) for m in llava_bench.METRICS}}
COLUMNS = ["model", "method", "unlearn_modality", "forget_ratio", "seed", "split", "input_modality", "task",
           "metric", "value", "n", "ci_low", "ci_high"]


def load_metrics(metric_files: list[str | Path]) -> dict[str, dict]:
    """Every metrics file, parsed once; a missing one is an error naming it."""
    missing = [str(f) for f in metric_files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} evaluation result(s) missing: {', '.join(missing)}")
    docs = {}
    for f in metric_files:
        try:
            docs[str(f)] = json.loads(Path(f).read_text())
        except ValueError as exc:
            raise ValueError(f"{f}: malformed metrics file ({exc!r})") from None
    return docs


def summary_rows(docs: dict[str, dict], intervals: Intervals | None = None) -> list[dict]:
    rows = []
    for f, doc in docs.items():
        model, run, split = eval_names(f)
        try:
            key = {c: doc[c] for c in COLUMNS[:6]}
            for r in doc["results"]:
                value = r["value"]
                low, high = METRIC_RANGES.get(r["metric"], (0.0, 1.0))
                if value is not None and not low <= value <= high:
                    raise ValueError(f"value {value} of {r['metric']} is outside [{low:g}, {high:g}]")
                ci = intervals.cell(model, run, split, r["task"], r["input_modality"], r["metric"], value) \
                    if intervals else None
                rows.append({**key, **{c: r[c] for c in COLUMNS[6:11]}, "ci_low": ci[0] if ci else None,
                             "ci_high": ci[1] if ci else None})
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{f}: malformed metrics file ({exc!r})") from None
    return sort_rows(rows)


def sort_rows(rows: list[dict]) -> list[dict]:
    order = {c: i for i, c in enumerate(["base", "vanilla", "oracle"])}
    return sorted(rows, key=lambda r: (r["model"], r["forget_ratio"] or 0, order.get(r["method"], 9), r["method"],
                                       r["unlearn_modality"], r["split"], r["input_modality"], r["task"], r["metric"]))


def write_summary(metric_files: list[str | Path], out: str | Path, provenance_out: str | Path | None = None,
                  config: dict | None = None, samples_files: list[str | Path] = (),
                  judged_files: list[str | Path] = (), differences_out: str | Path | None = None) -> int:
    """summary.csv from the metrics files, with the bootstrap interval of every cell that is a mean over items,
    plus the comparisons computed from the per-item records (``samples_files``: forget quality, reference gap,
    MIA AUC, PrivLeak; report/compare.py), and the paired differences (``differences_out``,
    report/intervals.py) from the same records and the judge's (``judged_files``)."""
    docs = load_metrics(metric_files)
    seed = (config or {}).get("seed", 0)
    scores = read_item_scores(samples_files, judged_files)
    intervals = Intervals(scores, Bootstrap.from_config(config))
    rows = summary_rows(docs, intervals)
    compared, not_compared = [], {}
    if samples_files:
        holdout = bool((config or {}).get("study", {}).get("holdout_ratio"))
        compared, not_compared = comparison_rows(scores, seed, holdout)
    for r in compared:
        r["ci_low"], r["ci_high"] = intervals.comparison_interval(r) or (None, None)
    rows = sort_rows(rows + compared)
    if provenance_out:
        runs = {f: {k: v for k, v in doc.get("provenance", {}).items() if k != "config"} for f, doc in docs.items()}
        not_scored = {f: doc["status"] for f, doc in docs.items() if doc.get("status", "scored") != "scored"}
        not_scored.update(not_compared)
        write_json_atomic(provenance_out, {"git_commit": git_commit(), "config": config, "evaluations": runs,
                                           "not_scored": not_scored})
    write_text_atomic(out, _csv(COLUMNS, rows))
    write_json_atomic(Path(out).with_suffix(".json"), summary_json(rows))
    if differences_out:
        write_text_atomic(differences_out, _csv(DIFFERENCE_COLUMNS, sort_rows(intervals.difference_rows(seed))))
    return len(rows)


def _csv(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "forget_ratio": "" if r["forget_ratio"] is None else r["forget_ratio"],
                         **{c: format_value(r[c]) for c in ("value", "ci_low", "ci_high")}})
    return buf.getvalue()


def format_value(value: float | None) -> str:
    """Six decimals; a value too small for them (a forget-quality p-value) in six significant digits, so that
    log10 p stays readable from the CSV."""
    if value is None:
        return ""
    return f"{value:.6g}" if value and abs(value) < 1e-4 else f"{value:.6f}"


def summary_json(rows: list[dict]) -> dict:
    """The same measurements nested for ``dvc metrics show/diff``: model -> run -> split -> input modality ->
    ``task.metric`` (empty values left out)."""
    out: dict = {}
    for r in rows:
        if r["value"] is None:
            continue
        run = r["method"] if r["unlearn_modality"] == "none" else f"{r['method']}_{r['unlearn_modality']}"
        run += f"_{r['forget_ratio']}" if r["forget_ratio"] is not None else ""
        node = out.setdefault(r["model"], {}).setdefault(run, {}).setdefault(r["split"], {})
        node.setdefault(r["input_modality"], {})[f"{r['task']}.{r['metric']}"] = round(r["value"], 6)
    return out
