"""Forget/retain splits for any forget ratio, plus the seeded choices the original drew anew on every run.

The published 5/10/15 % splits are used as published. Any other ratio is derived from the seed: one
permutation of all fictitious IDs, the first ``round(N * ratio / 100)`` forgotten, so smaller forget sets are
nested inside larger ones and retain is always the exact complement.

The split file also fixes, from the seed, which Test_Set image each person is shown with and which profiles
serve as few-shot demonstrations per split and task (spec §2.5: the original used ``random.sample`` unseeded),
plus a held-out demo pool of retain profiles for the corrected few-shot setting.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq

from .schema import DataError, parquet_files

EVAL_SPLITS = ("forget", "test", "retain", "celebrity")
HOLDOUT = "holdout"  # the people no model learns (study.holdout_ratio): membership inference's non-members


def read_ids(folder: str | Path) -> list[str]:
    ids = []
    for f in parquet_files(folder):
        if "ID" not in pq.read_schema(f).names:
            raise DataError(f, "ID", "missing column")
        ids += [str(x) for x in pq.read_table(f, columns=["ID"]).column("ID").to_pylist()]
    return ids


def forget_ids_for_ratio(bench_root: str | Path, ratio: int, all_ids: list[str], seed: int) -> tuple[list[str], str]:
    """The forget IDs of ``ratio`` % and where they came from ("published" or "derived")."""
    folder = Path(bench_root) / f"forget_{ratio}"
    if folder.is_dir():
        ids = read_ids(folder)
        unknown = sorted(set(ids) - set(all_ids))
        if unknown:
            raise DataError(folder, "ID", f"{len(unknown)} forget IDs are not in Full_Set, e.g. {unknown[:3]}")
        return ids, "published"
    if not 0 < ratio < 100:
        raise ValueError(f"forget ratio must be in (0, 100), got {ratio}")
    order = sorted(all_ids)
    random.Random(seed).shuffle(order)
    return order[: round(len(order) * ratio / 100)], "derived"


def holdout_ids(bench_root: str | Path, percent: float, seed: int) -> list[str]:
    """``percent`` % of the fictitious people, seeded, that no model learns and no split scores: the
    non-members of membership inference (MLLMU-Bench's vanilla learns all 500, leaving none). Drawn from the
    people outside every published forget folder, so the published forget sets stay as published; the same for
    every forget ratio (the vanilla model is shared)."""
    if not percent:
        return []
    bench_root = Path(bench_root)
    all_ids = read_ids(bench_root / "Full_Set")
    published = {i for folder in sorted(bench_root.glob("forget_*")) if folder.is_dir() for i in read_ids(folder)}
    pool = sorted(set(all_ids) - published)
    n = round(len(all_ids) * percent / 100)
    if not 0 < n <= len(pool):
        raise ValueError(f"study.holdout_ratio {percent}: {n} of {len(all_ids)} people, but {len(pool)} are outside "
                         "the published forget sets")
    random.Random(f"{seed}:holdout").shuffle(pool)
    return sorted(pool[:n])


def build_split(bench_root: str | Path, ratio: int, seed: int, fewshot: dict[str, int],
                holdout: list[str] = ()) -> dict:
    """Everything evaluation and unlearning need to agree on for one forget ratio. ``holdout`` people
    (``holdout_ids``) are in neither forget nor retain; a derived forget set is ``ratio`` % of the others."""
    bench_root = Path(bench_root)
    held = set(holdout)
    all_ids = [i for i in read_ids(bench_root / "Full_Set") if i not in held]
    forget, source = forget_ids_for_ratio(bench_root, ratio, all_ids, seed)
    forget_set = set(forget)
    if forget_set & held:
        raise ValueError(f"forget_{ratio}: {len(forget_set & held)} published forget IDs are in the holdout")
    retain = [i for i in all_ids if i not in forget_set]
    assert forget_set.isdisjoint(retain) and forget_set | set(retain) == set(all_ids)
    celebrity = read_ids(bench_root / "Retain_Set")
    rng = random.Random(f"{seed}:{ratio}")
    test_images = {}
    for f in parquet_files(bench_root / "Test_Set"):
        table = pq.read_table(f, columns=["ID", "images"])
        for pid, imgs in zip(table.column("ID").to_pylist(), table.column("images").to_pylist()):
            if str(pid) in forget_set:
                test_images[str(pid)] = rng.randrange(len(imgs))
    absent = sorted(forget_set - set(test_images))
    if absent:
        raise DataError(bench_root / "Test_Set", "ID", f"{len(absent)} of the {ratio} % forget IDs have no Test_Set "
                        f"row, e.g. {absent[:3]}: the Test set cannot be evaluated")
    # Few-shot pools follow the original (spec §2.5): the evaluated split's own IDs (forget IDs for test).
    pools = {"forget": forget, "test": forget, "retain": retain, "celebrity": celebrity}
    fewshot_ids = {split: {task: sorted(rng.sample(sorted(pool), min(k, len(pool))))
                           for task, k in fewshot.items()}
                   for split, pool in pools.items()}
    # The corrected alternative (eval.fewshot_pool: held_out): demos from retain profiles that no split
    # scores, in a seeded order (task k takes the first k); its own stream keeps the draws above unchanged.
    pool_size = max(fewshot.values(), default=0)
    fewshot_pool = random.Random(f"{seed}:{ratio}:fewshot_pool").sample(sorted(retain), min(pool_size, len(retain)))
    return {"forget_ratio": ratio, "seed": seed, "source": source, "forget_ids": sorted(forget),
            "retain_ids": sorted(retain), "celebrity_ids": sorted(celebrity), "test_image_index": test_images,
            "fewshot_ids": fewshot_ids, "fewshot_pool": fewshot_pool, "holdout_ids": sorted(held)}
