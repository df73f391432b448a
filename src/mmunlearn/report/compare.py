"""Metrics that compare a model run with another, or its members with non-members, from the evaluations'
per-item records (``*.samples.jsonl``): forget quality (KS test of truth ratios against the oracle), the
reference gap (answer NLL against the oracle), membership-inference AUCs (forget people against the holdout)
and PrivLeak (that AUC against the oracle's). Formulas and conventions: eval/privacy.py.

Every run with a forget ratio r is compared with ``oracle_r`` on the same items (matched by prompt id); base and
vanilla once per ratio. Rows have the summary.csv columns; ``value`` is None where a metric cannot be scored
(no holdout, no oracle), with the reason in ``not_scored``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ..eval import privacy
from ..eval.identity import run_identity

LIKELIHOOD_TASKS = ("likelihood", "likelihood_qa")
FORGET_QUALITY_SPLITS = ("forget", "test")
PRIVLEAK_ATTACK = "min_k"  # the attack MUSE and open-unlearning report PrivLeak for
NO_HOLDOUT = ("no holdout (study.holdout_ratio: 0): MLLMU-Bench's vanilla model learns every fictitious person, "
              "so there are no non-members to tell the forget people from")


# What aggregation reads of a per-item record (the prompt, the output and the options stay on disk: the paper
# study's records would not fit in memory whole).
SAMPLE_FIELDS = ("task", "input_modality", "prompt_id", "profile_id", "score", "truth_ratio_raw", "mia")
JUDGED_FIELDS = ("input_modality", "prompt_id", "factuality")


def read_samples(paths: list[str | Path], suffix: str = ".samples.jsonl",
                 fields: tuple[str, ...] = SAMPLE_FIELDS) -> dict[tuple[str, str, str], list[dict]]:
    """``{(model, run, split file name): records}`` from ``results/eval/<model>/<run>/<split><suffix>``
    (the judge's records: ``suffix=".factuality.jsonl", fields=JUDGED_FIELDS``), each cut to ``fields``."""
    out = {}
    for path in map(Path, paths):
        model, run, split = path.parts[-3], path.parts[-2], path.name.removesuffix(suffix)
        rows = []
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                    rows.append({k: rec[k] for k in fields if k in rec})
                    missing = [k for k in fields[:3] if k not in rec]
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{path}:{n}: malformed sample record ({exc!r})") from None
                if missing:
                    raise ValueError(f"{path}:{n}: sample record without {', '.join(missing)}")
        out[(model, run, split)] = rows
    return out


def _by_item(records: list[dict], task: str, modality: str, field: str) -> dict[str, object]:
    return {r["prompt_id"]: r[field] for r in records if r["task"] == task and r["input_modality"] == modality}


def _row(model: str, run: str, split: str, seed: int, modality: str, task: str, metric: str, value, n: int) -> dict:
    return {**run_identity(model, run, split, seed), "input_modality": modality, "task": task, "metric": metric,
            "value": value, "n": n}


def comparison_rows(samples: dict[tuple[str, str, str], list[dict]], seed: int,
                    holdout: bool) -> tuple[list[dict], dict[str, str]]:
    rows, not_scored = [], {}
    runs = defaultdict(set)  # model -> (run, ratio)
    for model, run, split in samples:
        ratio = run.rsplit("_", 1)[1] if run not in ("base", "vanilla") else split.rpartition("_")[2]
        if ratio.isdigit():
            runs[model].add((run, ratio))
    for model in sorted(runs):
        for run, ratio in sorted(runs[model]):
            oracle = f"oracle_{ratio}"
            if (model, oracle, f"forget_{ratio}") not in samples:
                not_scored[f"{model}/{run}: comparisons with the oracle"] = f"no {oracle} evaluation in the study"
                continue
            rows += _forget_quality(samples, model, run, oracle, ratio, seed)
            rows += _reference_gap(samples, model, run, oracle, ratio, seed)
            rows += _membership(samples, model, run, oracle, ratio, seed, holdout, not_scored)
    return rows, not_scored


def _modalities(records: list[dict]) -> list[str]:
    return sorted({r["input_modality"] for r in records})


def _forget_quality(samples, model, run, oracle, ratio, seed) -> list[dict]:
    rows = []
    for split in FORGET_QUALITY_SPLITS:
        name = f"{split}_{ratio}"
        mine, ref = samples.get((model, run, name), []), samples.get((model, oracle, name), [])
        for modality in _modalities(mine):
            a = _by_item(mine, "classification", modality, "truth_ratio_raw")
            b = _by_item(ref, "classification", modality, "truth_ratio_raw")
            items = sorted(a.keys() & b.keys())
            if not items:
                continue
            p, d = privacy.forget_quality([a[i] for i in items], [b[i] for i in items])
            rows += [_row(model, run, name, seed, modality, "classification", "forget_quality", p, len(items)),
                     _row(model, run, name, seed, modality, "classification", "forget_quality_ks", d, len(items))]
    return rows


def _reference_gap(samples, model, run, oracle, ratio, seed) -> list[dict]:
    rows = []
    for (m, r, name), mine in sorted(samples.items()):
        if m != model or r != run:
            continue
        if run in ("base", "vanilla") and not name.endswith(f"_{ratio}"):
            continue  # their ratio-free splits: compared with no single oracle
        ref = samples.get((model, oracle, name), [])
        for task in LIKELIHOOD_TASKS:
            for modality in _modalities(mine):
                a = _by_item(mine, task, modality, "score")
                b = _by_item(ref, task, modality, "score")
                items = sorted(a.keys() & b.keys())
                if items:
                    gap = privacy.reference_gap([a[i]["answer_nll"] for i in items], [b[i]["answer_nll"] for i in items])
                    rows.append(_row(model, run, name, seed, modality, task, "reference_gap", gap, len(items)))
    return rows


def _auc(samples, model, run, ratio, task, modality, attack) -> tuple[float, int] | None:
    members = _by_item(samples.get((model, run, f"forget_{ratio}"), []), task, modality, "mia")
    outsiders = _by_item(samples.get((model, run, "holdout"), []), task, modality, "mia")
    if not members or not outsiders:
        return None
    auc = privacy.mia_auc([s[attack] for s in members.values()], [s[attack] for s in outsiders.values()])
    return auc, len(members) + len(outsiders)


def _membership(samples, model, run, oracle, ratio, seed, holdout, not_scored) -> list[dict]:
    rows, name = [], f"forget_{ratio}"
    mine = samples.get((model, run, name), [])
    for task in LIKELIHOOD_TASKS:
        for modality in [m for m in _modalities(mine) if any(r["task"] == task for r in mine)]:
            for attack in privacy.MIA_ATTACKS:
                got = _auc(samples, model, run, ratio, task, modality, attack) if holdout else None
                ref = _auc(samples, model, oracle, ratio, task, modality, attack) if holdout else None
                if got is None:
                    not_scored[f"{model}/{run}/{name}/{task}: mia_auc, privleak"] = (
                        NO_HOLDOUT if not holdout else "no holdout evaluation of this run")
                rows.append(_row(model, run, name, seed, modality, task, f"mia_auc_{attack}",
                                 got[0] if got else None, got[1] if got else 0))
                rows.append(_row(model, run, name, seed, modality, task, f"privleak_{attack}",
                                 privacy.privleak(got[0], ref[0]) if got and ref else None, got[1] if got else 0))
    return rows
