"""The per-item numbers of every evaluation, as aggregation reads them: column-wise and compact.

Each evaluation writes one record per item (``<split>.samples.jsonl``: prompt, gold, output, options, scores) and
the judge one per judged item (``<split>.factuality.jsonl``). Aggregation needs only the numbers: the scores,
classification's raw truth ratio and the membership-attack scores. The paper study writes about a million
records per model, so they are read file by file and kept as one float array per (run, split, task, input
modality, metric) beside the item ids (``bench/aggregate_scale.py`` measures the cost), not as records.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np

MIA = "mia:"  # prefix of the attack scores among an item's metrics
REQUIRED = ("task", "input_modality", "prompt_id")


def _numbers(record: dict) -> dict[str, float]:
    """An item's metrics: its scores, the raw truth ratio (forget quality) and the attack scores."""
    pairs = [*(record.get("score") or {}).items(), ("truth_ratio_raw", record.get("truth_ratio_raw")),
             *((MIA + k, x) for k, x in (record.get("mia") or {}).items())]
    return {k: float(x) for k, x in pairs
            if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)}


class ItemScores:
    """``columns[(model, run, split, task, modality)] = (item ids, {metric: float array, NaN = none})`` and
    ``people[(model, split, task, modality)] = {item: person}`` over every run's items."""

    def __init__(self):
        self.columns: dict[tuple, tuple[list[str], dict[str, np.ndarray]]] = {}
        self.people: dict[tuple, dict[str, str]] = defaultdict(dict)
        self.evaluations: set[tuple[str, str, str]] = set()  # (model, run, split), records or not

    def add(self, model: str, run: str, split: str, records: Iterable[dict], where: str = "") -> None:
        """One evaluation's records (``where`` names their file in errors)."""
        self.evaluations.add((model, run, split))
        rows: dict[tuple[str, str], list[tuple[str, dict]]] = defaultdict(list)
        for n, rec in enumerate(records, 1):
            missing = [k for k in REQUIRED if not isinstance(rec, dict) or k not in rec]
            if missing:
                raise ValueError(f"{where}:{n}: sample record without {', '.join(missing)}")
            item, task, modality = str(rec["prompt_id"]), rec["task"], rec["input_modality"]
            self.people[(model, split, task, modality)].setdefault(item, str(rec.get("profile_id", item)))
            rows[(task, modality)].append((item, _numbers(rec)))
        for (task, modality), items in rows.items():
            metrics = sorted({m for _, numbers in items for m in numbers})
            self.columns[(model, run, split, task, modality)] = (
                [item for item, _ in items],
                {m: np.array([numbers.get(m, np.nan) for _, numbers in items]) for m in metrics})

    def add_judged(self, model: str, run: str, split: str, judged: Iterable[dict], where: str = "") -> None:
        """The judge's factuality per item, as a metric of the generation task's items."""
        by_modality = defaultdict(dict)
        for n, j in enumerate(judged, 1):
            if not isinstance(j, dict) or not {"prompt_id", "input_modality"} <= set(j):
                raise ValueError(f"{where}:{n}: judge record without prompt_id or input_modality")
            if isinstance(j.get("factuality"), (int, float)) and not isinstance(j.get("factuality"), bool):
                by_modality[j["input_modality"]][str(j["prompt_id"])] = float(j["factuality"])
        for modality, scores in by_modality.items():
            key = (model, run, split, "generation", modality)
            ids, metrics = self.columns.get(key, ([], {}))
            known = set(ids)
            ids = ids + [i for i in scores if i not in known]  # judged items the samples file does not hold
            for i in ids[len(known):]:
                self.people[(model, split, "generation", modality)].setdefault(i, i)
            metrics = {m: np.concatenate([a, np.full(len(ids) - len(a), np.nan)]) for m, a in metrics.items()}
            metrics["factuality"] = np.array([scores.get(i, np.nan) for i in ids])
            self.columns[key] = (ids, metrics)

    # -- reading ---------------------------------------------------------------------------------------------
    def cells(self, model: str, run: str, split: str) -> list[tuple[str, str, str]]:
        """(task, modality, metric) of one evaluation."""
        return sorted((k[3], k[4], m) for k, (_, metrics) in self.columns.items() if k[:3] == (model, run, split)
                      for m in metrics)

    def column(self, model, run, split, task, modality, metric) -> tuple[list[str], np.ndarray] | None:
        ids, metrics = self.columns.get((model, run, split, task, modality), (None, {}))
        return (ids, metrics[metric]) if metric in metrics else None

    def values(self, model, run, split, task, modality, metric) -> dict[str, float]:
        """{item: value} of the items that have the metric (empty where none)."""
        got = self.column(model, run, split, task, modality, metric)
        if got is None:
            return {}
        ids, a = got
        return {i: float(x) for i, x in zip(ids, a) if not np.isnan(x)}

    def modalities(self, model: str, run: str, split: str, task: str | None = None) -> list[str]:
        return sorted({k[4] for k in self.columns if k[:3] == (model, run, split) and (task is None or k[3] == task)})


def item_scores(samples: dict[tuple[str, str, str], list[dict]],
                judged: dict[tuple[str, str, str], list[dict]] | None = None) -> ItemScores:
    """ItemScores from records in memory: ``{(model, run, split): records}`` (tests, notebooks)."""
    out = ItemScores()
    for (model, run, split), records in samples.items():
        out.add(model, run, split, records)
    for (model, run, split), records in (judged or {}).items():
        out.add_judged(model, run, split, records)
    return out


def _lines(path: Path) -> Iterable[dict]:
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: malformed sample record ({exc!r})") from None


def eval_seed(path: str | Path) -> int | None:
    """The seed of ``results/eval/<model>/seed<seed>/<run>/<split>.<kind>``; None for a path without one."""
    parts = Path(path).parts
    folder = parts[-3] if len(parts) > 2 else ""
    return int(folder[4:]) if folder.startswith("seed") and folder[4:].isdigit() else None


def eval_names(path: str | Path) -> tuple[str, str, str]:
    """(model, run, split) of ``results/eval/<model>/seed<seed>/<run>/<split>.<kind>`` (or without the seed
    folder; kind: json, samples.jsonl, factuality.json, factuality.jsonl; split names hold no dot)."""
    p = Path(path)
    at = 4 if eval_seed(p) is not None else 3  # the model folder, counted from the end
    model = p.parts[-at] if len(p.parts) >= at else ""
    return model, p.parent.name, p.name.split(".")[0]


def read_item_scores(samples_files: Iterable[str | Path], judged_files: Iterable[str | Path] = ()) -> ItemScores:
    """Every evaluation's per-item numbers, read file by file (no file's records are kept)."""
    out = ItemScores()
    for path in map(Path, samples_files):
        out.add(*eval_names(path), _lines(path), where=str(path))
    for path in map(Path, judged_files):
        out.add_judged(*eval_names(path), _lines(path), where=str(path))
    return out
