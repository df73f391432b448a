"""Likelihood-based privacy and forget-quality metrics (mmunlearn.eval.privacy) on hand-made numbers, each
against an independent computation (sklearn's ROC AUC, scipy's KS test, zlib by hand) and the sign conventions
of open-unlearning / MUSE on constructed cases."""
import math
import random
import zlib

import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from mmunlearn.eval import privacy


def test_mia_scores_by_hand():
    logp = [-0.1, -2.0, -0.5, -3.0, -0.2]
    mean = [-1.0, -1.5, -0.7, -2.0, -0.9]
    std = [0.5, 1.0, 0.2, 2.0, 0.0]  # a point mass: variance floored at 1e-6
    text = "a nurse who flies"
    got = privacy.mia_scores(logp, mean, std, text, k=0.4)
    loss = 5.8 / 5
    assert got["loss"] == pytest.approx(loss)
    assert got["zlib"] == pytest.approx(loss / len(zlib.compress(b"a nurse who flies")))
    assert got["min_k"] == pytest.approx((3.0 + 2.0) / 2)  # int(5 x 0.4) = 2 lowest
    z = [(-0.1 + 1.0) / 0.5, (-2.0 + 1.5) / 1.0, (-0.5 + 0.7) / 0.2, (-3.0 + 2.0) / 2.0, (-0.2 + 0.9) / 1e-3]
    assert got["min_k_pp"] == pytest.approx(-sum(sorted(z)[:2]) / 2)
    # at least one token; an empty answer scores 0 (the reference's convention)
    assert privacy.mia_scores([-1.0], [-1.0], [1.0], "x", k=0.4)["min_k"] == pytest.approx(1.0)
    assert privacy.mia_scores([], [], [], "", k=0.4) == dict.fromkeys(privacy.MIA_ATTACKS, 0.0)


def test_memorisation_measures():
    assert privacy.exact_memorisation([True, False, True, True]) == 0.75
    assert privacy.extraction_strength([True, True, True, True]) == 1.0
    assert privacy.extraction_strength([False, True, True, True]) == pytest.approx(0.75)
    assert privacy.extraction_strength([True, False, False, True]) == pytest.approx(0.25)  # only the last
    assert privacy.extraction_strength([True, True, True, False]) == 0.0  # the last token never matches
    assert privacy.extraction_strength([]) == 0.0 and privacy.exact_memorisation([]) == 0.0


def test_option_probability_and_truth_ratio():
    nll = {"A": 0.2, "B": 1.0, "C": 2.0, "D": 3.0}
    p = {k: math.exp(-v) for k, v in nll.items()}
    assert privacy.option_probability(nll, "A") == pytest.approx(p["A"] / sum(p.values()))
    geo = (p["B"] * p["C"] * p["D"]) ** (1 / 3)
    r = privacy.truth_ratio(nll, "A")
    assert r == pytest.approx(geo / p["A"]) and r < 1  # prefers the truth
    assert privacy.truth_ratio_score(r, "forget") == pytest.approx(r)  # min(R, 1/R)
    assert privacy.truth_ratio_score(1 / r, "test") == pytest.approx(r)
    assert privacy.truth_ratio_score(r, "retain") == pytest.approx(1 - r)  # max(0, 1 - R)
    assert privacy.truth_ratio_score(1 / r, "celebrity") == 0.0
    same = {"A": 1.0, "B": 1.0, "C": 1.0, "D": 1.0}  # cannot tell them apart
    assert privacy.truth_ratio(same, "C") == 1.0 and privacy.option_probability(same, "C") == 0.25


def test_forget_quality_is_scipys_ks_test_and_one_against_itself():
    rng = random.Random(0)
    run = [rng.lognormvariate(0, 1) for _ in range(60)]
    oracle = [rng.lognormvariate(1, 1) for _ in range(60)]
    ref = ks_2samp(run, oracle)
    assert privacy.forget_quality(run, oracle) == pytest.approx((ref.pvalue, ref.statistic))
    assert privacy.forget_quality(oracle, oracle) == (1.0, 0.0)  # a model compared to itself


@pytest.mark.parametrize("seed", range(5))
def test_mia_auc_equals_sklearn_with_ties(seed):
    rng = random.Random(seed)
    members = [round(rng.gauss(1, 1), 1) for _ in range(40)]  # rounded: many ties
    nonmembers = [round(rng.gauss(2, 1), 1) for _ in range(25)]
    want = roc_auc_score([0] * 40 + [1] * 25, members + nonmembers)
    assert privacy.mia_auc(members, nonmembers) == pytest.approx(want, abs=1e-12)


def test_privleak_signs():
    memorised = privacy.mia_auc([0.1, 0.2, 0.3], [1.1, 1.2, 1.3])  # members' loss far below non-members'
    assert memorised == 1.0
    oracle = privacy.mia_auc([1.0, 2.0], [1.0, 2.0])  # never saw either: chance
    assert oracle == 0.5
    assert privacy.privleak(memorised, oracle) == pytest.approx(-100)  # MUSE: under-unlearned
    assert privacy.privleak(oracle, oracle) == 0.0  # the oracle, by construction
    assert privacy.privleak(0.2, 0.5) > 0  # members now look *less* familiar than non-members: over-unlearned


def test_reference_gap():
    assert privacy.reference_gap([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == 0.0
    assert privacy.reference_gap([0.5, 1.0], [2.0, 3.0]) == pytest.approx(-1.75)
    with pytest.raises(ValueError, match="same items"):
        privacy.reference_gap([1.0], [1.0, 2.0])
