"""How sure each number is: seeded bootstrap intervals for every summary cell, and *paired* intervals for the
differences the tables and figures show (a run against vanilla, multimodal against text-only unlearning, the
selectivity margin).

Unit of resampling. Every MLLMU-Bench set asks several questions about each person (classification, generation,
cloze, the fine-tuning QA pairs), and a person the model memorised answers most of them; the items of one person
are correlated, so resampling items would understate the variance. By default we resample **people** with all
their items (the cluster bootstrap; Davison & Hinkley 1997, §3.8; Field & Welsh 2007): a replicate draws P people
with replacement out of the P of the set, w ~ Multinomial(P, 1/P) copies of each, and its statistic is the
ratio mean  Σ_p w_p·sum_p / Σ_p w_p·count_p. ``unit: item`` resamples items (each item its own cluster).

Pairing. All runs of one (model, set, task, input modality) share the same draws W (a matrix of B x P weights
from one seed per group), so the replicate of a difference is the difference of the two runs' replicates on the
same resampled people: a run compared with itself has the interval [0, 0], and the person-to-person variation
both runs share cancels. Intervals from different sets (the selectivity margin: forget drop - retain drop) use
independent draws, as the sets hold different people.

The interval is the percentile interval of the replicates (Efron & Tibshirani 1993, §13.3).

Across seeds (``study.seeds``: each seed a full replicate of training and evaluation). The bootstrap above is
per seed: it holds the model fixed and says how much the number would move with other people of the same kind.
Across k seeds every summary cell and every difference also gets a row of seed ``ACROSS_SEEDS``: the mean of the
k per-seed values, their sample standard deviation (k - 1 degrees of freedom), and the Student-t interval of the
mean over seeds, mean ± t(k - 1, 0.975) · sd / √k, which treats the seeds as k independent draws of the
training randomness (``across_seeds``). With k = 2 that t is 12.7 (wide, honestly so); with k = 3, 4.3.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

ACROSS_SEEDS = "mean"  # the seed column of the rows over seeds


@dataclass(frozen=True)
class Bootstrap:
    samples: int = 1000  # replicates B
    level: float = 0.95
    seed: int = 0
    unit: str = "person"  # or "item"

    def __post_init__(self):
        if self.unit not in ("person", "item"):
            raise ValueError(f"report.bootstrap.unit must be person or item, got '{self.unit}'")
        if not 0 < self.level < 1:
            raise ValueError(f"report.bootstrap.level must be in (0, 1), got {self.level}")
        if self.samples < 1:
            raise ValueError(f"report.bootstrap.samples must be >= 1, got {self.samples}")

    @classmethod
    def from_config(cls, config: dict | None) -> Bootstrap:
        return cls(**((config or {}).get("report", {}).get("bootstrap") or {}))


def group_seed(base: int, *key) -> int:
    """A seed per group that depends on the group's name only, not on which other groups exist: adding a run
    or a set leaves every other interval unchanged."""
    return (base * 1_000_003 + zlib.crc32("|".join(map(str, key)).encode())) % 2**32


def weights(n_clusters: int, boot: Bootstrap, seed: int) -> np.ndarray:
    """B x P resampling weights: how many copies of each cluster each replicate holds."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=boot.samples).astype(float)


def interval(replicates: np.ndarray, level: float) -> tuple[float, float] | None:
    """The percentile interval of the finite replicates (a replicate that drew no scored item is NaN), or None
    when there are none."""
    replicates = replicates[np.isfinite(replicates)]
    if not len(replicates):
        return None
    alpha = (1 - level) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return float(low), float(high)


class ItemGroup:
    """The items of one (model, set, task, input modality) across runs: their clusters, and the shared draws.

    ``items`` maps an item id to its cluster (person id); ``unit: item`` makes each item its own cluster."""

    def __init__(self, items: dict[str, str], boot: Bootstrap, seed: int):
        self.ids = sorted(items)
        self.index = {i: k for k, i in enumerate(self.ids)}
        clusters = self.ids if boot.unit == "item" else [items[i] for i in self.ids]
        names = sorted(set(clusters))
        position = {c: k for k, c in enumerate(names)}
        # item -> cluster one-hot, so per-cluster sums are one matrix product
        self.member = np.zeros((len(self.ids), len(names)))
        self.member[np.arange(len(self.ids)), [position[c] for c in clusters]] = 1.0
        self.W = weights(len(names), boot, seed) if names else np.zeros((boot.samples, 0))

    def vector(self, values: dict[str, float]) -> np.ndarray:
        """Values on this group's items, NaN where a run has none."""
        v = np.full(len(self.ids), np.nan)
        for i, x in values.items():
            if i in self.index and x is not None:
                v[self.index[i]] = x
        return v

    def replicates(self, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """B replicate means of ``v`` over the items in ``mask`` (default: where ``v`` is not NaN)."""
        mask = ~np.isnan(v) if mask is None else mask
        sums = np.where(mask, np.nan_to_num(v), 0.0) @ self.member
        counts = mask.astype(float) @ self.member
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.W @ sums) / (self.W @ counts)  # a replicate that drew no scored item: NaN

    def item_weights(self, mask: np.ndarray) -> np.ndarray:
        """B x n: how many copies of each item (of those in ``mask``) each replicate holds."""
        return self.W @ self.member[mask].T


def auc_replicates(members: np.ndarray, member_weights: np.ndarray, outsiders: np.ndarray,
                   outsider_weights: np.ndarray) -> np.ndarray:
    """B replicates of the ROC AUC of telling outsiders from members by their score (an outsider above a member
    counts 1, a tie 1/2: eval/privacy.py ``mia_auc``), each item weighted by its copies in the replicate; with
    all weights 1 it is ``mia_auc`` itself."""
    above = (outsiders[None, :] > members[:, None]) + 0.5 * (outsiders[None, :] == members[:, None])  # n x m
    pairs = member_weights.sum(1) * outsider_weights.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((member_weights @ above) * outsider_weights).sum(1) / pairs


def mean_ci(group: ItemGroup, v: np.ndarray, level: float) -> tuple[float, float] | None:
    return interval(group.replicates(v), level)


def paired_replicates(group: ItemGroup, a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, int]:
    """(mean(a - b), replicates of it, n) over the items both runs scored, on the group's shared draws."""
    both = ~np.isnan(a) & ~np.isnan(b)
    n = int(both.sum())
    if not n:
        return float("nan"), np.full(group.W.shape[0], np.nan), 0
    diff = float(np.mean(a[both] - b[both]))
    return diff, group.replicates(a, both) - group.replicates(b, both), n


def bootstrap_ci(values, clusters=None, boot: Bootstrap = Bootstrap(), seed: int | None = None):
    """The interval of a mean of ``values`` (clustered by ``clusters`` when ``boot.unit`` is person): the
    one-call form of ``ItemGroup`` for tests and notebooks."""
    items = {str(k): str(c) for k, c in enumerate(clusters if clusters is not None else range(len(values)))}
    group = ItemGroup(items, boot, boot.seed if seed is None else seed)
    return mean_ci(group, group.vector({str(k): x for k, x in enumerate(values)}), boot.level)


def across_seeds(values: list[float | None], level: float) -> tuple[float, float, float, float] | None:
    """(mean, sample sd, low, high) of one number over seeds: the Student-t interval of the mean. None where a
    seed has no value (not scored) or there are fewer than two seeds."""
    if len(values) < 2 or any(v is None or not math.isfinite(v) for v in values):
        return None
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    half = float(t.ppf((1 + level) / 2, len(x) - 1)) * sd / math.sqrt(len(x))
    return mean, sd, mean - half, mean + half


def over_seeds(rows: list[dict]) -> bool:
    """Whether ``rows`` (of summary.csv or differences.csv) hold rows over seeds."""
    return any(str(r["seed"]) == ACROSS_SEEDS for r in rows)


def headline_rows(rows: list[dict]) -> list[dict]:
    """What tables and figures show: the rows over seeds where the study has several seeds, else its one seed's."""
    return [r for r in rows if str(r["seed"]) == ACROSS_SEEDS] if over_seeds(rows) else rows
