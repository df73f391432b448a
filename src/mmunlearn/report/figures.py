"""The paper's figures from ``results/summary.csv``, one plotting function each, PNG and PDF, no display.

- Figure 3 (``figure3``): one method, multimodal vs text-only unlearning: the change against vanilla on Forget
  and Test, the absolute score on Retain and Celebrity, for classification / ROUGE-L / cloze, by input
  modality; error bars: the paired 95 % interval of a change, the 95 % interval of a score.
- Figure 4 (``figure4``): the trade-off: x = drop in forget classification accuracy against vanilla, y = the
  utility (retain and celebrity accuracy, MMMU accuracy, LLaVA-Bench relative score: the paper's four panels,
  those the study evaluates), one point per method x variant x ratio, one panel per utility;
  vanilla and the oracle as reference points; error bars on both axes (README "Uncertainty").
- Privacy (``figure_privacy``, ours): forget quality (log10 KS p against the oracle) against model utility, the
  open-unlearning plot, and PrivLeak per method x variant, per input modality (README "Privacy and forget
  quality").
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import textwrap
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: CI, compute nodes
import matplotlib.pyplot as plt  # noqa: E402

from ..eval.identity import RATIO_FREE_SPLITS  # noqa: E402
from ..io import atomic_file, write_text_atomic  # noqa: E402
from .compare import PRIVLEAK_ATTACK  # noqa: E402
from .tables import MODALITIES, read_differences, read_summary, row_interval  # noqa: E402
from .uncertainty import headline_rows, over_seeds  # noqa: E402

FIG3_MEASURES = (("classification", "accuracy", "classification acc"), ("generation", "rougeL", "ROUGE-L"),
                 ("cloze", "accuracy", "cloze acc"))
VARIANTS = ("multimodal", "text")
MODALITY_LABEL = {"image_text": "image+text input", "text": "text-only input"}


def _lookup(rows: list[dict]) -> dict:
    return {(r["model"], r["method"], r["unlearn_modality"], r["forget_ratio"], r["split"], r["input_modality"],
             r["task"], r["metric"]): float(r["value"]) for r in rows if r["value"] != ""}


def _interval_lookup(rows: list[dict]) -> dict:
    return {(r["model"], r["method"], r["unlearn_modality"], r["forget_ratio"], r["split"], r["input_modality"],
             r["task"], r["metric"]): row_interval(r) for r in rows if row_interval(r)}


def _change_lookup(differences: dict) -> dict:
    """Paired intervals of the changes against vanilla, keyed like ``_lookup``."""
    return {(k[1], r["method"], r["unlearn_modality"], k[3], k[4], k[5], k[6], k[7]): row_interval(r)
            for k, r in differences.items() if k[0] == "vs_vanilla" and row_interval(r)}


def _yerr(centre: float, ci: tuple[float, float] | None) -> list[list[float]]:
    """matplotlib's asymmetric error of one point (NaN: no bar)."""
    if ci is None:
        return [[math.nan], [math.nan]]
    return [[max(centre - ci[0], 0.0)], [max(ci[1] - centre, 0.0)]]


def _vanilla(values: dict, model, ratio, split, modality, task, metric):
    """Vanilla's score; its celebrity and utility evaluations depend on no ratio."""
    return values.get((model, "vanilla", "none", "" if split in RATIO_FREE_SPLITS else ratio, split, modality, task,
                       metric))


def _save(fig, out_stem: Path) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        path = out_stem.with_suffix(f".{ext}")
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext)
        paths.append(path)
    plt.close(fig)
    return paths


def figure3(rows: list[dict], model: str, ratio: str, method: str, out_stem: Path,
            classification_metric: str = "accuracy", differences: dict | None = None) -> list[Path]:
    values, scores_ci, changes_ci = _lookup(rows), _interval_lookup(rows), _change_lookup(differences or {})
    measures = [(t, classification_metric, f"classification {classification_metric.replace('_', ' ')}")
                if t == "classification" else (t, m, label) for t, m, label in FIG3_MEASURES]
    splits = ("forget", "test", "retain", "celebrity")
    # each panel its own scale: changes on forget/test are small next to absolute scores on retain/celebrity
    fig, axes = plt.subplots(len(measures), len(splits), figsize=(13, 8.5), squeeze=False)
    width = 0.38
    for i, (task, metric, label) in enumerate(measures):
        for j, split in enumerate(splits):
            ax = axes[i][j]
            delta = split in ("forget", "test")
            for k, variant in enumerate(VARIANTS):
                heights, errors = [], [[], []]
                for modality in MODALITY_LABEL:
                    key = (model, method, variant, ratio, split, modality, task, metric)
                    v = values.get(key)
                    ref = _vanilla(values, model, ratio, split, modality, task, metric)
                    heights.append((v - ref if delta and v is not None and ref is not None else v) or 0.0)
                    low, high = _yerr(heights[-1], (changes_ci if delta else scores_ci).get(key))
                    errors[0] += low
                    errors[1] += high
                xs = [x + (k - 0.5) * width for x in range(len(MODALITY_LABEL))]
                ax.bar(xs, heights, width, label=f"{variant} unlearning", color=("#3b6ea8", "#d98c3f")[k],
                       yerr=errors, capsize=2, error_kw={"linewidth": 0.8})
            ax.set_xticks(range(len(MODALITY_LABEL)), [MODALITY_LABEL[m] for m in MODALITY_LABEL], fontsize=8)
            if delta:
                ax.axhline(0, color="black", linewidth=0.6)
            if i == 0:
                ax.set_title(f"{split}: {'change vs vanilla' if delta else 'score'}", fontsize=10)
            if j == 0:
                ax.set_ylabel(label)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, bbox_to_anchor=(0.5, -0.03))
    fig.suptitle(f"{method}: multimodal vs text-only unlearning ({model}, forget {ratio} %); {_bars(rows)}",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return _save(fig, out_stem)


# Figure 4's utility axes, as in the paper: retain and celebrity classification (``None``: the configured
# classification metric), MMMU accuracy and LLaVA-Bench's relative score; a panel is drawn where the study has it
UTILITIES = (("retain", "classification", None, "retain {metric} (image+text)"),
             ("celebrity", "classification", None, "celebrity {metric} (image+text)"),
             ("mmmu", "mmmu", "accuracy", "MMMU accuracy"),
             ("llava_bench", "llava_bench", "relative_score", "LLaVA-Bench relative score (x100)"))
POINT_FIELDS = ["method", "variant", "forget_ratio", "forget_drop", *(u[0] for u in UTILITIES), "forget_drop_ci_low",
                "forget_drop_ci_high", *(f"{u[0]}_ci_{end}" for u in UTILITIES for end in ("low", "high"))]


def tradeoff_points(rows: list[dict], model: str, classification_metric: str = "accuracy",
                    modality: str = "image_text", differences: dict | None = None) -> list[dict]:
    """One point per method x variant x ratio, and vanilla and the oracle per ratio (variant "none"): the
    forget-accuracy drop against vanilla and the utilities, with their intervals (None where unknown)."""
    values, scores_ci, changes_ci = _lookup(rows), _interval_lookup(rows), _change_lookup(differences or {})
    points = []
    runs = sorted({(r["method"], r["unlearn_modality"], r["forget_ratio"]) for r in rows
                   if r["model"] == model and r["forget_ratio"] and r["method"] != "base"
                   and (r["unlearn_modality"] in VARIANTS or r["method"] in ("vanilla", "oracle"))})
    for method, variant, ratio in runs:
        def key(split, task="classification", metric=classification_metric):
            return (model, method, variant, "" if method == "vanilla" and split in RATIO_FREE_SPLITS else ratio,
                    split, modality, task, metric)
        forget, ref = values.get(key("forget")), _vanilla(values, model, ratio, "forget", modality, "classification",
                                                          classification_metric)
        if forget is None or ref is None:
            continue
        change = (0.0, 0.0) if method == "vanilla" else changes_ci.get(key("forget"))
        point = {"method": method, "variant": variant, "forget_ratio": int(ratio),
                 "forget_drop": round(ref - forget, 6) + 0.0,
                 "forget_drop_ci_low": -change[1] + 0.0 if change else None,
                 "forget_drop_ci_high": -change[0] + 0.0 if change else None}
        for split, task, metric, _ in UTILITIES:
            at = key(split, task, metric or classification_metric)
            ci = scores_ci.get(at)
            point[split] = values.get(at)
            point[f"{split}_ci_low"], point[f"{split}_ci_high"] = ci if ci else (None, None)
        points.append(point)
    return points


def not_scored_reasons(provenance: dict, model: str) -> dict[str, str]:
    """Why a utility benchmark has no number for ``model``: the status of its first unscored file in the
    provenance (``results/eval/<model>/<run>/<benchmark>.<stage>.json``), per benchmark."""
    benchmarks, reasons = {u[0] for u in UTILITIES}, {}
    for path, status in sorted(provenance.get("not_scored", {}).items()):
        benchmark = Path(path).name.split(".")[0]
        if model in Path(path).parts and benchmark in benchmarks:
            reasons.setdefault(benchmark, status)
    return reasons


def _bars(rows: list[dict]) -> str:
    """What the error bars are: the bootstrap over people (one seed), or the t interval over seeds."""
    if over_seeds(rows):
        return "means over seeds, bars: 95 % t intervals over seeds"
    return "bars: 95 % intervals"


def figure4(rows: list[dict], model: str, out_stem: Path, classification_metric: str = "accuracy",
            differences: dict | None = None, not_scored: dict[str, str] | None = None) -> list[Path]:
    """The plot, plus its points as CSV (``<stem>_points.csv``, what ``dvc plots`` draws). ``not_scored``: why a
    panel's benchmark has no number (``not_scored_reasons``), printed on the empty panel."""
    points = tradeoff_points(rows, model, classification_metric, differences=differences)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=POINT_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(points)
    points_csv = out_stem.with_name(f"{out_stem.name}_points.csv")
    write_text_atomic(points_csv, buf.getvalue())
    # a panel per utility the study evaluates: one with no number (LLaVA-Bench without a judge key) says so
    present = {(r["split"], r["task"], r["metric"]) for r in rows if r["model"] == model}
    utilities = [u for u in UTILITIES if (u[0], u[1], u[2] or classification_metric) in present] or \
        list(UTILITIES[:2])
    columns = min(len(utilities), 2)
    rows_of_panels = -(-len(utilities) // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(5.5 * columns, 4.5 * rows_of_panels), squeeze=False)
    methods = sorted({p["method"] for p in points if p["variant"] in VARIANTS})
    markers = "osD^vP*X"
    colours = plt.get_cmap("tab10")
    for j, (utility, _, _, label) in enumerate(utilities):
        ax = axes[j // columns][j % columns]
        labelled = set()
        for p in points:
            if p[utility] is None:
                continue
            reference = p["variant"] not in VARIANTS
            i = methods.index(p["method"]) if not reference else 0
            colour = "black" if reference else colours(i)
            x, y = p["forget_drop"], p[utility]
            xerr = _yerr(x, (p["forget_drop_ci_low"], p["forget_drop_ci_high"])
                         if p["forget_drop_ci_low"] is not None else None)
            yerr = _yerr(y, (p[f"{utility}_ci_low"], p[f"{utility}_ci_high"])
                         if p[f"{utility}_ci_low"] is not None else None)
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, elinewidth=0.7, alpha=0.5,
                        capsize=2)
            first = (p["method"], p["variant"]) not in labelled
            labelled.add((p["method"], p["variant"]))
            ax.scatter([x], [y], s=90 if reference else 60,
                       marker={"vanilla": "*", "oracle": "X"}.get(p["method"], markers[i % len(markers)]),
                       label=(p["method"] if reference else f"{p['method']} ({p['variant']})") if first else None,
                       facecolors=colour if p["variant"] != "text" else "none", edgecolors=colour, zorder=3)
            ax.annotate(f"{p['forget_ratio']}%", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if not any(p[utility] is not None for p in points):
            reason = (not_scored or {}).get(utility, "see results/summary.provenance.json")
            reason = reason.removeprefix("not scored: ")
            ax.text(0.5, 0.5, "not scored\n" + "\n".join(textwrap.wrap(reason, 40)), ha="center",
                    va="center", transform=ax.transAxes, fontsize=9, color="grey")
        ax.set_xlabel(f"forget {classification_metric.replace('_', ' ')} drop vs vanilla (image+text)")
        ax.set_ylabel(label.format(metric=classification_metric.replace("_", " ")))
        ax.set_title("utility: " + {"mmmu": "MMMU", "llava_bench": "LLaVA-Bench"}.get(utility, f"{utility} set"))
        ax.grid(alpha=0.3)
    fig.subplots_adjust(hspace=0.35)  # a second row's titles clear the first row's axis labels
    for j in range(len(utilities), rows_of_panels * columns):
        axes[j // columns][j % columns].axis("off")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"Forgetting vs utility ({model}); filled: multimodal, open: text-only unlearning; "
                 f"{_bars(rows)}", fontsize=10)
    return [*_save(fig, out_stem), points_csv]


def figure_privacy(rows: list[dict], model: str, out_stem: Path, classification_metric: str = "accuracy") -> list[Path]:
    """Left: forget quality (log10 p, forget set) against retain classification (the run's own input modality,
    image+text for vanilla and the oracle), one point per run and ratio, vanilla and the oracle as references.
    Right: PrivLeak (Min-K%, fine-tuning QA pairs) per method x variant and input modality; "not scored" without
    a holdout."""
    values = _lookup(rows)
    runs = sorted({(r["method"], r["unlearn_modality"], r["forget_ratio"]) for r in rows
                   if r["model"] == model and r["forget_ratio"] and r["method"] != "base"})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.get_cmap("tab10")
    methods = sorted({m for m, _, _ in runs})
    for method, variant, ratio in runs:
        modality = "text" if variant == "text" else "image_text"
        p = values.get((model, method, variant, ratio, "forget", modality, "classification", "forget_quality"))
        utility = values.get((model, method, variant, ratio, "retain", modality, "classification",
                              classification_metric))
        if p is None or utility is None:
            continue
        reference = method in ("vanilla", "oracle")
        left.scatter([utility], [math.log10(max(p, 1e-300))], s=90 if reference else 50,
                     marker={"vanilla": "*", "oracle": "X"}.get(method, "o"),
                     color="black" if reference else colours(methods.index(method)),
                     facecolors="none" if variant == "text" else None,
                     label=method if variant in ("none", "multimodal") else None)
        left.annotate(f"{method if reference else ''} {ratio}%".strip(), (utility, math.log10(max(p, 1e-300))),
                      fontsize=7, xytext=(3, 3), textcoords="offset points")
    left.set_xlabel(f"retain {classification_metric.replace('_', ' ')} (model utility)")
    left.set_ylabel("forget quality: log10 KS p vs the oracle")
    left.set_title("forget quality vs utility (open marker: text-only unlearning)")
    left.grid(alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    if handles:
        left.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), fontsize=7)
    bars = [(f"{m} ({v})" if v != "none" else m, ratio, mod,
             values.get((model, m, v, ratio, "forget", mod, "likelihood_qa", f"privleak_{PRIVLEAK_ATTACK}")))
            for m, v, ratio in runs for mod in MODALITIES]
    scored = [b for b in bars if b[3] is not None]
    if scored:
        labels = sorted({f"{run} {ratio}%" for run, ratio, _, _ in scored})
        for k, mod in enumerate(MODALITIES):
            got = {f"{run} {ratio}%": v for run, ratio, m, v in scored if m == mod}
            right.barh([i + 0.4 * k for i in range(len(labels))], [got.get(lab, 0.0) for lab in labels], height=0.4,
                       label=MODALITY_LABEL[mod])
        right.set_yticks([i + 0.2 for i in range(len(labels))], labels, fontsize=7)
        right.axvline(0, color="black", lw=0.8)
        right.set_xlabel("PrivLeak % (0 = the oracle; -100 = memorised; > 0 = over-unlearned)")
        right.legend(fontsize=7)
    else:
        right.text(0.5, 0.5, "PrivLeak not scored: no holdout\n(study.holdout_ratio: 0)", ha="center", va="center")
        right.set_axis_off()
    right.set_title("PrivLeak (Min-K%, fine-tuning QA pairs)")
    fig.suptitle(f"Privacy and forget quality ({model})")
    return _save(fig, out_stem)


def _draw(job: tuple) -> list[Path]:
    figure, args = job
    return figure(*args)


def write_figures(summary: str | Path, out_dir: str | Path, classification_metric: str = "accuracy",
                  differences: str | Path | None = None, provenance: str | Path | None = None,
                  workers: int = 1) -> list[Path]:
    """Every figure of the summary; ``workers`` > 1 draws them in that many forked processes (they are
    independent, and the job that draws them ends the DAG with the other cores idle)."""
    rows = headline_rows(read_summary(summary))
    diffs = read_differences(differences)
    provenance = json.loads(Path(provenance).read_text()) if provenance else {}
    out_dir = Path(out_dir)
    jobs = []
    for model in sorted({r["model"] for r in rows}):
        for method, ratio in sorted({(r["method"], r["forget_ratio"]) for r in rows
                                     if r["model"] == model and r["unlearn_modality"] in VARIANTS}):
            jobs.append((figure3, (rows, model, ratio, method, out_dir / f"fig3_{model}_forget{ratio}_{method}",
                                   classification_metric, diffs)))
        jobs.append((figure4, (rows, model, out_dir / f"fig4_{model}", classification_metric, diffs,
                               not_scored_reasons(provenance, model))))
        if any(r["model"] == model and r["metric"] == "forget_quality" for r in rows):
            jobs.append((figure_privacy, (rows, model, out_dir / f"privacy_{model}", classification_metric)))
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
            drawn = list(pool.map(_draw, jobs))
    else:
        drawn = [_draw(job) for job in jobs]
    return [path for paths in drawn for path in paths]
