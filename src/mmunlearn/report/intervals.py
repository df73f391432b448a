"""The intervals of results/summary.csv and the paired differences of results/differences.csv, from the
per-item records every evaluation writes (``<split>.samples.jsonl``; the judge's ``<split>.factuality.jsonl``).
The statistics are in report/uncertainty.py; this module only groups the records.

A summary cell gets an interval when its value is the mean of per-item scores (accuracy, ROUGE, option
probability, truth ratio, NLL, memorisation, factuality) and that mean reproduces the value the evaluation
wrote; of the cross-model measures, MIA AUC, PrivLeak and the reference gap get theirs from the same draws
(``Intervals.comparison_interval``); forget quality gets none: it is itself a test's p-value.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..eval import privacy
from ..eval.identity import RATIO_FREE_SPLITS, run_identity
from .items import MIA, ItemScores
from .uncertainty import Bootstrap, ItemGroup, auc_replicates, group_seed, interval, mean_ci, paired_replicates

REFERENCE = "vanilla"
RELATIVE_SCORE = "relative_score"  # LLaVA-Bench: a ratio of two means (eval/llava_bench.py)
DIFFERENCE_COLUMNS = ["model", "comparison", "method", "unlearn_modality", "against", "forget_ratio", "seed",
                      "split", "input_modality", "task", "metric", "value", "ci_low", "ci_high", "n", "excludes_zero", "sd"]


class Intervals:
    """Cell intervals and paired differences over ``ItemScores``, one set of draws per (model, set, task,
    input modality)."""

    def __init__(self, scores: ItemScores, boot: Bootstrap):
        self.scores, self.boot = scores, boot
        self._groups: dict = {}

    def group(self, model: str, split: str, task: str, modality: str) -> ItemGroup:
        key = (model, split, task, modality)
        if key not in self._groups:
            self._groups[key] = ItemGroup(self.scores.people[key], self.boot, group_seed(self.boot.seed, *key))
        return self._groups[key]

    def vector(self, model, run, split, task, modality, metric) -> np.ndarray | None:
        got = self.scores.column(model, run, split, task, modality, metric)
        if got is None or np.isnan(got[1]).all():
            return None
        group = self.group(model, split, task, modality)
        v = np.full(len(group.ids), np.nan)
        v[[group.index[i] for i in got[0]]] = got[1]
        return v

    def cell(self, model, run, split, task, modality, metric, value: float | None) -> tuple[float, float] | None:
        """The interval of a summary cell, or None when its value is not the mean of the per-item scores (or, for
        LLaVA-Bench's relative score, the ratio of two such means)."""
        if metric.startswith(RELATIVE_SCORE):
            return self.relative_score_cell(model, run, split, task, modality, metric, value)
        v = self.vector(model, run, split, task, modality, metric)
        if v is None or value is None or not np.isclose(np.nanmean(v), value, rtol=1e-6, atol=1e-9):
            return None
        return mean_ci(self.group(model, split, task, modality), v, self.boot.level)

    def relative_score(self, model, run, split, task, modality, metric):
        """LLaVA-Bench's mean(ours) / mean(reference) x 100, its replicates (both means on the same draws of images;
        the reviewer scored both answers to a question in one reply) and n, or None."""
        category = metric[len(RELATIVE_SCORE):]
        ours = self.vector(model, run, split, task, modality, f"reviewer_model{category}")
        ref = self.vector(model, run, split, task, modality, f"reviewer_reference{category}")
        if ours is None or ref is None:
            return None
        group = self.group(model, split, task, modality)
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = group.replicates(ours) / group.replicates(ref) * 100
        return float(np.nanmean(ours) / np.nanmean(ref) * 100), reps, int((~np.isnan(ours)).sum())

    def relative_score_cell(self, model, run, split, task, modality, metric, value) -> tuple[float, float] | None:
        got = self.relative_score(model, run, split, task, modality, metric)
        if got is None or value is None or not np.isclose(got[0], value, rtol=1e-6):
            return None
        return interval(got[1], self.boot.level)

    def paired(self, model, split, task, modality, metric, run, against):
        """(run - against, replicates, n) on the items both scored, or None. LLaVA-Bench's relative scores: the
        difference of the two ratios on the same draws of images."""
        if metric.startswith(RELATIVE_SCORE):
            a = self.relative_score(model, run, split, task, modality, metric)
            b = self.relative_score(model, against, split, task, modality, metric)
            return (a[0] - b[0], a[1] - b[1], min(a[2], b[2])) if a and b else None
        a = self.vector(model, run, split, task, modality, metric)
        b = self.vector(model, against, split, task, modality, metric)
        if a is None or b is None:
            return None
        diff, reps, n = paired_replicates(self.group(model, split, task, modality), a, b)
        return (diff, reps, n) if n else None

    def compared_cells(self, model, run, split) -> list[tuple[str, str, str]]:
        """(task, modality, metric) of the cells summary.csv reports as means (or, for LLaVA-Bench, ratios)."""
        cells = self.scores.cells(model, run, split)
        return [c for c in cells if _summarised(c[2])] + \
            [(t, m, RELATIVE_SCORE + metric[len("reviewer_model"):]) for t, m, metric in cells
             if metric.startswith("reviewer_model")]

    def _row(self, model, comparison, run, against, split, task, modality, metric, diff, reps, n, seed) -> dict:
        low, high = interval(reps, self.boot.level) or (None, None)
        excludes = low is not None and (low > 0 or high < 0)
        return {"model": model, "comparison": comparison, **_identity(model, run, split, seed), "against": against,
                "input_modality": modality, "task": task, "metric": metric, "value": diff,
                "ci_low": low, "ci_high": high, "n": n, "excludes_zero": excludes}

    def difference_rows(self, seed: int) -> list[dict]:
        """Every run against vanilla on every set; each method's multimodal against its text-only run; and each
        unlearned run's selectivity margin (forget drop - retain drop, both against vanilla)."""
        rows = []
        by_model = defaultdict(set)
        for model, run, split in self.scores.evaluations:
            by_model[model].add(run)
        for model in sorted(by_model):
            runs = by_model[model]
            for m, run, split in sorted(self.scores.evaluations):
                if m != model:
                    continue
                for task, modality, metric in self.compared_cells(model, run, split):
                    if run != REFERENCE and (got := self.paired(model, split, task, modality, metric, run, REFERENCE)):
                        rows.append(self._row(model, "vs_vanilla", run, REFERENCE, split, task, modality, metric,
                                              *got, seed))
                    other = run.replace("_multimodal_", "_text_")
                    if "_multimodal_" in run and other in runs and (
                            got := self.paired(model, split, task, modality, metric, run, other)):
                        rows.append(self._row(model, "multimodal_vs_text", run, other, split, task, modality,
                                              metric, *got, seed))
            rows += self._selectivity(model, sorted(runs), seed)
        return rows

    def _selectivity(self, model: str, runs: list[str], seed: int) -> list[dict]:
        rows = []
        for run in runs:
            ident = run_identity(model, run, "forget", seed)
            if ident["unlearn_modality"] == "none":
                continue  # base, vanilla, the oracle
            ratio = ident["forget_ratio"]
            forget, retain = f"forget_{ratio}", f"retain_{ratio}"
            for task, modality, metric in self.scores.cells(model, run, forget):
                if not _summarised(metric):
                    continue
                f = self.paired(model, forget, task, modality, metric, run, REFERENCE)
                r = self.paired(model, retain, task, modality, metric, run, REFERENCE)
                if f and r:  # margin = (vanilla - run on forget) - (vanilla - run on retain)
                    rows.append(self._row(model, "selectivity", run, REFERENCE, f"{forget}-{retain}", task, modality,
                                          metric, r[0] - f[0], r[1] - f[1], f[2] + r[2], seed))
        return rows

    def _auc(self, model, run, ratio, task, modality, attack) -> np.ndarray | None:
        """Replicates of the run's MIA AUC: forget people (members) and holdout people (non-members), each set
        resampled with its group's draws, so that two runs' AUCs are paired."""
        sides = []
        for split in (f"forget_{ratio}", "holdout"):
            v = self.vector(model, run, split, task, modality, MIA + attack)
            if v is None:
                return None
            mask = ~np.isnan(v)
            sides += [v[mask], self.group(model, split, task, modality).item_weights(mask)]
        return auc_replicates(*sides)

    def comparison_interval(self, row: dict) -> tuple[float, float] | None:
        """The interval of a summary row comparing a run with the oracle or the holdout (report/compare.py):
        ``mia_auc_<attack>``, ``privleak_<attack>`` (the run's and the oracle's AUCs on the same draws) and
        ``reference_gap`` (paired items); None for the others (forget quality is itself a test's p-value)."""
        if row["value"] is None:
            return None
        model, ratio, metric = row["model"], row["forget_ratio"], row["metric"]
        run, split = run_name(row), split_name(row)
        if metric == "reference_gap":
            got = self.paired(model, split, row["task"], row["input_modality"], "answer_nll", run, f"oracle_{ratio}")
            reps = got[1] if got else None
        elif metric.startswith(("mia_auc_", "privleak_")):
            attack = metric.split("_", 2)[2] if metric.startswith("mia_auc_") else metric.split("_", 1)[1]
            reps = self._auc(model, run, ratio, row["task"], row["input_modality"], attack)
            if reps is not None and metric.startswith("privleak_"):
                ref = self._auc(model, f"oracle_{ratio}", ratio, row["task"], row["input_modality"], attack)
                reps = None if ref is None else privacy.privleak(reps, ref)
        else:
            return None
        return None if reps is None else interval(reps, self.boot.level)


def _summarised(metric: str) -> bool:
    """Whether summary.csv reports the metric as a mean over items: not the attack scores (their AUCs get
    intervals, ``comparison_interval``), the raw truth ratio (forget quality's input), nor LLaVA-Bench's raw
    reviewer scores (summary.csv reports their ratio, ``relative_score``)."""
    return not metric.startswith((MIA, "reviewer_")) and metric != "truth_ratio_raw"


def run_name(row: dict) -> str:
    """The DAG's run name of a summary row (the inverse of eval/identity.py ``run_identity``)."""
    if row["method"] in ("base", "vanilla"):
        return row["method"]
    if row["method"] == "oracle":
        return f"oracle_{row['forget_ratio']}"
    return f"{row['method']}_{row['unlearn_modality']}_{row['forget_ratio']}"


def split_name(row: dict) -> str:
    return row["split"] if row["split"] in RATIO_FREE_SPLITS else f"{row['split']}_{row['forget_ratio']}"


def _identity(model: str, run: str, split: str, seed: int) -> dict:
    """summary.csv's key columns; a selectivity row's split is "forget-retain"."""
    parts = [run_identity(model, run, name, seed) for name in split.split("-")]
    keys = ("method", "unlearn_modality", "forget_ratio", "seed")
    return {**{k: parts[0][k] for k in keys}, "split": "-".join(p["split"] for p in parts)}
