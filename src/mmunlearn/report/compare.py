"""Metrics that compare a model run with another, or its members with non-members, from the evaluations'
per-item numbers (``*.samples.jsonl``, read by report/items.py): forget quality (KS test of truth ratios against the oracle), the
reference gap (answer NLL against the oracle), membership-inference AUCs (forget people against the holdout)
and PrivLeak (that AUC against the oracle's). Formulas and conventions: eval/privacy.py.

Every run with a forget ratio r is compared with ``oracle_r`` on the same items (matched by prompt id); base and
vanilla once per ratio. Rows have the summary.csv columns; ``value`` is None where a metric cannot be scored
(no holdout, no oracle), with the reason in ``not_scored``.
"""

from __future__ import annotations

from collections import defaultdict

from ..eval import privacy
from ..eval.identity import run_identity
from .items import MIA, ItemScores

LIKELIHOOD_TASKS = ("likelihood", "likelihood_qa")
FORGET_QUALITY_SPLITS = ("forget", "test")
PRIVLEAK_ATTACK = "min_k"  # the attack MUSE and open-unlearning report PrivLeak for
NO_HOLDOUT = ("no holdout (study.holdout_ratio: 0): MLLMU-Bench's vanilla model learns every fictitious person, "
              "so there are no non-members to tell the forget people from")


def _row(model: str, run: str, split: str, seed: int, modality: str, task: str, metric: str, value, n: int) -> dict:
    return {**run_identity(model, run, split, seed), "input_modality": modality, "task": task, "metric": metric,
            "value": value, "n": n}


def comparison_rows(scores: ItemScores, seed: int, holdout: bool) -> tuple[list[dict], dict[str, str]]:
    rows, not_scored = [], {}
    runs = defaultdict(set)  # model -> (run, ratio)
    for model, run, split in scores.evaluations:
        ratio = run.rsplit("_", 1)[1] if run not in ("base", "vanilla") else split.rpartition("_")[2]
        if ratio.isdigit():
            runs[model].add((run, ratio))
    for model in sorted(runs):
        for run, ratio in sorted(runs[model]):
            oracle = f"oracle_{ratio}"
            if (model, oracle, f"forget_{ratio}") not in scores.evaluations:
                not_scored[f"{model}/{run}: comparisons with the oracle"] = f"no {oracle} evaluation in the study"
                continue
            rows += _forget_quality(scores, model, run, oracle, ratio, seed)
            rows += _reference_gap(scores, model, run, oracle, ratio, seed)
            rows += _membership(scores, model, run, oracle, ratio, seed, holdout, not_scored)
    return rows, not_scored


def _forget_quality(scores: ItemScores, model, run, oracle, ratio, seed) -> list[dict]:
    rows = []
    for split in FORGET_QUALITY_SPLITS:
        name = f"{split}_{ratio}"
        for modality in scores.modalities(model, run, name):
            a = scores.values(model, run, name, "classification", modality, "truth_ratio_raw")
            b = scores.values(model, oracle, name, "classification", modality, "truth_ratio_raw")
            items = sorted(a.keys() & b.keys())
            if not items:
                continue
            p, d = privacy.forget_quality([a[i] for i in items], [b[i] for i in items])
            rows += [_row(model, run, name, seed, modality, "classification", "forget_quality", p, len(items)),
                     _row(model, run, name, seed, modality, "classification", "forget_quality_ks", d, len(items))]
    return rows


def _reference_gap(scores: ItemScores, model, run, oracle, ratio, seed) -> list[dict]:
    rows = []
    for name in sorted({split for m, r, split in scores.evaluations if (m, r) == (model, run)}):
        if run in ("base", "vanilla") and not name.endswith(f"_{ratio}"):
            continue  # their ratio-free splits: compared with no single oracle
        for task in LIKELIHOOD_TASKS:
            for modality in scores.modalities(model, run, name):
                a = scores.values(model, run, name, task, modality, "answer_nll")
                b = scores.values(model, oracle, name, task, modality, "answer_nll")
                items = sorted(a.keys() & b.keys())
                if items:
                    gap = privacy.reference_gap([a[i] for i in items], [b[i] for i in items])
                    rows.append(_row(model, run, name, seed, modality, task, "reference_gap", gap, len(items)))
    return rows


def _auc(scores: ItemScores, model, run, ratio, task, modality, attack) -> tuple[float, int] | None:
    members = scores.values(model, run, f"forget_{ratio}", task, modality, MIA + attack)
    outsiders = scores.values(model, run, "holdout", task, modality, MIA + attack)
    if not members or not outsiders:
        return None
    return privacy.mia_auc(list(members.values()), list(outsiders.values())), len(members) + len(outsiders)


def _membership(scores: ItemScores, model, run, oracle, ratio, seed, holdout, not_scored) -> list[dict]:
    rows, name = [], f"forget_{ratio}"
    for task in LIKELIHOOD_TASKS:
        for modality in scores.modalities(model, run, name, task):
            for attack in privacy.MIA_ATTACKS:
                got = _auc(scores, model, run, ratio, task, modality, attack) if holdout else None
                ref = _auc(scores, model, oracle, ratio, task, modality, attack) if holdout else None
                if got is None:
                    not_scored[f"{model}/{run}/{name}/{task}: mia_auc, privleak"] = (
                        NO_HOLDOUT if not holdout else "no holdout evaluation of this run")
                rows.append(_row(model, run, name, seed, modality, task, f"mia_auc_{attack}",
                                 got[0] if got else None, got[1] if got else 0))
                rows.append(_row(model, run, name, seed, modality, task, f"privleak_{attack}",
                                 privacy.privleak(got[0], ref[0]) if got and ref else None, got[1] if got else 0))
    return rows
