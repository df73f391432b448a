"""The bootstrap of report/uncertainty.py against closed forms, and the pairing and clustering it claims."""

import math

import numpy as np
import pytest

from mmunlearn.report.intervals import Intervals
from mmunlearn.report.items import ItemScores, item_scores
from mmunlearn.eval import privacy
from mmunlearn.report.uncertainty import (Bootstrap, ItemGroup, auc_replicates, bootstrap_ci, group_seed,
                                          paired_replicates)

ITEM = Bootstrap(samples=4000, unit="item")


def test_large_n_proportion_matches_the_normal_interval():
    # 0.7 of 2000 items correct: the percentile interval ~ p +- 1.96 sqrt(p(1-p)/n) (Wald), to within 0.005
    n, p = 2000, 0.7
    values = [1.0] * int(n * p) + [0.0] * (n - int(n * p))
    low, high = bootstrap_ci(values, boot=ITEM)
    half = 1.959964 * math.sqrt(p * (1 - p) / n)
    assert low == pytest.approx(p - half, abs=0.005) and high == pytest.approx(p + half, abs=0.005)
    assert half > 0.015  # the check above is not satisfied by any narrow interval around p


def test_same_seed_same_interval_and_other_seed_differs():
    values = np.random.default_rng(1).random(200)
    assert bootstrap_ci(values, boot=ITEM) == bootstrap_ci(values, boot=ITEM)
    assert bootstrap_ci(values, boot=ITEM) != bootstrap_ci(values, boot=Bootstrap(samples=4000, unit="item", seed=7))


def test_group_seed_depends_on_the_group_only():
    assert group_seed(0, "m", "forget_5", "classification", "text") == group_seed(0, "m", "forget_5",
                                                                                  "classification", "text")
    assert group_seed(0, "m", "forget_5", "classification", "text") != group_seed(0, "m", "retain_5",
                                                                                  "classification", "text")


def _group(n_people, per_person, boot):
    items = {f"{p}/{q}": str(p) for p in range(n_people) for q in range(per_person)}
    return ItemGroup(items, boot, seed=3)


def test_paired_interval_of_a_run_with_itself_is_zero_and_a_shift_excludes_zero():
    group = _group(30, 4, Bootstrap())
    # people differ a lot (each knows all or none of their four answers): the variation pairing removes
    a = group.vector({i: float(int(i.split("/")[0]) % 3 != 0) for i in group.ids})
    diff, reps, n = paired_replicates(group, a, a.copy())
    assert (diff, n) == (0.0, 120) and np.all(reps == 0)
    # a run that also answers one question of each of the ten people it did not know
    gained = group.vector({i: 1.0 for i in group.ids if i.endswith("/0")})
    shifted = np.where(np.isnan(gained), a, 1.0)
    diff, reps, n = paired_replicates(group, shifted, a)
    low, high = np.quantile(reps, [0.025, 0.975])
    assert diff == pytest.approx(10 / 120) and low > 0, (diff, low, high)
    # unpaired (independent draws) the same difference is far less certain: its interval includes 0
    other = ItemGroup({i: i.split("/")[0] for i in group.ids}, Bootstrap(), seed=99)
    unpaired = other.replicates(shifted) - group.replicates(a)
    assert np.quantile(unpaired, 0.025) < 0 and np.std(unpaired) > 5 * np.std(reps)


def test_person_clusters_widen_the_interval_when_a_persons_answers_agree():
    # 40 people x 5 questions; each person's answers are all right or all wrong: 40 independent observations,
    # not 200. The person-level interval is ~sqrt(5) times the item-level one.
    values = [float(p % 2) for p in range(40) for _ in range(5)]
    people = [p for p in range(40) for _ in range(5)]
    item = bootstrap_ci(values, people, boot=Bootstrap(samples=4000, unit="item"))
    person = bootstrap_ci(values, people, boot=Bootstrap(samples=4000, unit="person"))
    ratio = (person[1] - person[0]) / (item[1] - item[0])
    assert ratio == pytest.approx(math.sqrt(5), rel=0.2)
    # and the person-level width is the binomial one for 40 observations
    assert person[1] - person[0] == pytest.approx(2 * 1.959964 * math.sqrt(0.25 / 40), rel=0.15)


def test_items_of_unequal_people_give_the_ratio_mean():
    group = _group(3, 2, Bootstrap(samples=200))
    v = group.vector({"0/0": 1.0, "0/1": 1.0, "1/0": 0.0, "2/0": 0.0, "2/1": 1.0})  # 1/1 not scored
    reps = group.replicates(v)
    # every replicate is a ratio of sums over the people drawn, so it is a multiple of 1/k for k scored items
    assert np.all((reps >= 0) & (reps <= 1))
    assert np.mean(reps) == pytest.approx(3 / 5, abs=0.06)


def _records(run_scores):
    return [{"task": "classification", "input_modality": "text", "prompt_id": f"{p}/text/{q}", "profile_id": str(p),
             "score": {"accuracy": x}} for (p, q), x in run_scores.items()]


def test_differences_vanilla_pairs_and_selectivity_margin():
    rng = np.random.default_rng(5)
    keys = [(p, q) for p in range(20) for q in range(3)]
    vanilla_f = {k: float(rng.random() < 0.8) for k in keys}
    vanilla_r = {k: float(rng.random() < 0.8) for k in keys}
    forgot = {k: 0.0 if k[0] < 12 else x for k, x in vanilla_f.items()}  # forgets 12 of 20 people
    samples = {("m", "vanilla", "forget_5"): _records(vanilla_f), ("m", "vanilla", "retain_5"): _records(vanilla_r),
               ("m", "ga_text_5", "forget_5"): _records(forgot), ("m", "ga_text_5", "retain_5"): _records(vanilla_r),
               ("m", "ga_multimodal_5", "forget_5"): _records(vanilla_f),
               ("m", "ga_multimodal_5", "retain_5"): _records(vanilla_r)}
    rows = Intervals(item_scores(samples), Bootstrap()).difference_rows(seed=42)
    get = {(r["comparison"], r["method"], r["unlearn_modality"], r["split"]): r for r in rows}
    drop = get[("vs_vanilla", "ga", "text", "forget")]
    expected = np.mean([forgot[k] - vanilla_f[k] for k in keys])
    assert drop["value"] == pytest.approx(expected) and drop["ci_high"] < 0 and drop["excludes_zero"]
    same = get[("vs_vanilla", "ga", "multimodal", "forget")]
    assert (same["value"], same["ci_low"], same["ci_high"], same["excludes_zero"]) == (0.0, 0.0, 0.0, False)
    margin = get[("selectivity", "ga", "text", "forget-retain")]
    assert margin["split"] == "forget-retain" and margin["forget_ratio"] == 5 and margin["value"] == pytest.approx(-expected)
    assert margin["ci_low"] > 0 and margin["n"] == 120
    mm = get[("multimodal_vs_text", "ga", "multimodal", "forget")]
    assert mm["against"] == "ga_text_5" and mm["value"] == pytest.approx(-expected)


def test_a_cell_gets_an_interval_only_when_its_value_is_the_item_mean():
    samples = {("m", "vanilla", "forget_5"): _records({(p, 0): float(p % 2) for p in range(10)})}
    iv = Intervals(item_scores(samples), Bootstrap())
    low, high = iv.cell("m", "vanilla", "forget_5", "classification", "text", "accuracy", 0.5)
    assert low < 0.5 < high
    assert iv.cell("m", "vanilla", "forget_5", "classification", "text", "accuracy", 0.7) is None  # not the mean
    assert iv.cell("m", "vanilla", "forget_5", "classification", "text", "rougeL", 0.5) is None  # no items


def test_bad_bootstrap_settings_are_named():
    with pytest.raises(ValueError, match="report.bootstrap.unit"):
        Bootstrap(unit="people")
    with pytest.raises(ValueError, match="report.bootstrap.level"):
        Bootstrap(level=95)
    assert ItemScores().cells("m", "vanilla", "forget_5") == []


def test_weighted_auc_is_the_mia_auc_and_resamples_people():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(2)
    members, outsiders = rng.normal(0, 1, 40).round(1), rng.normal(0.8, 1, 25).round(1)  # rounded: ties too
    ones = auc_replicates(members, np.ones((1, 40)), outsiders, np.ones((1, 25)))[0]
    labels = [0] * 40 + [1] * 25
    assert ones == pytest.approx(privacy.mia_auc(list(members), list(outsiders))) == \
        pytest.approx(roc_auc_score(labels, [*members, *outsiders]))
    # weights = copies: an item drawn twice counts as two items
    twice = auc_replicates(members, np.array([[2.0] + [1.0] * 39]), outsiders, np.ones((1, 25)))[0]
    assert twice == pytest.approx(privacy.mia_auc([members[0], *members], list(outsiders)))


def _likelihood(run_nll, people=8, per=3, holdout=False, shift=0.0):
    recs = []
    for p in range(people):
        for q in range(per):
            nll = run_nll(p, q) + (shift if holdout else 0.0)
            recs.append({"task": "likelihood_qa", "input_modality": "text", "prompt_id": f"{'h' if holdout else ''}{p}/{q}",
                         "profile_id": f"{'h' if holdout else ''}{p}", "score": {"answer_nll": nll},
                         "mia": dict.fromkeys(privacy.MIA_ATTACKS, nll)})
    return recs


def test_comparison_intervals_for_auc_privleak_and_reference_gap():
    from mmunlearn.report.compare import comparison_rows
    rng = np.random.default_rng(4)
    base = {(p, q): rng.normal(2.0, 0.5) for p in range(8) for q in range(3)}
    samples = {}
    for run, member_shift in (("vanilla", -1.5), ("oracle_5", 0.0), ("ga_text_5", -0.5)):
        samples[("m", run, "forget_5")] = _likelihood(lambda p, q: base[(p, q)] + member_shift)
        samples[("m", run, "holdout")] = _likelihood(lambda p, q: base[(p, q)], holdout=True, shift=0.3)
    for run in ("vanilla", "ga_text_5"):
        samples[("m", run, "test_5")] = []
    scores = item_scores(samples)
    rows, _ = comparison_rows(scores, 42, holdout=True)
    iv = Intervals(scores, Bootstrap())
    got = {(r["method"], r["metric"]): (r["value"], iv.comparison_interval(r)) for r in rows if r["split"] == "forget"}
    auc, (low, high) = got[("vanilla", "mia_auc_min_k")]
    assert 0 <= low <= auc <= high <= 1 and auc > 0.9
    assert got[("oracle", "privleak_min_k")] == (0.0, (0.0, 0.0))  # the oracle against itself, on the same draws
    assert got[("oracle", "reference_gap")][1] == (0.0, 0.0)
    gap, (low, high) = got[("ga", "reference_gap")]
    assert gap == pytest.approx(-0.5) and low == pytest.approx(-0.5) and high == pytest.approx(-0.5)  # a constant shift
    leak, (low, high) = got[("vanilla", "privleak_min_k")]
    assert low <= leak <= high < 0
