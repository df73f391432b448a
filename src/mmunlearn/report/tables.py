"""The paper's tables from ``results/summary.csv``: per model and forget ratio, one row per run (vanilla, the
oracle, each method x unlearning variant) and one column per set x measurement x input modality, with each
unlearned run's change against vanilla beside its value. Written as CSV (values, intervals and deltas as
numbers) and Markdown (``0.71 [0.62, 0.80] (-0.12*)``: the value, its 95 % bootstrap interval, the change
against vanilla, * where the change's paired interval excludes 0; ``results/differences.csv``). Beside them the
selectivity table (forget drop, retain drop and their difference, each with its paired interval) and the
privacy table."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import NamedTuple

from ..eval import llava_bench
from ..io import write_text_atomic
from .compare import PRIVLEAK_ATTACK
from .uncertainty import ACROSS_SEEDS, headline_rows, over_seeds

SETS = ("forget", "test", "retain", "celebrity")
MODALITIES = ("image_text", "text")
# (task, metric, column label): the paper's four measurements, plus the option log-likelihood accuracy
MEASURES = (("classification", "accuracy", "class. acc"), ("classification", "accuracy_loglik", "class. acc (loglik)"),
            ("generation", "rougeL", "ROUGE-L"), ("generation", "factuality", "factuality"),
            ("cloze", "accuracy", "cloze acc"))
REFERENCE_RUNS = ("vanilla", "oracle")
# the utility benchmarks' columns (split, task, metric, label), image+text only: the paper's Figure 4 measures
UTILITY_MEASURES = (("mmmu", "mmmu", "accuracy", "MMMU acc"), ("mmmu", "mmmu", "accuracy_loglik", "MMMU acc (loglik)"),
                    ("llava_bench", "llava_bench", llava_bench.metric_name(), "LLaVA-Bench"),
                    *(("llava_bench", "llava_bench", llava_bench.metric_name(c), f"LLaVA-Bench {c}")
                      for c in llava_bench.CATEGORIES))


def read_summary(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_differences(path: str | Path | None) -> dict[tuple, dict]:
    """``results/differences.csv`` keyed by (comparison, model, run label, forget ratio, split, input modality,
    task, metric); empty without a file (a summary from before the intervals)."""
    if path is None or not Path(path).is_file():
        return {}
    return {(r["comparison"], r["model"], run_label(r), r["forget_ratio"], r["split"], r["input_modality"],
             r["task"], r["metric"]): r for r in headline_rows(read_summary(path))}


def run_label(r: dict) -> str:
    return r["method"] if r["unlearn_modality"] == "none" else f"{r['method']} ({r['unlearn_modality']})"


def _value(row: dict | None) -> float | None:
    return float(row["value"]) if row and row["value"] != "" else None


def seeds_note(rows: list[dict]) -> list[str]:
    """The Markdown line saying the table shows means over seeds (``rows``: all of summary.csv), or nothing."""
    if not over_seeds(rows):
        return []
    seeds = len({str(r["seed"]) for r in rows} - {ACROSS_SEEDS})
    return [f"**Over {seeds} seeds**: every value is the mean over the seeds, every interval the 95 % Student-t "
            "interval of that mean over seeds (not the bootstrap over people; README \"Uncertainty\"), and * marks "
            "a change whose interval over seeds excludes 0. Each seed's own rows are in results/summary.csv.", ""]


def row_interval(row: dict | None) -> tuple[float, float] | None:
    """(ci_low, ci_high) of a summary or differences row, None where it has none."""
    if not row or row.get("ci_low", "") == "" or row.get("ci_high", "") == "":
        return None
    return float(row["ci_low"]), float(row["ci_high"])


class Cell(NamedTuple):
    value: float | None
    delta: float | None  # against vanilla
    ci: tuple[float, float] | None = None  # the value's interval
    delta_ci: tuple[float, float] | None = None  # the change's paired interval

    @property
    def significant(self) -> bool:
        return self.delta_ci is not None and (self.delta_ci[0] > 0 or self.delta_ci[1] < 0)


def column(split: str, task: str, metric: str, modality: str) -> str:
    return f"{split}/{task}.{metric}/{modality}"


def table_specs(rows: list[dict]) -> list[tuple[str, str, str, str]]:
    """(split, task, metric, input modality) of every column: each set x measure x modality, then the utility
    benchmarks' measures the summary holds."""
    present = {(r["split"], r["task"], r["metric"]) for r in rows}
    return [(s, task, metric, m) for s in SETS for task, metric, _ in MEASURES for m in MODALITIES] + \
        [(s, task, metric, "image_text") for s, task, metric, _ in UTILITY_MEASURES if (s, task, metric) in present]


def table_cells(rows: list[dict], model: str, ratio: str,
                differences: dict | None = None) -> tuple[list[str], list[str], dict]:
    """(run labels, column keys, {(run, column): Cell}) for one model and ratio. The celebrity set and the utility
    benchmarks of vanilla depend on no ratio: their rows are shared by every ratio's table."""
    index = {}
    for r in rows:
        if r["model"] != model or r["forget_ratio"] not in (ratio, ""):
            continue
        index[(run_label(r), r["split"], r["input_modality"], r["task"], r["metric"])] = r
    runs = [run for run in REFERENCE_RUNS if any(k[0] == run for k in index)]
    runs += sorted({k[0] for k in index} - set(runs) - {"base"})
    specs = table_specs(rows)
    columns = [column(*spec) for spec in specs]
    cells = {}
    for run in runs:
        for s, task, metric, m in specs:
            row = index.get((run, s, m, task, metric))
            value, ref = _value(row), _value(index.get(("vanilla", s, m, task, metric)))
            delta = value - ref if run != "vanilla" and value is not None and ref is not None else None
            diff = (differences or {}).get(("vs_vanilla", model, run, ratio, s, m, task, metric))
            cells[(run, column(s, task, metric, m))] = Cell(value, delta, row_interval(row),
                                                            row_interval(diff) if delta is not None else None)
    return runs, columns, cells


def _fmt(cell: Cell, metric_label: str) -> str:
    if cell.value is None:
        return "n/s" if metric_label == "factuality" or metric_label.startswith("LLaVA") else "–"
    digits = 1 if metric_label == "factuality" or metric_label.startswith("LLaVA") else 2
    text = f"{cell.value:.{digits}f}"
    if cell.ci:
        text += f" [{cell.ci[0]:.{digits}f}, {cell.ci[1]:.{digits}f}]"
    return text if cell.delta is None else f"{text} ({cell.delta:+.{digits}f}{'*' if cell.significant else ''})"


def _numbers(values) -> list[str]:
    return ["" if v is None else f"{v:.6f}" for v in values]


def write_tables(summary: str | Path, out_dir: str | Path, differences: str | Path | None = None) -> list[Path]:
    """One CSV and one Markdown table per model and forget ratio, plus the selectivity tables; returns the files
    written."""
    every_seed = read_summary(summary)
    rows, note = headline_rows(every_seed), seeds_note(every_seed)
    diffs = read_differences(differences)
    out_dir = Path(out_dir)
    written = []
    for model in sorted({r["model"] for r in rows}):
        for ratio in sorted({r["forget_ratio"] for r in rows if r["model"] == model and r["forget_ratio"]}, key=int):
            runs, columns, cells = table_cells(rows, model, ratio, diffs)
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["run", *columns, *[f"delta {c}" for c in columns],
                        *[f"{end} {c}" for c in columns for end in ("ci_low", "ci_high")],
                        *[f"delta {end} {c}" for c in columns for end in ("ci_low", "ci_high")]])
            for run in runs:
                mine = [cells[(run, c)] for c in columns]
                w.writerow([run, *_numbers(c.value for c in mine), *_numbers(c.delta for c in mine),
                            *_numbers(x for c in mine for x in (c.ci or (None, None))),
                            *_numbers(x for c in mine for x in (c.delta_ci or (None, None)))])
            stem = out_dir / f"{model}_forget{ratio}"
            write_text_atomic(stem.with_suffix(".csv"), buf.getvalue())
            md = [f"## {model}, forget {ratio} %", "",
                  "Values per set, measurement and input modality (img = image+text, txt = text only), with their "
                  "95 % bootstrap interval over people in square brackets; in round brackets the change against "
                  "vanilla, * where its paired 95 % interval excludes 0 (results/differences.csv). n/s: not scored "
                  "(no judge key).", "", *note]
            for s in SETS:
                head = [f"{label} {'img' if m == 'image_text' else 'txt'}" for _, _, label in MEASURES
                        for m in MODALITIES]
                md += [f"### {s}", "", "| run | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
                for run in runs:
                    row = [_fmt(cells[(run, column(s, task, metric, m))], label) for task, metric, label in MEASURES
                           for m in MODALITIES]
                    md.append(f"| {run} | " + " | ".join(row) + " |")
                md.append("")
            utility = [(s, task, metric, label) for s, task, metric, label in UTILITY_MEASURES
                       if column(s, task, metric, "image_text") in columns]
            if utility:
                md += ["### utility (image+text; README \"Model utility: MMMU and LLaVA-Bench\")", "",
                       "| run | " + " | ".join(label for *_, label in utility) + " |",
                       "|---" * (len(utility) + 1) + "|"]
                md += [f"| {run} | " + " | ".join(_fmt(cells[(run, column(s, task, metric, "image_text"))], label)
                                                  for s, task, metric, label in utility) + " |" for run in runs]
                md.append("")
            write_text_atomic(stem.with_suffix(".md"), "\n".join(md))
            written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
            written += _selectivity_table(diffs, model, ratio, out_dir, note)
    return written


# The selectivity table: per unlearned run, how much more it forgets than it costs the retain set, on each input
# modality, for the measures below (classification by parsed letter and by option log-likelihood).
SELECTIVITY_MEASURES = (("classification", "accuracy"), ("classification", "accuracy_loglik"), ("cloze", "accuracy"),
                        ("generation", "rougeL"))


def _selectivity_table(diffs: dict, model: str, ratio: str, out_dir: Path, note: list[str] = ()) -> list[Path]:
    runs = sorted({k[2] for k in diffs if k[0] == "selectivity" and k[1] == model and k[3] == ratio})
    if not runs:
        return []

    def interval_text(r: dict, sign: float = 1.0) -> str:
        v, low, high = (sign * float(r[c]) + 0.0 if r[c] != "" else None for c in ("value", "ci_low", "ci_high"))
        low, high = sorted((low, high)) if low is not None else (None, None)
        return f"{v:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None else "")

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "input_modality", "task", "metric", "forget_drop", "forget_drop_ci_low",
                "forget_drop_ci_high", "retain_drop", "retain_drop_ci_low", "retain_drop_ci_high", "margin",
                "margin_ci_low", "margin_ci_high", "margin_excludes_zero"])
    md = [f"## {model}, forget {ratio} %: selectivity", "",
          "Drop = vanilla minus the run (forget and retain sets), margin = forget drop - retain drop, each with its "
          "paired 95 % bootstrap interval over people; * where the margin's interval excludes 0.", "", *note,
          "| run | input | measure | forget drop | retain drop | margin |", "|---|---|---|---|---|---|"]
    for run in runs:
        for mod in MODALITIES:
            for task, metric in SELECTIVITY_MEASURES:
                f, r, m = (diffs.get((kind, model, run, ratio, split, mod, task, metric)) for kind, split in
                           (("vs_vanilla", "forget"), ("vs_vanilla", "retain"), ("selectivity", "forget-retain")))
                if not (f and r and m):
                    continue
                neg = [(-float(x[c]) if x[c] != "" else None) for x in (f, r) for c in ("value", "ci_high", "ci_low")]
                w.writerow([run, mod, task, metric, *_numbers(neg[:3]), *_numbers(neg[3:]),
                            *_numbers(float(m[c]) if m[c] != "" else None for c in ("value", "ci_low", "ci_high")),
                            m["excludes_zero"]])
                star = "*" if m["excludes_zero"] == "True" else ""
                md.append(f"| {run} | {'img' if mod == 'image_text' else 'txt'} | {task}.{metric} | "
                          f"{interval_text(f, -1)} | {interval_text(r, -1)} | {interval_text(m)}{star} |")
    stem = out_dir / f"{model}_forget{ratio}_selectivity"
    write_text_atomic(stem.with_suffix(".csv"), buf.getvalue())
    write_text_atomic(stem.with_suffix(".md"), "\n".join(md) + "\n")
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]


# The privacy and forget-quality table (README "Privacy and forget quality"): (split, task, metric, label, digits).
# Membership inference on the people's fine-tuning QA pairs (likelihood_qa), with the MUSE/open-unlearning
# attack (Min-K%, k = 0.4) for the AUC and PrivLeak.
PRIVACY_MEASURES = (
    ("forget", "classification", "forget_quality", "forget quality p", 3),
    ("forget", "classification", "truth_ratio", "truth ratio", 2),
    ("forget", "classification", "option_prob", "option prob", 2),
    ("forget", "likelihood_qa", "exact_memorisation", "exact mem.", 2),
    ("forget", "likelihood_qa", "extraction_strength", "extraction", 2),
    ("forget", "likelihood_qa", f"mia_auc_{PRIVLEAK_ATTACK}", "MIA AUC", 2),
    ("forget", "likelihood_qa", f"privleak_{PRIVLEAK_ATTACK}", "PrivLeak %", 1),
    ("forget", "likelihood_qa", "reference_gap", "NLL gap", 2),
    ("retain", "classification", "truth_ratio", "retain truth ratio", 2),
)


# The privacy measures whose interval the Markdown table prints (the CSV has every interval).
PRIVACY_INTERVALS = {f"mia_auc_{PRIVLEAK_ATTACK}", f"privleak_{PRIVLEAK_ATTACK}", "reference_gap"}


def write_privacy_tables(summary: str | Path, out_dir: str | Path) -> list[Path]:
    """Per model and forget ratio, ``<model>_forget<ratio>_privacy.{csv,md}``: one row per run, the measures
    of ``PRIVACY_MEASURES`` per input modality. Empty (CSV) / "n/s" (Markdown) where not scored, e.g. MIA AUC
    and PrivLeak without a holdout."""
    every_seed = read_summary(summary)
    rows, note = headline_rows(every_seed), seeds_note(every_seed)
    out_dir = Path(out_dir)
    written = []
    for model in sorted({r["model"] for r in rows}):
        for ratio in sorted({r["forget_ratio"] for r in rows if r["model"] == model and r["forget_ratio"]}, key=int):
            index = {}
            for r in rows:
                if r["model"] == model and r["forget_ratio"] == ratio:
                    index[(run_label(r), r["split"], r["input_modality"], r["task"], r["metric"])] = r
            runs = [run for run in (*REFERENCE_RUNS, "base") if any(k[0] == run for k in index)]
            runs += sorted({k[0] for k in index} - set(runs))
            keys = [(s, t, m, label, digits, mod) for s, t, m, label, digits in PRIVACY_MEASURES for mod in MODALITIES]
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["run", *[column(s, t, m, mod) for s, t, m, _, _, mod in keys],
                        *[f"{end} {column(s, t, m, mod)}" for s, t, m, _, _, mod in keys for end in ("ci_low", "ci_high")]])
            for run in runs:
                found = [index.get((run, s, mod, t, m)) for s, t, m, _, _, mod in keys]
                w.writerow([run, *_numbers(_value(r) for r in found),
                            *_numbers(x for r in found for x in (row_interval(r) or (None, None)))])
            stem = out_dir / f"{model}_forget{ratio}_privacy"
            write_text_atomic(stem.with_suffix(".csv"), buf.getvalue())
            md = [f"## {model}, forget {ratio} %: privacy and forget quality", "",
                  "Forget set unless named. Forget quality: KS-test p of the truth ratios against the oracle's "
                  "(1 = indistinguishable). MIA AUC (Min-K%, fine-tuning QA pairs, forget people vs the holdout): "
                  "1 = members stand out, 0.5 = not detectable. PrivLeak: relative to the oracle's AUC, -100 = "
                  "as exposed as a memorising model, 0 = the oracle, > 0 = over-unlearned. NLL gap: answer NLL "
                  "minus the oracle's (< 0: still likelier than never learnt). In brackets: 95 % bootstrap intervals "
                  "over people (README \"Uncertainty\"). n/s: not scored (README).", "", *note]
            for mod in MODALITIES:
                head = [label for _, _, _, label, _ in PRIVACY_MEASURES]
                md += [f"### {'image+text' if mod == 'image_text' else 'text-only'} input", "",
                       "| run | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
                for run in runs:
                    cells = []
                    for s, t, m, _, digits in PRIVACY_MEASURES:
                        row = index.get((run, s, mod, t, m))
                        v, ci = _value(row), row_interval(row)
                        small = v is not None and m == "forget_quality" and 0 < v < 10 ** -digits
                        text = "n/s" if v is None else f"{v:.1e}" if small else f"{v:.{digits}f}"
                        if ci and m in PRIVACY_INTERVALS:
                            text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
                        cells.append(text)
                    md.append(f"| {run} | " + " | ".join(cells) + " |")
                md.append("")
            write_text_atomic(stem.with_suffix(".md"), "\n".join(md))
            written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    return written
