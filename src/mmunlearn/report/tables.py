"""The paper's tables from ``results/summary.csv``: per model and forget ratio, one row per run (vanilla, the
oracle, each method x unlearning variant) and one column per set x measurement x input modality, with each
unlearned run's change against vanilla beside its value. Written as CSV (values and deltas as numbers) and
Markdown (``0.71 (-0.12)``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..io import write_text_atomic
from .compare import PRIVLEAK_ATTACK

SETS = ("forget", "test", "retain", "celebrity")
MODALITIES = ("image_text", "text")
# (task, metric, column label): the paper's four measurements, plus the option log-likelihood accuracy
MEASURES = (("classification", "accuracy", "class. acc"), ("classification", "accuracy_loglik", "class. acc (loglik)"),
            ("generation", "rougeL", "ROUGE-L"), ("generation", "factuality", "factuality"),
            ("cloze", "accuracy", "cloze acc"))
REFERENCE_RUNS = ("vanilla", "oracle")


def read_summary(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _value(row: dict | None) -> float | None:
    return float(row["value"]) if row and row["value"] != "" else None


def column(split: str, task: str, metric: str, modality: str) -> str:
    return f"{split}/{task}.{metric}/{modality}"


def table_cells(rows: list[dict], model: str, ratio: str) -> tuple[list[str], list[str], dict]:
    """(run labels, column keys, {(run, column): (value, delta vs vanilla)}) for one model and ratio. The
    celebrity set of vanilla depends on no ratio: its row is shared by every ratio's table."""
    index = {}
    for r in rows:
        if r["model"] != model or r["forget_ratio"] not in (ratio, ""):
            continue
        run = r["method"] if r["unlearn_modality"] == "none" else f"{r['method']} ({r['unlearn_modality']})"
        index[(run, r["split"], r["input_modality"], r["task"], r["metric"])] = r
    runs = [run for run in REFERENCE_RUNS if any(k[0] == run for k in index)]
    runs += sorted({k[0] for k in index} - set(runs) - {"base"})
    columns = [column(s, task, metric, m) for s in SETS for task, metric, _ in MEASURES for m in MODALITIES]
    cells = {}
    for run in runs:
        for s in SETS:
            for task, metric, _ in MEASURES:
                for m in MODALITIES:
                    value = _value(index.get((run, s, m, task, metric)))
                    ref = _value(index.get(("vanilla", s, m, task, metric)))
                    delta = value - ref if run != "vanilla" and value is not None and ref is not None else None
                    cells[(run, column(s, task, metric, m))] = (value, delta)
    return runs, columns, cells


def _fmt(value: float | None, delta: float | None, metric_label: str) -> str:
    if value is None:
        return "n/s" if metric_label == "factuality" else "–"
    digits = 1 if metric_label == "factuality" else 2
    text = f"{value:.{digits}f}"
    return text if delta is None else f"{text} ({delta:+.{digits}f})"


def write_tables(summary: str | Path, out_dir: str | Path) -> list[Path]:
    """One CSV and one Markdown table per model and forget ratio; returns the files written."""
    rows = read_summary(summary)
    out_dir = Path(out_dir)
    written = []
    for model in sorted({r["model"] for r in rows}):
        for ratio in sorted({r["forget_ratio"] for r in rows if r["model"] == model and r["forget_ratio"]}, key=int):
            runs, columns, cells = table_cells(rows, model, ratio)
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["run", *columns, *[f"delta {c}" for c in columns]])
            for run in runs:
                values = [cells[(run, c)][0] for c in columns]
                deltas = [cells[(run, c)][1] for c in columns]
                w.writerow([run, *["" if v is None else f"{v:.6f}" for v in values],
                            *["" if d is None else f"{d:.6f}" for d in deltas]])
            stem = out_dir / f"{model}_forget{ratio}"
            write_text_atomic(stem.with_suffix(".csv"), buf.getvalue())
            md = [f"## {model}, forget {ratio} %", "",
                  "Values per set, measurement and input modality (img = image+text, txt = text only); in "
                  "brackets the change against vanilla. n/s: not scored (no judge key).", ""]
            for s in SETS:
                head = [f"{label} {'img' if m == 'image_text' else 'txt'}" for _, _, label in MEASURES
                        for m in MODALITIES]
                md += [f"### {s}", "", "| run | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
                for run in runs:
                    row = [_fmt(*cells[(run, column(s, task, metric, m))], label) for task, metric, label in MEASURES
                           for m in MODALITIES]
                    md.append(f"| {run} | " + " | ".join(row) + " |")
                md.append("")
            write_text_atomic(stem.with_suffix(".md"), "\n".join(md))
            written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    return written


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


def write_privacy_tables(summary: str | Path, out_dir: str | Path) -> list[Path]:
    """Per model and forget ratio, ``<model>_forget<ratio>_privacy.{csv,md}``: one row per run, the measures
    of ``PRIVACY_MEASURES`` per input modality. Empty (CSV) / "n/s" (Markdown) where not scored, e.g. MIA AUC
    and PrivLeak without a holdout."""
    rows = read_summary(summary)
    out_dir = Path(out_dir)
    written = []
    for model in sorted({r["model"] for r in rows}):
        for ratio in sorted({r["forget_ratio"] for r in rows if r["model"] == model and r["forget_ratio"]}, key=int):
            index = {}
            for r in rows:
                if r["model"] == model and r["forget_ratio"] == ratio:
                    run = r["method"] if r["unlearn_modality"] == "none" else f"{r['method']} ({r['unlearn_modality']})"
                    index[(run, r["split"], r["input_modality"], r["task"], r["metric"])] = _value(r)
            runs = [run for run in (*REFERENCE_RUNS, "base") if any(k[0] == run for k in index)]
            runs += sorted({k[0] for k in index} - set(runs))
            keys = [(s, t, m, label, digits, mod) for s, t, m, label, digits in PRIVACY_MEASURES for mod in MODALITIES]
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["run", *[column(s, t, m, mod) for s, t, m, _, _, mod in keys]])
            for run in runs:
                values = [index.get((run, s, mod, t, m)) for s, t, m, _, _, mod in keys]
                w.writerow([run, *["" if v is None else f"{v:.6f}" for v in values]])
            stem = out_dir / f"{model}_forget{ratio}_privacy"
            write_text_atomic(stem.with_suffix(".csv"), buf.getvalue())
            md = [f"## {model}, forget {ratio} %: privacy and forget quality", "",
                  "Forget set unless named. Forget quality: KS-test p of the truth ratios against the oracle's "
                  "(1 = indistinguishable). MIA AUC (Min-K%, fine-tuning QA pairs, forget people vs the holdout): "
                  "1 = members stand out, 0.5 = not detectable. PrivLeak: relative to the oracle's AUC, -100 = "
                  "as exposed as a memorising model, 0 = the oracle, > 0 = over-unlearned. NLL gap: answer NLL "
                  "minus the oracle's (< 0: still likelier than never learnt). n/s: not scored (README).", ""]
            for mod in MODALITIES:
                head = [label for _, _, _, label, _ in PRIVACY_MEASURES]
                md += [f"### {'image+text' if mod == 'image_text' else 'text-only'} input", "",
                       "| run | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
                for run in runs:
                    cells = []
                    for s, t, m, _, digits in PRIVACY_MEASURES:
                        v = index.get((run, s, mod, t, m))
                        small = v is not None and m == "forget_quality" and 0 < v < 10 ** -digits
                        cells.append("n/s" if v is None else f"{v:.1e}" if small else f"{v:.{digits}f}")
                    md.append(f"| {run} | " + " | ".join(cells) + " |")
                md.append("")
            write_text_atomic(stem.with_suffix(".md"), "\n".join(md))
            written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    return written
