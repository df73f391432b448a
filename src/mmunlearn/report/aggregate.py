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
from .items import eval_names, eval_seed, read_item_scores
from .uncertainty import ACROSS_SEEDS, Bootstrap, across_seeds, headline_rows

# every other metric: (0, 1); LLaVA-Bench's relative score is x100 and may pass 100 (ours better than the reference)
METRIC_RANGES = {"factuality": (1.0, 10.0), "answer_nll": (0.0, float("inf")),
                 **{m: (0.0, float("inf")) for m in llava_bench.METRICS}}
COLUMNS = ["model", "method", "unlearn_modality", "forget_ratio", "seed", "split", "input_modality", "task",
           "metric", "value", "n", "ci_low", "ci_high", "sd"]


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
    """By model, ratio, run, set, modality, task, metric; each cell's seeds in order, the row over seeds last."""
    order = {c: i for i, c in enumerate(["base", "vanilla", "oracle"])}
    return sorted(rows, key=lambda r: (r["model"], r["forget_ratio"] or 0, order.get(r["method"], 9), r["method"],
                                       r["unlearn_modality"], r["split"], r["input_modality"], r["task"], r["metric"],
                                       r.get("comparison", ""), r["seed"] == ACROSS_SEEDS,
                                       0 if r["seed"] == ACROSS_SEEDS else r["seed"]))


def across_seed_rows(rows: list[dict], columns: list[str], seeds: list[int], level: float) -> list[dict]:
    """Per cell (every key column but the seed), a row of seed ``ACROSS_SEEDS``: the mean over the seeds, their
    sd and the t interval over seeds (report/uncertainty.py); value empty unless every seed has a value. ``n``:
    the fewest items any seed scored."""
    keys = [c for c in columns if c not in ("seed", "value", "n", "ci_low", "ci_high", "sd", "excludes_zero")]
    cells: dict[tuple, dict] = {}
    for r in rows:
        cells.setdefault(tuple(r[c] for c in keys), {})[r["seed"]] = r
    out = []
    for by_seed in cells.values():
        stats = across_seeds([by_seed[s]["value"] if s in by_seed else None for s in seeds], level)
        mean, sd, low, high = stats or (None, None, None, None)
        row = {**next(iter(by_seed.values())), "seed": ACROSS_SEEDS, "value": mean, "sd": sd, "ci_low": low,
               "ci_high": high, "n": min(r["n"] or 0 for r in by_seed.values())}
        if "excludes_zero" in columns:
            row["excludes_zero"] = low is not None and (low > 0 or high < 0)
        out.append(row)
    return out


def write_summary(metric_files: list[str | Path], out: str | Path, provenance_out: str | Path | None = None,
                  config: dict | None = None, samples_files: list[str | Path] = (),
                  judged_files: list[str | Path] = (), differences_out: str | Path | None = None) -> int:
    """summary.csv from the metrics files, with the bootstrap interval of every cell that is a mean over items,
    plus the comparisons computed from the per-item records (``samples_files``: forget quality, reference gap,
    MIA AUC, PrivLeak; report/compare.py), and the paired differences (``differences_out``,
    report/intervals.py) from the same records and the judge's (``judged_files``)."""
    docs = load_metrics(metric_files)
    default_seed = (config or {}).get("seed", 0)

    def seed_of(path) -> int:  # a path without a seed folder (hand-made files): the config's seed
        seed = eval_seed(path)
        return default_seed if seed is None else seed

    seeds = sorted({seed_of(f) for f in [*docs, *samples_files, *judged_files]})
    boot = Bootstrap.from_config(config)
    holdout = bool((config or {}).get("study", {}).get("holdout_ratio"))
    rows, differences, not_scored = [], [], {}
    for seed in seeds:  # each seed on its own: its items, its draws, its comparisons with its own oracle
        mine = {f: doc for f, doc in docs.items() if seed_of(f) == seed}
        scores = read_item_scores([f for f in samples_files if seed_of(f) == seed],
                                  [f for f in judged_files if seed_of(f) == seed])
        intervals = Intervals(scores, boot)
        rows += summary_rows(mine, intervals)
        compared, not_compared = comparison_rows(scores, seed, holdout) if samples_files else ([], {})
        for r in compared:
            r["ci_low"], r["ci_high"] = intervals.comparison_interval(r) or (None, None)
        rows += compared
        not_scored.update({f: doc["status"] for f, doc in mine.items() if doc.get("status", "scored") != "scored"})
        not_scored.update({(f"seed {seed}: {k}" if len(seeds) > 1 else k): v for k, v in not_compared.items()})
        if differences_out:
            differences += intervals.difference_rows(seed)
    if len(seeds) > 1:
        rows += across_seed_rows(rows, COLUMNS, seeds, boot.level)
        differences += across_seed_rows(differences, DIFFERENCE_COLUMNS, seeds, boot.level)
    rows = sort_rows(rows)
    if provenance_out:
        runs = {f: {k: v for k, v in doc.get("provenance", {}).items() if k != "config"} for f, doc in docs.items()}
        write_json_atomic(provenance_out, {"git_commit": git_commit(), "config": config, "seeds": seeds,
                                           "evaluations": runs, "not_scored": not_scored})
    write_text_atomic(out, _csv(COLUMNS, rows))
    write_json_atomic(Path(out).with_suffix(".json"), summary_json(headline_rows(rows)))
    if differences_out:
        write_text_atomic(differences_out, _csv(DIFFERENCE_COLUMNS, sort_rows(differences)))
    return len(rows)


def _csv(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "forget_ratio": "" if r["forget_ratio"] is None else r["forget_ratio"],
                         **{c: format_value(r.get(c)) for c in ("value", "ci_low", "ci_high", "sd")}})
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
